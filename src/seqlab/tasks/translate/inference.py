"""Translation without training: vocabularies, the model a config describes, batches, and
batched greedy and beam search (with n-best lists) and alignments.

`pipeline.load` needs only this module (no Lightning); `recipe.py` re-exports its names, so
`recipe.translate_ids` and friends keep working.

- **Vocabularies**: the source and target `tokenizers` files of a run, [PAD] [UNK] [BOS] [EOS]
  as ids 0-3 on both sides. Unknown characters (emoji, CJK in an English model) become [UNK] on
  the way in and are dropped on the way out: encoding and decoding never fail.
- **Batches** (`collate_pairs`): sources right-padded with their mask; the decoder reads
  [BOS] y_1 … y_n and predicts y_1 … y_n [EOS] (padding labelled `IGNORE`).
- **Decoding** (`Seq2SeqLM`, `translate_ids`, `translate_nbest`): an adapter that makes an
  encoder-decoder a `decoding.IncrementalLM`, so greedy and beam search come from
  `seqlab.decoding`; the source batch is encoded in `prefill`, the decoder's prompt is [BOS],
  and each sentence stops at `max_length_ratio` × its source length + `max_length_offset`.
- **Held-out data of built-in corpora** (`tatoeba_splits`): the one place that turns a config's
  `data` section into Tatoeba's train/valid/test, so `seqlab evaluate` scores a run on exactly
  the test split it was trained without.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from torch import nn
from torch.utils.data import DataLoader

from seqlab import decoding, runs
from seqlab.config import DataConfig, RunConfig
from seqlab.data.batching import BucketBatchSampler, pad_batch
from seqlab.data.parallel import MultiRef, Pair, SourceSplits
from seqlab.data.tokenize import PAD, PAD_ID, UNK, UNK_ID, load_tokenizer
from seqlab.errors import SeqlabError
from seqlab.models.seq2seq import RNNSeq2Seq
from seqlab.models.transformer import TransformerSeq2Seq

BOS, EOS = "[BOS]", "[EOS]"
SPECIAL_TOKENS = [PAD, UNK, BOS, EOS]  # ids 0-3 on both sides
IGNORE = -100  # label of padded target positions (F.cross_entropy's ignore_index)
TARGET_TOKENIZER = "target_tokenizer.json"  # (the source side's is runs.TOKENIZER)

# `seqlab train translate --arch transformer` and `compare translate --archs transformer` mean the
# encoder-decoder; the config itself keeps the full name.
ARCH_ALIASES = {"transformer": "transformer-seq2seq"}


# --------------------------------------------------------------------------- vocabularies


@dataclass
class Vocabularies:
    """The source and target tokenizers (the same object when shared) and the target's
    special ids."""

    source: Tokenizer
    target: Tokenizer

    @property
    def bos_id(self) -> int:
        return self.target.token_to_id(BOS)

    @property
    def eos_id(self) -> int:
        return self.target.token_to_id(EOS)

    def check(self) -> Vocabularies:
        for side, tok in (("source", self.source), ("target", self.target)):
            if [tok.token_to_id(t) for t in SPECIAL_TOKENS] != [0, 1, 2, 3]:
                raise SeqlabError(
                    f"the {side} tokenizer is not a translation vocabulary ({', '.join(SPECIAL_TOKENS)} as ids 0-3)"
                )
        return self


def read_vocabularies(run_dir: Path) -> Vocabularies:
    """The source and target tokenizers a translate run folder holds."""
    return Vocabularies(load_tokenizer(run_dir / runs.TOKENIZER), load_tokenizer(run_dir / TARGET_TOKENIZER)).check()


@dataclass
class EncodedSources:
    ids: list[list[int]]
    truncated: int  # sources cut to tokenizer.max_length
    unknown: int  # [UNK] tokens among them


def encode_sources(tokenizer: Tokenizer, texts: Sequence[str], max_length: int) -> EncodedSources:
    """Source ids cut to `max_length`; an empty encoding becomes [UNK] (every row needs one real
    position), and unknown tokens are counted."""
    encodings = tokenizer.encode_batch(list(texts), add_special_tokens=False)
    ids = [enc.ids[:max_length] or [UNK_ID] for enc in encodings]
    truncated = sum(len(enc.ids) > max_length for enc in encodings)
    return EncodedSources(ids, truncated, sum(row.count(UNK_ID) for row in ids))


def encode_targets(tokenizer: Tokenizer, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Target ids cut to `max_length - 1`, so that [EOS] still fits."""
    return [enc.ids[: max_length - 1] for enc in tokenizer.encode_batch(list(texts), add_special_tokens=False)]


def decode_target(tokenizer: Tokenizer, ids: Sequence[int]) -> str:
    """Output ids → detokenised text; a final [EOS] and any special token ([UNK] too) are dropped."""
    return tokenizer.decode(list(ids), skip_special_tokens=True)


