"""Language-model corpora larger than memory (issue 16 §3, `seqlab.data.tokens`): a text file
streamed in character ranges, tokenised once into a memory-mapped token file in the cache, and
training/held-out windows read from it, with the same ids and batches as text in memory."""

from __future__ import annotations

import codecs
import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from seqlab import runs
from seqlab.config import build_config
from seqlab.data import tokens
from seqlab.errors import SeqlabError
from seqlab.tasks.lm import recipe as lm

REPO = Path(__file__).resolve().parents[1]

# Every kind of line break str.splitlines knows, a BOM, multi-byte characters, no final newline.
BREAKS = ["\n", "\r\n", "\r", "\x0c", "\u2028", "\x85"]
AWKWARD = "".join(f"line {i}: naïve café ☕ {'😀' * (i % 3)}{BREAKS[i % 6]}" for i in range(400)) + "the end without a newline"


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("SEQLAB_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def corpus(tmp_path: Path, text: str = AWKWARD) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_bytes(codecs.BOM_UTF8 + text.encode("utf-8"))
    return path


def lm_config(data: Path, *extra: str):
    return build_config({"task": "lm"}, [f"data.train={data}", "data.test_fraction=0.1", "model.preset=tiny", *extra])


# --------------------------------------------------------------------------- text, streamed


def test_a_file_is_split_as_in_memory_without_reading_it_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(tokens, "BLOCK_BYTES", 97)  # many blocks: characters and "\r\n" cut between them
    cfg = lm_config(corpus(tmp_path))
    assert lm.streams_from_disk(cfg)
    streamed, in_memory = lm.split_text_file(cfg), lm.split_text(cfg)
    assert streamed.sources == in_memory.sources
    for name in ("train", "valid", "test"):
        span, text = getattr(streamed, name), getattr(in_memory, name)
        assert len(span) == len(text)
        assert list(span.lines()) == text.splitlines(keepends=True), name


def test_bad_text_files_are_one_line_before_any_run_folder(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\nthen \xff here\n")
    with pytest.raises(SeqlabError, match=r"bad.txt: line 2: byte 0xff at byte offset 10 \(column 6\) is not valid UTF-8"):
        lm.split_text_file(lm_config(bad))
    blank = tmp_path / "blank.txt"
    blank.write_text(" \n\n", encoding="utf-8")
    with pytest.raises(SeqlabError, match="is empty"):
        lm.split_text_file(lm_config(blank))
    wide = tmp_path / "wide.txt"
    wide.write_bytes(codecs.BOM_UTF16_LE + "text".encode("utf-16-le"))
    with pytest.raises(SeqlabError, match="UTF-16"):
        lm.split_text_file(lm_config(wide))


# --------------------------------------------------------------------------- token files


@pytest.mark.parametrize("level", ["char", "bpe"])
def test_token_files_hold_the_ids_of_in_memory_encoding_and_are_made_once(tmp_path, home, monkeypatch, level):
    monkeypatch.setattr(tokens, "BLOCK_BYTES", 1000)
    monkeypatch.setattr(tokens, "ENCODE_CHUNKS", 2)  # several encoder calls
    cfg = lm_config(corpus(tmp_path), f"tokenizer.level={level}", "tokenizer.vocab_size=300")
    splits, text = lm.split_text_file(cfg), lm.split_text(cfg)
    codec = lm.Codec(lm.learn_tokenizer(cfg, splits.train))
    if level == "char":  # the same vocabulary, streamed (BPE training breaks ties differently on every call)
        assert codec.tokenizer.get_vocab() == lm.learn_tokenizer(cfg, text.train).get_vocab()
    for name in ("train", "valid", "test"):
        ids = lm.token_ids(getattr(splits, name), codec)
        assert isinstance(ids, tokens.TokenFile) and ids.dtype == np.uint16
        assert torch.equal(ids[0 : len(ids)], codec.encode_stream(getattr(text, name))), name
        assert ids.meta["sha256"] == runs.data_hash([(getattr(text, name), "")])
        assert ids.meta["characters"] == len(getattr(text, name))
    made = sorted(home.glob("tokens/*"))
    assert len(made) == 6 and not list(home.glob("tokens/.*"))  # .bin + .json per split, no leftovers

    def refuse(*args, **kwargs):
        raise AssertionError("tokenised again")

    monkeypatch.setattr(tokens, "TokenWriter", refuse)
    again = lm.token_ids(splits.train, codec)  # a later run with the same file and vocabulary
    assert again.path == lm.token_ids(splits.train, codec).path and sorted(home.glob("tokens/*")) == made


def test_other_processes_wait_for_the_first_one(home):
    key = tokens.cache_key("waiting test")
    got = []
    waiter = threading.Thread(target=lambda: got.append(tokens.cached_token_file(key, None, vocab_size=10, build=False)))
    waiter.start()

    def fill(writer):
        writer.write([1, 2, 3])
        return {"note": "made by rank 0"}

    made = tokens.cached_token_file(key, fill, vocab_size=10, build=True)
    waiter.join(timeout=30)
    assert got and got[0].path == made.path and got[0].meta["note"] == "made by rank 0"
    assert made[0:3].tolist() == [1, 2, 3] and made.dtype == np.uint16
    with pytest.raises(SeqlabError, match="did it fail"):
        tokens.cached_token_file(tokens.cache_key("nobody writes this"), None, vocab_size=10, build=False, stall_s=0.3)


def test_a_damaged_token_file_is_made_again(home):
    key = tokens.cache_key("damaged")
    first = tokens.cached_token_file(key, lambda w: w.write(list(range(100))) or {}, vocab_size=70_000)
    assert first.dtype == np.uint32
    with first.path.open("r+b") as handle:  # cut short, as by a full disk
        handle.truncate(40)
    assert tokens.open_token_file(key) is None
    again = tokens.cached_token_file(key, lambda w: w.write(list(range(100))) or {}, vocab_size=70_000)
    assert again[0:100].tolist() == list(range(100))


# --------------------------------------------------------------------------- windows


def test_random_window_batches_are_the_same_for_any_process_and_after_a_resume(monkeypatch):
    single = tokens.RandomWindowSampler(1000, 16, 7, seed=3)
    epoch0 = list(single)
    assert len(epoch0) == len(single) == 9 and sum(map(len, epoch0)) == 62  # 999 // 16 windows
    assert all(0 <= s <= 1000 - 17 for batch in epoch0 for s in batch)
    assert list(single) != epoch0  # a new draw every epoch
    shards = []
    for rank in (0, 1):
        monkeypatch.setattr("seqlab.data.batching._process_slot", lambda rank=rank: (rank, 2))
        shards.append(list(tokens.RandomWindowSampler(1000, 16, 7, seed=3, shard=True)))
    for step, batch in enumerate(epoch0):
        assert shards[0][step] + shards[1][step] != [] and sorted(shards[0][step] + shards[1][step]) == sorted(batch)
    monkeypatch.undo()
    stopped = tokens.RandomWindowSampler(1000, 16, 7, seed=3)
    seen = iter(stopped)
    first = [next(seen) for _ in range(4)]
    resumed = tokens.RandomWindowSampler(1000, 16, 7, seed=3)
    resumed.load_state_dict(stopped.state_dict())
    assert first + list(resumed) == epoch0


def test_windows_from_a_token_file_equal_windows_from_a_tensor(home):
    ids = torch.randint(0, 300, (1001,))
    key = tokens.cache_key("windows")
    stored = tokens.cached_token_file(key, lambda w: w.write(ids) or {}, vocab_size=300)
    train = tokens.TokenWindows(stored, 16)
    assert torch.equal(train.__getitems__([0, 5, 984]), tokens.TokenWindows(ids, 16).__getitems__([0, 5, 984]))
    for block in (10, 1000):  # the last window shorter / one window
        batches = [
            list(DataLoader(lm.heldout_windows(source, block), batch_size=8, collate_fn=lm.collate_windows))
            for source in (stored, ids)
        ]
        assert len(batches[0]) == len(batches[1])
        for a, b in zip(*batches):
            for key_ in ("input_ids", "targets"):
                assert torch.equal(a[key_], b[key_])
        targets = torch.cat([b["targets"][b["targets"] != lm.IGNORE] for b in batches[0]])
        assert torch.equal(targets, ids[1:])  # every token but the first scored once


def test_streaming_a_token_file_larger_than_the_memory_it_may_use(tmp_path):
    """Iterating every training window of an epoch and every held-out window of a 384 MiB token
    file keeps the reading process's peak resident memory within 64 MiB of where it started.

    Why this measure: a cap on address space (RLIMIT_AS) cannot be used, since torch alone maps
    gigabytes of virtual memory, and Linux does not enforce RLIMIT_RSS (nor RLIMIT_DATA for
    file pages). So the test measures what such a cap would limit: the growth of the peak
    resident set (`ru_maxrss`, which counts mapped file pages as well as the heap) over the
    whole pass, in a fresh interpreter (the peak is per process), against a file 6 times the
    allowed growth. Reading the windows through a `numpy.memmap` fails it: the pages a map
    touches stay resident (measured: the whole file after 5 batches), which is why `TokenFile`
    reads with `os.preadv`. ~3 s of reading; the file is written in ~1 s and removed after.
    """
    path = tmp_path / "big.bin"
    size = 384 << 20
    scattered = (np.arange(8 << 20, dtype=np.uint64) * 2654435761 % 50_000).astype(np.uint16)  # (fast to make)
    with path.open("wb") as handle:
        for part in range(size // (16 << 20)):
            (scattered + part).tofile(handle)
    script = textwrap.dedent(f"""
        import json, resource, sys
        import torch
        from torch.utils.data import DataLoader
        from seqlab.data import tokens

        def peak():
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # (KiB on Linux)

        ids = tokens.TokenFile({str(path)!r}, "uint16", {size // 2})
        before, windows, checksum = peak(), 0, 0
        sampler = tokens.RandomWindowSampler(len(ids), 1024, 256, seed=0)
        for batch in DataLoader(tokens.TokenWindows(ids, 1024), batch_sampler=sampler, collate_fn=lambda b: b):
            windows += len(batch)
            checksum += int(batch[:, 0].sum())
        random_peak = peak()
        held = 0
        for batch in DataLoader(tokens.ConsecutiveWindows(ids, 1024), batch_size=256, collate_fn=lambda b: b):
            held += len(batch)
        print(json.dumps({{"before": before, "random": random_peak, "after": peak(), "windows": windows,
                          "held": held, "checksum": checksum}}))
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env, check=False)
    path.unlink()
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["windows"] == (size // 2 - 1) // 1024 and seen["held"] == -(-(size // 2 - 1) // 1024)
    assert seen["checksum"] > 0
    grown = seen["after"] - seen["before"]
    assert grown < 64 << 20, f"peak resident memory grew by {grown / 2**20:.0f} MiB reading a {size / 2**20:.0f} MiB file"
