"""Language modelling (task `lm`): predict the next token of running text.

- **Text** (`load_text`): `shakespeare` (the complete works, plays separated by blank lines), any
  labelled built-in dataset (its texts, one per line), or a user's file (`.txt` as is; the text
  column of `.csv`/`.tsv`/`.jsonl`, one text per line).
- **Splits** (`split_text`): contiguous, not shuffled: the first part trains, then valid, then
  test (by default the first 90% / the last 10%, as published character-level results use), so
  held-out text is text the model has never seen a window of.
- **Tokens**: a char, word or BPE vocabulary learned on the training part (`data.tokenize`), or
  a pretrained model's own tokenizer (`arch: hf`). `Codec` gives both one interface.
- **Token ids**: a `.txt` file (`split_text_file`) is never read whole: its splits are character
  ranges, streamed and tokenised once into memory-mapped token files in the cache
  (`seqlab.data.tokens`; later runs with the same file and vocabulary reuse them), so a corpus
  may be larger than memory. Other text (built-in corpora, a table's text column) is encoded
  in memory (`split_text`). Both give the same ids.
- **Training windows** (`TokenWindows`, `RandomWindowSampler`): `tokenizer.max_length` tokens
  starting at random offsets, the target being the same window shifted by one (nanoGPT's
  sampling); a batch is read with one gather, unpadded. The starts of each batch are seeded by
  (seed, epoch, batch), so under DDP every process draws the same global batch and trains on
  its slice, and `--resume` continues with the batches an uninterrupted run would have seen.
  Held-out text is read in consecutive windows (`heldout_windows`), so every token is scored
  exactly once.
- **Loss**: mean cross-entropy per token; `evaluate` reports perplexity and bits per character
  (the total loss in bits over the number of characters, comparable across vocabularies).

What generation and scoring need (`Codec`, `build_lm`, `evaluate`, `load_text`, ...) lives in
`seqlab.tasks.lm.inference`, which loading a run imports without this module's training code.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
from torch import nn
from torch.utils.data import DataLoader

from seqlab import runs
from seqlab.config import RunConfig, TrainConfig
from seqlab.data import tokens
from seqlab.data.benchmarks import EOS, WIKITEXT2, wikitext2_vocab
from seqlab.data.tokenize import load_tokenizer, train_tokenizer
from seqlab.data.tokens import RandomWindowSampler, TextSpan, TokenFile, TokenWindows
from seqlab.errors import SeqlabError
from seqlab.lifecycle import Finished
from seqlab.tasks.lm.inference import (  # noqa: F401 (re-exported: the recipe trains and scores with them)
    IGNORE,
    Codec,
    build_lm,
    collate_windows,
    evaluate,
    heldout_windows,
    load_pretrained_lm,
    load_text,
    next_token_logits,
    standard_splits,
    token_nats,
)
from seqlab.trainer import FitResult, fit, global_mean, make_optimizer, with_lr_schedule

# --------------------------------------------------------------------------- text and splits


@dataclass
class TextSplits:
    """The text of each split: a string, or a character range of a file (`TextSpan`, streamed)."""

    train: str | TextSpan
    valid: str | TextSpan
    test: str | TextSpan
    sources: dict[str, str]


def split_text(cfg: RunConfig) -> TextSplits:
    """Contiguous train / valid / test parts of `data.train` (or `data.valid`/`data.test` files);
    a built-in corpus with standard splits (`wikitext-2`) keeps them as released."""
    data = cfg.data
    standard = standard_splits(data.train)
    if standard is not None:
        splits = TextSplits(
            load_text(data.train),
            load_text(data.valid or standard["valid"]),
            load_text(data.test or standard["test"]),
            {"train": data.train, "valid": data.valid or standard["valid"], "test": data.test or standard["test"]},
        )
        return splits
    text = load_text(data.train, max_chars=data.max_chars, text_column=data.text_column)
    test_cut = len(text) - (0 if data.test else round(len(text) * data.test_fraction))
    valid_cut = test_cut - (0 if data.valid else round(len(text) * data.valid_fraction))
    splits = TextSplits(
        text[:valid_cut],
        load_text(data.valid, max_chars=data.max_chars) if data.valid else text[valid_cut:test_cut],
        load_text(data.test, max_chars=data.max_chars) if data.test else text[test_cut:],
        {
            "train": data.train,
            "valid": data.valid or f"{data.train} (after the first {valid_cut:,} characters)",
            "test": data.test or f"{data.train} (the last {len(text) - test_cut:,} characters)",
        },
    )
    if len(splits.train) < 2:
        raise SeqlabError(f"{data.train} leaves only {len(splits.train)} characters to train on")
    return splits


def streams_from_disk(cfg: RunConfig) -> bool:
    """Whether a run reads its text from disk in pieces (`split_text_file`): when `data.train`
    is a `.txt` file, and so are `data.valid`/`data.test` where given."""
    data = cfg.data
    return all(
        spec is None or (Path(spec).suffix.lower() == ".txt" and Path(spec).is_file())
        for spec in (data.train, data.valid, data.test)
    )


def _scan(spec: str) -> tokens.TextFile:
    scanned = tokens.scan_text(spec)
    if scanned.blank:
        raise SeqlabError(f"{spec} is empty; a language model needs text to learn from")
    return scanned


def split_text_file(cfg: RunConfig) -> TextSplits:
    """`split_text` for `.txt` files, without reading them into memory: the same contiguous
    splits, as character ranges (`TextSpan`) of one pass's count."""
    data = cfg.data
    whole = _scan(data.train)
    total = whole.characters
    test_cut = total - (0 if data.test else round(total * data.test_fraction))
    valid_cut = test_cut - (0 if data.valid else round(total * data.valid_fraction))
    splits = TextSplits(
        whole.span(0, valid_cut),
        _scan(data.valid).span() if data.valid else whole.span(valid_cut, test_cut),
        _scan(data.test).span() if data.test else whole.span(test_cut, total),
        {
            "train": data.train,
            "valid": data.valid or f"{data.train} (after the first {valid_cut:,} characters)",
            "test": data.test or f"{data.train} (the last {total - test_cut:,} characters)",
        },
    )
    if len(splits.train) < 2:
        raise SeqlabError(f"{data.train} leaves only {len(splits.train)} characters to train on")
    return splits


