"""Three taggers trained on the *silver* NER corpus, scored against held-out silver labels.

    OMP_NUM_THREADS=1 python benchmarks/ner_silver.py [--minutes 15 15 25] [--output runs/ner-silver]

`silver-ner` is en_core_web_sm's own output on the movie and NYT snippets, so the F1 here is
agreement with the teacher (spaCy), not accuracy against human annotation. Each tagger trains
with `seqlab train tag` defaults (80/10/10 split of the 15,514 sentences, early stopping on
valid entity F1) under a wall-clock cap per model, then is scored on the same held-out test
split. Speed is measured on those test sentences: words/s of the model on pre-split words,
and words/s of the whole text path (`entities(texts)`: sentence splitting and tokenization
included), next to spaCy's own `nlp.pipe` over the same texts, in one process, one thread.
Writes the runs, `results.json` and a markdown table (`table.md`) to `--output`; the measured
numbers are kept in `docs/benchmarks.md`.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from pathlib import Path

import torch

from seqlab import api, runs
from seqlab.config import build_config
from seqlab.data.spacy_models import DEFAULT_PIPELINE, load_pipeline, source_of
from seqlab.tasks.tag import recipe as tag

TAGGERS = {  # name → overrides on top of `seqlab train tag` defaults
    "bilstm-crf": ["model.arch=bilstm-crf", "train.epochs=30"],
    "transformer": ["model.arch=transformer", "train.epochs=30", "train.lr=0.0005"],
    "minilm (hf)": ["model.arch=hf", "model.model=minilm-l6", "train.epochs=3", "train.lr=0.0001"],
}


def train(name: str, overrides: list[str], minutes: float, output: Path) -> Path:
    folder = output / name.split()[0]
    if (folder / runs.WEIGHTS).is_file():
        return folder  # trained by an earlier call
    cfg = build_config(
        {"task": "tag"}, [*overrides, f"train.max_minutes={minutes}", f"output_dir={output}", f"name={folder.name}"]
    )
    return api.train(cfg, progress="lines")


def words_per_second(fn, words: int, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return words / sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs=3, default=[15, 15, 25], help="training cap per tagger")
    parser.add_argument("--output", type=Path, default=Path("runs/ner-silver"))
    parser.add_argument("--table", type=Path, default=None, help="default: OUTPUT/table.md")
    args = parser.parse_args()
    args.table = args.table or args.output / "table.md"
    logging.basicConfig(level=logging.INFO, format="seqlab: %(message)s")
    torch.set_num_threads(1)
    args.output.mkdir(parents=True, exist_ok=True)
    rows = []
    test = None
    for (name, overrides), minutes in zip(TAGGERS.items(), args.minutes):
        run = train(name, overrides, minutes, args.output)
        pipe = api.load_tagger(run)
        if test is None:
            test = tag.load_splits(pipe.config).test  # the same held-out split for every tagger
            texts = [" ".join(s.tokens) for s in test]
            words = sum(len(s.tokens) for s in test)
        metrics = pipe.evaluate(test)
        manifest = json.loads((run / runs.MANIFEST).read_text(encoding="utf-8"))
        saved = json.loads((run / runs.METRICS).read_text(encoding="utf-8"))
        rows.append(
            {
                "model": name,
                "f1": metrics["f1"],
                "precision": metrics["precision"],
                "recall": metrics["recall"],
                "per_type": metrics["per_type"],
                "epochs": saved["epochs"],
                "train_s": manifest["timings"]["train_s"],
                "parameters": manifest["parameters"],
                "words_per_s_tagging": words_per_second(lambda pipe=pipe, test=test: pipe.tag([s.tokens for s in test]), words),
                "words_per_s_text": words_per_second(lambda pipe=pipe, texts=texts: pipe.entities(texts), words),
            }
        )
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "per_type"}), flush=True)
    nlp = load_pipeline(DEFAULT_PIPELINE)
    spacy_ner = api.load_ner(DEFAULT_PIPELINE)
    rows.append(
        {
            "model": f"spaCy {DEFAULT_PIPELINE} (the teacher)",
            "f1": 1.0,
            "precision": 1.0,
            "recall": 1.0,
            "per_type": {},
            "epochs": None,
            "train_s": None,
            "parameters": None,
            "words_per_s_tagging": None,
            "words_per_s_text": words_per_second(lambda: spacy_ner.entities(texts), words),
            "words_per_s_nlp_pipe": words_per_second(lambda: [d.ents for d in nlp.pipe(texts)], words),
        }
    )
    support = sum(len(s.spans) for s in test)
    lines = [
        (
            f"Silver NER: {len(test):,} held-out test sentences ({words:,} words, {support:,} silver entities) of `silver-ner` "
            f"(teacher {source_of(DEFAULT_PIPELINE)}); one CPU thread ({platform.processor() or platform.machine()}), shared machine."
        ),
        "",
        "| model | entity F1 vs silver | precision | recall | epochs | train s | parameters | words/s (words in) | words/s (text in) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        params = f"{r['parameters'] / 1e6:.1f}M" if r["parameters"] else "–"
        tagging = f"{r['words_per_s_tagging']:,.0f}" if r["words_per_s_tagging"] else "–"
        lines.append(
            f"| {r['model']} | {100 * r['f1']:.1f}% | {100 * r['precision']:.1f}% | {100 * r['recall']:.1f}% | "
            f"{r['epochs'] if r['epochs'] is not None else '–'} | {r['train_s']:.0f} | {params} | {tagging} | "
            f"{r['words_per_s_text']:,.0f} |"
            if r["train_s"] is not None
            else f"| {r['model']} | (100%) | | | – | – | – | – | {r['words_per_s_text']:,.0f} |"
        )
    types = sorted({t for r in rows for t in r["per_type"]}, key=lambda t: -rows[0]["per_type"].get(t, {}).get("support", 0))[:8]
    lines += [
        "",
        "Entity F1 by type (the 8 most frequent types in the test split):",
        "",
        "| model | " + " | ".join(f"{t} ({rows[0]['per_type'].get(t, {}).get('support', 0)})" for t in types) + " |",
        "|---|" + "---|" * len(types),
    ]
    for r in rows[:-1]:
        lines.append(
            f"| {r['model']} | " + " | ".join(f"{100 * r['per_type'].get(t, {}).get('f1', 0):.1f}" for t in types) + " |"
        )
    command = f"OMP_NUM_THREADS=1 python benchmarks/ner_silver.py --minutes {' '.join(f'{m:g}' for m in args.minutes)}"
    lines += ["", f"Command: `{command}` (runs in `{args.output}/`)."]
    args.table.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (args.output / "results.json").write_text(json.dumps(rows, indent=2), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
