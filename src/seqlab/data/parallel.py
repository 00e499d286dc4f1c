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
"""

from __future__ import annotations

import datetime
import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from seqlab.data.readers import _read_utf8
from seqlab.errors import SeqlabError


@dataclass(frozen=True)
class Pair:
    """One sentence and its translation."""

    source: str
    target: str


# --------------------------------------------------------------------------- users' files


def read_pairs(spec: str, *, max_chars: int = 100_000) -> list[Pair]:
    """Pairs from a TSV file or from two Moses files written `SOURCE_FILE,TARGET_FILE`."""
    if "," in spec and not Path(spec).is_file():
        source, target = (part.strip() for part in spec.split(",", 1))
        return read_moses(source, target, max_chars=max_chars)
    return read_tsv(spec, max_chars=max_chars)


def read_tsv(path: str | Path, *, max_chars: int = 100_000) -> list[Pair]:
    """`source<TAB>target[<TAB>...]` lines (Tatoeba/Anki); blank lines are skipped."""
    path = Path(path)
    if not path.is_file():
        raise SeqlabError(f"{path} does not exist; give a TSV file of source<TAB>target lines, "
                          "two Moses files as SOURCE,TARGET, or a built-in task: " + ", ".join(GENERATED))
    pairs = []
    for number, line in enumerate(_read_utf8(path).splitlines(), 1):
        if not line.strip():
            continue
        if "\t" not in line:
            raise SeqlabError(f"{path}: line {number}: no tab; each line must be source<TAB>target")
        source, target = (side.strip() for side in line.split("\t")[:2])
        pairs.append(_checked(Pair(source, target), path, number, max_chars))
    if not pairs:
        raise SeqlabError(f"{path} holds no pairs; each line must be source<TAB>target")
    return pairs


def read_moses(source_path: str | Path, target_path: str | Path, *, max_chars: int = 100_000) -> list[Pair]:
    """Two files with one sentence per line, line i of `target_path` translating line i of
    `source_path`."""
    sides = []
    for path in (Path(source_path), Path(target_path)):
        if not path.is_file():
            raise SeqlabError(f"{path} does not exist (two Moses files are given as SOURCE_FILE,TARGET_FILE)")
        sides.append(_read_utf8(path).splitlines())
    if len(sides[0]) != len(sides[1]):
        raise SeqlabError(f"{source_path} has {len(sides[0]):,} lines but {target_path} has {len(sides[1]):,}; "
                          "line i of one must translate line i of the other")
    pairs = []
    for number, (source, target) in enumerate(zip(*sides), 1):
        if not source.strip() and not target.strip():
            continue
        for path, side in ((source_path, source), (target_path, target)):
            if not side.strip():
                raise SeqlabError(f"{path}: line {number}: empty sentence (its translation is not)")
        pairs.append(_checked(Pair(source.strip(), target.strip()), Path(source_path), number, max_chars))
    if not pairs:
        raise SeqlabError(f"{source_path} and {target_path} hold no sentences")
    return pairs


def _checked(pair: Pair, path: Path, number: int, max_chars: int) -> Pair:
    for side, text in (("source", pair.source), ("target", pair.target)):
        if not text:
            raise SeqlabError(f"{path}: line {number}: empty {side}; each line must be source<TAB>target")
        if len(text) > max_chars:
            raise SeqlabError(f"{path}: line {number}: the {side} has {len(text):,} characters, over data.max_chars={max_chars:,}")
    return pair


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


def generate_splits(spec: str, seed: int = 0, valid_fraction: float = 0.05, test_fraction: float = 0.05,
                    train_limit: int | None = None) -> dict[str, list[Pair]]:
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
