"""Tagged sentences: tag schemes and the readers for users' NER files (task tag).

A sentence is its tokens and its entity spans, `(start, end, label)` over token positions (end
excluded); tags are derived from the spans in whichever scheme a model learns:

- **BIO** (IOB2): `B-PER I-PER O`; **IOB1** files (CoNLL-2003 as released: `I-` opens an entity
  unless it follows one of the same type) read the same way.
- **IOBES**: `S-` for one-word entities, `B- I- E-` around longer ones (`BILOU`'s `U-`/`L-` read too).

Files (`read_tagged`, chosen by suffix):

- **CoNLL columns** (`.conll`, `.txt`, `.tsv`, `.iob`, `.bio`, ...): one token per line, the
  token first and its tag last, blank lines between sentences, `-DOCSTART-` lines ignored.
- **JSON Lines** (`.jsonl`): `{"text": ..., "entities": [[start, end, label], ...]}` with
  character offsets (also `"spans"`/`"label"`, or `{"start", "end", "label"}` objects; the text
  is split with spaCy's English tokenizer and every span must fall on token boundaries), or
  `{"tokens": [...], "tags": [...]}`.
- **spaCy DocBin** (`.spacy`): `doc.ents`; a document with sentence boundaries is split into
  its sentences (never inside an entity).

Every problem is a `SeqlabError` of one line naming the file and line, as in `data.readers`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import cast

from seqlab.data.readers import _read_utf8
from seqlab.errors import SeqlabError

SCHEMES = ("bio", "iobes")
Span = tuple[int, int, str]  # token start, token end (excluded), entity type

_TAG = re.compile(r"^([BIESLU])-(\S+)$")
CONLL_SUFFIXES = (".conll", ".conll03", ".conllx", ".txt", ".tsv", ".iob", ".iob2", ".bio", ".bioes", ".iobes", ".col")
JSONL_SUFFIXES = (".jsonl", ".json")
DOCBIN_SUFFIXES = (".spacy",)
SILVER_NER = "silver-ner"


@dataclass
class TaggedSentence:
    """Tokens and entity spans (token offsets, end excluded)."""

    tokens: list[str]
    spans: list[Span] = field(default_factory=list)

    def tags(self, scheme: str = "bio") -> list[str]:
        return spans_to_tags(self.spans, len(self.tokens), scheme)


# --------------------------------------------------------------------------- schemes


def check_tag(tag: str) -> None:
    """Raise ValueError for a tag outside BIO/IOB1/IOBES/BILOU (`O`, `B-TYPE`, `I-`, `E-`, `S-`, `L-`, `U-`)."""
    if tag != "O" and not _TAG.match(tag):
        raise ValueError(f"tag {tag!r} is not in a known scheme: use BIO or IOBES tags (O, B-TYPE, I-TYPE, E-TYPE, S-TYPE)")


def tags_to_spans(tags: list[str]) -> list[Span]:
    """Entity spans of a tag sequence in BIO, IOB1, IOBES or BILOU.

    Decoding is lenient, as conlleval's: an `I-`/`E-` tag that does not continue an entity of
    its type opens a new one, so a model's ill-formed output still yields entities.

    Raises:
        ValueError: a tag outside the schemes (see `check_tag`).
    """
    spans: list[Span] = []
    start, label = None, None
    for i, tag in enumerate(tags):
        check_tag(tag)
        if tag == "O":
            if start is not None:
                spans.append((start, i, cast(str, label)))  # set with start
            start, label = None, None
            continue
        prefix, kind = tag[0], tag[2:]
        if prefix in "BSU" or start is None or kind != label:
            if start is not None:
                spans.append((start, i, cast(str, label)))
            start, label = i, kind
        if prefix in "ESLU":  # the entity ends with this word
            spans.append((start, i + 1, cast(str, label)))
            start, label = None, None
    if start is not None:
        spans.append((start, len(tags), cast(str, label)))
    return spans


def spans_to_tags(spans: list[Span], length: int, scheme: str = "bio") -> list[str]:
    """Tags of `length` words for non-overlapping spans, in `scheme` ("bio" or "iobes")."""
    if scheme not in SCHEMES:
        raise SeqlabError(f"unknown tag scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")
    tags = ["O"] * length
    for start, end, label in spans:
        if scheme == "iobes" and end - start == 1:
            tags[start] = f"S-{label}"
            continue
        tags[start] = f"B-{label}"
        for i in range(start + 1, end):
            tags[i] = f"I-{label}"
        if scheme == "iobes":
            tags[end - 1] = f"E-{label}"
    return tags


def convert_tags(tags: list[str], scheme: str) -> list[str]:
    """The same entities in another scheme (BIO ↔ IOBES; IOB1 → either)."""
    return spans_to_tags(tags_to_spans(tags), len(tags), scheme)


def tag_names(types: list[str], scheme: str) -> list[str]:
    """Every tag of `scheme` over the entity types: O first, then each type's tags."""
    prefixes = "BI" if scheme == "bio" else "BIES"
    return ["O"] + [f"{p}-{kind}" for kind in sorted(types) for p in prefixes]


