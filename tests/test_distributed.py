"""Data-parallel training (issue 10 §1): Lightning's DDP on CPU processes (gloo).

- The sampler shards: under real DDP each of 2 processes sees its own half of every global
  batch, and the halves together are exactly the single-process batches.
- 2 processes end where 1 process ends: the tiny CNN and the tiny Transformer, same global
  batch (train.batch_size), dropout off so that only float rounding can differ. Stated
  tolerance: best val_loss within 1e-3, valid/test accuracy within one example.
- Only rank 0 writes the run folder.

`ddp_fork` (the Python API's in-process launch) keeps the default tests fast; the slow test
runs the CLI's `--devices 2 --strategy ddp`, which re-runs the command for rank 1.
"""

from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from conftest import sentiment_rows, write_csv
from torch import nn
from typer.testing import CliRunner

from seqlab import api, runs
from seqlab.cli.main import app
from seqlab.config import TrainConfig, build_config
from seqlab.data.batching import BucketBatchSampler, make_loader, training_loader
from seqlab.trainer import fit

REPO = Path(__file__).resolve().parents[1]
VAL_LOSS_TOLERANCE = 1e-3
COMMON = ["model.preset=tiny", "train.epochs=2", "train.batch_size=16", "model.dropout=0.0", "train.seed=5"]


# --------------------------------------------------------------------------- the sampler shards


def test_shards_split_every_global_batch(monkeypatch):
    lengths = [(i * 7) % 13 + 1 for i in range(37)]
    single = BucketBatchSampler(lengths, 8, seed=1).batches(0)
    shards = []
    for rank in (0, 1):
        monkeypatch.setattr("seqlab.data.batching._process_slot", lambda rank=rank: (rank, 2))
        shards.append(list(BucketBatchSampler(lengths, 8, seed=1, shard=True)))
    assert len(shards[0]) == len(shards[1]) == len(single)  # every process takes every step
    for step, batch in enumerate(single):
        assert sorted(shards[0][step] + shards[1][step]) == sorted(batch)
        assert not set(shards[0][step]) & set(shards[1][step])


def test_a_batch_smaller_than_the_world_still_feeds_every_process(monkeypatch):
    monkeypatch.setattr("seqlab.data.batching._process_slot", lambda: (2, 3))
    batches = list(BucketBatchSampler([3] * 9, 4, shuffle=False, shard=True))  # last global batch: 1 example
    assert batches == [[2], [6], [8]]


def test_a_batch_masked_as_a_whole_is_split_after_masking(monkeypatch):
    """Masked-LM masks are drawn for the global batch: each process collates all of it and keeps
    its rows, so the processes' rows are exactly one process's masked batch."""
    from seqlab.tasks.pretrain import recipe as mlm

    examples = [mlm.MLMExample([2, *range(5, 5 + n), 3], [0] * (n + 2)) for n in (3, 9, 4, 7, 5)]
    whole = mlm.MaskingCollator(40, 0.5, seed=1)(examples)
    for rank in (0, 1):
        monkeypatch.setattr("seqlab.data.batching._process_slot", lambda rank=rank: (rank, 2))
        loader = training_loader(mlm.make_loader(examples, 5, mlm.MaskingCollator(40, 0.5, seed=1), bucket=False))
        (batch,) = list(loader)
        assert sorted(batch) == sorted(whole)
        for key, value in whole.items():
            assert torch.equal(batch[key], value[rank::2]), key
    assert training_loader(loader).collate_fn is loader.collate_fn  # (made ready twice: still sharded once)


class IndexModel(L.LightningModule):
    """Token id i+1 stands for example i, so a callback can tell which examples a rank saw."""

    def __init__(self, examples: int):
        super().__init__()
        self.embed = nn.Embedding(examples + 1, 1)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.embed(batch["input_ids"]).mean() ** 2
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(batch["labels"]), sync_dist=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class SeenExamples(L.Callback):
    """Each rank writes the example indices of each of its batches to rank<N>.json."""

    def __init__(self, folder: Path):
        self.folder, self.seen = folder, []

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self.seen.append(sorted((batch["input_ids"][:, 0] - 1).tolist()))

    def on_train_end(self, trainer, module) -> None:
        (self.folder / f"rank{trainer.global_rank}.json").write_text(json.dumps(self.seen))


