"""Language-model corpora larger than memory: text streamed from disk, token ids in a
memory-mapped file in the cache, and training windows read from it.

```
corpus.txt ──scan (characters, sha256)──> TextSpan (a character range: train / valid / test)
  ──tokenised once, streamed──> home()/tokens/<key>.bin  (raw uint16/uint32 ids)
                                home()/tokens/<key>.json (dtype, tokens, characters, sha256; written last)
  ──> TokenFile ──> TokenWindows + RandomWindowSampler (training: random windows, sharded under DDP)
                └─> ConsecutiveWindows (held-out: every token scored once)
```

- **Text** (`scan_text`, `TextSpan`): a UTF-8 file is read in blocks of a few MiB, never whole;
  a span's lines are exactly `text[start:end].splitlines(keepends=True)` of the whole text (BOM
  dropped, line ends kept), so the ids equal those of encoding the text in memory.
- **Token files** (`tokenise_span`, `cached_token_file`): the key hashes the file's bytes, the
  span and the tokenizer, so a corpus is tokenised once per vocabulary and reused by later
  runs. Both files are written atomically, the JSON last: a file without its JSON is never
  read. Under DDP the first process on each machine (`LOCAL_RANK` 0) writes; the others wait.
- **Reading** (`TokenFile`): positioned reads (`os.preadv`) of just the windows a batch needs,
  into the batch's own buffer. The OS page cache keeps the file's busy pages for every process
  (and gives them up under memory pressure); the process itself holds only its batches, so a
  corpus many times the memory streams in a few MiB. (The file is a plain array that
  `numpy.memmap` opens, `TokenFile.memmap()`; but every page a map touches counts in the
  process's resident memory until unmapped, and on a kernel that caches files in large folios
  one random window maps up to 2 MiB: a pass of random windows over a 384 MiB file measured the
  whole file resident after 5 batches.)
- **Windows**: `RandomWindowSampler` draws each batch's window starts from a generator seeded by
  (seed, epoch, batch number), so a batch is the same whichever process draws it: under DDP
  every process draws the same global batch and takes its slice, and a resumed run continues
  with the batches a run never stopped would have seen (it is a `BucketBatchSampler`, so
  `seqlab.trainer.fit` shards it and saves its place in checkpoints).
"""

from __future__ import annotations

import codecs
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch.utils.data import Dataset

from seqlab import assets
from seqlab.data import batching
from seqlab.data.batching import BucketBatchSampler
from seqlab.errors import SeqlabError
from seqlab.files import atomic_path, write_json

log = logging.getLogger("seqlab")

FORMAT = 1  # of the token files; part of the cache key
BLOCK_BYTES = 1 << 22  # text read per block
CHUNK_LINES = 256  # lines encoded together (as `Codec.encode_stream` groups them)
CHUNK_CHARS = 1 << 20  # ... or fewer, once a chunk has this many characters
LONG_LINE = 1 << 22  # a "line" longer than this (a file without line breaks) is cut
ENCODE_CHUNKS = 64  # chunks per call of the encoder (a fast tokenizer encodes them in parallel)
_OTHER_BOMS = {"UTF-32": (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE), "UTF-16": (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)}


# --------------------------------------------------------------------------- text, streamed


def _decoded_blocks(path: Path, digest: Any = None) -> Iterator[str]:
    """The text of a UTF-8 file in blocks, without its BOM, as `seqlab.data.readers` reads it
    whole (no newline translation); `digest` (a hashlib object) is fed its bytes. Bad bytes are
    one `SeqlabError` naming line and offset."""
    try:
        handle = path.open("rb")
    except OSError as err:
        raise SeqlabError(f"cannot read {path} ({err.strerror or err})") from None
    decoder = codecs.getincrementaldecoder("utf-8")()
    consumed = newlines = 0  # bytes and b"\n" before the current block
    line_start = 0  # byte offset after the last b"\n"
    with handle:
        first = True
        while True:
            try:
                raw = handle.read(BLOCK_BYTES)
            except OSError as err:
                raise SeqlabError(f"cannot read {path} ({err.strerror or err})") from None
            if digest is not None:
                digest.update(raw)
            if first:
                first = False
                for name, marks in _OTHER_BOMS.items():
                    if raw.startswith(marks):
                        raise SeqlabError(
                            f"{path} is {name} (it starts with a {name} byte-order mark); re-save the file as UTF-8"
                        )
                if raw.startswith(codecs.BOM_UTF8):
                    raw, consumed, line_start = raw[len(codecs.BOM_UTF8) :], len(codecs.BOM_UTF8), len(codecs.BOM_UTF8)
            pending = len(decoder.getstate()[0])  # bytes of a character cut by the previous block
            try:
                text = decoder.decode(raw, final=not raw)
            except UnicodeDecodeError as err:
                at = max(err.start - pending, 0)  # in `raw`
                pos = consumed + at
                before = raw[:at]
                line = newlines + before.count(b"\n") + 1
                column = pos - (consumed + before.rfind(b"\n") + 1 if b"\n" in before else line_start) + 1
                bad = raw[at] if at < len(raw) else 0
                raise SeqlabError(
                    f"{path}: line {line}: byte 0x{bad:02x} at byte offset {pos} (column {column}) is "
                    "not valid UTF-8; re-save the file as UTF-8"
                ) from None
            if b"\n" in raw:
                line_start = consumed + raw.rfind(b"\n") + 1
            newlines += raw.count(b"\n")
            consumed += len(raw)
            if text:
                yield text
            if not raw:
                return


