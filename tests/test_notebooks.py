"""The course notebooks (notebooks/*.ipynb): each runs from top to bottom in a fresh kernel of
this interpreter (nbclient), so a notebook that breaks fails the suite; git holds them without
outputs, exactly as notebooks/build.py writes them.

Each notebook runs in its own temporary folder (its runs go to runs/notebooks/ there). The four
light ones run in the default suite (about a minute together on 2 cores); the five that train on
real data sets or load a 135M-parameter LM take minutes each and are marked `slow`:
`pytest -m slow tests/test_notebooks.py` runs them (see docs/notebooks.md).
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
# the notebooks that train on real data or load SmolLM2: about a minute or more each here
SLOW = {"01-lstm-classifier", "03-cnn-sentiment", "05-seq2seq-translation", "06-gpt-sampling", "08-seq2seq-attention"}


def builder():
    spec = importlib.util.spec_from_file_location("notebooks_build", NOTEBOOKS / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def committed() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def test_one_notebook_per_course_task_in_order():
    names = [path.stem for path in committed()]
    assert names == sorted(builder().NOTEBOOKS) and len(names) == 9
    assert [name[:2] for name in names] == [f"{n:02d}" for n in range(1, 10)]


@pytest.mark.parametrize("path", committed(), ids=lambda p: p.stem)
def test_committed_notebooks_have_no_outputs_and_match_the_builder(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, (
                f"{path.name}: strip the outputs (python notebooks/build.py)"
            )
            assert "!" not in [line.lstrip()[:1] for line in cell.source.splitlines()], f"{path.name}: no shell escapes"
    build = builder()
    expected = nbformat.writes(build.build(path.stem, build.NOTEBOOKS[path.stem])) + "\n"
    assert path.read_text(encoding="utf-8") == expected, f"{path.name} differs from notebooks/build.py: run it"


@pytest.mark.parametrize(
    "name", [pytest.param(p.stem, marks=[pytest.mark.slow] if p.stem in SLOW else [], id=p.stem) for p in committed()]
)
def test_notebook_runs_from_top_to_bottom(name, tmp_path):
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    started = time.perf_counter()
    client.execute()  # raises CellExecutionError, with the cell and its traceback, if a cell fails
    seconds = time.perf_counter() - started
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    print(f"{name}: {seconds:.0f} s")
