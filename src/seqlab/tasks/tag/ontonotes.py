"""spaCy's OntoNotes entities scored as CoNLL-2003's four types: the zero-training baseline.

spaCy's English pipelines (`en_core_web_sm`, ...) are trained on OntoNotes 5, whose 18 entity
types are not CoNLL-2003's PER, ORG, LOC and MISC. To score them on CoNLL's test set they are
mapped (`ONTONOTES_TO_CONLL`) the way CoNLL's annotation guidelines define the four types:

| OntoNotes | CoNLL | why |
|---|---|---|
| PERSON | PER | people (fictional ones too) |
| ORG | ORG | companies, agencies, institutions, sports teams |
| GPE, LOC, FAC | LOC | countries, cities, states; mountains, rivers; buildings, airports, roads |
| NORP, EVENT, WORK_OF_ART, LAW, LANGUAGE, PRODUCT | MISC | nationalities ("German"), events, titles, ... |
| DATE, TIME, PERCENT, MONEY, QUANTITY, ORDINAL, CARDINAL | (dropped) | CoNLL does not tag numbers or dates |

The mapping is lossy both ways (CoNLL tags a team named after its city as ORG where spaCy says
GPE, and spaCy's NORP also covers religious and political groups), which is part of what the
baseline measures: an off-the-shelf pipeline under another annotation scheme.

`spacy_entities` runs the pipeline on CoNLL's own tokens (a `Doc` built from the words, so the
entity boundaries are compared on the same tokens as the gold ones; no re-tokenization), and
`score_pipeline` scores the mapped entities with the CoNLL rules (`inference.entity_scores`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from seqlab.data.conll import Span, TaggedSentence, spans_to_tags
from seqlab.tasks.tag.inference import entity_scores

ONTONOTES_TO_CONLL: dict[str, str] = {
    "PERSON": "PER",
    "ORG": "ORG",
    "GPE": "LOC",
    "LOC": "LOC",
    "FAC": "LOC",
    "NORP": "MISC",
    "EVENT": "MISC",
    "WORK_OF_ART": "MISC",
    "LAW": "MISC",
    "LANGUAGE": "MISC",
    "PRODUCT": "MISC",
}
DROPPED = ("DATE", "TIME", "PERCENT", "MONEY", "QUANTITY", "ORDINAL", "CARDINAL")


def to_conll(spans: Sequence[Span]) -> list[Span]:
    """OntoNotes spans (token start, end, label) as CoNLL-2003 spans; numeric types are dropped."""
    return [(start, end, ONTONOTES_TO_CONLL[label]) for start, end, label in spans if label in ONTONOTES_TO_CONLL]


def spacy_entities(nlp: Any, sentences: Sequence[Sequence[str]], batch_size: int = 256) -> list[list[Span]]:
    """spaCy's entities (OntoNotes labels, token offsets) of pre-split sentences, tokenized as given."""
    from spacy.tokens import Doc

    docs = (Doc(nlp.vocab, words=list(words)) for words in sentences)
    return [[(e.start, e.end, e.label_) for e in doc.ents] for doc in nlp.pipe(docs, batch_size=batch_size)]


def score_pipeline(nlp: Any, sentences: Sequence[TaggedSentence]) -> dict:
    """Entity P/R/F1 overall and per CoNLL type (CoNLL rules) of `nlp` on `sentences`, with the
    OntoNotes labels mapped by `ONTONOTES_TO_CONLL`, and its speed in words/s."""
    started = time.perf_counter()
    found = spacy_entities(nlp, [s.tokens for s in sentences])
    seconds = max(time.perf_counter() - started, 1e-9)
    gold = [s.tags("bio") for s in sentences]
    predicted = [spans_to_tags(to_conll(spans), len(s.tokens), "bio") for s, spans in zip(sentences, found)]
    words = sum(len(s.tokens) for s in sentences)
    return {**entity_scores(gold, predicted), "sentences": len(sentences), "words": words, "words_per_second": words / seconds}
