"""Masked-LM pretraining of a BERT-style encoder (task `pretrain`); a classifier starts from
the result with `model.init` (`seqlab.tasks.pretrain.finetune`).

The recipe is BERT's (Devlin et al., 2019) with RoBERTa's dynamic masking (Liu et al., 2019):

- **Splits**: documents are shuffled with `data.split_seed` and laid end to end; the last
  `test_fraction`, then `valid_fraction`, of the *sentences* are held out. A document cut by a
  boundary is split in two, so every part is still a run of consecutive sentences.
- **Examples** (`build_examples`, built once per split, seeded): consecutive sentences of one
  document are packed up to `tokenizer.max_length` (with probability `short_seq_prob` up to a
  random shorter length, so short inputs are seen too). With NSP the pack is cut at a random
  sentence boundary into A and B; half the time B is replaced by sentences from another document
  (the unused sentences start the next example). A pair that is too long loses the start of A
  and the end of B, so the seam between them stays intact.
- **Masking** (`mask_tokens`, in the collate function, so every epoch masks anew, seeded):
  each real, non-special token is chosen with probability `mask_prob`; a chosen token becomes
  [MASK] 80% of the time, a random wordpiece 10%, and stays itself 10%. Labels are -100
  elsewhere. Held-out examples are masked once, so every epoch scores the same positions.
- **Loss**: cross-entropy on the chosen tokens, plus cross-entropy of the [CLS] NSP head when
  `pretrain.nsp`. The loop is `seqlab.trainer.fit`, monitoring `val_loss`.

Building the model and filling in [MASK]s (what a loaded run needs) live in
`seqlab.tasks.pretrain.inference`, which loading a run imports without this module's training code.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from torch.utils.data import DataLoader

from seqlab import runs
from seqlab.config import RunConfig, TrainConfig
from seqlab.data.batching import BucketBatchSampler, pad_batch
from seqlab.data.corpus import Corpus, load_corpus
from seqlab.data.tokenize import load_tokenizer, train_tokenizer
from seqlab.errors import SeqlabError
from seqlab.lifecycle import Finished
from seqlab.models.bert import BertForPretraining
from seqlab.tasks.pretrain.inference import (  # noqa: F401 (re-exported: the recipe trains with them)
    CLS_ID,
    MASK_ID,
    NUM_SPECIAL,
    PAD_ID,
    SEP_ID,
    UNK_ID,
    build_model,
    check_vocabulary,
    fill_mask,
)
from seqlab.trainer import FitResult, fit, global_mean, make_optimizer, with_lr_schedule

IGNORE = -100  # label of positions without a prediction (F.cross_entropy's ignore_index)
MIN_LENGTH = 8  # tokenizer.max_length below this leaves no room for a sentence pair


# --------------------------------------------------------------------------- corpus and vocabulary


@dataclass
class CorpusSplits:
    """Documents (lists of sentences) for training, early stopping and the final score."""

    train: Corpus
    valid: Corpus
    test: Corpus
    sources: dict[str, str] = field(default_factory=dict)


def load_splits(cfg: RunConfig) -> CorpusSplits:
    """Read `data.train` as a corpus and cut the held-out splits out of it (see the module
    docstring), or read them from `data.valid`/`data.test`; check that the task can use them.

    Raises:
        SeqlabError: unreadable data, too little of it, or NSP on a corpus without consecutive
            sentences.
    """
    data = cfg.data
    read = lambda spec: load_corpus(spec, max_chars=data.max_chars, text_column=data.text_column)  # noqa: E731
    documents = read(data.train)
    order = list(range(len(documents)))
    random.Random(data.split_seed).shuffle(order)
    rest = [documents[i] for i in order]
    total = sum(map(len, rest))
    test = read(data.test) if data.test else None
    valid = read(data.valid) if data.valid else None
    held = {
        "test": 0 if test is not None else _count(total, data.test_fraction, "test"),
        "valid": 0 if valid is not None else _count(total, data.valid_fraction, "valid"),
    }
    rest, cut_test = _cut(rest, total - held["test"])
    train, cut_valid = _cut(rest, total - held["test"] - held["valid"])
    if data.limit:
        train, _ = _cut(train, data.limit)
    sources = {
        "train": data.train,
        "valid": data.valid or f"{data.valid_fraction:.0%} of {data.train}",
        "test": data.test or f"{data.test_fraction:.0%} of {data.train}",
    }
    splits = CorpusSplits(train, valid if valid is not None else cut_valid, test if test is not None else cut_test, sources)
    _check(cfg, splits)
    return splits


def _count(total: int, fraction: float, name: str) -> int:
    count = round(total * fraction)
    if fraction and (count == 0 or count >= total):
        raise SeqlabError(f"{total} sentences are too few to hold out a {name} split; add text or set data.{name}_fraction=0")
    return count


def _cut(documents: Corpus, keep: int) -> tuple[Corpus, Corpus]:
    """(the first `keep` sentences, the rest), both as documents; a document cut in two becomes two."""
    head: Corpus = []
    for index, doc in enumerate(documents):
        if keep <= 0:
            return head, documents[index:]
        if len(doc) > keep:
            return head + [doc[:keep]], [doc[keep:]] + documents[index + 1 :]
        head.append(doc)
        keep -= len(doc)
    return head, []


def _check(cfg: RunConfig, splits: CorpusSplits) -> None:
    if not splits.train:
        raise SeqlabError("no training text left after the valid/test split")
    if cfg.tokenizer.max_length < MIN_LENGTH:
        raise SeqlabError(
            f"tokenizer.max_length={cfg.tokenizer.max_length} is too short for pretraining examples; use {MIN_LENGTH} or more"
        )
    if not cfg.pretrain.nsp:
        return
    source = splits.sources["train"]
    if not any(len(doc) > 1 for doc in splits.train):
        raise SeqlabError(
            f"next-sentence prediction needs documents of consecutive sentences, but every document of {source} "
            "is one sentence (independent snippets have no next sentence); drop --nsp, or use shakespeare or a "
            ".txt file with one sentence per line and blank lines between documents"
        )
    if len(splits.train) < 2:
        limited = f" (data.limit={cfg.data.limit} keeps its first {cfg.data.limit} sentences)" if cfg.data.limit else ""
        raise SeqlabError(
            f"next-sentence prediction takes its 'not next' sentences from other documents, and {source} leaves one "
            f"document for training{limited}; separate documents with blank lines, or drop --nsp"
        )


def learn_wordpiece(cfg: RunConfig, train: Corpus) -> Tokenizer:
    """A WordPiece vocabulary ([PAD]=0, [UNK]=1, [CLS], [SEP], [MASK]) from the training text only."""
    tok = cfg.tokenizer
    sentences = (sentence for doc in train for sentence in doc)
    return train_tokenizer(sentences, "wordpiece", tok.vocab_size, tok.min_frequency, tok.lowercase)


# --------------------------------------------------------------------------- examples


@dataclass
class MLMExample:
    """One input: ids and segment ids of `[CLS] A [SEP]` or `[CLS] A [SEP] B [SEP]`.

    is_next: 1 when B follows A in its document, 0 when B comes from another one, -1 without B.
    labels: the masked-LM targets of a held-out example, masked once (None: masked per batch).
    """

    ids: list[int]
    type_ids: list[int]
    is_next: int = -1
    labels: list[int] | None = None


def encode_documents(tokenizer: Tokenizer, documents: Corpus) -> list[list[list[int]]]:
    """Wordpiece ids of every sentence, without special tokens; sentences that encode to
    nothing (only control characters) are dropped."""
    flat = [sentence for doc in documents for sentence in doc]
    encoded = iter(enc.ids for enc in tokenizer.encode_batch(flat, add_special_tokens=False))
    documents_ids = [[ids for ids in (next(encoded) for _ in doc) if ids] for doc in documents]
    return [doc for doc in documents_ids if doc]


def build_examples(
    documents: Sequence[Sequence[list[int]]],
    max_length: int,
    nsp: bool,
    rng: random.Random,
    short_seq_prob: float = 0.1,
    negatives: Sequence[Sequence[list[int]]] | None = None,
) -> list[MLMExample]:
    """Pack consecutive sentences into examples (BERT's `create_instances_from_document`).

    Args:
        documents: per document, the ids of each sentence (no special tokens).
        max_length: tokens per example, special tokens included.
        nsp: make sentence pairs, half of them with B from another document.
        rng: seeded; the same seed gives the same examples.
        short_seq_prob: share of examples packed to a random shorter length.
        negatives: documents to take "not next" sentences from (default: the other documents
            of `documents`; a held-out split with a single document passes the training ones).
    """
    budget = max_length - (3 if nsp else 2)  # [CLS] A [SEP] (B [SEP])
    examples = []
    for index, doc in enumerate(documents):
        i = 0
        while i < len(doc):
            target = rng.randint(2, budget) if budget > 2 and rng.random() < short_seq_prob else budget
            chunk, size = [], 0
            while i < len(doc) and size < target:
                chunk.append(doc[i])
                size += len(doc[i])
                i += 1
            if not nsp:
                examples.append(_single(_flat(chunk)[:budget]))
                continue
            is_next = rng.random() < 0.5
            if is_next and len(chunk) == 1:  # a pair needs two sentences
                if i < len(doc):
                    chunk.append(doc[i])  # B: the sentence after the chunk
                    i += 1
                elif len(doc) > 1:
                    chunk.insert(0, doc[i - 2])  # the last sentence is B, the one before it A (seen twice)
                else:
                    is_next = False  # a one-sentence document has no next sentence
            split = rng.randint(1, len(chunk) - 1) if len(chunk) > 1 else 1
            a = _flat(chunk[:split])
            if is_next:
                b = _flat(chunk[split:])
            else:
                b = _random_span(documents, index, negatives, max(1, target - len(a)), rng)
                i -= len(chunk) - split  # the unused sentences start the next example
            examples.append(_pair(*_truncate_pair(a, b, budget), is_next))
    return examples


def _flat(sentences: Sequence[list[int]]) -> list[int]:
    return [token for sentence in sentences for token in sentence]


def _random_span(documents, index: int, negatives, length: int, rng: random.Random) -> list[int]:
    """Consecutive sentences from a random other document, from a random start, ~`length` tokens."""
    if negatives is None:
        other = rng.randrange(len(documents) - 1)
        source = documents[other + (other >= index)]  # any document but this one
    else:
        source = negatives[rng.randrange(len(negatives))]
    span: list[int] = []
    for sentence in source[rng.randrange(len(source)) :]:
        span += sentence
        if len(span) >= length:
            break
    return span


def _truncate_pair(a: list[int], b: list[int], budget: int) -> tuple[list[int], list[int]]:
    """Trim the longer side until both fit: A from its start, B from its end (the seam stays)."""
    while len(a) + len(b) > budget:
        if len(a) > len(b):
            a = a[1:]
        else:
            b = b[:-1]
    return a, b


def _single(a: list[int]) -> MLMExample:
    return MLMExample([CLS_ID, *a, SEP_ID], [0] * (len(a) + 2))


def _pair(a: list[int], b: list[int], is_next: bool) -> MLMExample:
    # the same layout as the tokenizer's template "[CLS] $A [SEP] $B:1 [SEP]:1"
    return MLMExample([CLS_ID, *a, SEP_ID, *b, SEP_ID], [0] * (len(a) + 2) + [1] * (len(b) + 1), int(is_next))


# --------------------------------------------------------------------------- masking and batches


def mask_tokens(
    input_ids: torch.Tensor, maskable: torch.Tensor, vocab_size: int, mask_prob: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's corruption of a (B, T) batch.

    Args:
        input_ids: (B, T) token ids.
        maskable: (B, T) bool, True where a token may be chosen (real and not special).
        vocab_size: random replacements are drawn from the non-special ids [5, vocab_size).
        mask_prob: chance of each maskable token to be chosen.
        generator: the seeded source of randomness.

    Returns:
        (corrupted ids (B, T), labels (B, T): the original id where chosen, -100 elsewhere).
    """
    chosen = (torch.rand(input_ids.shape, generator=generator) < mask_prob) & maskable
    labels = torch.where(chosen, input_ids, IGNORE)
    roll = torch.rand(input_ids.shape, generator=generator)
    corrupted = input_ids.masked_fill(chosen & (roll < 0.8), MASK_ID)
    swap = chosen & (roll >= 0.8) & (roll < 0.9)  # the last 10% keep their token
    corrupted[swap] = torch.randint(NUM_SPECIAL, vocab_size, (int(swap.sum()),), generator=generator)
    return corrupted, labels


class MaskingCollator:
    """Pads a list of `MLMExample`s and masks them: anew on every call for training examples
    (so every epoch sees other masks, reproducibly from `seed`), as fixed for held-out ones.

    Returns {"input_ids", "attention_mask", "token_type_ids", "labels": (B, T); "next_sentence": (B,)}.

    Under DDP every process collates the whole global batch and keeps its rows
    (`collates_whole_batch`, see `seqlab.data.batching.ShareOfBatch`): the masks are drawn for
    the global batch, so 2 processes train on exactly the masked tokens 1 process does.
    """

    collates_whole_batch = True

    def __init__(self, vocab_size: int, mask_prob: float, seed: int):
        self.vocab_size = vocab_size
        self.mask_prob = mask_prob
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, batch: list[MLMExample]) -> dict[str, torch.Tensor]:
        input_ids, attention_mask = pad_batch([ex.ids for ex in batch])
        token_type_ids, _ = pad_batch([ex.type_ids for ex in batch])
        if batch[0].labels is not None:
            labels, _ = pad_batch([ex.labels for ex in batch], pad_id=IGNORE)
        else:
            maskable = attention_mask & (input_ids >= NUM_SPECIAL)
            input_ids, labels = mask_tokens(input_ids, maskable, self.vocab_size, self.mask_prob, self.generator)
        next_sentence = torch.tensor([ex.is_next for ex in batch], dtype=torch.long)
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_type_ids": token_type_ids,
            "labels": labels,
            "next_sentence": next_sentence,
        }


