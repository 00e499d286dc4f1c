"""Nothing lost (issue 10 §3): exact resume after a real SIGKILL, run folders that are either
finished and whole or refused, and one writer per run folder.

The kill test starts `seqlab train` in a subprocess, waits for a mid-epoch step checkpoint
(`train.checkpoint_every_steps`), kills it with SIGKILL, continues it with `--resume` and
compares its metrics.json with an uninterrupted run of the same seed.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import sentiment_rows, write_csv
from typer.testing import CliRunner

import seqlab
from seqlab import runs
from seqlab.cli.main import app
from seqlab.errors import SeqlabError

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()

# 320 training examples in batches of 16: 20 steps an epoch, a step checkpoint every 3.
STEPS_PER_EPOCH = 20


def train_args(data: Path, output: Path, name: str) -> list[str]:
    return [
        "train",
        "classify",
        "--arch",
        "cnn",
        "--preset",
        "tiny",
        "--data",
        str(data),
        "--epochs",
        "3",
        "--batch-size",
        "16",
        "--seed",
        "7",
        "--output-dir",
        str(output),
        "--name",
        name,
        "train.checkpoint_every_steps=3",
        "model.dropout=0.5",
    ]


def invoke(*args: str):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def sampler_position(checkpoint: Path) -> dict[str, int]:
    """{"epoch", "batches"} of the training sampler saved in a checkpoint."""
    return torch.load(checkpoint, map_location="cpu", weights_only=True)["seqlab"]["sampler"]


def comparable(metrics: dict, prefix: str = "") -> dict:
    """metrics.json flattened to {"valid.accuracy": ...}, less its timing (sentences per
    second differs from run to run)."""
    flat = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            flat.update(comparable(value, f"{prefix}{key}."))
        elif key != "sentences_per_second":
            flat[prefix + key] = value
    return flat


def assert_same_metrics(got: dict, expected: dict) -> None:
    got, expected = comparable(got), comparable(expected)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        if isinstance(value, float):
            assert got[key] == pytest.approx(value, abs=1e-6), key
        else:
            assert got[key] == value, key


def val_losses(run_dir: Path) -> list[float]:
    """The per-epoch val_loss rows of the run's logs/metrics.csv."""
    with (run_dir / "logs" / "metrics.csv").open(newline="") as handle:
        return [float(row["val_loss"]) for row in csv.DictReader(handle) if row.get("val_loss")]