def entity_types(sentences: list[TaggedSentence]) -> list[str]:
    return sorted({label for s in sentences for _, _, label in s.spans})


# --------------------------------------------------------------------------- files


def load_tagged(spec: str) -> list[TaggedSentence]:
    """A built-in tagged corpus or a user's tagged file (see the module docstring).

    Built in: `silver-ner`, and `conll2003` (its 14,041 training sentences as released) with
    `conll2003:valid` / `conll2003:test` for the standard held-out splits.

    Raises:
        SeqlabError: an unknown name or split (listing the valid ones), or a bad file.
    """
    if spec == SILVER_NER and not Path(spec).is_file():
        from seqlab.data.silver import load_silver

        return load_silver()
    from seqlab.data.datasets import builtin_split

    named = builtin_split(spec)
    if named is not None and named[0].task == "tag":
        from seqlab.data.benchmarks import conll2003_split

        return conll2003_split(named[1])
    path = Path(spec)
    if named is not None or not (path.exists() or path.suffix or "/" in spec):
        raise SeqlabError(
            f"unknown tagged dataset {spec!r}; use {SILVER_NER}, conll2003 (conll2003:valid, "
            "conll2003:test) or a .conll, .jsonl or .spacy file"
        )
    return read_tagged(path)


def read_tagged(path: str | Path) -> list[TaggedSentence]:
    """Read CoNLL columns, JSON Lines or a spaCy DocBin, by suffix."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in DOCBIN_SUFFIXES:
        return read_docbin(p)
    if suffix in JSONL_SUFFIXES:
        return read_span_jsonl(p)
    if suffix in CONLL_SUFFIXES:
        return read_conll(p)
    known = ", ".join(CONLL_SUFFIXES[:3] + JSONL_SUFFIXES[:1] + DOCBIN_SUFFIXES)
    raise SeqlabError(
        f"{p}: unsupported file type {suffix or '(no suffix)'!r} for tagged data; use {known} (CoNLL columns, JSON Lines, DocBin)"
    )


def read_conll(path: str | Path) -> list[TaggedSentence]:
    """CoNLL columns: `token ... tag` per line, blank lines between sentences, -DOCSTART- skipped."""
    p = Path(path)
    text = _read_utf8(p)
    sentences: list[TaggedSentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    columns, first = None, None

    def close() -> None:
        if tokens:
            sentences.append(TaggedSentence(list(tokens), tags_to_spans(tags)))
            tokens.clear()
            tags.clear()

    for number, line in enumerate(text.split("\n"), start=1):
        fields = line.split()
        if not fields:
            close()
            continue
        if fields[0] == "-DOCSTART-":
            close()
            continue
        if len(fields) < 2:
            raise _bad(
                p, number, f"one column ({_show(line)}); each line needs the token first and its tag last, e.g. 'Paris B-LOC'"
            )
        if columns is None:
            columns, first = len(fields), number
        elif len(fields) != columns:
            raise _bad(p, number, f"{len(fields)} columns, but line {first} has {columns}; tokens cannot contain spaces")
        try:
            check_tag(fields[-1])
        except ValueError as err:
            raise _bad(p, number, str(err)) from None
        tokens.append(fields[0])
        tags.append(fields[-1])
    close()
    if not sentences:
        raise SeqlabError(f"{p} holds no tagged tokens: write one 'token tag' per line, a blank line between sentences")
    return sentences


def read_span_jsonl(path: str | Path) -> list[TaggedSentence]:
    """JSON Lines with character spans (`text` + `entities`) or `tokens` + `tags`."""
    p = Path(path)
    text = _read_utf8(p)
    sentences = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise _bad(p, number, f"invalid JSON ({err.msg} at column {err.colno}); each line must be one JSON object") from None
        if not isinstance(obj, dict):
            raise _bad(p, number, f"expected a JSON object, got {type(obj).__name__}")
        try:
            sentence = _tokens_and_tags(obj) if "tokens" in obj else _text_and_spans(obj)
        except ValueError as err:
            raise _bad(p, number, str(err)) from None
        if sentence.tokens:
            sentences.append(sentence)
    if not sentences:
        raise SeqlabError(
            f'{p} holds no sentences: write one object per line, e.g. {{"text": "Paris is big", "entities": [[0, 5, "LOC"]]}}'
        )
    return sentences


def read_docbin(path: str | Path) -> list[TaggedSentence]:
    """The entities of every document in a spaCy DocBin, one sentence per sequence when the
    documents have sentence boundaries."""
    p = Path(path)
    if not p.is_file():
        raise SeqlabError(f"data file {p} does not exist; check the path")
    import spacy
    from spacy.tokens import DocBin

    try:
        docs = list(DocBin().from_disk(p).get_docs(spacy.blank("en").vocab))
    except Exception as err:  # srsly/msgpack raise their own types on a corrupt file
        raise SeqlabError(f"{p} is not a spaCy DocBin ({str(err).splitlines()[0][:120]}); save one with DocBin.to_disk") from None
    sentences = []
    for doc in docs:
        spans = [(e.start, e.end, e.label_) for e in doc.ents]
        cuts = [0, len(doc)]
        if doc.has_annotation("SENT_START"):
            inside = {i for start, end, _ in spans for i in range(start + 1, end)}
            cuts = [s.start for s in doc.sents if s.start not in inside] + [len(doc)]
        for begin, end in pairwise(cuts):
            part = [(s - begin, e - begin, label) for s, e, label in spans if begin <= s < end]
            sentences.append(_without_spaces([t.text for t in doc[begin:end]], [t.is_space for t in doc[begin:end]], part))
    sentences = [s for s in sentences if s.tokens]
    if not sentences:
        raise SeqlabError(f"{p} holds no documents with tokens")
    return sentences


# --------------------------------------------------------------------------- JSON objects


_SPAN_KEYS = ("entities", "spans", "label", "labels", "ner")


def _tokens_and_tags(obj: dict) -> TaggedSentence:
    tokens, tags = obj.get("tokens"), obj.get("tags", obj.get("ner_tags"))
    if not isinstance(tokens, list) or not all(isinstance(t, str) and t.strip() for t in tokens):
        raise ValueError('"tokens" must be a list of non-empty strings')
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ValueError('"tokens" needs "tags": a list of tag strings (O, B-PER, I-PER, ...)')
    if len(tags) != len(tokens):
        raise ValueError(f"{len(tokens)} tokens but {len(tags)} tags")
    return TaggedSentence(tokens, tags_to_spans(tags))


def _text_and_spans(obj: dict) -> TaggedSentence:
    text = obj.get("text")
    if not isinstance(text, str):
        raise ValueError('each object needs "text" (with "entities") or "tokens" (with "tags")')
    key = next((k for k in _SPAN_KEYS if k in obj), None)
    raw = obj.get(key, []) if key else []
    if not isinstance(raw, list):
        raise ValueError(f'"{key}" must be a list of [start, end, label] spans')
    doc = _blank_tokenizer()(text)
    spans: list[Span] = []
    for item in raw:
        start, end, label = _span_fields(item)
        if not 0 <= start < end <= len(text):
            raise ValueError(f"span [{start}, {end}) is outside the text of {len(text)} characters")
        span = doc.char_span(start, end, label=label, alignment_mode="strict")
        if span is None:
            raise ValueError(
                f"span [{start}, {end}) {text[start:end]!r} does not fall on token boundaries; start and end it at a word's edges"
            )
        spans.append((span.start, span.end, label))
    spans.sort()
    for (_, end, first), (start, _, second) in pairwise(spans):
        if start < end:
            raise ValueError(f"entities {first!r} and {second!r} overlap; NER spans must not overlap")
    return _without_spaces([t.text for t in doc], [t.is_space for t in doc], spans)


def _span_fields(item) -> tuple[int, int, str]:
    if isinstance(item, dict):
        item = [item.get("start"), item.get("end"), item.get("label")]
    if not (
        isinstance(item, list)
        and len(item) == 3
        and all(isinstance(v, int) and not isinstance(v, bool) for v in item[:2])
        and isinstance(item[2], str)
        and item[2].strip()
    ):
        raise ValueError(f"entity {item!r} must be [start, end, label] with character offsets and a label")
    if not re.fullmatch(r"\S+", item[2]):
        raise ValueError(f"entity label {item[2]!r} must not contain spaces")
    return item[0], item[1], item[2]


def _without_spaces(tokens: list[str], spaces: list[bool], spans: list[Span]) -> TaggedSentence:
    """Drop spaCy's whitespace tokens (runs of spaces, line breaks), renumbering the spans."""
    if not any(spaces):
        return TaggedSentence(tokens, spans)
    new_index, kept = [], 0
    for is_space in spaces:
        new_index.append(kept)
        kept += not is_space
    new_index.append(kept)
    moved = [(new_index[s], new_index[e], label) for s, e, label in spans]
    return TaggedSentence([t for t, sp in zip(tokens, spaces) if not sp], [(s, e, label) for s, e, label in moved if e > s])


_TOKENIZER = None


def _blank_tokenizer():
    """spaCy's English tokenizer (rules only, no model): the one `en_core_web_sm` uses."""
    global _TOKENIZER
    if _TOKENIZER is None:
        import spacy

        _TOKENIZER = spacy.blank("en")
    return _TOKENIZER


def _bad(p: Path, line: int, problem: str) -> SeqlabError:
    return SeqlabError(f"{p}: line {line}: {problem}")


def _show(value: str, limit: int = 40) -> str:
    flat = " ".join(value.split())
    return repr(flat if len(flat) <= limit else flat[: limit - 3] + "...")
