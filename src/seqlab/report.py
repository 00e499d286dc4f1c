"""A report for every run: one self-contained HTML page that a person reads instead of JSON.

    >>> from seqlab import report
    >>> report.write_report("runs/classify-cnn-...")        # runs/classify-cnn-.../report.html

The page holds what the run folder holds, drawn: the headline scores, the learning curves (the
run's `logs/metrics.csv`), the task's metrics and plots, a table of sample predictions with the
errors highlighted, attention maps where the model has them, and the config, data and versions
of `manifest.json`. It loads nothing from anywhere: the pictures are PNGs inside the page
(`data:` URIs), the style is inline, there is no script.

Everything task-specific is driven by what `metrics.json` holds (a confusion matrix, per-type
entity scores, BLEU by source length, a split's `samples`), so this module knows no task. A task
whose model has attention to show adds it through an optional hook on its pipeline module,
found through the task table (`registry.TASKS[task].pipeline()`):
`report_attention(run_dir, config, metrics, pipe=None) -> list[dict]`, each dict a matrix to
draw (`kind` "attention" or "alignment", `title`, `weights` rows × columns, `rows`, `columns`,
`caption`). The hook returns numbers, not pictures: pipelines never import matplotlib (loading a
run stays fast), so the drawing happens here.

`seqlab.lifecycle` writes the report once a run has finished; `seqlab report RUN` writes it
again, and the server (`/v1/models/{name}/report`) writes it when it is missing. The report
is derived from the folder, so `complete.json` does not record it (`runs._UNRECORDED`).
"""

from __future__ import annotations

import base64
import html
import json
import logging
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqlab import plots, runs
from seqlab.config import RunConfig, load_config
from seqlab.errors import SeqlabError
from seqlab.files import write_text
from seqlab.registry import get_task

log = logging.getLogger("seqlab")

REPORT = runs.REPORT
SPLITS = ("test", "valid")  # the split a summary and the samples come from, first found first


@dataclass
class Figure:
    """One picture of the report: a PNG and what it shows."""

    title: str
    png: bytes
    caption: str = ""

    @classmethod
    def from_file(cls, title: str, path: str | Path, caption: str = "") -> Figure:
        return cls(title, Path(path).read_bytes(), caption)


def write_report(run_dir: str | Path, output: str | Path | None = None, pipe: Any | None = None) -> Path:
    """Write the report of a run (default `RUN/report.html`), atomically.

    Args:
        pipe: the run's loaded pipeline, if the caller holds one (the server); else the task's
            hook loads the run itself when it needs the model.

    Raises:
        SeqlabError: not a run folder, or a folder without metrics.json (an unfinished run).
    """
    run_dir = Path(run_dir)
    return write_text(output or run_dir / REPORT, render(run_dir, pipe))


def render(run_dir: str | Path, pipe: Any | None = None) -> str:
    """The report of `run_dir` as one HTML document."""
    run_dir = Path(run_dir)
    if not (run_dir / runs.CONFIG).is_file():
        raise SeqlabError(f"{run_dir} is not a seqlab run folder (no {runs.CONFIG})")
    if not (run_dir / runs.METRICS).is_file():
        raise SeqlabError(f"run {run_dir} has no {runs.METRICS}: it did not finish; there is nothing to report yet")
    cfg = load_config(run_dir / runs.CONFIG)
    metrics = _read_json(run_dir / runs.METRICS)
    manifest = _read_json(run_dir / runs.MANIFEST) if (run_dir / runs.MANIFEST).is_file() else {}
    with tempfile.TemporaryDirectory(prefix="seqlab-report-") as tmp:
        folder = Path(tmp)
        figures = [
            *_curves(run_dir, folder),
            *_metric_figures(metrics, folder),
            *_hook_figures(run_dir, cfg, metrics, folder, pipe),
        ]
    body = [
        _summary(metrics),
        _section("Learning curves and plots", "".join(_figure(f) for f in figures) or _note("no pictures for this run")),
        _samples(metrics),
        _section("All metrics", _metrics_table(metrics)),
        _section("Data", _data_table(manifest.get("data", {}))),
        _section(
            "Config",
            f"<details><summary>{runs.CONFIG}: the resolved config (re-running it reproduces the run)</summary>"
            f"<pre>{_e((run_dir / runs.CONFIG).read_text(encoding='utf-8'))}</pre></details>",
        ),
        _section("Versions and timings", _kv_table(_versions(manifest))),
    ]
    finished = run_dir / runs.COMPLETE
    status = "finished" if finished.is_file() else "not finished (no complete.json)"
    title = f"{run_dir.name}: {cfg.task} {cfg.model.arch}"
    head = (
        f"<h1>{_e(title)}</h1><p class='meta'>{_e(str(run_dir))} · {status} · created {_e(manifest.get('created', '?'))}"
        f" · {manifest.get('parameters', 0):,} parameters · report written {time.strftime('%Y-%m-%d %H:%M')}</p>"
    )
    return (
        f"<!doctype html>\n<html lang='en'><head><meta charset='utf-8'><meta name='viewport' content='width=device-width, "
        f"initial-scale=1'><title>{_e(title)}</title><style>{STYLE}</style></head><body>{head}{''.join(body)}</body></html>\n"
    )


