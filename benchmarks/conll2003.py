"""CoNLL-2003 English NER: spaCy's zero-training baseline and seqlab's taggers, beside the papers.

    python benchmarks/conll2003.py [--runs RUN ...] [--pipeline en_core_web_sm] [--output runs/conll2003]

- spaCy (`en_core_web_sm`, OntoNotes labels mapped to PER/ORG/LOC/MISC by
  `seqlab.tasks.tag.ontonotes.ONTONOTES_TO_CONLL`) tags the 3,453 test sentences on their own
  tokens: the score of a pipeline nobody trained on CoNLL.
- each `--runs` folder (a tag run trained with `seqlab train tag --data conll2003 ...`, see
  docs/benchmarks.md for the commands) is scored on the same test split, with its training time.
- the published column: Lample et al. 2016 (90.94) and Ma & Hovy 2016 (91.21), from
  `seqlab.published`.

Scores are entity-level precision/recall/F1 with the CoNLL rules (seqeval; an entity counts only
with its exact extent and type), overall and per type. Writes results.json and table.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from seqlab import api, runs
from seqlab.data.benchmarks import conll2003_split
from seqlab.data.spacy_models import load_pipeline, source_of
from seqlab.published import citations, published
from seqlab.tasks.tag.ontonotes import score_pipeline

TYPES = ("PER", "ORG", "LOC", "MISC")


def recipe_of(run: Path) -> str:
    """The published-table key of a run: bilstm-crf+char-cnn, bilstm-crf+char-lstm, or its arch."""
    cfg = runs.finished_config(run, "tag", "the tagger")
    chars = getattr(cfg.model, "char_features", "none")
    return f"{cfg.model.arch}+char-{chars}" if chars != "none" else cfg.model.arch


def row(name: str, scores: dict, seconds: float | None, recipe: str | None = None) -> dict:
    paper = published("conll2003", "test", recipe) if recipe else None
    return {
        "model": name,
        "f1": 100 * scores["f1"],
        "precision": 100 * scores["precision"],
        "recall": 100 * scores["recall"],
        "per_type": {t: 100 * scores["per_type"].get(t, {}).get("f1", 0.0) for t in TYPES},
        "train_minutes": None if seconds is None else seconds / 60,
        "words_per_second": scores["words_per_second"],
        "published": paper.score if paper else None,
        "published_by": f"{paper.paper}, {paper.model}" if paper else None,
    }


def markdown(rows: list[dict]) -> str:
    lines = [
        "| model | test F1 | published | P | R | " + " | ".join(f"{t} F1" for t in TYPES) + " | training | words/s |",
        "|---|---|---|---|---|" + "---|" * len(TYPES) + "---|---|",
    ]
    for r in rows:
        paper = f"{r['published']:.2f} ({r['published_by']})" if r["published"] is not None else "–"
        trained = "none" if r["train_minutes"] is None else f"{r['train_minutes']:.0f} min"
        lines.append(
            f"| {r['model']} | {r['f1']:.2f} | {paper} | {r['precision']:.2f} | {r['recall']:.2f} | "
            + " | ".join(f"{r['per_type'][t]:.1f}" for t in TYPES)
            + f" | {trained} | {r['words_per_second']:,.0f} |"
        )
    papers = [published("conll2003", "test", key) for key in ("bilstm-crf+char-lstm", "bilstm-crf+char-cnn")]
    return "\n".join(lines + [""] + [f"- {ref}" for ref in citations([p for p in papers if p])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, nargs="*", default=[], help="finished tag runs trained on conll2003")
    parser.add_argument("--pipeline", default="en_core_web_sm", help="the spaCy pipeline of the baseline")
    parser.add_argument("--output", type=Path, default=Path("runs/conll2003"))
    args = parser.parse_args()
    test = conll2003_split("test")
    nlp = load_pipeline(args.pipeline)
    rows = [row(f"spaCy {args.pipeline} (OntoNotes → CoNLL types, no training)", score_pipeline(nlp, test), None)]
    for run in args.runs:
        manifest = json.loads((run / runs.MANIFEST).read_text(encoding="utf-8"))
        seconds = manifest["timings"]["train_s"]
        rows.append(row(f"{run.name} ({recipe_of(run)})", api.load_tagger(run).evaluate(test), seconds, recipe_of(run)))
    args.output.mkdir(parents=True, exist_ok=True)
    meta = {
        "pipeline": source_of(args.pipeline),
        "python": platform.python_version(),
        "load": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    (args.output / "results.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n", encoding="utf-8")
    table = markdown(rows)
    (args.output / "table.md").write_text(table + "\n", encoding="utf-8")
    print(table)


if __name__ == "__main__":
    main()