def as_references(items: Sequence[Pair | MultiRef]) -> list[MultiRef]:
    """Held-out items as `MultiRef`s: a pair is a source with one reference; pairs sharing a
    source are not merged here (see `parallel.group_by_source`)."""
    return [item if isinstance(item, MultiRef) else MultiRef(item.source, (item.target,)) for item in items]


# --------------------------------------------------------------------------- batches


@dataclass
class EncodedPairs:
    sources: list[list[int]]
    targets: list[list[int]]  # without [BOS]/[EOS]

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, index: int) -> tuple[list[int], list[int]]:
        return self.sources[index], self.targets[index]


def encode_pairs(vocab: Vocabularies, pairs: Sequence[Pair], max_length: int) -> EncodedPairs:
    return EncodedPairs(
        encode_sources(vocab.source, [p.source for p in pairs], max_length).ids,
        encode_targets(vocab.target, [p.target for p in pairs], max_length),
    )


def collate_pairs(batch: list[tuple[list[int], list[int]]], bos_id: int = 2, eos_id: int = 3) -> dict[str, torch.Tensor]:
    """→ source_ids, source_mask (B, S); targets_in = [BOS] y (B, T); labels = y [EOS] (B, T),
    padding labelled IGNORE."""
    source_ids, source_mask = pad_batch([src for src, _ in batch])
    targets_in, _ = pad_batch([[bos_id, *tgt] for _, tgt in batch])
    labels, _ = pad_batch([[*tgt, eos_id] for _, tgt in batch], pad_id=IGNORE)
    return {"source_ids": source_ids, "source_mask": source_mask, "targets_in": targets_in, "labels": labels}


def make_loader(
    pairs: EncodedPairs, batch_size: int, shuffle: bool = False, bucket: bool = True, seed: int = 0, max_tokens: int | None = None
) -> DataLoader:
    """Batches of pairs of similar length (see `BucketBatchSampler`): `batch_size` pairs, or with
    `max_tokens` as many as fit that many padded positions, sentences × max(source, target + 1)
    tokens (fairseq's `--max-tokens`)."""
    lengths = [max(len(s), len(t) + 1) for s, t in zip(pairs.sources, pairs.targets)]
    sampler = BucketBatchSampler(lengths, batch_size, shuffle, bucket, seed, max_tokens=max_tokens)
    return DataLoader(pairs, batch_sampler=sampler, collate_fn=collate_pairs)


# --------------------------------------------------------------------------- models


def build_model(cfg: RunConfig, source_vocab: int, target_vocab: int) -> nn.Module:
    """The encoder-decoder a config describes."""
    m = cfg.model
    if m.arch == "transformer-seq2seq":
        return TransformerSeq2Seq(
            source_vocab,
            target_vocab,
            m.d_model,
            m.num_heads,
            m.num_layers,
            m.ff_dim,
            m.dropout,
            m.positional,
            m.max_len,
            PAD_ID,
            m.tie_embeddings,
            m.share_embeddings,
        )
    return RNNSeq2Seq(
        source_vocab,
        target_vocab,
        m.cell,
        m.embed_dim,
        m.hidden_dim,
        m.num_layers,
        m.bidirectional,
        m.attention,
        m.dropout,
        m.tie_embeddings,
        PAD_ID,
    )


def token_scores(
    model: nn.Module,
    batch: dict[str, torch.Tensor],
    sampling_prob: float = 0.0,
    label_smoothing: float = 0.0,
    need_weights: bool = False,
) -> tuple[torch.Tensor, int, int, Any]:
    """(summed cross-entropy, target tokens, tokens predicted right, model output) of one
    teacher-forced batch."""
    out = model(
        batch["source_ids"], batch["source_mask"], batch["targets_in"], need_weights=need_weights, sampling_prob=sampling_prob
    )
    labels = batch["labels"]
    loss = F.cross_entropy(
        out.logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE, reduction="sum", label_smoothing=label_smoothing
    )
    real = labels != IGNORE
    correct = int(((out.logits.argmax(-1) == labels) & real).sum())
    return loss, int(real.sum()), correct, out


# --------------------------------------------------------------------------- decoding


@dataclass
class _AdapterState:
    inner: Any  # the model's decoder state
    limits: torch.Tensor  # (B,) most tokens each row may produce before [EOS]
    produced: int = 0