def fix_masks(examples: list[MLMExample], vocab_size: int, mask_prob: float, seed: int) -> list[MLMExample]:
    """Held-out examples masked once (seeded), so every evaluation scores the same positions."""
    collate = MaskingCollator(vocab_size, mask_prob, seed)
    fixed = []
    for ex in examples:
        batch = collate([ex])
        fixed.append(MLMExample(batch["input_ids"][0].tolist(), ex.type_ids, ex.is_next, batch["labels"][0].tolist()))
    return fixed


def make_loader(
    examples: list[MLMExample],
    batch_size: int,
    collate: MaskingCollator,
    shuffle: bool = False,
    bucket: bool = True,
    seed: int = 0,
) -> DataLoader:
    sampler = BucketBatchSampler([len(ex.ids) for ex in examples], batch_size, shuffle, bucket, seed)
    return DataLoader(examples, batch_sampler=sampler, collate_fn=collate)


@dataclass
class PretrainData:
    """The examples of each split (held-out ones masked once) and what they came from."""

    examples: dict[str, list[MLMExample]]
    counts: dict[str, dict[str, int]]  # split → documents, sentences, examples, tokens


def make_examples(cfg: RunConfig, splits: CorpusSplits, tokenizer: Tokenizer) -> PretrainData:
    """Token ids → packed (and paired) examples per split, seeded with `train.seed`."""
    seed, nsp, vocab = cfg.train.seed, cfg.pretrain.nsp, tokenizer.get_vocab_size()
    encoded = {name: encode_documents(tokenizer, getattr(splits, name)) for name in ("train", "valid", "test")}
    if not encoded["train"]:
        raise SeqlabError(f"the training text of {splits.sources['train']} encodes to no tokens")
    examples, counts = {}, {}
    for offset, name in enumerate(("train", "valid", "test")):
        docs = encoded[name]
        negatives = encoded["train"] if nsp and name != "train" and len(docs) < 2 else None
        made = (
            build_examples(
                docs, cfg.tokenizer.max_length, nsp, random.Random(seed + offset), cfg.pretrain.short_seq_prob, negatives
            )
            if docs
            else []
        )
        examples[name] = made if name == "train" else fix_masks(made, vocab, cfg.pretrain.mask_prob, seed + offset)
        counts[name] = {
            "documents": len(docs),
            "sentences": sum(map(len, docs)),
            "examples": len(made),
            "tokens": sum(len(ex.ids) for ex in made),
        }
    return PretrainData(examples, counts)


