"""Parallel text for translation: (source, target) sentence pairs.

Users' files, every problem one `file: line N: ...` error:

- **TSV** (`.tsv`, `.txt`; Tatoeba and Anki exports): `source<TAB>target[<TAB>anything...]`;
  columns after the second (Tatoeba's attribution) are ignored, blank lines skipped.
- **Two files, Moses layout**: `corpus.en,corpus.fr`, line i of one translating line i of the
  other; both must have the same number of lines.

Built-in generated tasks, in real languages with known-correct targets (no parallel corpus is
reachable offline), written `name` or `name:SIZE` (pairs in all; default in `GENERATED`):

- `numbers-en-fr`: integers below one million written out in English → French (`num2words`),
  e.g. "ninety-seven" → "quatre-vingt-dix-sept": reordering and agreement ("quatre-vingts",
  "deux cents" but "deux cent mille") make attention matter. The number of digits (1 to 6) is
  drawn uniformly, so short and long numbers are both well represented.
- `dates`: a date between 1900 and 2099 written in one of 9 locales and 3 styles (`babel`:
  "1. März 2021", "lunes, 1 de marzo de 2021", "Mar 1, 2021") → ISO 8601 "2021-03-01".
- `reverse`: 1 to 12 lowercase letters → the same letters in reverse order (a sanity task).

Splits of a generated task are deterministic and disjoint by construction: each item (a number,
a date, a letter sequence) goes to test, valid or train by a hash of (`split_seed`, item), so a
held-out number never appears in training in any rendering, and a larger `:SIZE` only adds
items after the first ones.

Real corpora (Tatoeba, users' files) often translate one source sentence several ways. Their
held-out sets are drawn by distinct source (`split_by_source`): every translation of a held-out
source leaves training with it and becomes one of its references (`MultiRef`), scored with
sacreBLEU's multi-reference BLEU and chrF (`corpus_bleu_multi`).
"""

from __future__ import annotations

import datetime
import hashlib
import random
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from seqlab.data.readers import _read_utf8
from seqlab.errors import SeqlabError


@dataclass(frozen=True)
class Pair:
    """One sentence and its translation."""

    source: str
    target: str


# --------------------------------------------------------------------------- users' files


@dataclass
class ParallelText:
    """Pairs read from a user's file(s), with the 1-based line numbers whose source or target
    was cut to `max_chars` (by `read_parallel`; the strict readers raise instead)."""

    pairs: list[Pair]
    truncated_lines: list[int] = field(default_factory=list)

    @property
    def truncated(self) -> int:
        """How many pairs had a side cut to `max_chars`."""
        return len(self.truncated_lines)


def read_pairs(spec: str, *, max_chars: int = 100_000) -> list[Pair]:
    """Pairs from a TSV file or from two Moses files written `SOURCE_FILE,TARGET_FILE`; a side
    over `max_chars` is an error naming the line."""
    return _read(spec, max_chars, truncate=False).pairs


def read_parallel(spec: str, *, max_chars: int = 100_000) -> ParallelText:
    """Like `read_pairs`, but a side over `max_chars` is cut to `max_chars` characters and its
    line counted in `.truncated_lines`, so one huge line does not stop a run: the caller
    reports the count. Every other problem still raises `SeqlabError`."""
    return _read(spec, max_chars, truncate=True)


def read_tsv(path: str | Path, *, max_chars: int = 100_000) -> list[Pair]:
    """`source<TAB>target[<TAB>...]` lines (Tatoeba/Anki); blank lines are skipped."""
    return _read_tsv(Path(path), max_chars, truncate=False).pairs


def read_moses(source_path: str | Path, target_path: str | Path, *, max_chars: int = 100_000) -> list[Pair]:
    """Two files with one sentence per line, line i of `target_path` translating line i of
    `source_path`."""
    return _read_moses(Path(source_path), Path(target_path), max_chars, truncate=False).pairs


def _read(spec: str, max_chars: int, truncate: bool) -> ParallelText:
    if "," in spec and not Path(spec).is_file():
        source, target = (Path(part.strip()) for part in spec.split(",", 1))
        return _read_moses(source, target, max_chars, truncate)
    return _read_tsv(Path(spec), max_chars, truncate)


