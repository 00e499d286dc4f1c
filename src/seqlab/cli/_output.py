"""Files the commands write for a user (`--output`, `--plot`, `--attention`): checked first,
written whole or not at all."""

from __future__ import annotations

import os
from pathlib import Path

from seqlab.errors import SeqlabError
from seqlab.files import write_text


def check_writable(path: Path) -> Path:
    """One clear line, before any work is done, for an output path that cannot be written:
    a folder, under a missing folder or under a file."""
    path = Path(path)
    if path.is_dir():
        raise SeqlabError(f"cannot write {path}: it is a directory; give a file name")
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        raise SeqlabError(f"cannot write {path}: {parent} is not a directory")
    if not parent.exists():
        raise SeqlabError(f"cannot write {path}: folder {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK):
        raise SeqlabError(f"cannot write {path}: folder {parent} is not writable")
    return path


def write_atomic(path: Path, text: str) -> None:
    """Write `text` atomically (`seqlab.files`) to a path checked by `check_writable`."""
    write_text(check_writable(path), text)
