"""How good a translation model is, on held-out sources with one or more references each.

- **BLEU** and **chrF**: corpus scores by sacreBLEU with its defaults (13a tokenisation,
  BLEU-4; chrF with character 6-grams, β = 2) against *every* reference of each source, exactly
  as `sacrebleu REF1 REF2 ... -i HYP -m bleu chrf` reports them, with sacreBLEU's signatures, so
  they compare with published numbers (`parallel.corpus_bleu_multi`).
- **Exact match**: the share of outputs equal to one of their references, character for
  character.
- **Teacher-forced vs free-running token accuracy**: the first feeds the decoder the true
  previous tokens (what training optimises; every reference counts); the second lets it read
  its own greedy output and compares position by position with the closest reference (what
  translating does). The gap is the cost of exposure bias.
- **Attention entropy**: for each reference target token, the entropy (nats) of its attention
  over the source; low means sharp alignments. Also divided by log(source length): 0 = one
  source token, 1 = uniform.
- **By source length**: exact match and BLEU per bucket of source length, in words for
  sentences (median source of 3 words or more) and in characters otherwise (generated tasks
  such as "ninety-seven"), where a fixed-size context (plain seq2seq) shows its limits.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence

import torch
from torch import nn

from seqlab.data import parallel
from seqlab.data.parallel import MultiRef
from seqlab.tasks.translate import inference as translate

# Buckets of source length: (low, high) inclusive, None = no upper bound.
LENGTH_BUCKETS = {
    "chars": ((1, 15), (16, 30), (31, 45), (46, 60), (61, None)),
    "words": ((1, 4), (5, 8), (9, 12), (13, 16), (17, 24), (25, None)),
}


def corpus_scores(hypotheses: Sequence[str], references: Sequence[MultiRef | str | Sequence[str]]) -> dict:
    """{"bleu", "chrf", "bleu_signature", "chrf_signature"} of outputs against all references
    of each source (a `MultiRef`, one string or a list of strings; sacreBLEU, 0-100)."""
    scores = parallel.corpus_bleu_multi(hypotheses, references)
    return {key: scores[key] for key in ("bleu", "chrf", "bleu_signature", "chrf_signature")}


def _refs(item: MultiRef | str | Sequence[str]) -> tuple[str, ...]:
    return item.references if isinstance(item, MultiRef) else (item,) if isinstance(item, str) else tuple(item)


def exact_match(hypotheses: Sequence[str], references: Sequence[MultiRef | str | Sequence[str]]) -> float:
    """The share of hypotheses equal to one of their references."""
    return sum(h in _refs(r) for h, r in zip(hypotheses, references)) / max(len(references), 1)


def bucket_name(low: int, high: int | None) -> str:
    return f"{low}-{high}" if high is not None else f"{low}+"


def length_unit(sources: Sequence[str]) -> str:
    """ "words" for sentences (a median source of 3 words or more), else "chars"."""
    return "words" if sources and statistics.median(len(s.split()) for s in sources) >= 3 else "chars"


def by_length(refs: Sequence[MultiRef], hypotheses: Sequence[str], unit: str | None = None) -> list[dict]:
    """Exact match and BLEU per bucket of source length (empty buckets left out): rows of
    {"bucket", "unit", "examples", "exact_match", "bleu"}."""
    unit = unit or length_unit([r.source for r in refs])
    size = (lambda text: len(text.split())) if unit == "words" else len
    rows = []
    for low, high in LENGTH_BUCKETS[unit]:
        mine = [(r, h) for r, h in zip(refs, hypotheses) if low <= size(r.source) and (high is None or size(r.source) <= high)]
        if not mine:
            continue
        bucket_refs, hyps = [r for r, _ in mine], [h for _, h in mine]
        rows.append(
            {
                "bucket": bucket_name(low, high),
                "unit": unit,
                "examples": len(mine),
                "exact_match": exact_match(hyps, bucket_refs),
                "bleu": corpus_scores(hyps, bucket_refs)["bleu"],
            }
        )
    return rows


def free_running_accuracy(
    outputs: Sequence[Sequence[int]], references: Sequence[Sequence[int] | Sequence[Sequence[int]]]
) -> float:
    """Position-by-position agreement of outputs and references (each with its [EOS]), over the
    longer of the two: a missing or extra token counts as wrong. A source with several
    references is compared with the one it agrees with most."""
    right = total = 0
    for out, refs in zip(outputs, references):
        refs = [refs] if not refs or isinstance(refs[0], int) else refs
        out = [*out, -1]  # -1 stands for [EOS] on both sides
        best = max(
            ((sum(a == b for a, b in zip(out, [*ref, -1])), max(len(out), len(ref) + 1)) for ref in refs),
            key=lambda agree: agree[0] / agree[1],
        )
        right, total = right + best[0], total + best[1]
    return right / max(total, 1)


@torch.inference_mode()
def teacher_forced(
    model: nn.Module, vocab: translate.Vocabularies, encoded: translate.EncodedPairs, batch_size: int = 64
) -> dict[str, float | None]:
    """Teacher-forced token accuracy and loss, and the attention entropy of the reference tokens."""
    model.eval()
    nats = 0.0
    count = correct = 0
    entropy, normalised, rows, wide_rows = 0.0, 0.0, 0, 0
    for batch in translate.make_loader(encoded, batch_size):
        loss, n, right, out = translate.token_scores(model, batch, need_weights=True)
        nats, count, correct = nats + float(loss), count + n, correct + right
        if out.alignments is None:
            continue
        weights = out.alignments.float()  # (B, T, S)
        real = batch["labels"] != translate.IGNORE  # (B, T)
        per_row = -(weights * weights.clamp_min(1e-12).log()).sum(-1)  # (B, T)
        lengths = batch["source_mask"].sum(-1, keepdim=True).expand_as(per_row)  # (B, T) source tokens
        entropy += float(per_row[real].sum())
        rows += int(real.sum())
        wide = real & (lengths > 1)
        normalised += float((per_row[wide] / lengths[wide].float().log()).sum())
        wide_rows += int(wide.sum())
    return {
        "teacher_forced_accuracy": correct / max(count, 1),
        "loss": nats / max(count, 1),
        "attention_entropy": entropy / rows if rows else None,
        "attention_entropy_normalized": normalised / wide_rows if wide_rows else None,
    }


def evaluate(
    model: nn.Module,
    vocab: translate.Vocabularies,
    refs: Sequence[MultiRef],
    settings: translate.DecodeSettings,
    max_length: int,
    batch_size: int = 64,
) -> dict:
    """Every metric of the module docstring on held-out sources (`MultiRef`s; a `Pair` counts as
    a source with one reference), the outputs decoded with `settings`."""
    refs = translate.as_references(refs)
    sources = translate.encode_sources(vocab.source, [r.source for r in refs], max_length)
    started = time.perf_counter()
    outputs = translate.translate_ids(model, sources.ids, vocab, settings, batch_size)
    seconds = time.perf_counter() - started
    hypotheses = [translate.decode_target(vocab.target, ids) for ids in outputs]
    greedy = outputs if settings.beam == 1 else translate.translate_ids(model, sources.ids, vocab, settings.greedy(), batch_size)
    encoded_refs = [translate.encode_targets(vocab.target, list(r.references), max_length) for r in refs]
    flat = parallel.flatten(refs)
    forced = teacher_forced(model, vocab, translate.encode_pairs(vocab, flat, max_length), batch_size)
    scores = corpus_scores(hypotheses, refs)
    return {
        "examples": len(refs),
        "references": len(flat),
        **scores,
        "exact_match": exact_match(hypotheses, refs),
        "teacher_forced_accuracy": forced["teacher_forced_accuracy"],
        "free_running_accuracy": free_running_accuracy(greedy, encoded_refs),
        "loss": forced["loss"],
        "perplexity": math.exp(min(forced["loss"], 50.0)),
        "attention_entropy": forced["attention_entropy"],
        "attention_entropy_normalized": forced["attention_entropy_normalized"],
        "beam": settings.beam,
        "length_penalty": settings.length_penalty,
        "sentences_per_second": len(refs) / max(seconds, 1e-9),
        "unknown_source_tokens": sources.unknown,
        "truncated_sources": sources.truncated,
        "by_length": by_length(refs, hypotheses),
        "samples": [
            {"source": r.source, "references": list(r.references), "output": h} for r, h in list(zip(refs, hypotheses))[:5]
        ],
    }
