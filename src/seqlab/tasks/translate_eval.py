"""How good a translation model is, on held-out pairs.

- **BLEU** and **chrF**: corpus scores by sacreBLEU with its defaults (13a tokenisation,
  BLEU-4; chrF with character 6-grams, β = 2), exactly as `sacrebleu.corpus_bleu` /
  `corpus_chrf` report them, so they compare with published numbers.
- **Exact match**: the share of outputs equal to the reference, character for character.
- **Teacher-forced vs free-running token accuracy**: the first feeds the decoder the true
  previous tokens (what training optimises); the second lets it read its own greedy output and
  compares position by position with the reference (what translating does). The gap is the
  cost of exposure bias.
- **Attention entropy**: for each reference target token, the entropy (nats) of its attention
  over the source; low means sharp alignments. Also divided by log(source length): 0 = one
  source token, 1 = uniform.
- **By source length**: exact match and BLEU per bucket of source characters, where a fixed-size
  context (plain seq2seq) shows its limits.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import torch
from torch import nn

from seqlab.data.parallel import Pair
from seqlab.tasks import translate

LENGTH_BUCKETS = ((1, 15), (16, 30), (31, 45), (46, 60), (61, None))  # source characters


def corpus_scores(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """{"bleu", "chrf"} of outputs against one reference each (sacreBLEU, 0-100)."""
    import sacrebleu

    return {"bleu": sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score,
            "chrf": sacrebleu.corpus_chrf(list(hypotheses), [list(references)]).score}


def exact_match(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    return sum(h == r for h, r in zip(hypotheses, references)) / max(len(references), 1)


def bucket_name(low: int, high: int | None) -> str:
    return f"{low}-{high}" if high is not None else f"{low}+"


def by_length(pairs: Sequence[Pair], hypotheses: Sequence[str]) -> list[dict]:
    """Exact match and BLEU per bucket of source length in characters (empty buckets left out)."""
    rows = []
    for low, high in LENGTH_BUCKETS:
        mine = [(p, h) for p, h in zip(pairs, hypotheses) if low <= len(p.source) and (high is None or len(p.source) <= high)]
        if not mine:
            continue
        refs, hyps = [p.target for p, _ in mine], [h for _, h in mine]
        rows.append({"source_chars": bucket_name(low, high), "examples": len(mine), "exact_match": exact_match(hyps, refs),
                     "bleu": corpus_scores(hyps, refs)["bleu"]})
    return rows


def free_running_accuracy(outputs: Sequence[Sequence[int]], references: Sequence[Sequence[int]]) -> float:
    """Position-by-position agreement of outputs and references (each with its [EOS]), over the
    longer of the two: a missing or extra token counts as wrong."""
    right = total = 0
    for out, ref in zip(outputs, references):
        out, ref = [*out, -1], [*ref, -1]  # -1 stands for [EOS] on both sides
        right += sum(a == b for a, b in zip(out, ref))
        total += max(len(out), len(ref))
    return right / max(total, 1)


@torch.inference_mode()
def teacher_forced(model: nn.Module, vocab: translate.Vocabularies, encoded: translate.EncodedPairs,
                   batch_size: int = 64) -> dict[str, float | None]:
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
        weights = out.alignments  # (B, T, S)
        real = batch["labels"] != translate.IGNORE  # (B, T)
        per_row = -(weights * weights.clamp_min(1e-12).log()).sum(-1)  # (B, T)
        lengths = batch["source_mask"].sum(-1, keepdim=True).expand_as(per_row)  # (B, T) source tokens
        entropy += float(per_row[real].sum())
        rows += int(real.sum())
        wide = real & (lengths > 1)
        normalised += float((per_row[wide] / lengths[wide].float().log()).sum())
        wide_rows += int(wide.sum())
    return {"teacher_forced_accuracy": correct / max(count, 1), "loss": nats / max(count, 1),
            "attention_entropy": entropy / rows if rows else None,
            "attention_entropy_normalized": normalised / wide_rows if wide_rows else None}


def evaluate(model: nn.Module, vocab: translate.Vocabularies, pairs: Sequence[Pair], settings: translate.DecodeSettings,
             max_length: int, batch_size: int = 64) -> dict:
    """Every metric of the module docstring on `pairs`, the outputs decoded with `settings`."""
    sources = translate.encode_sources(vocab.source, [p.source for p in pairs], max_length)
    references = translate.encode_targets(vocab.target, [p.target for p in pairs], max_length)
    started = time.perf_counter()
    outputs = translate.translate_ids(model, sources.ids, vocab, settings, batch_size)
    seconds = time.perf_counter() - started
    hypotheses = [translate.decode_target(vocab.target, ids) for ids in outputs]
    greedy = outputs if settings.beam == 1 else translate.translate_ids(
        model, sources.ids, vocab, translate.DecodeSettings(1, 1.0, settings.max_length_ratio, settings.max_length_offset,
                                                            settings.max_tokens), batch_size)
    refs = [p.target for p in pairs]
    forced = teacher_forced(model, vocab, translate.EncodedPairs(sources.ids, references), batch_size)
    return {
        "examples": len(pairs),
        **corpus_scores(hypotheses, refs),
        "exact_match": exact_match(hypotheses, refs),
        "teacher_forced_accuracy": forced["teacher_forced_accuracy"],
        "free_running_accuracy": free_running_accuracy(greedy, references),
        "loss": forced["loss"],
        "perplexity": math.exp(min(forced["loss"], 50.0)),
        "attention_entropy": forced["attention_entropy"],
        "attention_entropy_normalized": forced["attention_entropy_normalized"],
        "beam": settings.beam,
        "sentences_per_second": len(pairs) / max(seconds, 1e-9),
        "unknown_source_tokens": sources.unknown,
        "truncated_sources": sources.truncated,
        "by_length": by_length(pairs, hypotheses),
        "samples": [{"source": p.source, "reference": p.target, "output": h} for p, h in list(zip(pairs, hypotheses))[:5]],
    }
