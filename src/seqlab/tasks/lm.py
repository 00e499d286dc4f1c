"""Language modelling (task `lm`): predict the next token of running text.

- **Text** (`load_text`): `shakespeare` (the complete works, plays separated by blank lines), any
  labelled built-in dataset (its texts, one per line), or a user's file (`.txt` as is; the text
  column of `.csv`/`.tsv`/`.jsonl`, one text per line).
- **Splits** (`split_text`): contiguous, not shuffled: the first part trains, then valid, then
  test (by default the first 90% / the last 10%, as published character-level results use), so
  held-out text is text the model has never seen a window of.
- **Tokens**: a char, word or BPE vocabulary learned on the training part (`data.tokenize`), or
  a pretrained model's own tokenizer (`arch: hf`). `Codec` gives both one interface.
- **Training windows** (`RandomWindows`): `tokenizer.max_length` tokens starting at random
  offsets, the target being the same window shifted by one (nanoGPT's sampling); a batch is cut
  out of the token tensor with one index, unpadded. Held-out text is read in consecutive
  windows (`heldout_windows`), so every token is scored exactly once.
- **Loss**: mean cross-entropy per token; `evaluate` reports perplexity and bits per character
  (the total loss in bits over the number of characters, comparable across vocabularies).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from torch import nn
from torch.utils.data import DataLoader, Dataset

from seqlab import hub
from seqlab.config import RunConfig, TrainConfig
from seqlab.data.batching import pad_batch
from seqlab.data.corpus import load_corpus
from seqlab.data.readers import _read_utf8
from seqlab.data.tokenize import PAD_ID, train_tokenizer
from seqlab.errors import SeqlabError
from seqlab.models.gpt import GPT
from seqlab.models.rnn import RNNLanguageModel
from seqlab.train import FitResult, fit, make_optimizer, with_lr_schedule

IGNORE = -100  # target of padded positions (F.cross_entropy's ignore_index)


# --------------------------------------------------------------------------- text and splits


def load_text(spec: str, *, max_chars: int = 100_000, text_column: str | None = None) -> str:
    """Running text from a built-in name or a file (see the module docstring)."""
    path = Path(spec)
    if path.suffix.lower() == ".txt" and path.is_file():
        text = _read_utf8(path)
        if not text.strip():
            raise SeqlabError(f"{path} is empty; a language model needs text to learn from")
        return text
    documents = load_corpus(spec, max_chars=max_chars, text_column=text_column)
    return "\n\n".join("\n".join(sentences) for sentences in documents) + "\n"


@dataclass
class TextSplits:
    train: str
    valid: str
    test: str
    sources: dict[str, str]


def split_text(cfg: RunConfig) -> TextSplits:
    """Contiguous train / valid / test parts of `data.train` (or `data.valid`/`data.test` files)."""
    data = cfg.data
    text = load_text(data.train, max_chars=data.max_chars, text_column=data.text_column)
    test_cut = len(text) - (0 if data.test else round(len(text) * data.test_fraction))
    valid_cut = test_cut - (0 if data.valid else round(len(text) * data.valid_fraction))
    splits = TextSplits(
        text[:valid_cut],
        load_text(data.valid, max_chars=data.max_chars) if data.valid else text[valid_cut:test_cut],
        load_text(data.test, max_chars=data.max_chars) if data.test else text[test_cut:],
        {"train": data.train, "valid": data.valid or f"{data.train} (after the first {valid_cut:,} characters)",
         "test": data.test or f"{data.train} (the last {len(text) - test_cut:,} characters)"},
    )
    if len(splits.train) < 2:
        raise SeqlabError(f"{data.train} leaves only {len(splits.train)} characters to train on")
    return splits


# --------------------------------------------------------------------------- tokens


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


def learn_tokenizer(cfg: RunConfig, train_text: str) -> Tokenizer:
    """A char/word/BPE vocabulary learned on the training text only."""
    tok = cfg.tokenizer
    return train_tokenizer(train_text.splitlines(keepends=True), tok.level, tok.vocab_size, tok.min_frequency, tok.lowercase)


# --------------------------------------------------------------------------- windows


class RandomWindows(Dataset):
    """`len(ids) // block` training windows per epoch, each at a random offset (seeded).

    The DataLoader fetches a whole batch with `__getitems__`: one draw of B offsets and one
    gather, a (B, block + 1) tensor, instead of B Python-level slices.
    """

    def __init__(self, ids: torch.Tensor, block: int, seed: int):
        if len(ids) < 2:
            raise SeqlabError("the training text has fewer than 2 tokens; give more text")
        self.ids = ids
        self.block = min(block, len(ids) - 1)
        self.generator = torch.Generator().manual_seed(seed)
        self.offsets = torch.arange(self.block + 1)  # (block + 1,)

    def __len__(self) -> int:
        return max(1, (len(self.ids) - 1) // self.block)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> torch.Tensor:
        """(B, block + 1) windows at B fresh random offsets (the indices only count them)."""
        starts = torch.randint(0, len(self.ids) - self.block, (len(indices), 1), generator=self.generator)  # (B, 1)
        return self.ids[starts + self.offsets]  # (B, block + 1)


def heldout_windows(ids: torch.Tensor, block: int) -> list[torch.Tensor]:
    """Consecutive windows of `block` + 1 tokens overlapping by one: every token but the first is
    a target exactly once."""
    return [ids[start : start + block + 1] for start in range(0, max(len(ids) - 1, 0), block)]


def collate_windows(windows: torch.Tensor | Sequence[torch.Tensor]) -> dict[str, torch.Tensor | None]:
    """Windows of n + 1 tokens → inputs (B, n) and targets (B, n).

    A (B, n + 1) tensor (`RandomWindows`) needs no padding: its mask is None. A list of windows
    (`heldout_windows`, whose last one may be shorter) is right-padded, padding targets ignored.
    """
    if isinstance(windows, torch.Tensor):
        return {"input_ids": windows[:, :-1], "attention_mask": None, "targets": windows[:, 1:]}
    inputs, mask = pad_batch([w[:-1] for w in windows])
    targets, _ = pad_batch([w[1:] for w in windows], pad_id=IGNORE)
    return {"input_ids": inputs, "attention_mask": mask, "targets": targets}


def make_loaders(cfg: RunConfig, train_ids: torch.Tensor, valid_ids: torch.Tensor) -> tuple[DataLoader, DataLoader | None]:
    block, batch = cfg.tokenizer.max_length, cfg.train.batch_size
    train = DataLoader(RandomWindows(train_ids, block, cfg.train.seed), batch_size=batch, collate_fn=collate_windows)
    windows = heldout_windows(valid_ids, block)
    valid = DataLoader(windows, batch_size=batch, collate_fn=collate_windows) if windows else None
    return train, valid


# --------------------------------------------------------------------------- models


def build_lm(cfg: RunConfig, vocab_size: int) -> nn.Module:
    """The from-scratch LM a config describes (arch gpt, rnn, lstm or gru)."""
    m = cfg.model
    if m.arch == "gpt":
        return GPT(vocab_size, m.d_model, m.num_heads, m.num_layers, m.ff_dim, m.max_len, m.positional, m.dropout,
                   m.tie_weights, m.bias)
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


class LanguageModelModule(L.LightningModule):
    """Next-token cross-entropy; logs `train_loss`, `val_loss` (per token) and `val_ppl`."""

    def __init__(self, model: nn.Module, train_cfg: TrainConfig):
        super().__init__()
        self.model = model
        self.train_cfg = train_cfg
        self._val = [0.0, 0]

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, _ = token_nats(self.model, batch, reduction="mean")  # ignores padding; no count to sync on
        self.log("train_loss", loss, prog_bar=True, batch_size=batch["input_ids"].size(0))
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val = [0.0, 0]

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        total, count = token_nats(self.model, batch)
        self._val[0] += float(total)
        self._val[1] += count

    def on_validation_epoch_end(self) -> None:
        loss = self._val[0] / max(self._val[1], 1)
        self.log("val_loss", loss, prog_bar=True)
        self.log("val_ppl", math.exp(min(loss, 50.0)))

    def configure_optimizers(self) -> Any:
        return with_lr_schedule(self, make_optimizer(self, self.train_cfg), self.train_cfg)


@dataclass
class FittedLM:
    model: nn.Module
    result: FitResult


def fit_lm(cfg: RunConfig, model: nn.Module, train_ids: torch.Tensor, valid_ids: torch.Tensor, work_dir: Path, *,
           resume: bool = False, progress: str | None = None) -> FittedLM:
    """Train `model` on random windows of `train_ids`, keeping the best validation on `valid_ids`."""
    train_loader, valid_loader = make_loaders(cfg, train_ids, valid_ids)
    result = fit(LanguageModelModule(model, cfg.train), train_loader, valid_loader, work_dir, cfg.train, resume=resume, progress=progress)
    return FittedLM(model.eval(), result)


@torch.inference_mode()
def evaluate(model: nn.Module, ids: torch.Tensor, characters: int, block: int, batch_size: int = 32) -> dict:
    """Loss per token, perplexity and bits per character of held-out token ids.

    Args:
        ids: (N,) token ids of the held-out text.
        characters: length of that text in characters (for bits per character).
        block: context window; the text is read in consecutive windows of this many tokens.
    """
    model.eval()
    nats, tokens = 0.0, 0
    for batch in DataLoader(heldout_windows(ids, block), batch_size=batch_size, collate_fn=collate_windows):
        total, count = token_nats(model, batch)
        nats, tokens = nats + float(total), tokens + count
    if not tokens:
        raise SeqlabError("the held-out text has fewer than 2 tokens; nothing to score")
    loss = nats / tokens
    return {"loss": loss, "perplexity": math.exp(min(loss, 50.0)), "bits_per_char": nats / math.log(2) / max(characters, 1),
            "tokens": tokens, "characters": characters}


def load_pretrained_lm(name: str) -> tuple[nn.Module, Codec]:
    """A transformers causal LM (built-in name, folder or hub id) and its codec."""
    model, tokenizer = hub.load_causal_lm(name)
    return model, Codec(tokenizer)