@dataclass(frozen=True)
class TextFile:
    """What one pass over a UTF-8 file found (`scan_text`)."""

    path: Path
    characters: int
    sha256: str  # of the file's bytes (the cache key of its token files)
    blank: bool  # only whitespace

    def span(self, start: int = 0, end: int | None = None) -> TextSpan:
        end = self.characters if end is None else end
        return TextSpan(self, max(0, min(start, end)), min(end, self.characters))


def scan_text(path: str | Path) -> TextFile:
    """Count a UTF-8 file's characters and hash it, reading it once in blocks.

    Raises:
        SeqlabError: a missing file, a folder, or bytes that are not UTF-8 (with line and offset).
    """
    path = Path(path)
    if not path.exists():
        raise SeqlabError(f"data file {path} does not exist; check the path")
    if not path.is_file():
        raise SeqlabError(f"{path} is not a file (a directory?); pass the data file itself")
    characters, blank = 0, True
    digest = hashlib.sha256()
    for text in _decoded_blocks(path, digest):
        characters += len(text)
        blank = blank and text.isspace()
    return TextFile(path, characters, digest.hexdigest(), blank)


@dataclass(frozen=True)
class TextSpan:
    """Characters [start, end) of a text file, read on demand; `len()` is its length in characters."""

    file: TextFile
    start: int
    end: int

    def __len__(self) -> int:
        return self.end - self.start

    def __str__(self) -> str:
        whole = self.start == 0 and self.end == self.file.characters
        return str(self.file.path) if whole else f"{self.file.path} (characters {self.start:,}-{self.end:,})"

    def lines(self) -> Iterator[str]:
        """`text[start:end].splitlines(keepends=True)` of the file's text, streamed (a line of
        more than `LONG_LINE` characters comes in pieces)."""
        if self.start >= self.end:
            return
        position, carry = 0, ""
        for block in _decoded_blocks(self.file.path):
            begin, position = position, position + len(block)
            if position <= self.start:
                continue
            parts = (carry + block[max(self.start - begin, 0) : self.end - begin]).splitlines(keepends=True)
            carry = parts.pop() if parts else ""  # (always: the next block may continue it, "\r" + "\n" too)
            yield from parts
            while len(carry) > LONG_LINE:
                yield carry[:LONG_LINE]
                carry = carry[LONG_LINE:]
            if position >= self.end:
                break
        if carry:
            yield carry


def text_chunks(lines: Iterable[str]) -> Iterator[str]:
    """Lines joined into chunks of `CHUNK_LINES` lines (fewer once `CHUNK_CHARS` characters):
    the pieces a tokenizer encodes one at a time (`Codec.encode_stream` cuts the same)."""
    chunk: list[str] = []
    size = 0
    for line in lines:
        chunk.append(line)
        size += len(line)
        if len(chunk) == CHUNK_LINES or size >= CHUNK_CHARS:
            yield "".join(chunk)
            chunk, size = [], 0
    if chunk:
        yield "".join(chunk)


# --------------------------------------------------------------------------- token files


def token_dtype(vocab_size: int) -> str:
    """The narrowest unsigned integer that holds every id of a vocabulary."""
    return "uint16" if vocab_size <= 1 << 16 else "uint32"


