"""`seqlab experiment attention-vs-fixed-context` (course Q2, Q3, Q11): the seq2seq bottleneck.

A plain RNN encoder-decoder (Sutskever et al., 2014) hands the decoder one fixed-size vector,
the encoder's final state, however long the source is. With attention (Bahdanau et al., 2015)
the decoder looks back at every encoder state at every step, so nothing has to fit one vector.

Task: the built-in `reverse` translation data (1-12 letters → the same letters reversed, word
tokens = letters), where every output letter depends on one source letter far from it and the
right answer is known. Both models are the translation task's own (`model.arch=seq2seq` and
`seq2seq-attn`, Bahdanau), of the same sizes, trained by `tasks.translate.fit_translator` for the
same epochs, at two widths of the context vector; the plot is exact match and letter accuracy
(greedy decoding) by source length on held-out sequences.

`train_entry` and `score_by_length` are shared with the `decoder` experiment.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from seqlab.config import RunConfig
from seqlab.data.parallel import Pair
from seqlab.experiments import QUICK_VERDICT, ExperimentResult
from seqlab.models import count_parameters
from seqlab.tasks.translate import compare as translate_compare
from seqlab.tasks.translate import recipe as translate

NAME = "attention-vs-fixed-context"
ENTRIES = ("seq2seq", "bahdanau")  # the fixed context vector, and the same model with attention
BASE = {"data": {"train": "reverse"}, "tokenizer": {"level": "word"}}  # one token per letter


def settings(quick: bool) -> dict:
    """Data, widths and budget; quick: the table's shape in seconds, no verdict."""
    if quick:
        return {"data": "reverse:600", "hidden": [16], "epochs": 1, "test": 60}
    return {"data": "reverse:10000", "hidden": [32, 128], "epochs": 6, "test": None}


@dataclass
class Trained:
    """One trained encoder-decoder and what it was trained on."""

    entry: str
    cfg: RunConfig
    model: nn.Module
    vocab: translate.Vocabularies
    splits: translate.Splits
    seconds: float
    parameters: int


def train_entry(base: dict, entry: str, overrides: Sequence[str] = ()) -> Trained:
    """Train one `compare translate` entry (`seq2seq`, `bahdanau`, `transformer`, ...) exactly as
    the comparison does, in a temporary folder, and keep the model."""
    import torch

    cfg = translate_compare.entry_config(base, entry, overrides)
    splits = translate.load_splits(cfg)
    vocab = translate.learn_vocabularies(cfg, splits.train)
    torch.manual_seed(cfg.train.seed)
    model = translate.build_model(cfg, vocab.source.get_vocab_size(), vocab.target.get_vocab_size())
    with tempfile.TemporaryDirectory(prefix="seqlab-experiment-") as work:
        fitted = translate.fit_translator(
            cfg, model, vocab, splits.train, splits.valid, Path(work), progress="off", loggers=False
        )
    return Trained(entry, cfg, fitted.model, vocab, splits, fitted.result.seconds, count_parameters(fitted.model))


def score_by_length(trained: Trained, pairs: Sequence[Pair]) -> dict[int, dict[str, float]]:
    """Greedy decoding of `pairs`: per source length in tokens, {pairs, exact match, token
    accuracy (output token i equals reference token i, over the reference's tokens)}."""
    cfg = trained.cfg
    pairs = [p if isinstance(p, Pair) else Pair(p.source, p.references[0]) for p in pairs]  # (one reference each)
    sources = translate.encode_sources(trained.vocab.source, [p.source for p in pairs], cfg.tokenizer.max_length).ids
    references = translate.encode_targets(trained.vocab.target, [p.target for p in pairs], cfg.tokenizer.max_length)
    outputs = translate.translate_ids(trained.model, sources, trained.vocab, translate.DecodeSettings.from_config(cfg, beam=1))
    by_length: dict[int, list[float]] = {}
    for source, reference, output in zip(sources, references, outputs):
        slot = by_length.setdefault(len(source), [0, 0, 0, 0])  # pairs, exact, tokens right, reference tokens
        slot[0] += 1
        slot[1] += output == reference
        slot[2] += sum(a == b for a, b in zip(output, reference))
        slot[3] += len(reference)
    return {
        length: {"pairs": s[0], "exact_match": s[1] / s[0], "token_accuracy": s[2] / max(s[3], 1)}
        for length, s in sorted(by_length.items())
    }


