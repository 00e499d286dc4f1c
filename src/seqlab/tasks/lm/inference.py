"""What a trained language model needs to generate and be scored: the model a config describes,
the `Codec` between text and ids, held-out windows and their loss (perplexity, bits per
character), and the running text `evaluate` reads.

This module imports no training code (no Lightning), so that loading a run
(`seqlab.tasks.lm.pipeline`) stays fast; `seqlab.tasks.lm.recipe` trains with the same
functions. Pretrained models (`arch: hf`) import transformers only when loaded (`seqlab.hub`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from torch import nn
from torch.utils.data import DataLoader

from seqlab import hub
from seqlab.config import RunConfig
from seqlab.data.batching import pad_batch
from seqlab.data.benchmarks import wikitext2_lines
from seqlab.data.corpus import load_corpus
from seqlab.data.datasets import builtin_split
from seqlab.data.readers import _read_utf8
from seqlab.data.tokenize import PAD_ID
from seqlab.data.tokens import ConsecutiveWindows, TokenFile
from seqlab.errors import SeqlabError
from seqlab.models.gpt import GPT
from seqlab.models.rnn import RNNLanguageModel, reorder_state

IGNORE = -100  # target of padded positions (F.cross_entropy's ignore_index)


def load_text(spec: str, *, max_chars: int = 100_000, text_column: str | None = None) -> str:
    """Running text from a built-in name or a file (see the module docstring). WikiText-2
    (`wikitext-2`, `wikitext-2:valid`, `wikitext-2:test`) is its released lines, each ended
    by a newline: a word-level run reads each line end as the corpus's `<eos>`."""
    path = Path(spec)
    if path.suffix.lower() == ".txt" and path.is_file():
        text = _read_utf8(path)
        if not text.strip():
            raise SeqlabError(f"{path} is empty; a language model needs text to learn from")
        return text
    named = builtin_split(spec)
    if named is not None and named[0].task == "lm":
        return "".join(f"{line}\n" for line in wikitext2_lines(named[1]))
    documents = load_corpus(spec, max_chars=max_chars, text_column=text_column)
    return "\n\n".join("\n".join(sentences) for sentences in documents) + "\n"


def standard_splits(spec: str) -> dict[str, str] | None:
    """`{"valid": "wikitext-2:valid", "test": "wikitext-2:test"}` when `spec` names a built-in
    corpus with standard splits (its training split), else None."""
    if ":" in spec or Path(spec).is_file():
        return None
    named = builtin_split(spec)
    if named is None or named[0].task != "lm" or not named[0].splits:
        return None
    return {split: f"{named[0].name}:{split}" for split in named[0].splits[1:]}


class Codec:
    """Text ↔ token ids for a run's own `tokenizers.Tokenizer` or a pretrained model's tokenizer.

    Attributes:
        vocab_size: the model's output size.
        eos_id, bos_id: end/beginning-of-text ids, None when the vocabulary has none.
    """

    def __init__(self, tokenizer: Tokenizer | object):
        self.tokenizer = tokenizer
        self.pretrained = not isinstance(tokenizer, Tokenizer)
        if self.pretrained:  # a transformers tokenizer
            self.vocab_size = len(tokenizer)
            self.eos_id, self.bos_id = tokenizer.eos_token_id, tokenizer.bos_token_id
            self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id
        else:
            self.vocab_size = tokenizer.get_vocab_size()
            self.eos_id = self.bos_id = None
            self.pad_id = PAD_ID

    def encode(self, text: str) -> list[int]:
        if self.pretrained:
            return self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def encode_stream(self, text: str) -> torch.Tensor:
        """A long text → (N,) ids, encoded line by line (so memory stays small) with line ends kept."""
        lines = text.splitlines(keepends=True)
        chunks = ["".join(lines[i : i + 256]) for i in range(0, len(lines), 256)]
        if not chunks:
            return torch.zeros(0, dtype=torch.long)
        if self.pretrained:
            encoded = self.tokenizer(chunks, add_special_tokens=False)["input_ids"]
        else:
            encoded = [e.ids for e in self.tokenizer.encode_batch(chunks, add_special_tokens=False)]
        return torch.tensor([i for ids in encoded for i in ids], dtype=torch.long)

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)  # same call for both kinds

    def token(self, token_id: int) -> str:
        """One id as its text piece (for streaming and displays)."""
        if self.pretrained:
            return self.tokenizer.decode([token_id])
        return self.tokenizer.id_to_token(token_id) or ""


def heldout_windows(ids: torch.Tensor | TokenFile, block: int) -> ConsecutiveWindows:
    """Consecutive windows of `block` + 1 tokens overlapping by one: every token but the first is
    a target exactly once. A sequence read on demand (ids may be a memory-mapped `TokenFile`)."""
    return ConsecutiveWindows(ids, block)