class TokenFile:
    """Token ids in a raw file (native-endian `dtype`, no header: `numpy.memmap` opens it as is).

    `len(f)` tokens; `f[a:b]` → (b - a,) int64 tensor; `f.gather(starts, n)` → (len(starts), n)
    int64 windows. Reads are positioned (`os.preadv`), of just the tokens asked for, so the
    process holds only its batches however large the file (see the module docstring); they
    share no file position, so forked processes (`ddp_fork`, loader workers) read safely. The
    file is opened on first use; a pickled TokenFile carries its path, not its data.
    """

    def __init__(self, path: str | Path, dtype: str, tokens: int, meta: dict[str, Any] | None = None):
        self.path, self.dtype, self.tokens = Path(path), np.dtype(dtype), int(tokens)
        self.meta = meta or {}
        self._fd: int | None = None

    def __repr__(self) -> str:
        return f"TokenFile({str(self.path)!r}, {self.dtype.name}, {self.tokens:,} tokens)"

    def __len__(self) -> int:
        return self.tokens

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_fd": None}

    def __del__(self) -> None:
        fd = getattr(self, "_fd", None)
        if fd is not None:
            os.close(fd)

    def memmap(self) -> np.ndarray:
        """The whole file as a read-only `numpy.memmap` (zero-copy; every page it reads then
        counts in this process's resident memory until it is unmapped)."""
        return np.memmap(self.path, dtype=self.dtype, mode="r", shape=(self.tokens,))

    def _read(self, out: np.ndarray, start: int) -> None:
        """Fill the contiguous array `out` with the tokens from `start`."""
        if self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
            except OSError as err:
                raise SeqlabError(f"cannot read {self.path} ({err.strerror or err})") from None
        view = out.data.cast("B")
        offset = start * self.dtype.itemsize
        while view:
            if hasattr(os, "preadv"):
                got = os.preadv(self._fd, [view], offset)
            else:  # (no preadv: read a copy)
                chunk = os.pread(self._fd, len(view), offset)
                got = len(chunk)
                view[:got] = chunk
            if got <= 0:
                raise SeqlabError(f"{self.path} ends before token {start + len(out)}; delete it so it is made again")
            view, offset = view[got:], offset + got

    def __getitem__(self, index: slice | int) -> torch.Tensor | int:
        if isinstance(index, slice):
            start, stop, step = index.indices(self.tokens)
            if step != 1:
                raise ValueError("a TokenFile is sliced with step 1")
            out = np.empty(max(stop - start, 0), dtype=self.dtype)
            if len(out):
                self._read(out, start)
            return torch.from_numpy(out.astype(np.int64))
        if not -self.tokens <= index < self.tokens:
            raise IndexError(f"token {index} of {self.tokens}")
        out = np.empty(1, dtype=self.dtype)
        self._read(out, index % self.tokens)
        return int(out[0])

    def gather(self, starts: np.ndarray | Sequence[int], length: int) -> torch.Tensor:
        """(len(starts), length) int64: the `length` tokens from each start."""
        starts = np.asarray(starts, dtype=np.int64)
        if len(starts) and (starts.min() < 0 or starts.max() + length > self.tokens):
            raise IndexError(f"windows of {length} tokens from {starts.min()}-{starts.max()} leave {self.tokens} tokens")
        out = np.empty((len(starts), length), dtype=self.dtype)
        for row, start in enumerate(starts.tolist()):
            self._read(out[row], start)
        return torch.from_numpy(out.astype(np.int64))


class TokenWriter:
    """Appends ids to an open binary file as `dtype`; counts them."""

    def __init__(self, handle: Any, dtype: str):
        self.handle, self.dtype, self.tokens = handle, np.dtype(dtype), 0
        self._limit = np.iinfo(self.dtype).max

    def write(self, ids: Sequence[int] | np.ndarray | torch.Tensor) -> None:
        array = ids.numpy() if isinstance(ids, torch.Tensor) else np.asarray(ids)
        if not array.size:
            return
        if array.min() < 0 or array.max() > self._limit:
            raise ValueError(f"token ids outside 0-{self._limit} cannot be stored as {self.dtype.name}")
        self.handle.write(array.astype(self.dtype, copy=False).tobytes())
        self.tokens += int(array.size)


def tokens_dir() -> Path:
    """Where token files are cached: `home()/tokens`."""
    return assets.home() / "tokens"


def cache_key(*parts: Any) -> str:
    """A file name from everything a token file depends on."""
    return hashlib.sha256(json.dumps([FORMAT, *parts], default=str).encode("utf-8")).hexdigest()[:40]