# --------------------------------------------------------------------------- the Lightning module


class MaskedLMModule(L.LightningModule):
    """Masked-LM cross-entropy (+ NSP cross-entropy); logs val_mlm_loss, val_mlm_acc,
    val_nsp_acc and their total, val_loss."""

    def __init__(self, model: BertForPretraining, nsp: bool, train_cfg: TrainConfig):
        super().__init__()
        self.model = model
        self.nsp = nsp
        self.train_cfg = train_cfg

    def losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        select = batch["labels"] != IGNORE
        out = self.model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"], select=select)
        targets = batch["labels"][select]  # (N,)
        # a batch with nothing masked (possible for a few short sentences) contributes zero loss
        mlm = F.cross_entropy(out.mlm_logits, targets) if len(targets) else out.mlm_logits.sum() * 0.0
        result = {
            "mlm": mlm,
            "loss": mlm,
            "mlm_correct": (out.mlm_logits.argmax(-1) == targets).sum(),
            "masked": torch.tensor(len(targets)),
        }
        if self.nsp:
            result["nsp"] = F.cross_entropy(out.nsp_logits, batch["next_sentence"])
            result["nsp_correct"] = (out.nsp_logits.argmax(-1) == batch["next_sentence"]).sum()
            result["loss"] = mlm + result["nsp"]
        return result

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        losses, size = self.losses(batch), len(batch["labels"])
        # Means over the masked tokens (and sentence pairs) of the whole global batch: under DDP
        # each process holds some of its rows, with different numbers of masked tokens.
        masked = losses["masked"].to(losses["mlm"].device, torch.float32)
        if self.nsp:
            sums = torch.stack([losses["mlm"] * masked, losses["nsp"] * size])
            loss = global_mean(self, sums, torch.stack([masked, masked.new_tensor(size)])).sum()
        else:
            loss = global_mean(self, losses["mlm"] * masked, masked)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=size, sync_dist=True)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        # (under DDP every process validates the whole split: the mean over processes changes nothing)
        losses, size = self.losses(batch), len(batch["labels"])
        masked = max(int(losses["masked"]), 1)
        self.log("val_mlm_loss", losses["mlm"], batch_size=masked, sync_dist=True)
        self.log("val_mlm_acc", losses["mlm_correct"] / masked, batch_size=masked, sync_dist=True)
        if self.nsp:
            self.log("val_nsp_acc", losses["nsp_correct"] / size, batch_size=size, sync_dist=True)
        self.log("val_loss", losses["loss"], batch_size=size, sync_dist=True)

    def configure_optimizers(self) -> Any:
        return with_lr_schedule(self, make_optimizer(self, self.train_cfg), self.train_cfg)