def _lines(text: str) -> list[str]:
    # "\n" only: str.splitlines would also break inside a sentence at U+2028, U+0085, \x0c...,
    # shifting every later line number.
    return [line.removesuffix("\r") for line in text.split("\n")]


def _read_tsv(path: Path, max_chars: int, truncate: bool) -> ParallelText:
    if not path.is_file():
        raise SeqlabError(
            f"{path} does not exist; give a TSV file of source<TAB>target lines, "
            "two Moses files as SOURCE,TARGET, or a built-in task: " + ", ".join(GENERATED)
        )
    out = ParallelText([])
    for number, line in enumerate(_lines(_read_utf8(path)), 1):
        if not line.strip():
            continue
        if "\t" not in line:
            raise SeqlabError(f"{path}: line {number}: no tab; each line must be source<TAB>target")
        source, target = (side.strip() for side in line.split("\t")[:2])
        _add(out, Pair(source, target), path, number, max_chars, truncate)
    if not out.pairs:
        raise SeqlabError(f"{path} holds no pairs; each line must be source<TAB>target")
    return out


def _read_moses(source_path: Path, target_path: Path, max_chars: int, truncate: bool) -> ParallelText:
    sides = []
    for path in (source_path, target_path):
        if not path.is_file():
            raise SeqlabError(f"{path} does not exist (two Moses files are given as SOURCE_FILE,TARGET_FILE)")
        lines = _lines(_read_utf8(path))
        sides.append(lines[:-1] if lines[-1] == "" else lines)  # the last line's "\n" ends it, not a new line
    if len(sides[0]) != len(sides[1]):
        raise SeqlabError(
            f"{source_path} has {len(sides[0]):,} lines but {target_path} has {len(sides[1]):,}; "
            "line i of one must translate line i of the other"
        )
    out = ParallelText([])
    for number, (source, target) in enumerate(zip(*sides), 1):
        if not source.strip() and not target.strip():
            continue
        for path, side in ((source_path, source), (target_path, target)):
            if not side.strip():
                raise SeqlabError(f"{path}: line {number}: empty sentence (its translation is not)")
        _add(out, Pair(source.strip(), target.strip()), source_path, number, max_chars, truncate)
    if not out.pairs:
        raise SeqlabError(f"{source_path} and {target_path} hold no sentences")
    return out


def _add(out: ParallelText, pair: Pair, path: Path, number: int, max_chars: int, truncate: bool) -> None:
    """Append `pair` to `out` after the checks every reader shares."""
    cut = False
    for side, text in (("source", pair.source), ("target", pair.target)):
        if not text:
            raise SeqlabError(f"{path}: line {number}: empty {side}; each line must be source<TAB>target")
        if len(text) > max_chars:
            if not truncate:
                raise SeqlabError(
                    f"{path}: line {number}: the {side} has {len(text):,} characters, over data.max_chars={max_chars:,}"
                )
            cut = True
    if cut:
        # The text was stripped, so what is left of it is never empty.
        pair = Pair(pair.source[:max_chars].rstrip(), pair.target[:max_chars].rstrip())
        out.truncated_lines.append(number)
    out.pairs.append(pair)


# --------------------------------------------------------------------------- generated tasks

# An item's key (what must not cross splits) and how to write its pair: every random choice is
# made by the draw, the writing (slow for num2words) only for the pairs that are kept.
Draw = Callable[[random.Random], tuple[str, Callable[[], Pair]]]


def _number(rng: random.Random) -> tuple[str, Callable[[], Pair]]:
    from num2words import num2words

    digits = rng.randint(1, 6)
    n = rng.randrange(0 if digits == 1 else 10 ** (digits - 1), 10**digits)
    return str(n), lambda: Pair(num2words(n, lang="en"), num2words(n, lang="fr"))


DATE_LOCALES = ("en_US", "en_GB", "fr_FR", "de_DE", "es_ES", "it_IT", "pt_BR", "nl_NL", "sv_SE")
# No "short" style: its two-digit years ("3/1/21") cannot say which century.
DATE_STYLES = ("medium", "long", "full")
_FIRST_DAY, _DAYS = datetime.date(1900, 1, 1), (datetime.date(2099, 12, 31) - datetime.date(1900, 1, 1)).days + 1