def open_token_file(key: str) -> TokenFile | None:
    """The cached token file `key`, or None when it is absent, incomplete or of another format."""
    data, meta_path = tokens_dir() / f"{key}.bin", tokens_dir() / f"{key}.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        size = data.stat().st_size
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("dtype") not in ("uint16", "uint32"):
        return None
    if size != int(meta.get("tokens", -1)) * np.dtype(meta["dtype"]).itemsize:
        return None
    return TokenFile(data, meta["dtype"], meta["tokens"], meta)


def local_rank_zero() -> bool:
    """True unless this process is a DDP process other than the first on its machine
    (`LOCAL_RANK`, set by torchrun and by Lightning's launcher)."""
    return int(os.environ.get("LOCAL_RANK", "0")) == 0


def cached_token_file(
    key: str, fill: Callable[[TokenWriter], dict[str, Any]], *, vocab_size: int, build: bool | None = None, stall_s: float = 600.0
) -> TokenFile:
    """The token file `key` from the cache, written first if it is not there.

    Args:
        fill: writes the ids through the `TokenWriter` it is given and returns more metadata
            for the JSON (characters, sha256, ...).
        build: write it if missing (default: `local_rank_zero()`); otherwise wait for the
            process that writes it, as long as its temporary file keeps growing (`stall_s`).
    """
    found = open_token_file(key)
    if found is not None:
        return found
    folder = tokens_dir()
    if build is None:
        build = local_rank_zero()
    if not build:
        return _wait_for(key, stall_s)
    dtype = token_dtype(vocab_size)
    started = time.perf_counter()
    with atomic_path(folder / f"{key}.bin") as tmp:
        with tmp.open("wb") as handle:
            writer = TokenWriter(handle, dtype)
            extra = fill(writer)
    write_json(folder / f"{key}.json", {**extra, "format": FORMAT, "dtype": dtype, "tokens": writer.tokens})
    log.info("tokenised %s tokens into %s in %.1f s", f"{writer.tokens:,}", folder / f"{key}.bin", time.perf_counter() - started)
    made = open_token_file(key)
    if made is None:  # (another process replaced it in between with a file of another format)
        raise SeqlabError(f"cannot read back {folder / key}.bin; delete it and train again")
    return made


def _wait_for(key: str, stall_s: float) -> TokenFile:
    folder = tokens_dir()
    seen, changed = None, time.monotonic()
    while True:
        found = open_token_file(key)
        if found is not None:
            return found
        try:
            growing = sorted((p.name, p.stat().st_size) for p in folder.glob(f".{key}.*.tmp.bin"))
        except OSError:  # (a temporary file renamed in between)
            growing = None
        if growing != seen:
            seen, changed = growing, time.monotonic()
        elif time.monotonic() - changed > stall_s:
            raise SeqlabError(
                f"waited {stall_s:.0f} s for the first process on this machine to write {folder / key}.bin; "
                "did it fail? (see its log)"
            )
        time.sleep(0.2)


def tokenise_span(
    span: TextSpan,
    encode_batch: Callable[[list[str]], list[list[int]]],
    *,
    vocab_size: int,
    tokenizer_id: str,
    build: bool | None = None,
) -> TokenFile:
    """The ids of `span`, tokenised once into the cache (see `cached_token_file`).

    Args:
        encode_batch: chunks of text → their ids (no special tokens).
        tokenizer_id: identifies the vocabulary (e.g. a hash of the tokenizer's JSON).

    The metadata holds `characters` and `sha256`, the hash `seqlab.runs.data_hash` gives the
    span's text (text + "\\t\\n"), for the run's manifest.
    """

    def fill(writer: TokenWriter) -> dict[str, Any]:
        digest = hashlib.sha256()
        batch: list[str] = []
        for chunk in text_chunks(span.lines()):
            digest.update(chunk.encode("utf-8"))
            batch.append(chunk)
            if len(batch) == ENCODE_CHUNKS:
                for ids in encode_batch(batch):
                    writer.write(ids)
                batch = []
        for ids in encode_batch(batch) if batch else []:
            writer.write(ids)
        digest.update(b"\t\n")
        return {"source": str(span), "characters": len(span), "sha256": digest.hexdigest()}

    key = cache_key(span.file.sha256, span.start, span.end, tokenizer_id)
    return cached_token_file(key, fill, vocab_size=vocab_size, build=build)


# --------------------------------------------------------------------------- windows