# --------------------------------------------------------------------------- pictures


def _curves(run_dir: Path, folder: Path) -> list[Figure]:
    """The learning curves of every metrics.csv the run's loggers wrote (one, normally)."""
    figures = []
    for number, csv_file in enumerate(sorted((run_dir / "logs").rglob("metrics.csv")) if (run_dir / "logs").is_dir() else []):
        try:
            image = plots.run_curves(csv_file, folder / f"curves{number}.png", "per epoch")
        except (SeqlabError, ValueError, KeyError) as err:
            log.debug("no learning curves from %s: %s", csv_file, err)
            continue
        figures.append(Figure.from_file("Learning curves", image, f"from {csv_file.relative_to(run_dir)}"))
    return figures


def _metric_figures(metrics: dict, folder: Path) -> list[Figure]:
    """Pictures of what metrics.json holds for the headline split (test, else valid)."""
    figures: list[Figure] = []
    for split in _splits(metrics)[-1:]:
        scores = metrics[split]
        if "confusion_matrix" in scores and "labels" in scores:
            image = plots.confusion_matrix(
                scores["confusion_matrix"], scores["labels"], folder / f"{split}-confusion.png", f"{split}: confusion matrix"
            )
            figures.append(Figure.from_file(f"Confusion matrix ({split})", image, "rows: true label; columns: predicted"))
        if scores.get("per_type"):
            types = sorted(scores["per_type"])
            series = {key: [100 * scores["per_type"][t][key] for t in types] for key in ("precision", "recall", "f1")}
            image = plots.grouped_bars(
                [f"{t}\n({scores['per_type'][t]['support']})" for t in types],
                series,
                folder / f"{split}-per-type.png",
                f"{split}: entity scores per type",
                "%",
                "type (gold entities)",
            )
            figures.append(Figure.from_file(f"Entity F1 per type ({split})", image, "CoNLL rules: exact extent and type"))
        if scores.get("by_length"):
            rows = scores["by_length"]
            series = {"BLEU": [r["bleu"] for r in rows], "exact match (%)": [100 * r["exact_match"] for r in rows]}
            image = plots.grouped_bars(
                [f"{r['bucket']}\n({r['examples']})" for r in rows],
                series,
                folder / f"{split}-by-length.png",
                f"{split}: by source length",
                xlabel=f"source length in {rows[0].get('unit', 'tokens')} (sources)",
            )
            figures.append(Figure.from_file(f"BLEU by source length ({split})", image))
    return figures


def _hook_figures(run_dir: Path, cfg: RunConfig, metrics: dict, folder: Path, pipe: Any | None) -> list[Figure]:
    """The attention maps of the task's hook (`report_attention` on its pipeline module), if it
    has one; a hook that fails costs its pictures, never the report."""
    try:
        hook = getattr(get_task(cfg.task).pipeline(), "report_attention", None)
        maps = list(hook(run_dir, cfg, metrics, pipe)) if hook is not None else []
        figures = []
        for number, item in enumerate(maps):
            path = folder / f"attention{number}.png"
            if item.get("kind") == "alignment":
                image = plots.alignment_heatmap(item["weights"], item["rows"], item["columns"], path, item.get("title", ""))
                figures.append(Figure.from_file("Alignment", image, item.get("caption", "")))
            else:
                image = plots.attention_heatmap(item["weights"], item["rows"], item["columns"], path, item.get("title", ""))
                figures.append(Figure.from_file("Attention", image, item.get("caption", "")))
        return figures
    except Exception as err:  # a model that no longer loads, a plot that fails: the rest still reports
        log.warning("report of %s: no attention maps (%s)", run_dir, err)
        return []


def _figure(figure: Figure) -> str:
    data = base64.b64encode(figure.png).decode("ascii")
    caption = f"<figcaption>{_e(figure.title)}{': ' + _e(figure.caption) if figure.caption else ''}</figcaption>"
    return f"<figure><img src='data:image/png;base64,{data}' alt='{_e(figure.title)}'>{caption}</figure>"


