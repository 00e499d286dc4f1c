"""What a pretrained masked LM needs to fill in [MASK]s: the model a config describes, the
ids of a seqlab WordPiece vocabulary's special tokens, and the check that a vocabulary has them.

This module imports no training code (no Lightning), so that loading a run
(`seqlab.tasks.pretrain.pipeline`) and fine-tuning from one (`seqlab.tasks.pretrain.finetune`)
stay light; `seqlab.tasks.pretrain.recipe` trains with the same pieces.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer

from seqlab.config import RunConfig
from seqlab.data.tokenize import CLS, MASK, PAD, SEP, UNK
from seqlab.errors import SeqlabError
from seqlab.models.bert import BertForPretraining

PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = range(5)  # a wordpiece vocabulary's first five ids
NUM_SPECIAL = 5


def check_vocabulary(tokenizer: Tokenizer, where: str | Path) -> None:
    """Masking relies on ids 0-4 being the special tokens (any vocabulary from `learn_wordpiece`)."""
    for expected, token in enumerate((PAD, UNK, CLS, SEP, MASK)):
        if tokenizer.token_to_id(token) != expected:
            raise SeqlabError(f"{where} is not a wordpiece vocabulary made by seqlab ({token} is not id {expected})")


def build_model(cfg: RunConfig, vocab_size: int) -> BertForPretraining:
    m = cfg.model
    return BertForPretraining(
        vocab_size, m.d_model, m.num_heads, m.num_layers, m.ff_dim, m.dropout, m.positional, 512, m.num_segments, PAD_ID
    )


@torch.inference_mode()
def fill_mask(model: BertForPretraining, tokenizer: Tokenizer, text: str, top_k: int, max_length: int) -> list[list[dict]]:
    """The `top_k` most likely wordpieces for every [MASK] in `text`, in order.

    Returns:
        One list per [MASK] of {"token", "probability"}, most likely first. Probabilities come
        from the softmax over the whole vocabulary; special tokens are never proposed, so each
        list sums to at most 1.

    Raises:
        SeqlabError: no [MASK] in the text, or the text is longer than `max_length` tokens.
    """
    ids = tokenizer.encode(text).ids
    if MASK_ID not in ids:
        raise SeqlabError(
            f"no {MASK} in {text[:60]!r}; write {MASK} where a word is to be predicted, e.g. 'to be or not to {MASK}'"
        )
    if len(ids) > max_length:
        raise SeqlabError(
            f"the text is {len(ids)} tokens, over the model's limit of {max_length} (tokenizer.max_length); shorten it"
        )
    model.eval()
    input_ids = torch.tensor([ids])
    out = model(input_ids, torch.ones_like(input_ids, dtype=torch.bool), select=input_ids == MASK_ID)
    probs = out.mlm_logits.float().softmax(dim=-1)[:, NUM_SPECIAL:]  # (masks, V - 5)
    best = probs.topk(min(top_k, probs.size(-1)), dim=-1)
    return [
        [{"token": tokenizer.id_to_token(int(i) + NUM_SPECIAL), "probability": float(p)} for p, i in zip(values, indices)]
        for values, indices in zip(best.values, best.indices)
    ]