def kill_mid_epoch(args: list[str], run_dir: Path, timeout_s: float = 240.0) -> dict[str, int]:
    """Run `seqlab ARGS` in a subprocess and SIGKILL it as soon as a step checkpoint of its
    second epoch exists; the sampler position of the checkpoint left behind."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "seqlab.cli.main", *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    last = run_dir / runs.LAST_CHECKPOINT
    deadline = time.monotonic() + timeout_s
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if last.exists():
                position = sampler_position(last)
                if position["epoch"] == 1 and 0 < position["batches"] < STEPS_PER_EPOCH // 2:
                    os.kill(proc.pid, signal.SIGKILL)
                    break
            time.sleep(0.01)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = proc.stderr.read().decode(errors="replace")
    assert proc.returncode == -signal.SIGKILL, f"the run ended by itself before it was killed:\n{stderr[-2000:]}"
    return sampler_position(last)


# three trainings, one in a fresh interpreter and killed with SIGKILL: ~30 s on the shared 2-core machine;
# kept in the default run because it is the only proof that nothing is lost
def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(tmp_path):
    data = write_csv(tmp_path / "sentiment.csv", sentiment_rows(400))
    output = tmp_path / "runs"
    killed = output / "killed"

    position = kill_mid_epoch(train_args(data, output, "killed"), killed)
    assert position["epoch"] == 1 and 0 < position["batches"] < STEPS_PER_EPOCH, position  # resumed mid-epoch
    assert not (killed / runs.COMPLETE).exists()
    with pytest.raises(SeqlabError, match="did not finish"):
        seqlab.load(killed)  # (the killed folder is not a model yet)

    invoke("train", "--resume", killed)
    invoke(*train_args(data, output, "uninterrupted"))

    resumed = json.loads((killed / runs.METRICS).read_text())
    uninterrupted = json.loads((output / "uninterrupted" / runs.METRICS).read_text())
    assert resumed["epochs"] == uninterrupted["epochs"] == 3
    assert_same_metrics(resumed, uninterrupted)
    assert resumed["best_val_acc"] == pytest.approx(uninterrupted["best_val_acc"], abs=1e-6)
    # the learning curve of the killed part is kept, not overwritten by the resumed part
    assert val_losses(killed) == pytest.approx(val_losses(output / "uninterrupted"), abs=1e-6)
    assert len(val_losses(killed)) == 3
    # the same weights, not just the same scores
    a = seqlab.load(killed, backend="torch").predict_proba(["good fun film", "dull and poor"])
    b = seqlab.load(output / "uninterrupted", backend="torch").predict_proba(["good fun film", "dull and poor"])
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


# --------------------------------------------------------------------------- finished or refused


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("finished")
    data = write_csv(folder / "sentiment.csv", sentiment_rows(120))
    invoke(
        "train",
        "classify",
        "--arch",
        "cnn",
        "--preset",
        "tiny",
        "--data",
        data,
        "--epochs",
        "1",
        "--output-dir",
        folder / "runs",
        "--name",
        "done",
    )
    return folder / "runs" / "done"


def copy_run(source: Path, target: Path) -> Path:
    import shutil

    shutil.copytree(source, target)
    return target


def test_a_finished_run_records_its_files(finished_run):
    record = json.loads((finished_run / runs.COMPLETE).read_text())["files"]
    assert {"model.safetensors", "tokenizer.json", "labels.json", "metrics.json", "manifest.json"} <= set(record)
    assert not any(name.startswith(("checkpoints/", "logs/")) for name in record)
    assert not (finished_run / runs.LOCK).exists()  # released when training ended
    assert seqlab.load(finished_run, backend="torch").predict(["great fun"])[0]["label"] in ("pos", "neg")


def test_a_run_without_its_completion_marker_is_refused(finished_run, tmp_path):
    run = copy_run(finished_run, tmp_path / "unfinished")
    (run / runs.COMPLETE).unlink()
    with pytest.raises(SeqlabError, match=r"did not finish \(no complete.json\); continue it with `seqlab train --resume"):
        seqlab.load(run)
    result = runner.invoke(app, ["predict", str(run), "good"])
    assert result.exit_code == 1 and "did not finish" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("name", ["model.safetensors", "tokenizer.json", "labels.json"])
def test_a_truncated_file_is_refused(finished_run, tmp_path, name):
    run = copy_run(finished_run, tmp_path / "truncated")
    content = (run / name).read_bytes()
    (run / name).write_bytes(content[: len(content) // 2])  # what a crash mid-copy leaves
    with pytest.raises(SeqlabError, match=f"is damaged: {name} is .* bytes, .* when the run finished"):
        seqlab.load(run)


def test_resume_refuses_a_finished_run(finished_run):
    with pytest.raises(SeqlabError, match="already finished"):
        seqlab.api.train(None, resume=finished_run)


# --------------------------------------------------------------------------- one writer


def unfinished_run(finished_run: Path, target: Path) -> Path:
    """A run folder as a killed training leaves it: config, vocabulary, checkpoints, no marker."""
    run = copy_run(finished_run, target)
    for name in (runs.COMPLETE, runs.WEIGHTS, runs.METRICS, runs.MANIFEST):
        (run / name).unlink()
    return run


def test_a_second_writer_is_refused(finished_run, tmp_path):
    run = unfinished_run(finished_run, tmp_path / "busy")
    # another process holds the lock: a real one, so the refusal names a live pid
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys, time; sys.path.insert(0, sys.argv[1]); from pathlib import Path; "
                "from seqlab.runs import run_lock\nwith run_lock(Path(sys.argv[2])):\n"
                " print('held', flush=True); time.sleep(60)"
            ),
            str(REPO / "src"),
            str(run),
        ],
        stdout=subprocess.PIPE,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        assert holder.stdout.readline().strip() == b"held"
        result = runner.invoke(app, ["train", "--resume", str(run)])
        assert result.exit_code == 1, result.output
        assert f"is being written by process {holder.pid}" in result.output
        assert not (run / runs.COMPLETE).exists()
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_is_exclusive_within_a_process_too(tmp_path):
    refused = pytest.raises(SeqlabError, match=f"being written by process {os.getpid()}")
    with runs.run_lock(tmp_path), refused, runs.run_lock(tmp_path):
        pass
    assert not (tmp_path / runs.LOCK).exists()


def test_the_stale_lock_of_a_dead_process_is_taken_over(finished_run, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid now names no running process, as after a SIGKILL
    run = unfinished_run(finished_run, tmp_path / "stale")
    (run / runs.LOCK).write_text(f"{dead.pid} somehost\n")
    invoke("train", "--resume", run)
    assert (run / runs.COMPLETE).exists() and not (run / runs.LOCK).exists()


# --------------------------------------------------------------------------- what a checkpoint holds


def test_the_sampler_continues_with_the_next_unseen_batch():
    from seqlab.data.batching import BucketBatchSampler

    lengths = [(i * 5) % 11 + 1 for i in range(45)]
    uninterrupted = BucketBatchSampler(lengths, 4, seed=2)
    epochs = [list(uninterrupted) for _ in range(3)]

    killed = BucketBatchSampler(lengths, 4, seed=2)
    list(killed)
    batches = iter(killed)
    seen = [next(batches) for _ in range(5)]  # killed after 5 batches of epoch 1
    state = killed.state_dict()
    assert state == {"epoch": 1, "batches": 5}

    resumed = BucketBatchSampler(lengths, 4, seed=2)
    resumed.load_state_dict(state)
    assert seen + list(resumed) == epochs[1]
    assert list(resumed) == epochs[2]


def test_at_the_end_of_an_epoch_the_state_points_at_the_next_one():
    from seqlab.data.batching import BucketBatchSampler

    sampler = BucketBatchSampler([3] * 8, 4, seed=0)
    batches = iter(sampler)
    next(batches), next(batches)  # the last batch handed out, the epoch not yet closed
    assert sampler.state_dict() == {"epoch": 1, "batches": 0}


def test_last_checkpoint_is_the_latest_state_not_the_best(tmp_path):
    """Lightning's save_last=True writes last.ckpt only when the monitored metric improves; a
    resumed run must continue from the latest epoch."""
    data = write_csv(tmp_path / "sentiment.csv", sentiment_rows(120))
    # lr so small that val_acc never improves after epoch 1: best.ckpt stays at epoch 1
    invoke(
        "train",
        "classify",
        "--arch",
        "cnn",
        "--preset",
        "tiny",
        "--data",
        data,
        "--epochs",
        "3",
        "--batch-size",
        "32",
        "--lr",
        "1e-12",
        "--output-dir",
        tmp_path / "runs",
        "--name",
        "flat",
    )
    checkpoints = tmp_path / "runs" / "flat" / "checkpoints"
    best = torch.load(checkpoints / "best.ckpt", map_location="cpu", weights_only=True)
    last = torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=True)
    assert best["global_step"] == 3  # 96 examples / 32
    assert last["global_step"] == 9 and last["seqlab"]["sampler"] == {"epoch": 3, "batches": 0}
