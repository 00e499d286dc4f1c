"""What attention fixes: encoder-decoders side by side on one translation task.

Every entry is trained on the same splits (a generated task's are deterministic; Tatoeba's are
held out by source sentence) with its own vocabularies learned the same way, then scored on the
test split: exact match, multi-reference BLEU and chrF (beam search), exact match and BLEU per
source-length bucket (where plain seq2seq, whose whole source must fit its final state, falls
behind), teacher-forced and free-running accuracy, attention entropy, parameters, training
time, training throughput (target tokens per second) and decoding speed: batched beam search
against the same sentences decoded one at a time.

An entry is an architecture (`seq2seq`, `seq2seq-attn`, `transformer`, which means
`transformer-seq2seq`) or an attention kind (`bahdanau`, `luong` = `luong-general`,
`luong-dot`, `dot`: seq2seq-attn with that score); `ENTRY:key=value` overrides apply to one
entry only. `budget_minutes` gives every entry the same wall-clock budget (`train.max_minutes`,
the learning-rate decay fitted to it).
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from seqlab import plots, runs
from seqlab.config import RunConfig, build_config
from seqlab.errors import SeqlabError
from seqlab.files import write_json, write_text
from seqlab.models import count_parameters
from seqlab.tasks.translate import metrics as translate_eval
from seqlab.tasks.translate import recipe as translate

log = logging.getLogger("seqlab")

ENTRIES: dict[str, list[str]] = {
    "seq2seq": ["model.arch=seq2seq"],
    "seq2seq-attn": ["model.arch=seq2seq-attn"],
    "transformer": ["model.arch=transformer-seq2seq"],
    "transformer-seq2seq": ["model.arch=transformer-seq2seq"],
    **{
        kind: ["model.arch=seq2seq-attn", f"model.attention={kind}"] for kind in ("bahdanau", "luong-dot", "luong-general", "dot")
    },
    "luong": ["model.arch=seq2seq-attn", "model.attention=luong-general"],  # (Luong et al.'s and JoeyNMT's default score)
}
DEFAULT_ENTRIES = ("seq2seq", "seq2seq-attn", "transformer")


def parse_entries(text: str) -> list[str]:
    entries = [e.strip() for e in text.split(",") if e.strip()]
    unknown = [e for e in entries if e not in ENTRIES]
    if unknown or not entries:
        raise SeqlabError(f"unknown translation model {unknown[0] if unknown else text!r}; choose from {', '.join(ENTRIES)}")
    return entries


def _target(override: str) -> str | None:
    key = override.split("=", 1)[0]
    return key.split(":", 1)[0] if ":" in key else None


def parse_budget(text: str | None) -> float | None:
    """`--budget 45m` / `2h` / `90s` / `30` (minutes) → minutes; None stays None."""
    if text is None:
        return None
    spoken = text.strip().lower()
    scale = {"s": 1 / 60, "m": 1.0, "min": 1.0, "h": 60.0}
    unit = next((u for u in ("min", "s", "m", "h") if spoken.endswith(u)), "")
    try:
        minutes = float(spoken[: len(spoken) - len(unit)]) * scale.get(unit, 1.0)
    except ValueError:
        minutes = -1.0
    if not minutes > 0:
        raise SeqlabError(f"--budget must be a positive time such as 45m, 2h or 90s (got {text!r})")
    return minutes


def entry_config(base: dict, entry: str, overrides: Sequence[str], budget_minutes: float | None = None) -> RunConfig:
    """The config of one entry: task translate, its recipe, the budget, shared overrides, then
    `ENTRY:` ones."""
    mine = [o.split(":", 1)[1] for o in overrides if _target(o) == entry]
    shared = [o for o in overrides if _target(o) is None]
    budget = [f"train.max_minutes={budget_minutes}"] if budget_minutes else []
    return build_config({**base, "task": "translate"}, [*ENTRIES[entry], *budget, *shared, *mine])


def decode_speed(
    model: torch.nn.Module,
    vocab: translate.Vocabularies,
    sources: list[list[int]],
    settings: translate.DecodeSettings,
    batch_size: int = 64,
) -> dict[str, float]:
    """Sentences per second on the same sentences: batched, and one sentence at a time."""
    started = time.perf_counter()
    batched = translate.translate_ids(model, sources, vocab, settings, batch_size)
    batched_s = time.perf_counter() - started
    started = time.perf_counter()
    single = [translate.translate_ids(model, [src], vocab, settings, 1)[0] for src in sources]
    single_s = time.perf_counter() - started
    agree = sum(a == b for a, b in zip(batched, single)) / max(len(sources), 1)
    return {
        "batched": len(sources) / batched_s,
        "single": len(sources) / single_s,
        "speedup": single_s / batched_s,
        "agreement": agree,
    }


def run_entry(cfg: RunConfig, entry: str, splits: translate.Splits, speed_sentences: int = 200) -> dict:
    """Train one entry in a temporary folder and measure it on the test split."""
    vocab = translate.learn_vocabularies(cfg, splits.train)
    torch.manual_seed(cfg.train.seed)
    model = translate.build_model(cfg, vocab.source.get_vocab_size(), vocab.target.get_vocab_size())
    counter = translate.TokenCounter()
    with tempfile.TemporaryDirectory(prefix="seqlab-compare-") as work:
        fitted = translate.fit_translator(
            cfg, model, vocab, splits.train, splits.valid, Path(work), progress="lines", loggers=False, callbacks=[counter]
        )
    settings = translate.DecodeSettings.from_config(cfg)
    metrics = translate_eval.evaluate(fitted.model, vocab, splits.test, settings, cfg.tokenizer.max_length)
    sources = translate.encode_sources(
        vocab.source, [p.source for p in splits.test[:speed_sentences]], cfg.tokenizer.max_length
    ).ids
    speed = decode_speed(fitted.model, vocab, sources, settings)
    row = {
        "arch": entry,
        "model": cfg.model.arch,
        "attention": getattr(cfg.model, "attention", None) or ("multi-head" if cfg.model.arch == "transformer-seq2seq" else None),
        "seed": cfg.train.seed,
        "parameters": count_parameters(fitted.model),
        "train_pairs": len(splits.train),
        "test_pairs": len(splits.test),
        "train_seconds": fitted.result.seconds,
        "epochs": fitted.result.epochs,
        "budget_minutes": cfg.train.max_minutes,
        "train_steps": counter.steps,
        "train_target_tokens_per_second": counter.tokens_per_second,
        "beam": settings.beam,
        "beam_sentences_per_second": speed["batched"],
        "single_sentences_per_second": speed["single"],
        "batched_speedup": speed["speedup"],
        "batched_single_agreement": speed["agreement"],
        "speed_sentences": len(sources),
        **{
            k: metrics[k]
            for k in (
                "exact_match",
                "bleu",
                "chrf",
                "bleu_signature",
                "chrf_signature",
                "teacher_forced_accuracy",
                "free_running_accuracy",
                "attention_entropy",
                "attention_entropy_normalized",
                "by_length",
                "samples",
            )
        },
    }
    log.info(
        "%s: exact match %.4f, BLEU %.2f (%d parameters, %.0f s training, %.1f× batched beam speed-up)",
        entry,
        row["exact_match"],
        row["bleu"],
        row["parameters"],
        row["train_seconds"],
        row["batched_speedup"],
    )
    return row


def compare(
    base: dict,
    entries: Sequence[str],
    overrides: Sequence[str] = (),
    seeds: int = 1,
    on_result: Callable[[dict], None] | None = None,
    budget_minutes: float | None = None,
) -> list[dict]:
    """Train and test every entry `seeds` times (seeds train.seed, +1, ...); one row per run."""
    if seeds < 1:
        raise SeqlabError(f"--seeds must be at least 1 (got {seeds})")
    configs = {entry: entry_config(base, entry, overrides, budget_minutes) for entry in entries}  # every config error first
    splits_by_data: dict[str, translate.Splits] = {}
    rows = []
    for entry, cfg in configs.items():
        key = cfg.data.model_dump_json()
        if key not in splits_by_data:
            splits_by_data[key] = translate.load_splits(cfg)
        splits = splits_by_data[key]
        if not splits.test:
            raise SeqlabError("comparison needs test pairs: set data.test=FILE or data.test_fraction>0")
        for repeat in range(seeds):
            seeded = cfg.model_copy(update={"train": cfg.train.model_copy(update={"seed": cfg.train.seed + repeat})})
            row = run_entry(seeded, entry, splits)
            rows.append(row)
            if on_result:
                on_result(row)
    return rows


def markdown_tables(rows: Sequence[dict]) -> str:
    """The summary table, then exact match (and BLEU) by source length, one column per bucket."""
    lines = [
        "| model | attention | parameters | train time | epochs | train tgt tok/s | exact match | BLEU | chrF | teacher-forced acc. "
        "| free-running acc. | attention entropy (norm.) | beam decode sent/s | one-by-one sent/s | batched speed-up |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        entropy = (
            "–" if r["attention_entropy"] is None else f"{r['attention_entropy']:.2f} ({r['attention_entropy_normalized']:.2f})"
        )
        lines.append(
            f"| {r['arch']} | {r['attention'] or '–'} | {r['parameters']:,} | {r['train_seconds']:.0f} s | {r['epochs']} | "
            f"{r['train_target_tokens_per_second']:,.0f} | {100 * r['exact_match']:.2f}% | {r['bleu']:.2f} | {r['chrf']:.2f} | {100 * r['teacher_forced_accuracy']:.2f}% | "
            f"{100 * r['free_running_accuracy']:.2f}% | {entropy} | {r['beam_sentences_per_second']:,.0f} | "
            f"{r['single_sentences_per_second']:,.1f} | {r['batched_speedup']:.1f}× |"
        )
    buckets = list(dict.fromkeys(b["bucket"] for r in rows for b in r["by_length"]))
    unit = "words" if rows and rows[0]["by_length"] and rows[0]["by_length"][0]["unit"] == "words" else "characters"
    lines += ["", f"BLEU (exact match) by source length in {unit} (test sources per bucket in the header):", ""]
    counts = {b["bucket"]: b["examples"] for b in rows[0]["by_length"]} if rows else {}
    lines.append("| model | " + " | ".join(f"{b} ({counts.get(b, 0):,})" for b in buckets) + " |")
    lines.append("|---|" + "---|" * len(buckets))
    for r in rows:
        mine = {b["bucket"]: b for b in r["by_length"]}
        cells = [f"{mine[b]['bleu']:.1f} ({100 * mine[b]['exact_match']:.1f}%)" if b in mine else "–" for b in buckets]
        lines.append(f"| {r['arch']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- comparison


def run(
    base: dict,
    entries: Sequence[str],
    overrides: Sequence[str] = (),
    output_dir: str | Path | None = None,
    seeds: int = 1,
    budget_minutes: float | None = None,
) -> tuple[list[dict], Path]:
    """Train every entry (see the module docstring) on the same pairs, each within
    `budget_minutes` if given, and write results.json, table.md and comparison.png (BLEU by
    source length, training time, decoding speed) into `output_dir`; each finished run is
    appended to partial.jsonl as it comes.

    Returns:
        (one row per run, the output folder).
    """
    entries = parse_entries(",".join(entries))
    for entry in entries:
        entry_config(base, entry, overrides, budget_minutes)  # every config error before the folder exists
    output = Path(output_dir or Path("runs") / f"compare-translate-{time.strftime('%Y%m%d-%H%M%S')}")
    output.mkdir(parents=True, exist_ok=True)

    def save_partial(row: dict) -> None:
        with open(output / "partial.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")

    rows = compare(base, entries, list(overrides), seeds, save_partial, budget_minutes)
    write_json(
        output / "results.json",
        {
            "base": base,
            "entries": entries,
            "overrides": list(overrides),
            "seeds": seeds,
            "budget_minutes": budget_minutes,
            "versions": runs.environment(),
            "runs": rows,
        },
    )
    write_text(output / "table.md", markdown_tables(rows) + "\n")
    data = base.get("data", {}).get("train", "numbers-en-fr")
    budget = f" · {budget_minutes:g} min each" if budget_minutes else ""
    plots.translation_comparison(rows, output / "comparison.png", f"{data} · test split · beam {rows[0]['beam']}{budget}")
    return rows, output