@dataclass
class FittedMLM:
    model: BertForPretraining
    result: FitResult
    examples: PretrainData | None = None  # what was trained on (set by the recipe)


def fit_masked_lm(
    cfg: RunConfig, data: PretrainData, vocab_size: int, work_dir: Path, *, resume: bool = False, progress: str | None = None
) -> FittedMLM:
    """Pretrain on `data.examples["train"]`, selecting the epoch on the valid examples."""
    torch.manual_seed(cfg.train.seed)  # same initial weights for the same seed
    model = build_model(cfg, vocab_size)
    module = MaskedLMModule(model, cfg.pretrain.nsp, cfg.train)
    batch, seed = cfg.train.batch_size, cfg.train.seed
    train_loader = make_loader(
        data.examples["train"],
        batch,
        MaskingCollator(vocab_size, cfg.pretrain.mask_prob, seed),
        shuffle=True,
        bucket=cfg.train.bucket,
        seed=seed,
    )
    valid = data.examples["valid"]
    valid_loader = make_loader(valid, batch * 2, MaskingCollator(vocab_size, cfg.pretrain.mask_prob, seed)) if valid else None
    result = fit(module, train_loader, valid_loader, work_dir, cfg.train, resume=resume, progress=progress)
    return FittedMLM(model.eval(), result)