# --------------------------------------------------------------------------- tables


# headline scores, in the order a reader looks for them; any other number is in "All metrics"
HEADLINE = (
    "accuracy",
    "macro_f1",
    "f1",
    "precision",
    "recall",
    "bleu",
    "chrf",
    "exact_match",
    "perplexity",
    "bits_per_char",
    "mlm_accuracy",
    "mlm_loss",
    "nsp_accuracy",
    "loss",
    "word_accuracy",
)
PERCENT = {
    "accuracy",
    "macro_f1",
    "f1",
    "precision",
    "recall",
    "exact_match",
    "mlm_accuracy",
    "nsp_accuracy",
    "word_accuracy",
    "teacher_forced_accuracy",
    "free_running_accuracy",
}


def _summary(metrics: dict) -> str:
    split = next((s for s in SPLITS if isinstance(metrics.get(s), dict)), None)
    cards = []
    if split is not None:
        for key in HEADLINE:
            if isinstance(metrics[split].get(key), (int, float)):
                cards.append(
                    f"<div class='card'><b>{_number(key, metrics[split][key])}</b><span>{_e(key)} ({split})</span></div>"
                )
    for key, value in metrics.items():
        if key.startswith("best_") or key == "epochs":
            cards.append(f"<div class='card'><b>{_number(key, value)}</b><span>{_e(key)}</span></div>")
    return _section("Summary", f"<div class='cards'>{''.join(cards[:8])}</div>" if cards else _note("no held-out scores"))


def _metrics_table(metrics: dict) -> str:
    splits = _splits(metrics)
    keys = list(
        dict.fromkeys(
            k for s in splits for k, v in metrics[s].items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)
        )
    )
    rows = [[key, *[_number(key, metrics[s].get(key)) for s in splits]] for key in keys]
    top = [[k, _number(k, v)] for k, v in metrics.items() if not isinstance(v, (dict, list))]
    return (_table(["", *splits], rows) if rows else "") + (_table(["run", ""], top) if top else "")


def _data_table(data: dict) -> str:
    if not data:
        return _note("manifest.json records no data")
    keys = list(dict.fromkeys(k for d in data.values() if isinstance(d, dict) for k in d))
    rows = [[split, *[_short(value.get(k)) for k in keys]] for split, value in data.items() if isinstance(value, dict)]
    return _table(["split", *keys], rows)


def _versions(manifest: dict) -> dict[str, Any]:
    flat = {"seed": manifest.get("seed"), "parameters": manifest.get("parameters")}
    flat.update(manifest.get("versions", {}))
    flat.update({f"time: {k}": f"{v:.1f} s" for k, v in manifest.get("timings", {}).items() if isinstance(v, (int, float))})
    for key, value in manifest.items():
        if key not in ("seed", "parameters", "versions", "timings", "data", "created"):
            flat[key] = json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else value
    return {k: v for k, v in flat.items() if v is not None}


def _kv_table(values: dict[str, Any]) -> str:
    return _table(["", ""], [[k, _short(v)] for k, v in values.items()]) if values else _note("no manifest.json")


# --------------------------------------------------------------------------- sample predictions


def _samples(metrics: dict) -> str:
    """The first split's `samples`, drawn by their shape: classification (text, gold, predicted),
    tagging (words with gold and predicted spans), translation (source, references, output),
    generation (prompt, continuation)."""
    split = next((s for s in SPLITS if isinstance(metrics.get(s), dict) and metrics[s].get("samples")), None)
    if split is None:
        return ""
    samples = metrics[split]["samples"]
    first = samples[0]
    if {"text", "gold", "predicted"} <= first.keys():
        rows = [
            (s["gold"] != s["predicted"], [s["text"], s["gold"], s["predicted"], f"{s.get('probability', 0):.3f}"])
            for s in samples
        ]
        body = _marked_table(["text", "gold", "predicted", "p(predicted)"], rows)
    elif {"words", "gold", "predicted"} <= first.keys():
        marks = [sorted(map(tuple, s["gold"])) != sorted(map(tuple, s["predicted"])) for s in samples]
        rows = [(wrong, []) for wrong in marks]
        body = "".join(_tagged(s, wrong) for wrong, s in zip(marks, samples))
    elif {"source", "output"} <= first.keys():
        rows = [
            (
                s["output"] not in s.get("references", [s["output"]]),
                [s["source"], " | ".join(s.get("references", [])), s["output"]],
            )
            for s in samples
        ]
        body = _marked_table(["source", "reference(s)", "output"], rows)
    elif {"prompt", "continuation"} <= first.keys():
        rows = [(False, [s["prompt"], s["continuation"], s.get("reference", "")]) for s in samples]
        body = _marked_table(["prompt", "generated", "the text's own continuation"], rows)
    else:
        keys = list(first)
        rows = [(False, [_short(s.get(k)) for k in keys]) for s in samples]
        body = _marked_table(keys, rows)
    errors = sum(wrong for wrong, _ in rows)
    note = _note(
        f"{len(samples)} {split} examples, {errors} wrong (highlighted)" if errors else f"{len(samples)} {split} examples"
    )
    return _section("Sample predictions", note + body)