def test_under_ddp_each_process_trains_on_its_half_of_every_batch(tmp_path):
    examples, batch = 22, 6
    loader = make_loader([[i + 1] for i in range(examples)], [0] * examples, batch, shuffle=True, seed=3)
    cfg = TrainConfig(epochs=2, batch_size=batch, devices=2, strategy="ddp_fork", patience=None, grad_clip=None)
    fit(IndexModel(examples), loader, None, tmp_path, cfg, progress="off", loggers=False, callbacks=[SeenExamples(tmp_path)])

    seen = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    sampler = BucketBatchSampler([1] * examples, batch, seed=3)
    expected = sampler.batches(0) + sampler.batches(1)
    assert len(seen[0]) == len(seen[1]) == len(expected) == 8
    for step, global_batch in enumerate(expected):
        assert sorted(seen[0][step] + seen[1][step]) == sorted(global_batch), step
        assert not set(seen[0][step]) & set(seen[1][step])


# --------------------------------------------------------------------------- 2 processes = 1 process


def val_losses(run_dir: Path) -> list[float]:
    with (run_dir / "logs" / "metrics.csv").open() as handle:
        return [float(row["val_loss"]) for row in csv.DictReader(handle) if row.get("val_loss")]


def assert_same_training(one: Path, two: Path) -> None:
    """The stated tolerance between a 1-process and a 2-process run."""
    m1, m2 = (json.loads((run / runs.METRICS).read_text()) for run in (one, two))
    assert m1["epochs"] == m2["epochs"]
    assert val_losses(two) == pytest.approx(val_losses(one), abs=VAL_LOSS_TOLERANCE)
    for split in ("valid", "test"):
        assert abs(m1[split]["accuracy"] - m2[split]["accuracy"]) <= 1 / m1[split]["examples"] + 1e-9, split


@pytest.mark.parametrize("arch", ["cnn", "transformer"])
def test_two_processes_end_where_one_ends(tmp_path, arch):
    data = write_csv(tmp_path / "sentiment.csv", sentiment_rows(240))
    base = [f"model.arch={arch}", f"data.train={data}", f"output_dir={tmp_path}", *COMMON]
    one = api.train(build_config({"task": "classify"}, [*base, "name=one"]), progress="off")
    two = api.train(
        build_config({"task": "classify"}, [*base, "name=two", "train.devices=2", "train.strategy=ddp_fork"]), progress="off"
    )
    assert_same_training(one, two)
    assert (two / runs.COMPLETE).is_file() and not (two / runs.LOCK).exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["one", "two"]  # rank 1 made no folder