# --------------------------------------------------------------------------- evaluation and fill-mask


@torch.inference_mode()
def evaluate(model: BertForPretraining, examples: list[MLMExample], nsp: bool, batch_size: int = 64) -> dict:
    """Masked-LM accuracy, loss and perplexity (exp of the loss) on held-out examples masked
    once (`fix_masks`), and NSP accuracy when `nsp`."""
    model.eval()
    module = MaskedLMModule(model, nsp, TrainConfig())
    loader = make_loader(examples, batch_size, MaskingCollator(model.mlm_bias.numel(), 0.15, 0), bucket=False)
    total = {"loss": 0.0, "correct": 0, "masked": 0, "nsp_correct": 0}
    for batch in loader:
        losses = module.losses(batch)
        total["loss"] += float(losses["mlm"]) * int(losses["masked"])
        total["correct"] += int(losses["mlm_correct"])
        total["masked"] += int(losses["masked"])
        total["nsp_correct"] += int(losses.get("nsp_correct", 0))
    masked = max(total["masked"], 1)
    metrics = {
        "mlm_accuracy": total["correct"] / masked,
        "mlm_loss": total["loss"] / masked,
        "perplexity": math.exp(total["loss"] / masked),
        "masked_tokens": total["masked"],
        "examples": len(examples),
    }
    if nsp:
        metrics["nsp_accuracy"] = total["nsp_correct"] / max(len(examples), 1)
    return metrics