# --------------------------------------------------------------------------- tokens


def closed_vocabulary(spec: str) -> bool:
    """Whether `spec` is a corpus released with its own closed word vocabulary (WikiText-2:
    rare words already replaced by `<unk>`), which a word-level run must keep as it is."""
    return spec.partition(":")[0] == WIKITEXT2 and not Path(spec).is_file()


def wikitext2_tokenizer() -> Tokenizer:
    """WikiText-2's own word vocabulary: its 33,278 types (`<unk>` and `<eos>` included, in
    order of first appearance), words split at whitespace, case kept, and every line end read as
    `<eos>`, so the released text encodes to exactly the token stream the papers count
    (2,088,628 training tokens) and perplexities compare with theirs. Nothing is added: no
    [PAD] (a causal model never reads the right padding of a held-out window) and no [UNK]
    other than the corpus's own `<unk>`."""
    vocab = wikitext2_vocab()
    tokenizer = Tokenizer(models.WordLevel({word: i for i, word in enumerate(vocab)}, unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Replace("\n", f" {EOS} ")
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return tokenizer


def learn_tokenizer(cfg: RunConfig, train_text: str | TextSpan) -> Tokenizer:
    """A char/word/BPE vocabulary learned on the training text only (a `TextSpan` streamed)."""
    tok = cfg.tokenizer
    if tok.level == "word" and closed_vocabulary(cfg.data.train):
        return wikitext2_tokenizer()
    lines = train_text.lines() if isinstance(train_text, TextSpan) else train_text.splitlines(keepends=True)
    return train_tokenizer(lines, tok.level, tok.vocab_size, tok.min_frequency, tok.lowercase)


def _encode_chunks(codec: Codec, chunks: list[str]) -> list[list[int]]:
    tokenizer: Any = codec.tokenizer  # (as `Codec.encode_stream` encodes its chunks)
    if codec.pretrained:
        return tokenizer(chunks, add_special_tokens=False)["input_ids"]
    return [encoding.ids for encoding in tokenizer.encode_batch(chunks, add_special_tokens=False)]


def _tokenizer_id(codec: Codec) -> str:
    """A hash of everything that decides a codec's ids (for the token-file cache)."""
    tok: Any = codec.tokenizer
    backend = tok if isinstance(tok, Tokenizer) else getattr(tok, "backend_tokenizer", None)
    described = backend.to_str() if backend is not None else json.dumps(sorted(tok.get_vocab().items()))
    return hashlib.sha256(f"{codec.pretrained}:{described}".encode()).hexdigest()


def token_ids(text: str | TextSpan, codec: Codec) -> torch.Tensor | TokenFile:
    """A split's (N,) token ids: a tensor for text in memory; for a span of a file, a token
    file tokenised once into the cache (under DDP by the first process on each machine)."""
    if isinstance(text, str):
        return codec.encode_stream(text)
    return tokens.tokenise_span(
        text, partial(_encode_chunks, codec), vocab_size=codec.vocab_size, tokenizer_id=_tokenizer_id(codec)
    )


# --------------------------------------------------------------------------- windows


def make_loaders(
    cfg: RunConfig, train_ids: torch.Tensor | TokenFile, valid_ids: torch.Tensor | TokenFile
) -> tuple[DataLoader, DataLoader | None]:
    """Random training windows (`train.batch_size` a batch; `seqlab.trainer.fit` shards them
    across DDP processes) and consecutive validation windows (every process scores them all)."""
    block, batch = cfg.tokenizer.max_length, cfg.train.batch_size
    sampler = RandomWindowSampler(len(train_ids), block, batch, cfg.train.seed)
    train = DataLoader(TokenWindows(train_ids, block), batch_sampler=sampler, collate_fn=collate_windows)
    windows = heldout_windows(valid_ids, block)
    valid = DataLoader(windows, batch_size=batch, collate_fn=collate_windows) if len(windows) else None
    return train, valid


# --------------------------------------------------------------------------- models


class LanguageModelModule(L.LightningModule):
    """Next-token cross-entropy; logs `train_loss`, `val_loss` (per token) and `val_ppl`."""

    def __init__(self, model: nn.Module, train_cfg: TrainConfig):
        super().__init__()
        self.model = model
        self.train_cfg = train_cfg
        self._val = [0.0, 0]

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        total, count = token_nats(self.model, batch)
        loss = global_mean(self, total, count)  # per token of the global batch (DDP: of every process's slice)
        self.log("train_loss", loss, prog_bar=True, batch_size=batch["input_ids"].size(0), sync_dist=True)
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val = [0.0, 0]

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        total, count = token_nats(self.model, batch)
        self._val[0] += float(total)
        self._val[1] += count

    def on_validation_epoch_end(self) -> None:
        loss = self._val[0] / max(self._val[1], 1)
        # (under DDP every process validates the whole split: the mean over processes changes nothing)
        self.log("val_loss", loss, prog_bar=True, sync_dist=True)
        self.log("val_ppl", math.exp(min(loss, 50.0)), sync_dist=True)

    def configure_optimizers(self) -> Any:
        return with_lr_schedule(self, make_optimizer(self, self.train_cfg), self.train_cfg)


@dataclass
class FittedLM:
    model: nn.Module
    result: FitResult
    ids: dict[str, torch.Tensor | TokenFile] = field(default_factory=dict)  # (N,) token ids of each split


def fit_lm(
    cfg: RunConfig,
    model: nn.Module,
    train_ids: torch.Tensor | TokenFile,
    valid_ids: torch.Tensor | TokenFile,
    work_dir: Path,
    *,
    resume: bool = False,
    progress: str | None = None,
) -> FittedLM:
    """Train `model` on random windows of `train_ids`, keeping the best validation on `valid_ids`."""
    train_loader, valid_loader = make_loaders(cfg, train_ids, valid_ids)
    result = fit(
        LanguageModelModule(model, cfg.train), train_loader, valid_loader, work_dir, cfg.train, resume=resume, progress=progress
    )
    return FittedLM(model.eval(), result)


# --------------------------------------------------------------------------- the run life cycle's steps


@dataclass
class LMVocabulary:
    """A language model's vocabulary; a pretrained model (arch hf) comes with its weights."""

    codec: Codec
    pretrained: nn.Module | None = None


class LMRecipe:
    """Language modelling's steps of `seqlab.lifecycle.train_run`."""

    task = "lm"

    def configure(self, cfg: RunConfig) -> RunConfig:
        return cfg

    def load_data(self, cfg: RunConfig) -> TextSplits:
        return split_text_file(cfg) if streams_from_disk(cfg) else split_text(cfg)

    def learn_vocabulary(self, cfg: RunConfig, data: TextSplits) -> LMVocabulary:
        if cfg.model.arch == "hf":
            model, codec = load_pretrained_lm(cfg.model.model)
            return LMVocabulary(codec, model)
        return LMVocabulary(Codec(learn_tokenizer(cfg, data.train)))

    def vocabulary_files(self, cfg: RunConfig) -> tuple[str, ...]:
        return () if cfg.model.arch == "hf" else (runs.TOKENIZER,)  # (a pretrained tokenizer is saved with the model)

    def save_vocabulary(self, vocabulary: LMVocabulary, run_dir: Path) -> None:
        if vocabulary.pretrained is None:
            runs.save_tokenizer(vocabulary.codec.tokenizer, run_dir / runs.TOKENIZER)

    def load_vocabulary(self, cfg: RunConfig, run_dir: Path) -> LMVocabulary:
        if cfg.model.arch == "hf":
            return self.learn_vocabulary(cfg, None)
        return LMVocabulary(Codec(load_tokenizer(run_dir / runs.TOKENIZER)))

    def describe(self, data: TextSplits, vocabulary: LMVocabulary) -> str:
        return f"{len(data.train):,} train / {len(data.valid):,} valid / {len(data.test):,} test characters"

    def fit(
        self, cfg: RunConfig, data: TextSplits, vocabulary: LMVocabulary, run_dir: Path, *, resume: bool, progress: str | None
    ) -> FittedLM:
        model = vocabulary.pretrained
        if model is None:
            torch.manual_seed(cfg.train.seed)  # same initial weights for the same seed
            model = build_lm(cfg, vocabulary.codec.tokenizer.get_vocab_size())
        ids = {name: token_ids(getattr(data, name), vocabulary.codec) for name in ("train", "valid", "test")}
        fitted = fit_lm(cfg, model, ids["train"], ids["valid"], run_dir, resume=resume, progress=progress)
        fitted.ids = ids
        return fitted

    def finish(self, run_dir: Path, cfg: RunConfig, data: TextSplits, vocabulary: LMVocabulary, fitted: FittedLM) -> Finished:
        block = cfg.tokenizer.max_length
        metrics = {
            name: evaluate(fitted.model, fitted.ids[name], len(getattr(data, name)), block)
            for name in ("valid", "test")
            if len(fitted.ids[name]) > 1
        }
        shown = "test" if "test" in metrics else "valid" if "valid" in metrics else None
        if shown is not None:  # a few continuations for the run's report (seqlab.report)
            samples = sample_continuations(cfg, fitted.model, vocabulary.codec, getattr(data, shown))
            if samples:
                metrics[shown]["samples"] = samples
        if vocabulary.pretrained is not None:
            save_pretrained(fitted.model, vocabulary.codec.tokenizer, run_dir)
        else:
            runs.save_weights(fitted.model, run_dir / runs.WEIGHTS)
        seen = {
            name: {
                "source": data.sources[name],
                "characters": len(getattr(data, name)),
                "tokens": len(fitted.ids[name]),
                "sha256": _text_hash(getattr(data, name), fitted.ids[name]),
            }
            for name in ("train", "valid", "test")
        }
        files = {name: str(ids.path) for name, ids in fitted.ids.items() if isinstance(ids, TokenFile)}
        return Finished(metrics, seen, {"token_files": files} if files else {})


def _text_hash(text: str | TextSpan, ids: torch.Tensor | TokenFile) -> str:
    """`runs.data_hash` of a split's text (a file's span: as computed while tokenising it)."""
    if isinstance(ids, TokenFile) and "sha256" in ids.meta:
        return ids.meta["sha256"]
    return runs.data_hash([(text if isinstance(text, str) else "".join(text.lines()), "")])


def save_pretrained(model: nn.Module, tokenizer: Any, run_dir: Path) -> None:
    """`save_pretrained` into a temporary folder, then move the files in, weights last (a
    transformers folder is then also the run folder)."""
    staging = run_dir / ".save_pretrained"
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    for file in sorted(staging.iterdir(), key=lambda f: f.name == runs.WEIGHTS):
        file.replace(run_dir / file.name)
    staging.rmdir()


def sample_continuations(cfg: RunConfig, model: nn.Module, codec: Any, text: str | TextSpan, count: int = 4) -> list[dict]:
    """The model's continuations of the starts of `count` held-out lines (sampled: temperature
    0.8, top-k 40, seed 0), beside each line's own continuation. Decoration for the report: a
    failure here is logged and leaves the samples out, never the run."""
    import logging
    from itertools import islice

    from seqlab.tasks.lm.pipeline import GeneratorPipeline

    lines = text.splitlines()[:500] if isinstance(text, str) else [line.rstrip("\n") for line in islice(text.lines(), 500)]
    chosen = [line.split() for line in lines if len(line.split()) >= 4][:count]
    try:
        pipe = GeneratorPipeline(model, codec, "trained model", cfg)
        new_tokens = 60 if cfg.tokenizer.level == "char" else 20
        if pipe.context_length is not None:
            new_tokens = min(new_tokens, pipe.context_length // 2)
        prompts = [" ".join(words[: max(2, len(words) // 3)]) for words in chosen]
        outputs = (
            pipe.generate(prompts, max_new_tokens=new_tokens, do_sample=True, temperature=0.8, top_k=40, seed=0)
            if prompts
            else []
        )
    except Exception as err:  # noqa: BLE001 - samples only decorate the report
        logging.getLogger("seqlab").warning("no generated samples for the report (%s)", err)
        return []
    return [
        {"prompt": prompt, "continuation": out, "reference": " ".join(words[len(prompt.split()) :])}
        for prompt, out, words in zip(prompts, outputs, chosen)
    ]


RECIPE = LMRecipe()