def _date(rng: random.Random) -> tuple[str, Callable[[], Pair]]:
    from babel.dates import format_date

    day = _FIRST_DAY + datetime.timedelta(days=rng.randrange(_DAYS))
    style, locale = rng.choice(DATE_STYLES), rng.choice(DATE_LOCALES)
    return day.isoformat(), lambda: Pair(format_date(day, style, locale=locale), day.isoformat())


def _letters(rng: random.Random) -> tuple[str, Callable[[], Pair]]:
    letters = rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(1, 12))
    return "".join(letters), lambda: Pair(" ".join(letters), " ".join(reversed(letters)))


@dataclass(frozen=True)
class GeneratedTask:
    draw: Draw
    size: int  # pairs in all, by default
    description: str


GENERATED: dict[str, GeneratedTask] = {
    "numbers-en-fr": GeneratedTask(_number, 40_000, "integers below one million in English words → French words (num2words)"),
    "dates": GeneratedTask(_date, 30_000, "dates 1900-2099 in 9 locales × 3 styles (babel) → ISO 8601"),
    "reverse": GeneratedTask(_letters, 10_000, "1-12 letters → the same letters reversed"),
}


def parse_generated(spec: str) -> tuple[str, int] | None:
    """'numbers-en-fr' → ('numbers-en-fr', 40000); 'dates:5000' → ('dates', 5000); a file → None."""
    name, _, size = spec.partition(":")
    if name not in GENERATED or Path(spec).exists():
        return None
    if not size:
        return name, GENERATED[name].size
    if not size.isdigit() or int(size) < 3:
        raise SeqlabError(f"{spec!r}: the size after ':' must be a whole number of pairs, at least 3 (e.g. {name}:5000)")
    return name, int(size)


def split_of(key: str, seed: int, valid_fraction: float, test_fraction: float) -> str:
    """'test', 'valid' or 'train' for one item, from a hash of (seed, key): the same item always
    lands in the same split, whatever the size of the task."""
    u = int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "big") / 2**64
    return "test" if u < test_fraction else "valid" if u < test_fraction + valid_fraction else "train"


def generate_splits(
    spec: str, seed: int = 0, valid_fraction: float = 0.05, test_fraction: float = 0.05, train_limit: int | None = None
) -> dict[str, list[Pair]]:
    """{"train", "valid", "test"} pairs of a generated task: `size` distinct items drawn from a
    generator seeded with `seed`, each put in its split by `split_of`.

    Args:
        train_limit: stop adding training pairs after this many (data.limit); the held-out
            splits are the same as without it.
    """
    parsed = parse_generated(spec)
    if parsed is None:
        raise SeqlabError(f"{spec!r} is not a generated task; choose one of {', '.join(GENERATED)}")
    name, size = parsed
    task, rng = GENERATED[name], random.Random(f"{name}:{seed}")
    splits: dict[str, list[Pair]] = {"train": [], "valid": [], "test": []}
    seen: set[str] = set()
    misses = 0
    while len(seen) < size:
        key, write = task.draw(rng)
        if key in seen:
            misses += 1
            if misses > 50 * size:  # e.g. reverse:10000000 asks for more items than the task has
                raise SeqlabError(f"{spec!r}: could not draw {size:,} distinct pairs; ask for fewer")
            continue
        seen.add(key)
        split = split_of(key, seed, valid_fraction, test_fraction)
        if split == "train" and train_limit is not None and len(splits["train"]) >= train_limit:
            continue
        splits[split].append(write())
    return splits


# --------------------------------------------------------------------------- held-out sets by source


@dataclass(frozen=True)
class MultiRef:
    """One source sentence and every translation of it in the corpus (at least one)."""

    source: str
    references: tuple[str, ...]


@dataclass
class SourceSplits:
    """Train pairs and held-out sources; no source (by `source_key`) is in two of them.

    Attributes:
        train: Pairs, shuffled by the seed, so `train[:n]` is a random sample (data.limit).
        valid, test: One `MultiRef` per held-out source, in a seeded random order, so
            `valid[:n]` is a random sample too (a fixed validation subset).
    """

    train: list[Pair]
    valid: list[MultiRef]
    test: list[MultiRef]

    def sizes(self) -> dict[str, dict[str, int]]:
        """{"train"|"valid"|"test": {"pairs": n, "sources": n}}."""
        out = {
            name: {"pairs": sum(len(m.references) for m in refs), "sources": len(refs)}
            for name, refs in (("valid", self.valid), ("test", self.test))
        }
        out["train"] = {"pairs": len(self.train), "sources": len({source_key(p.source) for p in self.train})}
        return {name: out[name] for name in ("train", "valid", "test")}


