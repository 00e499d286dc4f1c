"""Transfer learning at the embedding layer: start a classifier from pretrained word vectors.

`model.embeddings` (`spacy-md` or a spaCy folder) and `model.embeddings_mode` (`static` |
`non-static`) select them; `fit_classifier` calls `apply_word_vectors` right after building the
model. Only training needs the vectors: a finished run's weights already hold them.
"""

from __future__ import annotations

import logging
from importlib import metadata
from typing import TYPE_CHECKING, Any, cast

import torch
from tokenizers import Tokenizer
from torch import nn

from seqlab.config import RunConfig
from seqlab.data.tokenize import SPECIAL_TOKENS
from seqlab.data.vectors import embedding_matrix, load_vectors
from seqlab.errors import SeqlabError
from seqlab.models.embeddings import set_word_vectors, word_embedding

if TYPE_CHECKING:
    from seqlab.config import _WordModelBase

log = logging.getLogger("seqlab")


def apply_word_vectors(model: nn.Module, cfg: RunConfig, tokenizer: Tokenizer) -> dict[str, Any] | None:
    """Initialise `model`'s word embedding from `cfg.model.embeddings`, if set.

    Returns:
        None without vectors; else the coverage record for `manifest.json` (source, mode, words,
        exact and lowercase hits, found, coverage, scale, spaCy version).

    Raises:
        SeqlabError: unknown vectors, a char-level tokenizer, or an embedding size that differs
            from the vectors' size (naming the key to change).
    """
    spec = getattr(cfg.model, "embeddings", None)
    if spec is None:
        return None
    if cfg.tokenizer.level == "char":
        raise SeqlabError("model.embeddings holds word vectors; they need tokenizer.level=word (or bpe), not char")
    vectors = load_vectors(spec)
    embedding = word_embedding(model)
    if embedding.embedding_dim != vectors.dim:
        key = "d_model" if hasattr(cfg.model, "d_model") else "embed_dim"
        raise SeqlabError(
            f"model.{key}={embedding.embedding_dim} does not match the {vectors.dim}-d vectors of {spec}; "
            f"set model.{key}={vectors.dim}"
        )
    word_model = cast("_WordModelBase", cfg.model)  # it has `embeddings` (checked above)
    matrix, found, coverage = embedding_matrix(tokenizer.get_vocab(), vectors, skip=SPECIAL_TOKENS)
    scale = set_word_vectors(
        embedding, torch.from_numpy(matrix), torch.from_numpy(found), freeze=word_model.embeddings_mode == "static"
    )
    log.info("%s", coverage.describe())
    return {
        **coverage.as_dict(),
        "mode": word_model.embeddings_mode,
        "dim": vectors.dim,
        "scale": round(scale, 6),
        "spacy": metadata.version("spacy"),
    }