# --------------------------------------------------------------------------- the run life cycle's steps


class PretrainRecipe:
    """Masked-LM pretraining's steps of `seqlab.lifecycle.train_run`; the vocabulary is a WordPiece tokenizer."""

    task = "pretrain"

    def configure(self, cfg: RunConfig) -> RunConfig:
        return cfg

    def load_data(self, cfg: RunConfig) -> CorpusSplits:
        return load_splits(cfg)

    def learn_vocabulary(self, cfg: RunConfig, data: CorpusSplits) -> Tokenizer:
        return learn_wordpiece(cfg, data.train)

    def vocabulary_files(self, cfg: RunConfig) -> tuple[str, ...]:
        return (runs.TOKENIZER,)

    def save_vocabulary(self, vocabulary: Tokenizer, run_dir: Path) -> None:
        runs.save_tokenizer(vocabulary, run_dir / runs.TOKENIZER)

    def load_vocabulary(self, cfg: RunConfig, run_dir: Path) -> Tokenizer:
        return load_tokenizer(run_dir / runs.TOKENIZER)

    def describe(self, data: CorpusSplits, vocabulary: Tokenizer) -> str:
        return (
            f"{len(data.train):,} train / {len(data.valid):,} valid / {len(data.test):,} test documents, "
            f"{vocabulary.get_vocab_size():,} wordpieces"
        )

    def fit(
        self, cfg: RunConfig, data: CorpusSplits, vocabulary: Tokenizer, run_dir: Path, *, resume: bool, progress: str | None
    ) -> FittedMLM:
        examples = make_examples(cfg, data, vocabulary)
        fitted = fit_masked_lm(cfg, examples, vocabulary.get_vocab_size(), run_dir, resume=resume, progress=progress)
        fitted.examples = examples
        return fitted

    def finish(self, run_dir: Path, cfg: RunConfig, data: CorpusSplits, vocabulary: Tokenizer, fitted: FittedMLM) -> Finished:
        examples = fitted.examples
        metrics = {
            name: evaluate(fitted.model, examples.examples[name], cfg.pretrain.nsp)
            for name in ("valid", "test")
            if examples.examples[name]
        }
        runs.save_weights(fitted.model, run_dir / runs.WEIGHTS)
        seen = {
            name: {
                "source": data.sources[name],
                **examples.counts[name],
                "sha256": runs.data_hash((sentence, str(d)) for d, doc in enumerate(getattr(data, name)) for sentence in doc),
            }
            for name in ("train", "valid", "test")
        }
        return Finished(metrics, seen)


RECIPE = PretrainRecipe()
