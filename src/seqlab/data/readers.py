"""Read labelled examples from users' files: CSV, TSV and JSON Lines.

Every problem with a file is a `SeqlabError` of one line that names the file and the 1-based
line where it was found, and says what to do, so a person can fix the file without a traceback.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqlab.errors import SeqlabError

TEXT_COLUMNS = ("text", "sentence", "review", "content", "document")
LABEL_COLUMNS = ("label", "labels", "sentiment", "class", "target", "y")
DELIMITERS = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
JSON_SUFFIXES = (".jsonl", ".json")
SUPPORTED_SUFFIXES = (*DELIMITERS, *JSON_SUFFIXES)

# csv refuses fields over 128 KiB with its own error; lift that so a long text reaches the
# max_chars check, which says which limit to raise. 2**31-1 fits a C long everywhere.
_FIELD_LIMIT = min(sys.maxsize, 2**31 - 1)


@dataclass(frozen=True)
class Example:
    """One labelled text."""

    text: str
    label: str


def read_examples(
    path: str | os.PathLike[str],
    *,
    text_column: str | None = None,
    label_column: str | None = None,
    max_chars: int = 100_000,
) -> list[Example]:
    """Read labelled examples from a .csv, .tsv/.tab or .jsonl/.json file.

    Delimited files need a header row; JSON files hold one object per line. Without explicit
    columns the first present of `TEXT_COLUMNS` / `LABEL_COLUMNS` is used (case-insensitive).
    A UTF-8 BOM and CRLF line ends are accepted; labels are returned as strings.

    Args:
        path: The data file.
        text_column: Column (or JSON key) holding the text.
        label_column: Column (or JSON key) holding the label.
        max_chars: Longest text accepted (`data.max_chars`).

    Returns:
        The examples in file order.

    Raises:
        SeqlabError: The file is missing, empty, not UTF-8, or has a bad row; the message is
            one line with the file name and line number.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise SeqlabError(f"{p}: unsupported file type {suffix or '(no suffix)'!r}; use one of {', '.join(SUPPORTED_SUFFIXES)}")
    text = _read_utf8(p)
    if suffix in JSON_SUFFIXES:
        return _read_jsonl(p, text, text_column, label_column, max_chars)
    return _read_delimited(p, text, DELIMITERS[suffix], text_column, label_column, max_chars)


# --- file level --------------------------------------------------------------------------------


# UTF-32 first: its little-endian mark begins with UTF-16's.
_OTHER_BOMS = {"UTF-32": (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE), "UTF-16": (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)}


def _read_utf8(p: Path) -> str:
    """The file's text without BOM; a decoding error names the line and byte offset."""
    if not p.exists():
        raise SeqlabError(f"data file {p} does not exist; check the path")
    if not p.is_file():
        raise SeqlabError(f"{p} is not a file (a directory?); pass the data file itself")
    try:
        raw = p.read_bytes()
    except OSError as err:
        raise SeqlabError(f"cannot read {p} ({err.strerror or err})") from None
    for name, marks in _OTHER_BOMS.items():  # (Windows' "Unicode" is UTF-16: say so, not "byte 0xff")
        if raw.startswith(marks):
            raise SeqlabError(f"{p} is {name} (it starts with a {name} byte-order mark); re-save the file as UTF-8")
    bom = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
    try:
        return raw[bom:].decode("utf-8")
    except UnicodeDecodeError as err:
        pos = bom + err.start
        line = raw.count(b"\n", 0, pos) + 1
        col = pos - (raw.rfind(b"\n", 0, pos) + 1) + 1
        raise SeqlabError(
            f"{p}: line {line}: byte 0x{raw[pos]:02x} at byte offset {pos} (column {col}) is "
            "not valid UTF-8; re-save the file as UTF-8"
        ) from None


def _empty(p: Path, first_line: str) -> SeqlabError:
    return SeqlabError(f"{p} is empty: line 1 should be {first_line}")


def _bad(p: Path, line: int, problem: str) -> SeqlabError:
    return SeqlabError(f"{p}: line {line}: {problem}")


def _show(value: str, limit: int = 40) -> str:
    """A user-supplied string made safe for a one-line message."""
    flat = " ".join(value.split())
    return repr(flat if len(flat) <= limit else flat[: limit - 3] + "...")


# --- columns and values -------------------------------------------------------------------------


def _pick_column(p: Path, columns: list[str], explicit: str | None, defaults: tuple[str, ...], role: str) -> str:
    """Name of the column to use for `role` ("text" or "label"), or a one-line error."""
    found = ", ".join(_show(c, 30) for c in columns) or "none"
    flag = f"--{role}-column"
    lowered = {c.strip().lower(): c for c in reversed(columns)}  # first occurrence wins
    if explicit is not None:
        if explicit in columns:
            return explicit
        if explicit.strip().lower() in lowered:
            return lowered[explicit.strip().lower()]
        raise _bad(p, 1, f"no column {_show(explicit)} (columns: {found}); pass {flag} with one of them")
    for name in defaults:
        if name in lowered:
            return lowered[name]
    raise _bad(
        p,
        1,
        f"no {role} column found (looked for {', '.join(defaults)}; columns: {found}); pass {flag} NAME",
    )