class Seq2SeqLM:
    """An encoder-decoder seen as a `decoding.IncrementalLM`: `prefill` encodes the source batch
    given here and reads the decoder's prompt ([BOS] per row); `step` feeds one target token per
    row; `reorder` selects rows of the decoder state (beam search). A row that has produced its
    `limits` tokens can only end: every logit but [EOS] is -inf (the maximum length ratio).

    Args:
        model: an `RNNSeq2Seq` or `TransformerSeq2Seq` in eval mode.
        source_ids, source_mask: (B, S) the source batch, right-padded.
        limits: (B,) target tokens allowed per row before [EOS].
        eos_id: the target's [EOS].
    """

    context_length = None  # limits are per row, applied here

    def __init__(self, model: nn.Module, source_ids: torch.Tensor, source_mask: torch.Tensor, limits: torch.Tensor, eos_id: int):
        self.model, self.source_ids, self.source_mask = model, source_ids, source_mask
        self.limits, self.eos_id = limits, eos_id

    def _bounded(self, logits: torch.Tensor, state: _AdapterState) -> torch.Tensor:
        done = state.limits <= state.produced  # (B,)
        if bool(done.any()):
            only_eos = torch.full_like(logits, float("-inf"))
            only_eos[:, self.eos_id] = 0.0
            logits = torch.where(done[:, None], only_eos, logits)
        return logits.float()

    @torch.inference_mode()
    def prefill(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, _AdapterState]:
        if self.model.training:
            raise SeqlabError("decoding: the model is in training mode (dropout on); call model.eval() first")
        if not bool(attention_mask.all()):
            raise SeqlabError("decoding: an encoder-decoder's prompt is the same [BOS] for every row; no padding")
        inner = self.model.encode(self.source_ids, self.source_mask)
        for t in range(input_ids.size(1)):
            logits, inner, _ = self.model.step(input_ids[:, t], inner)
        state = _AdapterState(inner, self.limits.clone())
        return self._bounded(logits, state), state

    @torch.inference_mode()
    def step(self, tokens: torch.Tensor, state: _AdapterState) -> tuple[torch.Tensor, _AdapterState]:
        logits, state.inner, _ = self.model.step(tokens, state.inner)
        state.produced += 1
        return self._bounded(logits, state), state

    @torch.inference_mode()
    def reorder(self, state: _AdapterState, index: torch.Tensor) -> _AdapterState:
        return _AdapterState(self.model.reorder_state(state.inner, index), state.limits.index_select(0, index), state.produced)


@dataclass(frozen=True)
class DecodeSettings:
    """How to decode: beam size (1 = greedy), length penalty (beams only), and the length limit
    ratio × source tokens + offset, never beyond `max_tokens`."""

    beam: int = 5
    length_penalty: float = 1.0
    max_length_ratio: float = 2.0
    max_length_offset: int = 10
    max_tokens: int = 256

    @classmethod
    def from_config(cls, cfg: RunConfig, **changes: Any) -> DecodeSettings:
        t = cfg.translate
        limit = cfg.tokenizer.max_length
        if cfg.model.arch == "transformer-seq2seq" and cfg.model.positional == "learned":
            limit = min(limit, cfg.model.max_len - 1)
        settings = {
            "beam": t.beam,
            "length_penalty": t.length_penalty,
            "max_length_ratio": t.max_length_ratio,
            "max_length_offset": t.max_length_offset,
            "max_tokens": limit,
        }
        settings.update({k: v for k, v in changes.items() if v is not None})
        if settings["beam"] < 1:
            raise SeqlabError(f"beam must be at least 1, 1 = greedy (got {settings['beam']})")
        if settings["max_length_ratio"] <= 0:
            raise SeqlabError(f"max_length_ratio must be > 0 (got {settings['max_length_ratio']})")
        return cls(**settings)

    def limit(self, source_length: int) -> int:
        return max(1, min(math.ceil(self.max_length_ratio * source_length) + self.max_length_offset, self.max_tokens))

    def greedy(self) -> DecodeSettings:
        return DecodeSettings(1, self.length_penalty, self.max_length_ratio, self.max_length_offset, self.max_tokens)


Hypothesis = tuple[float, list[int]]  # (score: sum of log p / length ** length_penalty, target ids without [EOS])


