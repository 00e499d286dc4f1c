"""seqlab's spaCy NER path against calling `nlp.pipe` directly, on the same texts.

    OMP_NUM_THREADS=1 python benchmarks/ner_speed.py [--texts 1000] [--repeats 5] [--batch-size 256] [--model en_core_web_sm]

Both paths use the same loaded pipeline object and the same batch size, and both return every
entity's text, label and character offsets:
- `nlp.pipe`: `[[(e.text, e.label_, e.start_char, e.end_char) for e in doc.ents] for doc in nlp.pipe(texts)]`;
- `seqlab`: `api.load_ner(model).entities(texts)` (input checks, chunking of long texts, `Entity` objects).
The texts are the NYT and movie snippets of the built-in datasets (whitespace as in the files).
The two paths alternate, after one warm-up each; the median of `--repeats` is reported, and the
script exits with status 1 when seqlab is below 0.95× the words/s of `nlp.pipe`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from seqlab import api
from seqlab.data.datasets import load_builtin
from seqlab.data.spacy_models import load_pipeline, source_of

TARGET = 0.95


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=1000, help="texts, half NYT and half movie snippets")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--model", default="en_core_web_sm")
    args = parser.parse_args()
    half = args.texts // 2
    texts = [e.text for e in load_builtin("nyt")[:half]] + [e.text for e in load_builtin("rt-polarity")[: args.texts - half]]
    words = sum(len(t.split()) for t in texts)
    nlp = load_pipeline(args.model)
    pipe = api.load_ner(args.model)
    assert pipe.nlp is nlp  # one pipeline object: only the path around it differs

    def direct():
        return [
            [(e.text, e.label_, e.start_char, e.end_char) for e in doc.ents]
            for doc in nlp.pipe(texts, batch_size=args.batch_size)
        ]

    def seqlab():
        return pipe.entities(texts, batch_size=args.batch_size)

    same = direct() == [[(e.text, e.label, e.start, e.end) for e in ents] for ents in seqlab()]  # also the warm-up
    times = {"nlp.pipe": [], "seqlab": []}
    for _ in range(args.repeats):
        for name, fn in (("nlp.pipe", direct), ("seqlab", seqlab)):
            started = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - started)
    rate = {name: words / statistics.median(t) for name, t in times.items()}
    ratio = rate["seqlab"] / rate["nlp.pipe"]
    print(
        f"{args.model} ({source_of(args.model)}), {len(texts):,} texts, {words:,} words, batch {args.batch_size}, "
        f"median of {args.repeats}; identical entities: {same}"
    )
    print("| path | words/s | median s | runs (s) |")
    print("|---|---|---|---|")
    for name, t in times.items():
        print(f"| {name} | {rate[name]:,.0f} | {statistics.median(t):.2f} | {', '.join(f'{x:.2f}' for x in t)} |")
    print(f"seqlab / nlp.pipe = {ratio:.3f} (target >= {TARGET})")
    return 0 if ratio >= TARGET and same else 1


if __name__ == "__main__":
    sys.exit(main())