def _make_example(p: Path, line: int, text: Any, label: Any, max_chars: int) -> Example:
    """Check one row's values and build the example (label None: unlabelled input)."""
    if not isinstance(text, str):
        raise _bad(p, line, f"the text must be a string, got {type(text).__name__}")
    if not text.strip():
        raise _bad(p, line, "the text is empty; remove the row or fill it in")
    if len(text) > max_chars:
        raise _bad(
            p,
            line,
            f"the text is {len(text):,} characters, over the limit of {max_chars:,} "
            "(data.max_chars); split it or raise the limit",
        )
    if label is _UNLABELLED:
        return Example(text=text.strip(), label="")
    if isinstance(label, (bool, dict, list)) or label is None:
        got = "nothing" if label is None else type(label).__name__
        raise _bad(p, line, f"the label must be a string or a number, got {got}")
    label = str(label).strip()
    if not label:
        raise _bad(p, line, "the label is empty; every row needs a label")
    return Example(text=text.strip(), label=label)


_UNLABELLED: Any = object()  # the label "value" of rows read by `read_texts` (a sentinel passed as label_column)


# --- formats ------------------------------------------------------------------------------------


def _read_delimited(
    p: Path,
    text: str,
    delimiter: str,
    text_column: str | None,
    label_column: str | None,
    max_chars: int,
) -> list[Example]:
    """CSV/TSV with a header row; line numbers are where each record starts."""
    if not text.strip():
        sep = "," if delimiter == "," else "<TAB>"
        raise _empty(p, f"a header row naming the columns, e.g. text{sep}label")
    csv.field_size_limit(_FIELD_LIMIT)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [c.strip() for c in next(reader)]
    ti = header.index(_pick_column(p, header, text_column, TEXT_COLUMNS, "text"))
    li = None if label_column is _UNLABELLED else header.index(_pick_column(p, header, label_column, LABEL_COLUMNS, "label"))
    examples: list[Example] = []
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            raise _bad(p, start, f"{err}; check the quoting") from None
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # blank line
        if len(row) != len(header):
            raise _bad(
                p,
                start,
                f"{len(row)} field(s), but the header has {len(header)}; "
                f"quote values that contain {_show(delimiter)} or fill in missing ones",
            )
        label = _UNLABELLED if li is None else row[li]
        examples.append(_make_example(p, start, row[ti], label, max_chars))
    if not examples:
        raise _bad(p, 1, "a header row but no examples below it; add one example per line")
    return examples


def _read_jsonl(
    p: Path,
    text: str,
    text_column: str | None,
    label_column: str | None,
    max_chars: int,
) -> list[Example]:
    """JSON Lines: one object per line; columns are chosen from the first object's keys."""
    if not text.strip():
        raise _empty(p, 'a JSON object such as {"text": "...", "label": "..."}')
    keys: tuple[str, str | None] | None = None
    examples: list[Example] = []
    for n, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        obj = _parse_json_line(p, n, line)
        if keys is None:
            columns = list(obj)
            keys = (
                _pick_column(p, columns, text_column, TEXT_COLUMNS, "text"),
                None if label_column is _UNLABELLED else _pick_column(p, columns, label_column, LABEL_COLUMNS, "label"),
            )
        for key in keys:
            if key is not None and key not in obj:
                raise _bad(p, n, f"no {_show(key)} field; every object needs the same fields")
        label = _UNLABELLED if keys[1] is None else obj[keys[1]]
        examples.append(_make_example(p, n, obj[keys[0]], label, max_chars))
    return examples


def _parse_json_line(p: Path, n: int, line: str) -> dict[str, Any]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as err:
        hint = (
            "; this looks like a JSON array: write one object per line (JSON Lines)"
            if n == 1 and line.lstrip().startswith("[")
            else "; each line must be one JSON object"
        )
        raise _bad(p, n, f"invalid JSON ({err.msg} at column {err.colno}){hint}") from None
    if not isinstance(obj, dict):
        raise _bad(p, n, f"expected a JSON object, got {type(obj).__name__}; write one object per line")
    return obj


def read_texts(path: str | os.PathLike[str], *, text_column: str | None = None, max_chars: int = 100_000) -> list[str]:
    """Unlabelled texts to predict on: a .txt file (one text per non-blank line) or the text
    column of a .csv/.tsv/.jsonl file. Same one-line errors as `read_examples`."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".txt":
        content = _read_utf8(p)
        texts = [line.strip() for line in content.splitlines() if line.strip()]
        if not texts:
            raise _empty(p, "one text per line")
        for number, line in enumerate(content.splitlines(), start=1):
            if len(line) > max_chars:
                raise _bad(p, number, f"the text is {len(line):,} characters, over the limit of {max_chars:,}")
        return texts
    if suffix not in SUPPORTED_SUFFIXES:
        raise SeqlabError(
            f"{p}: unsupported file type {suffix or '(no suffix)'!r}; use .txt or one of {', '.join(SUPPORTED_SUFFIXES)}"
        )
    content = _read_utf8(p)
    if suffix in JSON_SUFFIXES:
        rows = _read_jsonl(p, content, text_column, _UNLABELLED, max_chars)
    else:
        rows = _read_delimited(p, content, DELIMITERS[suffix], text_column, _UNLABELLED, max_chars)
    return [row.text for row in rows]