@torch.inference_mode()
def translate_nbest(
    model: nn.Module,
    sources: Sequence[Sequence[int]],
    vocab: Vocabularies,
    settings: DecodeSettings,
    batch_size: int = 64,
    n_best: int = 1,
) -> list[list[Hypothesis]]:
    """Decode every source, batched by similar length → per source, its best `n_best`
    hypotheses, best first, in input order. Greedy (beam 1) gives one hypothesis per source
    (its score not computed: NaN); beam search goes on until it has `n_best` hypotheses that no
    running beam could still beat (fewer only if the length limit ends it first).

    Raises:
        SeqlabError: `n_best` below 1 or above the beam size.
    """
    if not 1 <= n_best <= settings.beam:
        raise SeqlabError(f"n_best must be between 1 and the beam size {settings.beam} (got {n_best}); raise --beam")
    model.eval()
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    results: list[list[Hypothesis]] = [[] for _ in sources]
    eos = vocab.eos_id

    def strip(tokens: list[int]) -> list[int]:
        return tokens[:-1] if tokens and tokens[-1] == eos else tokens

    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        source_ids, source_mask = pad_batch([sources[i] for i in rows])
        limits = torch.tensor([settings.limit(len(sources[i])) for i in rows])
        lm = Seq2SeqLM(model, source_ids, source_mask, limits, eos)
        prompt = torch.full((len(rows), 1), vocab.bos_id, dtype=torch.long)
        if settings.beam == 1:
            config = decoding.GenerationConfig(max_new_tokens=int(limits.max()) + 1, eos_token_id=eos, pad_token_id=PAD_ID)
            outputs = decoding.generate(lm, prompt, None, config)
            for i, tokens in zip(rows, outputs):
                results[i] = [(float("nan"), strip(tokens))]
            continue
        # early_stopping=False: a confident model's unlikely endings must not fill the beam's
        # hypotheses before the likely translation ends (see `decoding.beam_search`)
        config = decoding.GenerationConfig(
            max_new_tokens=int(limits.max()) + 1,
            num_beams=settings.beam,
            eos_token_id=eos,
            pad_token_id=PAD_ID,
            length_penalty=settings.length_penalty,
            early_stopping=False,
        )
        for i, hypotheses in zip(rows, decoding.beam_hypotheses(lm, prompt, None, config, n_best=n_best)):
            results[i] = [(score, strip(tokens)) for score, tokens in hypotheses[:n_best]]
    return results


def translate_ids(
    model: nn.Module, sources: Sequence[Sequence[int]], vocab: Vocabularies, settings: DecodeSettings, batch_size: int = 64
) -> list[list[int]]:
    """Decode every source (greedy or beam search, batched by similar length) → target ids per
    source, in input order, without [EOS]."""
    return [hypotheses[0][1] for hypotheses in translate_nbest(model, sources, vocab, settings, batch_size)]


@torch.inference_mode()
def alignments(
    model: nn.Module,
    sources: Sequence[Sequence[int]],
    outputs: Sequence[Sequence[int]],
    vocab: Vocabularies,
    batch_size: int = 64,
) -> list[torch.Tensor | None]:
    """Attention of each output token (and the final [EOS]) over its source tokens: a (T + 1, S)
    tensor per sentence, from the model reading its own output teacher-forced (what it attended
    to while producing it); None for a model without attention."""
    result: list[torch.Tensor | None] = []
    for start in range(0, len(sources), batch_size):
        batch = collate_pairs(
            list(zip(sources[start : start + batch_size], outputs[start : start + batch_size])), vocab.bos_id, vocab.eos_id
        )
        weights = model(batch["source_ids"], batch["source_mask"], batch["targets_in"], need_weights=True).alignments
        for row, (src, out) in enumerate(zip(sources[start : start + batch_size], outputs[start : start + batch_size])):
            result.append(None if weights is None else weights[row, : len(out) + 1, : len(src)].float().clone())
    return result


# --------------------------------------------------------------------------- held-out data of built-in corpora

TATOEBA_HELD_OUT = {"valid": 1000, "test": 2000}  # distinct source sentences (issue 17 §1)


def _held_out(fraction: float, sources: int | None, given_file: str | None) -> float | int:
    """What `split_by_source` holds out of a file: nothing when a separate file is given, else
    a number of sources or a fraction of them."""
    if given_file:
        return 0
    return sources if sources is not None else float(fraction)


def file_splits(data: DataConfig) -> tuple[SourceSplits, int]:
    """A user's file of pairs (`data.train`) split by distinct source sentence with
    `data.split_seed`, and how many of its lines were cut to `data.max_chars`."""
    from seqlab.data import parallel

    text = parallel.read_parallel(data.train, max_chars=data.max_chars)
    splits = parallel.split_by_source(
        text.pairs,
        seed=data.split_seed,
        n_test=_held_out(data.test_fraction, data.test_sources, data.test),
        n_valid=_held_out(data.valid_fraction, data.valid_sources, data.valid),
    )
    return splits, text.truncated


def tatoeba_splits(data: DataConfig) -> SourceSplits:
    """Train pairs and multi-reference valid/test sets of a built-in Tatoeba `data.train`, held
    out by distinct source sentence with `data.split_seed` (`data.valid_sources` /
    `data.test_sources`, default 1,000 / 2,000)."""
    from seqlab.data import tatoeba

    n_valid = TATOEBA_HELD_OUT["valid"] if data.valid_sources is None else data.valid_sources
    n_test = TATOEBA_HELD_OUT["test"] if data.test_sources is None else data.test_sources
    return tatoeba.load_splits(data.train, data.direction, seed=data.split_seed, n_test=n_test, n_valid=n_valid)
