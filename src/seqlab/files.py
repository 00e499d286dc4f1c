"""Atomic writes: every file seqlab writes appears whole or not at all.

A file is written under a temporary name beside its target (the same file system, so the
rename is atomic) and renamed over the target only once complete; on any failure the temporary
file is removed and the target is untouched. An OS error (a full disk, a read-only folder) is
one `SeqlabError` line naming the file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from seqlab.errors import SeqlabError


@contextmanager
def atomic_path(path: str | Path, *, durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write; it becomes `path` when the block ends without error.

    Args:
        durable: fsync the file before the rename (checkpoints: survive a power cut, not just a kill).
    """
    target = Path(path)
    # the temporary name keeps the suffix, for writers that pick a format from it (matplotlib)
    tmp = target.with_name(f".{target.stem}.{os.getpid()}.tmp{target.suffix}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        if durable:
            with tmp.open("rb") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, target)
    except OSError as err:
        raise SeqlabError(f"cannot write {target} ({err.strerror or err})") from None
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_open(
    path: str | Path, mode: str = "w", encoding: str | None = "utf-8", newline: str | None = None
) -> Iterator[IO[Any]]:
    """`open(path, mode)` for writing, atomically (see `atomic_path`)."""
    with atomic_path(path) as tmp:
        with open(tmp, mode, encoding=None if "b" in mode else encoding, newline=newline) as handle:
            yield handle


def write_text(path: str | Path, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | Path, payload: object) -> Path:
    """Write `payload` as indented UTF-8 JSON to `path` atomically."""
    return write_text(path, json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