def run(quick: bool, output: Path, seed: int = 13) -> ExperimentResult:
    """Exact match and letter accuracy by source length, seq2seq against Bahdanau attention, at
    each context width; writes `attention_vs_fixed_context.png`."""
    s = settings(quick)
    base = {**BASE, "data": {"train": s["data"]}}
    rows, curves = [], {}
    for hidden in s["hidden"]:
        overrides = [
            f"model.hidden_dim={hidden}",
            f"model.embed_dim={hidden}",
            f"train.epochs={s['epochs']}",
            f"train.seed={seed}",
            "train.patience=null",
        ]
        for entry in ENTRIES:
            trained = train_entry(base, entry, overrides)
            scores = score_by_length(trained, trained.splits.test[: s["test"]])
            label = f"{'seq2seq (fixed context)' if entry == 'seq2seq' else 'seq2seq + Bahdanau'}, {hidden} units"
            curves[label] = scores
            total = sum(v["pairs"] for v in scores.values())
            exact = sum(v["exact_match"] * v["pairs"] for v in scores.values()) / total
            short = [v for k, v in scores.items() if k <= 4]
            long = [v for k, v in scores.items() if k >= 10]
            rows.append(
                [
                    entry,
                    hidden,
                    trained.parameters,
                    round(trained.seconds, 1),
                    round(exact, 4),
                    round(_mean(short), 4),
                    round(_mean(long), 4),
                ]
            )
    plot = _plot(curves, output / "attention_vs_fixed_context.png")
    return ExperimentResult(
        NAME,
        [
            "model",
            "context units",
            "parameters",
            "train s",
            "exact match",
            "exact match, 1-4 letters",
            "exact match, 10-12 letters",
        ],
        rows,
        verdict=verdict(rows, quick),
        plots=[plot],
        settings={**s, "seed": seed, "by_length": {k: {str(n): v for n, v in c.items()} for k, c in curves.items()}},
    )


def _mean(buckets: list[dict[str, float]]) -> float:
    pairs = sum(b["pairs"] for b in buckets)
    return sum(b["exact_match"] * b["pairs"] for b in buckets) / pairs if pairs else float("nan")


def verdict(rows: list[list], quick: bool) -> str:
    """Does the fixed context fall behind with length, and attention not?"""
    if quick:
        return QUICK_VERDICT
    parts, confirmed = [], True
    for hidden in dict.fromkeys(r[1] for r in rows):
        plain, attn = (next(r for r in rows if r[1] == hidden and r[0] == e) for e in ENTRIES)
        parts.append(
            f"{hidden} units: seq2seq {100 * plain[5]:.0f}% → {100 * plain[6]:.0f}% from 1-4 to 10-12 letters, "
            f"Bahdanau {100 * attn[5]:.0f}% → {100 * attn[6]:.0f}%"
        )
        confirmed &= attn[6] > plain[6] + 0.05
    return ("confirmed: " if confirmed else "not seen at every width: ") + "; ".join(parts)


def _plot(curves: dict[str, dict[int, dict[str, float]]], path: Path) -> Path:
    from seqlab.plots import _save, plt

    fig, (exact_ax, token_ax) = plt.subplots(1, 2, figsize=(11, 3.8))
    for label, scores in curves.items():
        style = "--" if label.startswith("seq2seq (fixed") else "-"
        lengths = list(scores)
        exact_ax.plot(lengths, [100 * scores[n]["exact_match"] for n in lengths], style, marker="o", label=label)
        token_ax.plot(lengths, [100 * scores[n]["token_accuracy"] for n in lengths], style, marker="o", label=label)
    exact_ax.set_ylabel("exact match (%)")
    token_ax.set_ylabel("letters right, by position (%)")
    for ax in (exact_ax, token_ax):
        ax.set_xlabel("source length (letters)")
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
    exact_ax.legend(fontsize=8)
    fig.suptitle("Reversing letters: one fixed context vector vs attention over every encoder state")
    return _save(fig, path)