@pytest.mark.slow  # two fresh interpreters per architecture: ~40 s each on the shared 2-core machine
@pytest.mark.parametrize("arch", ["cnn", "transformer"])
def test_cli_ddp_on_two_processes(tmp_path, arch):
    data = write_csv(tmp_path / "sentiment.csv", sentiment_rows(240))
    args = [
        "train",
        "classify",
        "--arch",
        arch,
        "--data",
        str(data),
        "--output-dir",
        str(tmp_path),
        *[item for override in COMMON for item in (override,)],
    ]
    result = CliRunner().invoke(app, [*args, "--name", "one"])
    assert result.exit_code == 0, result.output
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    env.pop(runs.RUN_DIR_ENV, None)
    done = subprocess.run(
        [sys.executable, "-m", "seqlab.cli.main", *args, "--name", "two", "--devices", "2", "--strategy", "ddp"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("trained") == 1  # rank 1 reports nothing
    assert_same_training(tmp_path / "one", tmp_path / "two")
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["one", "two"]


@pytest.mark.parametrize("task", ["classify", "lm", "tag", "translate", "pretrain"])
def test_every_task_trains_data_parallel(task):
    cfg = build_config({"task": task}, ["train.devices=2", "train.num_nodes=2", "train.strategy=ddp"])
    assert cfg.train.world_size == 4


# --------------------------------------------------------------------------- every task: 2 processes = 1 process
# Tiny models, dropout off, 2 epochs, the same global batch; the DDP run uses `ddp_fork` (in-process,
# no start-up cost). Equal within the classifier's tolerance: val_loss after every epoch within
# VAL_LOSS_TOLERANCE, and the held-out metrics of metrics.json (within one decision where a metric
# counts decisions: an entity, a sentence).


def lm_data(folder: Path) -> list[str]:
    """A .txt corpus: split, tokenised and read through the memory-mapped token files."""
    path = folder / "corpus.txt"
    path.write_text(
        "".join(f"the cat sat on the mat {i % 7} times and the dog ran to the park.\n" for i in range(60)), encoding="utf-8"
    )
    return [f"data.train={path}", "model.arch=gpt", "tokenizer.max_length=32", "train.lr=0.003"]


def tag_data(folder: Path) -> list[str]:
    """Sentences of different lengths: the processes' slices hold different numbers of words."""
    rng = random.Random(0)
    people, firms, places = ["Alice", "Bob", "Newton", "Carol"], [["Acme"], ["Acme", "Corp"]], [["Paris"], ["New", "York"]]
    blocks = []
    for _ in range(80):
        rows = [(rng.choice(people), "B-PER"), ("works", "O"), ("for", "O")]
        rows += [(w, ("B-" if i == 0 else "I-") + "ORG") for i, w in enumerate(rng.choice(firms))]
        rows += [("in", "O")] + [(w, ("B-" if i == 0 else "I-") + "LOC") for i, w in enumerate(rng.choice(places))]
        rows = [("Yesterday", "O"), (",", "O")] * rng.randint(0, 2) + rows + [(".", "O")]
        blocks.append("\n".join(f"{w} {t}" for w, t in rows))
    path = folder / "people.conll"
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    return [
        f"data.train={path}",
        "data.valid_fraction=0.2",
        "data.test_fraction=0.2",
        "model.arch=bilstm-crf",
        "tokenizer.min_frequency=1",
        "train.lr=0.05",
        "train.batch_size=8",
        "train.precision=32-true",
    ]


def translate_data(folder: Path) -> list[str]:
    return [
        "data.train=reverse:100",
        "tokenizer.level=word",
        "model.hidden_dim=32",
        "train.lr=0.02",
        "train.batch_size=8",
        "translate.beam=2",
        "translate.val_bleu_sentences=10",
    ]


def pretrain_data(folder: Path) -> list[str]:
    """Masked LM + NSP: the masks are drawn for the global batch, then split between the processes."""
    rng = random.Random(0)
    animals, verbs = ["cat", "dog", "bird", "horse", "fox"], ["sees", "loves", "follows", "fears"]
    lines = []
    for d in range(12):
        lines += [f"the {rng.choice(animals)} {verbs[(d + s) % 4]} the {rng.choice(animals)} in chapter {s} ." for s in range(6)]
        lines.append("")
    path = folder / "corpus.txt"
    path.write_text("\n".join(lines), encoding="utf-8")
    return [
        f"data.train={path}",
        "pretrain.nsp=true",
        "model.d_model=32",
        "model.ff_dim=64",
        "tokenizer.max_length=32",
        "train.lr=0.003",
        "train.batch_size=8",
    ]


def close(a: float, b: float, tolerance: float) -> bool:
    return abs(a - b) <= tolerance + 1e-9


TASKS = {  # task → (its data and settings, the held-out metrics compared: name → tolerance (split → metrics))
    "lm": (lm_data, lambda m: {"loss": VAL_LOSS_TOLERANCE, "bits_per_char": VAL_LOSS_TOLERANCE}),
    "tag": (tag_data, lambda m: {"f1": 1 / max(m["support"], 1), "word_accuracy": 1 / m["words"]}),
    "translate": (
        translate_data,
        lambda m: {"loss": VAL_LOSS_TOLERANCE, "bleu": 100 / m["examples"], "teacher_forced_accuracy": 0.0},
    ),
    "pretrain": (
        pretrain_data,
        lambda m: {"mlm_loss": VAL_LOSS_TOLERANCE, "mlm_accuracy": 1 / m["masked_tokens"], "nsp_accuracy": 1 / m["examples"]},
    ),
}


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_task_on_two_processes_ends_where_one_ends(tmp_path, monkeypatch, task):
    monkeypatch.setenv("SEQLAB_HOME", str(tmp_path / "home"))  # (lm's token files)
    base = [*COMMON, *TASKS[task][0](tmp_path), f"output_dir={tmp_path / 'runs'}"]
    one = api.train(build_config({"task": task}, [*base, "name=one"]), progress="off")
    two = api.train(
        build_config({"task": task}, [*base, "name=two", "train.devices=2", "train.strategy=ddp_fork"]), progress="off"
    )
    assert_same_task_training(task, one, two)
    assert (two / runs.COMPLETE).is_file() and not (two / runs.LOCK).exists()
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["one", "two"]  # rank 1 made no folder


def assert_same_task_training(task: str, one: Path, two: Path) -> None:
    """The stated tolerance between a task's 1-process and 2-process runs (see above)."""
    m1, m2 = (json.loads((run / runs.METRICS).read_text()) for run in (one, two))
    assert m1["epochs"] == m2["epochs"] == 2
    assert len(val_losses(one)) == 2
    assert val_losses(two) == pytest.approx(val_losses(one), abs=VAL_LOSS_TOLERANCE)
    assert "valid" in m1 and sorted(m1) == sorted(m2)
    for split in ("valid", "test"):
        for name, tolerance in (TASKS[task][1](m1[split]) if split in m1 else {}).items():
            assert close(m1[split][name], m2[split][name], tolerance), (split, name, m1[split][name], m2[split][name])


@pytest.mark.slow  # torchrun and two fresh interpreters per task: ~1 min each on the shared 2-core machine
@pytest.mark.parametrize("task", sorted(TASKS))
def test_torchrun_launch_for_every_task(tmp_path, task):
    """docs/guides/training.md's torchrun command for each task (pretrain through `seqlab pretrain
    mlm`): every rank starts at once, ranks > 0 wait for rank 0's vocabulary (and, for lm, for
    the token files), and the run matches one process."""
    settings = [*COMMON, *TASKS[task][0](tmp_path), f"output_dir={tmp_path / 'runs'}"]
    if task == "pretrain":  # (`seqlab pretrain mlm` asks for --data)
        data = next(item for item in settings if item.startswith("data.train="))
        args = ["pretrain", "mlm", "--data", data.split("=", 1)[1], *(item for item in settings if item != data)]
    else:
        args = ["train", task, *settings]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1", "SEQLAB_HOME": str(tmp_path / "home")}
    env.pop(runs.RUN_DIR_ENV, None)
    one = subprocess.run(
        [sys.executable, "-m", "seqlab.cli.main", *args, "name=one"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert one.returncode == 0, one.stderr[-3000:]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nnodes",
            "1",
            "--node-rank",
            "0",
            "--nproc-per-node",
            "2",
            "--master-addr",
            "127.0.0.1",
            "--master-port",
            "29532",
            "-m",
            "seqlab.cli.main",
            *args,
            "name=two",
            "train.devices=2",
            "train.num_nodes=1",
            "train.strategy=ddp",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("trained") == 1  # rank 1 reports nothing
    assert_same_task_training(task, tmp_path / "runs" / "one", tmp_path / "runs" / "two")


@pytest.mark.slow  # torchrun and two fresh interpreters: ~30 s
def test_torchrun_launch_as_documented(tmp_path):
    """The README's torchrun command on one machine: torchrun starts both ranks, Lightning joins
    its process group, and the run matches a single process."""
    data = write_csv(tmp_path / "sentiment.csv", sentiment_rows(240))
    args = ["train", "classify", "--arch", "cnn", "--data", str(data), "--output-dir", str(tmp_path), *COMMON]
    assert CliRunner().invoke(app, [*args, "--name", "one"]).exit_code == 0
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    env.pop(runs.RUN_DIR_ENV, None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nnodes",
            "1",
            "--node-rank",
            "0",
            "--nproc-per-node",
            "2",
            "--master-addr",
            "127.0.0.1",
            "--master-port",
            "29531",
            "-m",
            "seqlab.cli.main",
            *args,
            "--name",
            "two",
            "--devices",
            "2",
            "--num-nodes",
            "1",
            "--strategy",
            "ddp",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert_same_training(tmp_path / "one", tmp_path / "two")


def test_torchrun_needs_a_run_name(monkeypatch):
    from seqlab.errors import SeqlabError

    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(SeqlabError, match=r"give the run a name \(name=...\)"):
        runs.run_dir_for(build_config({"task": "classify"}, ["train.devices=2"]))


def test_resume_a_ddp_run(tmp_path):
    data = write_csv(tmp_path / "sentiment.csv", sentiment_rows(120))
    cfg = build_config(
        {"task": "classify"},
        [
            "model.arch=cnn",
            f"data.train={data}",
            f"output_dir={tmp_path}",
            "name=r",
            *COMMON,
            "train.devices=2",
            "train.strategy=ddp_fork",
        ],
    )
    run = api.train(cfg, progress="off")
    # as if killed after epoch 2 of 3
    for name in (runs.COMPLETE, runs.WEIGHTS):
        (run / name).unlink()
    (run / runs.CONFIG).write_text((run / runs.CONFIG).read_text().replace("epochs: 2", "epochs: 3"))
    api.train(None, resume=run, progress="off")
    assert json.loads((run / runs.METRICS).read_text())["epochs"] == 3
    assert len(val_losses(run)) == 3  # the first two epochs' rows kept, the third added
    assert (run / runs.COMPLETE).is_file()