def _marked_table(header: list[str], rows: Iterable[tuple[bool, list[str]]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in ["", *header])
    body = "".join(
        f"<tr class='{'error' if wrong else 'right'}'><td>{'✗' if wrong else ''}</td>"
        + "".join(f"<td>{_e(str(cell))}</td>" for cell in cells)
        + "</tr>"
        for wrong, cells in rows
    )
    return f"<table class='samples'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _tagged(sample: dict, wrong: bool) -> str:
    """One sentence twice: its gold entities, then the predicted ones, wrong ones marked."""
    words = sample["words"]
    gold = {tuple(span) for span in sample["gold"]}
    predicted = {tuple(span) for span in sample["predicted"]}

    def line(spans: set, other: set, kind: str) -> str:
        starts = {start: (start, end, label) for start, end, label in spans}
        out, i = [], 0
        while i < len(words):
            if i in starts:
                start, end, label = starts[i]
                css = "ent" if (start, end, label) in other else f"miss {kind}"
                out.append(f"<mark class='{css}'>{_e(' '.join(words[start:end]))}<small>{_e(label)}</small></mark>")
                i = end
            else:
                out.append(_e(words[i]))
                i += 1
        return " ".join(out)

    return (
        f"<div class='tagged {'error' if wrong else 'right'}'><div><span class='who'>gold</span>{line(gold, predicted, 'missed')}</div>"
        f"<div><span class='who'>predicted</span>{line(predicted, gold, 'wrong')}</div></div>"
    )


# --------------------------------------------------------------------------- helpers


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise SeqlabError(f"{path} is not readable JSON ({err}); restore it or train the run again") from None


def _splits(metrics: dict) -> list[str]:
    return [s for s in ("valid", "test") if isinstance(metrics.get(s), dict)]


def _number(key: str, value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, float):
        if key in PERCENT or key.removeprefix("best_val_") in ("acc", "f1", "accuracy"):
            return f"{100 * value:.2f}%"
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return _short(value)


def _short(value: Any, limit: int = 120) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False) if value is not None else ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _section(title: str, body: str) -> str:
    anchor = title.lower().replace(" ", "-")
    return f"<section id='{_e(anchor)}'><h2>{_e(title)}</h2>{body}</section>"


def _note(text: str) -> str:
    return f"<p class='note'>{_e(text)}</p>"


STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1f2328;margin:0 auto;max-width:72rem;padding:1rem 1.5rem 3rem;line-height:1.4}
h1{font-size:1.4rem;margin:.5rem 0 0}h2{font-size:1.1rem;border-bottom:1px solid #d0d7de;padding-bottom:.2rem;margin-top:2rem}
.meta,.note{color:#656d76;font-size:.85rem}
.cards{display:flex;flex-wrap:wrap;gap:.6rem}.card{border:1px solid #d0d7de;border-radius:6px;padding:.5rem .8rem;min-width:8rem}
.card b{display:block;font-size:1.3rem}.card span{color:#656d76;font-size:.8rem}
figure{display:inline-block;margin:0 1rem 1rem 0;vertical-align:top}figure img{max-width:100%;border:1px solid #eaeef2}
figcaption{font-size:.8rem;color:#656d76}
table{border-collapse:collapse;font-size:.85rem;margin:.4rem 0 1rem}th,td{border:1px solid #d0d7de;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}tr.error td{background:#ffebe9}tr.error td:first-child{color:#cf222e;font-weight:700}
pre{background:#f6f8fa;padding:.8rem;border-radius:6px;overflow:auto;font-size:.8rem}
.tagged{border:1px solid #d0d7de;border-radius:6px;padding:.4rem .6rem;margin:.4rem 0;line-height:2.2}.tagged.error{border-color:#ff8182}
.who{display:inline-block;width:5.5rem;color:#656d76;font-size:.8rem}
mark{padding:.1em .3em;border-radius:.3em;background:#ddf4ff}mark small{font-size:.65em;font-weight:700;margin-left:.3em}
mark.miss{background:#ffebe9;outline:1px dashed #cf222e}
"""