def collate_windows(windows: torch.Tensor | Sequence[torch.Tensor]) -> dict[str, torch.Tensor | None]:
    """Windows of n + 1 tokens → inputs (B, n) and targets (B, n).

    A (B, n + 1) tensor (`TokenWindows`, full held-out windows) needs no padding: its mask is None. A list of windows
    (`heldout_windows`, whose last one may be shorter) is right-padded, padding targets ignored.
    """
    if isinstance(windows, torch.Tensor):
        return {"input_ids": windows[:, :-1], "attention_mask": None, "targets": windows[:, 1:]}
    inputs, mask = pad_batch([w[:-1] for w in windows])
    targets, _ = pad_batch([w[1:] for w in windows], pad_id=IGNORE)
    return {"input_ids": inputs, "attention_mask": mask, "targets": targets}


def build_lm(cfg: RunConfig, vocab_size: int) -> nn.Module:
    """The from-scratch LM a config describes (arch gpt, rnn, lstm or gru)."""
    m = cfg.model
    if m.arch == "gpt":
        return GPT(
            vocab_size, m.d_model, m.num_heads, m.num_layers, m.ff_dim, m.max_len, m.positional, m.dropout, m.tie_weights, m.bias
        )
    return RNNLanguageModel(vocab_size, m.arch, m.embed_dim, m.hidden_dim, m.num_layers, m.dropout, m.tie_weights)


def next_token_logits(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """(B, T) ids → (B, T, V) logits for any LM seqlab trains: its own GPT/RNN or a transformers
    causal LM. Right padding needs no mask: a causal model never looks ahead at it."""
    if isinstance(model, (GPT, RNNLanguageModel)):
        return model(input_ids).logits
    return model(input_ids=input_ids, attention_mask=None if attention_mask is None else attention_mask.long()).logits


def token_nats(model: nn.Module, batch: dict[str, torch.Tensor | None], reduction: str = "sum") -> tuple[torch.Tensor, int]:
    """(cross-entropy in nats, number of target tokens) of one batch: summed over the tokens,
    or with `reduction="mean"` their mean (the count is then not computed: 0)."""
    logits = next_token_logits(model, batch["input_ids"], batch["attention_mask"])
    targets = batch["targets"]
    loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE, reduction=reduction)
    if reduction == "mean":
        return loss, 0
    return loss, targets.numel() if batch["attention_mask"] is None else int((targets != IGNORE).sum())


@torch.inference_mode()
def evaluate(model: nn.Module, ids: torch.Tensor, characters: int, block: int, batch_size: int = 32) -> dict:
    """Loss per token, perplexity and bits per character of held-out token ids.

    Args:
        ids: (N,) token ids of the held-out text.
        characters: length of that text in characters (for bits per character).
        block: context window; the text is read in consecutive windows of this many tokens (a
            recurrent model carries its state from window to window, see `recurrent_nats`).
    """
    model.eval()
    nats, tokens = 0.0, 0
    if isinstance(model, RNNLanguageModel):
        nats, tokens = recurrent_nats(model, ids, block, batch_size)
    for batch in DataLoader(heldout_windows(ids, block) if not tokens else [], batch_size=batch_size, collate_fn=collate_windows):
        total, count = token_nats(model, batch)
        nats, tokens = nats + float(total), tokens + count
    if not tokens:
        raise SeqlabError("the held-out text has fewer than 2 tokens; nothing to score")
    loss = nats / tokens
    return {
        "loss": loss,
        "perplexity": math.exp(min(loss, 50.0)),
        "bits_per_char": nats / math.log(2) / max(characters, 1),
        "tokens": tokens,
        "characters": characters,
    }


def recurrent_nats(model: RNNLanguageModel, ids: torch.Tensor, block: int, streams: int) -> tuple[float, int]:
    """(nats, tokens) of held-out ids under a recurrent LM that reads them as `streams`
    contiguous rows, `block` tokens at a time, its state carried from one window to the next
    (as the word-level LM papers evaluate: every token but the first of the text is scored once,
    with all of its row before it as context).

    Rows: ids[r·L : (r+1)·L] predict ids[r·L + 1 : (r+1)·L + 1]; the last targets that do not
    fill a row continue the last row, from its state.
    """
    targets = len(ids) - 1
    if targets < 1:
        return 0.0, 0
    rows = max(1, min(streams, targets // max(block, 1)))
    length = targets // rows
    inputs, goals = ids[: rows * length].view(rows, length), ids[1 : rows * length + 1].view(rows, length)  # (R, L)
    nats, state = 0.0, None
    for start in range(0, length, block):
        out = model(inputs[:, start : start + block], state)
        state = out.cache
        nats += float(
            F.cross_entropy(out.logits.flatten(0, 1).float(), goals[:, start : start + block].flatten(), reduction="sum")
        )
    rest = ids[rows * length :]  # continues the last row
    if len(rest) > 1:
        last = reorder_state(state, torch.tensor([rows - 1]))
        for start in range(0, len(rest) - 1, block):
            window = rest[start : start + block + 1][None]  # (1, n + 1)
            out = model(window[:, :-1], last)
            last = out.cache
            nats += float(F.cross_entropy(out.logits[0].float(), window[0, 1:], reduction="sum"))
    return nats, targets


def load_pretrained_lm(name: str) -> tuple[nn.Module, Codec]:
    """A transformers causal LM (built-in name, folder or hub id) and its codec."""
    model, tokenizer = hub.load_causal_lm(name)
    return model, Codec(tokenizer)
