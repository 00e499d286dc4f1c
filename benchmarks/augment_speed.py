"""Sentences per second of `seqlab augment` (synonym, eda), and nlpaug's WordNet augmenter on the same sentences.

    SEQLAB_HOME=... PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/augment_speed.py --sentences 2000 --repeats 5 \
        [--nlpaug /tmp/nlpaug/nlpaug-1.1.11-py3-none-any.whl --nlpaug-site /tmp/nlpaug/site]

The sentences are the first N of rt-polarity. Each configuration makes one variant per sentence
(n=1); its first pass is reported separately ("cold": WordNet lookups not yet cached, spaCy
loaded before), then the median of `--repeats` passes. The issue's bar is 2,000 sentences/s.

nlpaug (`pip download --no-deps nlpaug`, never a project dependency) is imported from its
wheel; it imports pandas at start-up (for one isinstance check), so a pandas wheel unpacked into
a folder (`--nlpaug-site`) goes on sys.path, and `gdown` (used only to download its other
models) is an empty module. Its `SynonymAug(aug_src="wordnet")` calls `nltk.pos_tag`, whose tagger data NLTK cannot
download here, so its `pos_tag` is given spaCy's Penn tags for these sentences, computed before
the clock starts: nlpaug is timed *without* its tagging cost, which favours it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable

from seqlab.data.datasets import load_examples
from seqlab.tasks.augment import methods as aug_tasks
from seqlab.tasks.augment import pipeline as aug


def timed(fn: Callable[[], object], sentences: int, repeats: int) -> dict:
    started = time.perf_counter()
    fn()
    cold = sentences / (time.perf_counter() - started)
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        rates.append(sentences / (time.perf_counter() - started))
    return {"cold": cold, "median": statistics.median(rates), "runs": rates}


def nlpaug_runner(wheel: str, site: str | None, texts: list[str]) -> Callable[[], object]:
    import types

    sys.modules.setdefault("gdown", types.ModuleType("gdown"))  # nlpaug's model downloader; never called here
    if site:
        sys.path.insert(0, site)
    sys.path.insert(0, wheel)  # a pure-Python wheel imports straight from the zip
    import nlpaug.augmenter.word as naw
    from nlpaug.model.word_dict.wordnet import WordNet

    from seqlab.data.spacy_models import load_pipeline
    from seqlab.data.wordnet import wordnet

    wordnet()  # puts seqlab's converted WordNet on nltk.data.path, where nlpaug's nltk.corpus.wordnet looks
    nlp = load_pipeline("en_core_web_sm")
    augmenter = naw.SynonymAug(aug_src="wordnet")
    tags = {}
    for text in texts:  # nlpaug's own tokenizer, then spaCy's tag of each token, before timing
        tokens = augmenter.tokenizer(text)
        doc = nlp(" ".join(tokens))
        tags[tuple(tokens)] = (
            [(t, d.tag_) for t, d in zip(tokens, doc)] if len(doc) == len(tokens) else [(t, "NN") for t in tokens]
        )
    WordNet.pos_tag = classmethod(lambda cls, tokens: tags.get(tuple(tokens)) or [(t, "NN") for t in tokens])
    return lambda: [augmenter.augment(text) for text in texts]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sentences", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--nlpaug", help="path of an nlpaug wheel (pip download --no-deps nlpaug)")
    parser.add_argument("--nlpaug-site", help="a folder with pandas unpacked (nlpaug imports it)")
    args = parser.parse_args()
    texts = [ex.text for ex in load_examples("rt-polarity")[: args.sentences]]
    aug_tasks.analyze(texts[:10], "spacy")  # load spaCy and WordNet outside the clock
    aug_tasks.analyze(texts[:10], "wordnet")
    configs = {
        "seqlab synonym, tagger=wordnet": lambda: aug.augment(texts, "synonym", n=1, seed=0, tagger="wordnet"),
        "seqlab eda (tagger=wordnet, as the paper: no POS tagger)": lambda: aug.augment(texts, "eda", n=1, seed=0),
        "seqlab synonym, tagger=spacy (the default)": lambda: aug.augment(texts, "synonym", n=1, seed=0, tagger="spacy"),
    }
    if args.nlpaug:
        configs["nlpaug 1.1.11 SynonymAug(wordnet), tagging excluded"] = nlpaug_runner(args.nlpaug, args.nlpaug_site, texts)
    results = {}
    for name, fn in configs.items():
        results[name] = timed(fn, len(texts), args.repeats)
        print(
            f"{name}: {results[name]['median']:,.0f} sentences/s (cold {results[name]['cold']:,.0f})", file=sys.stderr, flush=True
        )
    load = os.getloadavg()
    print(json.dumps({"sentences": len(texts), "repeats": args.repeats, "loadavg": load, "results": results}, indent=2))
    print(f"\n| configuration | sentences/s (median of {args.repeats}) | first pass (cold cache) |\n|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['median']:,.0f} | {r['cold']:,.0f} |")
    print(
        f"\n{len(texts):,} rt-polarity sentences, n=1; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on 2 shared cores"
    )


if __name__ == "__main__":
    main()
