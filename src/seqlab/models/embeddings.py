"""Pretrained word vectors in a classifier's embedding layer (Kim, 2014: CNN-static/non-static).

No I/O here: the caller loads the vectors (`seqlab.data.vectors`) and passes a matrix.
"""

from __future__ import annotations

import torch
from torch import nn


def word_embedding(model: nn.Module) -> nn.Embedding:
    """The token embedding of a seqlab classifier: `model.embedding` (RNN, CNN) or
    `model.encoder.embedding` (Transformer)."""
    for owner in (model, getattr(model, "encoder", None)):
        embedding = getattr(owner, "embedding", None)
        if isinstance(embedding, nn.Embedding):
            return embedding
    raise ValueError(f"{type(model).__name__} has no word embedding to initialise")


def set_word_vectors(embedding: nn.Embedding, vectors: torch.Tensor, found: torch.Tensor, freeze: bool) -> float:
    """Copy pretrained vectors into the rows `found`; the others keep their random init.

    The vectors are rescaled to the standard deviation of the embedding's own random init, so
    pretrained and random rows have the same variance (Kim chose his U(-a, a) for the same
    reason) and the rest of the model sees inputs of the size it was built for: U(-0.25, 0.25)
    (std 0.144) for the RNN and CNN, std d^-1/2 for the Transformer, which multiplies by √d.
    spaCy's md vectors have std 0.44, three times Kim's. Scaling keeps every cosine similarity.

    Args:
        embedding: the layer to fill; its padding row stays zero.
        vectors: (V, E) pretrained vectors, rows aligned with token ids.
        found: (V,) bool, True where `vectors` holds a real vector.
        freeze: "static": the whole embedding (random rows too, as in Kim's CNN-static) stops
            training; optimisers must take only parameters that require grad.

    Returns:
        The factor the vectors were multiplied by.
    """
    weight = embedding.weight
    if vectors.shape != weight.shape or found.shape != weight.shape[:1]:
        raise ValueError(
            f"vectors {tuple(vectors.shape)} / found {tuple(found.shape)} do not fit an embedding {tuple(weight.shape)}"
        )
    found = found.clone()
    real = torch.ones_like(found)
    if embedding.padding_idx is not None:
        found[embedding.padding_idx] = False
        real[embedding.padding_idx] = False
    scale = 1.0
    with torch.no_grad():
        if found.any():
            source = vectors[found].float().std()
            target = weight[real].float().std()
            if source > 0 and target > 0:
                scale = float(target / source)
            weight[found] = (vectors[found] * scale).to(weight.dtype)
    weight.requires_grad_(not freeze)
    return scale