def source_key(text: str) -> str:
    """What makes two sources the same sentence for held-out splits: NFKC (French's narrow
    no-break space before "!" becomes a plain space: Tatoeba writes both "Va !" and
    "Va\u202f!") and collapsed whitespace. Case and punctuation still tell sentences apart."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def group_by_source(pairs: Iterable[Pair]) -> list[MultiRef]:
    """One `MultiRef` per distinct `source_key`, in order of first appearance. Its source is
    the first spelling seen; its references are the distinct targets, in order."""
    pairs = list(pairs)
    return [
        MultiRef(source, tuple(targets)) for source, targets in _groups(pairs, [source_key(p.source) for p in pairs]).values()
    ]


def _groups(pairs: Iterable[Pair], keys: Iterable[str]) -> dict[str, tuple[str, dict[str, None]]]:
    """key -> (first source spelling, its targets as an ordered set)."""
    found: dict[str, tuple[str, dict[str, None]]] = {}
    for pair, key in zip(pairs, keys):
        found.setdefault(key, (pair.source, {}))[1].setdefault(pair.target)
    return found


def split_by_source(
    pairs: Sequence[Pair], *, seed: int = 0, n_test: float = 2000, n_valid: float = 1000, by: str = "source"
) -> SourceSplits:
    """Hold out `n_test` + `n_valid` distinct sources with all their translations.

    `by="source"` (default): the source side decides. For fr→en pairs distinct *French*
    sentences are held out, so en-fr and fr-en get different test sets, and a test reference
    may still be a training target under another source ("Tu es le prof." in test, "Vous êtes
    le professeur." → "You're the teacher." in training): the model never sees a test source.

    `by="both"`: whole connected groups of sentences that translate one another are held out
    (sources and targets linked by any pair; the largest Tatoeba group has 68 pairs), so no
    test source *or reference* is in training, and both directions of one corpus rank the
    groups alike. Test then holds at least `n_test` sources (a group is never cut).

    A group's place depends only on (seed, its sentences): the file's order does not matter,
    and a larger `n_test` keeps the smaller test set inside it.

    Args:
        pairs: (source, target) pairs, duplicates allowed.
        seed: data.split_seed.
        n_test, n_valid: distinct sources held out; a float below 1 is a fraction of them.
        by: "source" or "both".

    Raises:
        SeqlabError: An unknown `by`, or too few distinct sources to hold out and train on.
    """
    if by not in ("source", "both"):
        raise SeqlabError(f"unknown hold-out rule {by!r}; choose source or both")
    keys = [source_key(p.source) for p in pairs]
    groups = _groups(pairs, keys)
    n_test, n_valid = _count(n_test, len(groups)), _count(n_valid, len(groups))
    if n_test + n_valid >= len(groups):
        raise SeqlabError(
            f"{len(groups):,} distinct source sentences cannot give {n_test:,} test and {n_valid:,} "
            "validation sources and leave some to train on; hold out fewer"
        )
    unit = _linked(pairs, keys) if by == "both" else {key: key for key in groups}
    rank = {u: hashlib.sha256(f"{seed}:{u}".encode()).digest() for u in set(unit.values())}
    order = sorted(groups, key=lambda key: (rank[unit[key]], key))  # a unit's sources are adjacent

    def take(start: int, n: int) -> int:
        end = start + n
        while 0 < end < len(order) and unit[order[end]] == unit[order[end - 1]]:
            end += 1  # finish the unit
        return end

    test_end = take(0, n_test)
    valid_end = take(test_end, n_valid)
    if valid_end >= len(order):
        raise SeqlabError(f"holding out {n_test:,} test and {n_valid:,} validation sources by {by} leaves nothing to train on")
    held = set(order[:valid_end])
    train = [p for p, key in zip(pairs, keys) if key not in held]
    random.Random(f"train:{seed}").shuffle(train)
    refs = [MultiRef(groups[k][0], tuple(groups[k][1])) for k in order[:valid_end]]  # only the held-out ones: 3k of 93k
    return SourceSplits(train, refs[test_end:], refs[:test_end])


def _linked(pairs: Sequence[Pair], keys: Sequence[str]) -> dict[str, str]:
    """source key -> name of its connected group (sources and targets joined by pairs). The
    name is the group's smallest sentence key, source or target side, so swapping the
    direction names every group the same."""
    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def find(node: tuple[str, str]) -> tuple[str, str]:
        while parent.setdefault(node, node) != node:
            parent[node] = node = parent[parent[node]]  # path halving
        return node

    for pair, key in zip(pairs, keys):
        a, b = find(("s", key)), find(("t", source_key(pair.target)))
        parent[a] = b
    names: dict[tuple[str, str], str] = {}
    for node in list(parent):
        root = find(node)
        names[root] = min(names.get(root, node[1]), node[1])
    return {key: names[find(("s", key))] for key in keys}


def _count(n: float, total: int) -> int:
    if isinstance(n, float) and 0 <= n < 1:
        return round(n * total)
    if n < 0 or n != int(n):
        raise SeqlabError(f"held-out size {n!r} must be a whole number of sources or a fraction below 1")
    return int(n)


def flatten(refs: Iterable[MultiRef]) -> list[Pair]:
    """One pair per (source, reference): what a loss or a single-reference metric takes."""
    return [Pair(m.source, ref) for m in refs for ref in m.references]


def reference_streams(refs: Sequence[MultiRef | Sequence[str]], *, repeat: bool = False) -> list[list[str | None]]:
    """sacreBLEU's `references`: stream k holds the k-th reference of every source, shape
    (max references, sources).

    A source with fewer references is padded with `None`, which sacreBLEU (2.x,
    `Metric._cache_references`) drops, so it scores a variable number of references (its
    signature then says `nrefs:var`). Do not pad with "": sacreBLEU keeps "" as a reference of
    length 0, which can change the brevity penalty. `repeat=True` pads with the source's last
    reference instead, for files given to the `sacrebleu` command (which has no way to write
    None); a repeated reference changes neither BLEU nor chrF.
    """
    lists = [_references(r) for r in refs]
    width = max((len(r) for r in lists), default=0)
    return [[r[k] if k < len(r) else (r[-1] if repeat else None) for r in lists] for k in range(width)]


def _references(r: MultiRef | Sequence[str]) -> tuple[str, ...]:
    refs = r.references if isinstance(r, MultiRef) else (r,) if isinstance(r, str) else tuple(r)
    if not refs:
        raise SeqlabError("a source has no reference translation; every held-out source needs at least one")
    return refs


def corpus_bleu_multi(hypotheses: Sequence[str], references: Sequence[MultiRef | Sequence[str]]) -> dict[str, Any]:
    """Corpus BLEU and chrF of detokenised `hypotheses` against every reference of each source,
    with sacreBLEU's defaults (BLEU-4, 13a tokenisation, exp smoothing; chrF with character
    6-grams, β = 2), as `sacrebleu REF1 REF2 ... -i HYP -m bleu chrf` computes them.

    Args:
        hypotheses: One translation per source.
        references: Per source, a `MultiRef` or a sequence of reference strings.

    Returns:
        {"bleu", "chrf": scores 0-100, "bleu_signature", "chrf_signature": sacreBLEU's
        signatures, "sources": n, "references": total references}.
    """
    from sacrebleu.metrics import BLEU, CHRF

    if len(hypotheses) != len(references):
        raise SeqlabError(f"{len(hypotheses):,} hypotheses for {len(references):,} sources; give one translation per source")
    if not hypotheses:
        raise SeqlabError("nothing to score: no sources")
    # sacrebleu takes None for a missing reference, though its annotation says str
    streams, hyps = cast("list[list[str]]", reference_streams(references)), list(hypotheses)
    bleu, chrf = BLEU(), CHRF()
    return {
        "bleu": bleu.corpus_score(hyps, streams).score,
        "chrf": chrf.corpus_score(hyps, streams).score,
        "bleu_signature": str(bleu.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
        "sources": len(hyps),
        "references": sum(ref is not None for stream in streams for ref in stream),
    }