def _gather(ids: torch.Tensor | TokenFile, starts: np.ndarray, length: int) -> torch.Tensor:
    if isinstance(ids, TokenFile):
        return ids.gather(starts, length)
    return ids[torch.from_numpy(np.asarray(starts, dtype=np.int64))[:, None] + torch.arange(length)]


class TokenWindows(Dataset):
    """Windows of `block` + 1 tokens of `ids` (a tensor or a `TokenFile`), indexed by their start:
    the input is the first `block`, the target the last `block`. `__getitems__` reads a whole
    batch as one (B, block + 1) tensor; `RandomWindowSampler` says which."""

    def __init__(self, ids: torch.Tensor | TokenFile, block: int):
        if len(ids) < 2:
            raise SeqlabError("the training text has fewer than 2 tokens; give more text")
        self.ids, self.block = ids, min(block, len(ids) - 1)

    def __len__(self) -> int:
        return max(1, (len(self.ids) - 1) // self.block)

    def __getitem__(self, start: int) -> torch.Tensor:
        return self.__getitems__([start])[0]

    def __getitems__(self, starts: Sequence[int]) -> torch.Tensor:
        return _gather(self.ids, np.asarray(starts, dtype=np.int64), self.block + 1)


class RandomWindowSampler(BucketBatchSampler):
    """Batches of random window starts: `len(ids) // block` windows an epoch (nanoGPT's sampling).

    Batch k of epoch e is drawn from a generator seeded with (seed, e, k) alone, so it is the
    same batch whichever process draws it, and whenever: under DDP (`shard`) every process
    draws the global batch and keeps its slice `batch[rank::world]`; after a resume the
    sampler continues with the next unseen batch (`state_dict`, from `BucketBatchSampler`).
    """

    def __init__(self, tokens: int, block: int, batch_size: int, seed: int = 0, shard: bool = False):
        super().__init__([], batch_size, shuffle=True, bucket=False, seed=seed, shard=shard)
        if tokens < 2:
            raise SeqlabError("the training text has fewer than 2 tokens; give more text")
        self.tokens, self.block = tokens, min(block, tokens - 1)
        self.windows = max(1, (tokens - 1) // self.block)

    def __len__(self) -> int:
        return math.ceil(self.windows / self.batch_size)

    def batch(self, epoch: int, number: int) -> list[int]:
        """The window starts of global batch `number` of epoch `epoch`."""
        size = min(self.batch_size, self.windows - number * self.batch_size)
        rng = np.random.default_rng([self.seed, epoch, number])
        return rng.integers(0, self.tokens - self.block, size).tolist()

    def batches(self, epoch: int) -> list[list[int]]:
        return [self.batch(epoch, number) for number in range(len(self))]

    def __iter__(self) -> Iterator[list[int]]:
        epoch, skip = self.epoch, self._skip
        self.epoch, self._skip = epoch + 1, 0
        rank, world = batching._process_slot() if self.shard else (0, 1)
        for number in range(skip, len(self)):  # (drawn one at a time: an epoch may be millions of windows)
            self._position = (epoch, number + 1)
            batch = self.batch(epoch, number)
            yield batch[rank::world] or batch[-1:]
        self._position = None


class ConsecutiveWindows(Dataset):
    """Held-out windows of `block` + 1 tokens overlapping by one, read on demand: window i is
    ids[i·block : i·block + block + 1], so every token but the first is a target exactly once.

    A sequence (len, indexing, slicing, iteration); `__getitems__` reads a batch of full
    windows as one (B, block + 1) tensor and returns a list when the last, shorter window is in it.
    """

    def __init__(self, ids: torch.Tensor | TokenFile, block: int):
        self.ids, self.block = ids, block

    def __len__(self) -> int:
        return math.ceil((len(self.ids) - 1) / self.block) if len(self.ids) > 1 else 0

    def window(self, index: int) -> torch.Tensor:
        """Window `index` (negative: from the end)."""
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"window {index} of {len(self)}")
        start = index * self.block
        return cast(torch.Tensor, self.ids[start : start + self.block + 1])

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self.window(i) for i in range(*index.indices(len(self)))]
        return self.window(index)

    def __iter__(self) -> Iterator[torch.Tensor]:
        return (self.window(i) for i in range(len(self)))

    def __getitems__(self, indices: Sequence[int]) -> torch.Tensor | list[torch.Tensor]:
        starts = np.asarray(indices, dtype=np.int64) * self.block
        if len(starts) and int(starts.max()) + self.block + 1 <= len(self.ids):
            return _gather(self.ids, starts, self.block + 1)
        return [self.window(i) for i in indices]
