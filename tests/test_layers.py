"""The package's shape as tests: imports only point down, and the task table is complete."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from seqlab.registry import TASKS, get_task

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold():
    """`lint-imports` with the contracts in pyproject.toml (every import, lazy ones included)."""
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_task_is_one_folder_with_a_pipeline_and_a_recipe(name):
    task = TASKS[name]
    folder = ROOT / "src" / "seqlab" / "tasks" / name
    assert (folder / "__init__.py").is_file() and (folder / "pipeline.py").is_file()
    pipeline = task.pipeline()
    if task.trains:
        assert hasattr(pipeline, "load") and hasattr(pipeline, "evaluate")
        recipe = task.recipe()
        assert recipe.task == name
        for step in (
            "configure",
            "load_data",
            "learn_vocabulary",
            "vocabulary_files",
            "save_vocabulary",
            "load_vocabulary",
            "describe",
            "fit",
            "finish",
        ):
            assert callable(getattr(recipe, step)), f"{name} recipe lacks {step}"


def test_aliases_name_one_task():
    assert get_task("pretrain-mlm") is TASKS["pretrain"] and get_task("generate") is TASKS["lm"]
    assert get_task("ner") is TASKS["tag"] and get_task("fill-mask") is TASKS["pretrain"]
    verbs = [task.verb for task in TASKS.values()]
    assert len(set(verbs)) == len(verbs)


def test_unknown_task_is_one_line():
    from seqlab.errors import SeqlabError

    with pytest.raises(SeqlabError, match="unknown task 'summarize'; seqlab knows: classify, lm"):
        get_task("summarize")


def test_old_task_names_in_saved_configs_still_load():
    from seqlab.config import build_config

    assert build_config({"task": "pretrain-mlm"}).task == "pretrain"


def test_importing_seqlab_imports_no_training_code():
    """`import seqlab` and the API module stay light: no Lightning, torchmetrics or transformers."""
    code = (
        "import sys, seqlab, seqlab.api, seqlab.registry; "
        "heavy = [m for m in ('lightning', 'torchmetrics', 'torch._dynamo', 'transformers', 'matplotlib') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


TRAINING_ONLY = ("lightning", "torchmetrics", "torch._dynamo", "transformers", "matplotlib")


def test_predicting_with_a_cnn_run_imports_no_training_code(tmp_path):
    """`seqlab predict RUN TEXT` and `seqlab.load(RUN)` load a CNN run and predict without
    importing Lightning, torchmetrics, torch._dynamo, transformers or matplotlib (seconds of
    imports before the first answer; timings: docs/benchmarks.md, "Time to first prediction")."""
    from conftest import sentiment_rows, write_csv

    from seqlab import api
    from seqlab.config import build_config

    data = write_csv(tmp_path / "sentiment.csv", sentiment_rows(40))
    run = api.train(
        build_config(
            {},
            [
                f"data.train={data}",
                "model.arch=cnn",
                "model.preset=tiny",
                "train.epochs=1",
                f"output_dir={tmp_path / 'runs'}",
                "name=cnn",
            ],
        ),
        progress="off",
    )
    code = f"""
import sys
from seqlab.cli.main import main

sys.argv = ["seqlab", "predict", {str(run)!r}, "a great fun film"]
try:
    main()
except SystemExit as exit:
    assert not exit.code, exit.code
import seqlab

assert seqlab.load({str(run)!r})("a dull film")[0]["label"] in ("pos", "neg")
print("HEAVY=" + ",".join(m for m in {TRAINING_ONLY!r} if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "a great fun film" in out.stdout  # the CLI printed its prediction
    assert out.stdout.strip().splitlines()[-1] == "HEAVY="


def test_seqlab_exposes_the_four_calls():
    import seqlab

    for name in ("train", "load", "evaluate", "compare"):
        assert callable(getattr(seqlab, name))
    assert importlib.import_module("seqlab.api").train is seqlab.train
