"""`silver-ner`: a *silver* NER corpus, since no annotated corpus is reachable offline.

spaCy's `en_core_web_sm` (the teacher) is run over built-in text, the Rotten Tomatoes movie
snippets (`rt-polarity`) and the New York Times editorial snippets (`nyt`), and its entities
become the labels. They are machine labels, not gold: a tagger trained and scored on them
measures its agreement with the teacher, never accuracy against human annotation, and every
result made from them is called silver.

Built once (a few minutes on one CPU core) and cached as JSON Lines,
`$SEQLAB_HOME/datasets/silver-ner.jsonl` (`{"tokens", "tags" (BIO), "source"}`, readable as a
user file too), beside `silver-ner.meta.json`, which names the teacher and the sources; a
different teacher (an installed official package of another version) rebuilds it.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

from seqlab import assets
from seqlab.data.conll import SILVER_NER, TaggedSentence, read_span_jsonl
from seqlab.data.datasets import load_builtin
from seqlab.data.spacy_models import (
    DEFAULT_PIPELINE,
    load_pipeline,
    require_ner,
    source_of,
)

log = logging.getLogger("seqlab")

SILVER_SOURCES = ("rt-polarity", "nyt")
BATCH_SIZE = 256


def silver_path() -> Path:
    return assets.home() / "datasets" / f"{SILVER_NER}.jsonl"


def _meta() -> dict:
    return {
        "name": SILVER_NER,
        "teacher": DEFAULT_PIPELINE,
        "teacher_source": source_of(DEFAULT_PIPELINE),
        "sources": list(SILVER_SOURCES),
        "labels": "silver: machine labels by the teacher, not human annotation",
    }


def load_silver() -> list[TaggedSentence]:
    """The silver corpus, built on first use (see the module docstring)."""
    path = silver_path()
    meta_path = path.with_name(f"{SILVER_NER}.meta.json")
    meta = _meta()
    try:
        cached = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cached = None
    if cached is not None and all(cached.get(k) == v for k, v in meta.items()) and path.is_file():
        sentences = read_span_jsonl(path)
        if len(sentences) == cached.get("sentences"):
            return sentences
    texts, sources = [], []
    for name in SILVER_SOURCES:
        for example in load_builtin(name):
            texts.append(" ".join(example.text.split()))  # single spaces: spaCy makes no whitespace tokens
            sources.append(name)
    nlp = load_pipeline(DEFAULT_PIPELINE)
    require_ner(nlp, DEFAULT_PIPELINE)
    log.info(
        "building the silver NER corpus once: %s over %s sentences of %s (cached in %s)",
        DEFAULT_PIPELINE,
        f"{len(texts):,}",
        " + ".join(SILVER_SOURCES),
        path,
    )
    rows, sentences = [], []
    for doc, source in zip(nlp.pipe(texts, batch_size=BATCH_SIZE), sources):
        sentence = TaggedSentence([t.text for t in doc], [(e.start, e.end, e.label_) for e in doc.ents])
        if sentence.tokens:
            sentences.append(sentence)
            rows.append({"tokens": sentence.tokens, "tags": sentence.tags("bio"), "source": source})
    _write_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    _write_atomic(
        meta_path, json.dumps({**meta, "sentences": len(rows), "entities": sum(len(s.spans) for s in sentences)}, indent=2) + "\n"
    )
    return sentences


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
