"""Security properties (issue 10 §5, SECURITY.md): what seqlab loads can hold data, never code.

- configs are parsed with safe YAML (a `!!python/...` tag is an error, and never runs);
- weights load only through safetensors or `torch.load(weights_only=True)`: a pickled
  checkpoint that would run code when unpickled is refused, on the --resume path too;
- no `eval`/`exec`/`pickle`/unsafe YAML/`trust_remote_code=True` anywhere in the package;
- a cached archive is rehashed before every use, and pip is given the pin so that a tampered
  download is refused before pip runs anything in it;
- the server binds 127.0.0.1 unless told otherwise, and a request can only name a loaded model.
"""

from __future__ import annotations

import inspect
import os
import pickle
import re
import shutil
from pathlib import Path

import pytest
from conftest import sentiment_rows, write_csv

from seqlab import api, assets
from seqlab.config import build_config, load_config
from seqlab.errors import SeqlabError

SRC = Path(__file__).resolve().parents[1] / "src" / "seqlab"


class _RunsCode:
    """Unpickling this calls `Path.touch(marker)`: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture(scope="module")
def classify_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("security")
    data = write_csv(root / "s.csv", sentiment_rows(40))
    return api.train(
        build_config(
            {"task": "classify"},
            [
                f"data.train={data}",
                "model.arch=cnn",
                "model.preset=tiny",
                "train.epochs=1",
                "train.batch_size=16",
                f"output_dir={root / 'runs'}",
                "name=c",
            ],
        ),
        progress="off",
    )


# --------------------------------------------------------------------------- configs


@pytest.mark.parametrize("tag", ["!!python/object/apply:os.system", "!!python/object/apply:pathlib.Path.touch"])
def test_yaml_config_with_python_tag_is_refused_and_never_runs(tmp_path, tag):
    marker = tmp_path / "ran"
    config = tmp_path / "evil.yaml"
    argument = f"touch {marker}" if "os.system" in tag else str(marker)
    config.write_text(f"name: {tag} [{argument!r}]\n", encoding="utf-8")
    with pytest.raises(SeqlabError, match="not valid YAML"):
        load_config(config)
    assert not marker.exists()


def test_override_with_python_tag_stays_text(tmp_path):
    """`a.b=value` is parsed with yaml.safe_load; a tag it refuses is kept as the literal text."""
    marker = tmp_path / "ran"
    cfg = build_config({}, [f"name=!!python/object/apply:os.system ['touch {marker}']", f"output_dir={tmp_path}"])
    assert cfg.name.startswith("!!python/object/apply") and not marker.exists()


# --------------------------------------------------------------------------- weights


def test_no_unsafe_loading_in_the_package():
    """Every torch.load says weights_only=True; nothing evaluates, unpickles or trusts remote code."""
    forbidden = {
        r"\bpickle\.loads?\(": "pickle",
        r"(?<![\w.])eval\(": "eval",
        r"(?<![\w.])exec\(": "exec",
        r"\byaml\.(load|unsafe_load|full_load)\(": "unsafe YAML",
        r"trust_remote_code\s*=\s*True": "trust_remote_code=True",
        r"allow_pickle\s*=\s*True": "numpy pickles",
    }
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for pattern, what in forbidden.items():
            problems += [f"{path.name}: {what}" for _ in re.finditer(pattern, text)]
        for call in re.finditer(r"torch\.load\(([^()]*(\([^()]*\))?)*\)", text):
            if "weights_only=True" not in call.group(0):
                problems.append(f"{path.name}: {call.group(0)} without weights_only=True")
    assert problems == []


@pytest.mark.parametrize("force_unsafe", [None, "1"])
def test_resume_refuses_a_checkpoint_that_would_run_code(classify_run, tmp_path, monkeypatch, force_unsafe):
    """--resume reads checkpoints/last.ckpt (seqlab's own read, then Lightning's): with
    weights_only the pickle is refused before the object in it is built, whatever the
    environment says (TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD overrides only a call that does not say)."""
    if force_unsafe is None:
        monkeypatch.delenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", raising=False)
    else:
        monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", force_unsafe)
    run = tmp_path / "unfinished"
    shutil.copytree(
        classify_run, run, ignore=shutil.ignore_patterns("model.safetensors", "complete.json", "metrics.json", "manifest.json")
    )
    marker = tmp_path / "ran"
    with open(run / "checkpoints" / "last.ckpt", "wb") as handle:
        pickle.dump({"state_dict": _RunsCode(marker)}, handle)
    with pytest.raises((pickle.UnpicklingError, SeqlabError)):
        api.train(None, resume=run, progress="off")
    assert not marker.exists()


def test_safetensors_weights_hold_no_code(classify_run, tmp_path):
    """A pickle in place of model.safetensors is not a safetensors file: refused, never unpickled."""
    run = tmp_path / "run"
    shutil.copytree(classify_run, run, ignore=shutil.ignore_patterns("checkpoints", "logs"))
    marker = tmp_path / "ran"
    size = (run / "model.safetensors").stat().st_size
    payload = pickle.dumps(_RunsCode(marker))
    (run / "model.safetensors").write_bytes(payload + b"\0" * max(0, size - len(payload)))  # same size as the real one
    with pytest.raises(SeqlabError, match="safetensors"):
        api.load(run)
    assert not marker.exists()


# --------------------------------------------------------------------------- assets


def _fake_archive(tmp_path: Path) -> tuple[assets.Archive, Path]:
    """A pinned archive already in a private cache (no download)."""
    payload = os.urandom(4096)
    import hashlib

    arc = assets.Archive(
        name="fake",
        requirement="fake==1.0",
        filename="fake-1.0.tar.gz",
        sha256=hashlib.sha256(payload).hexdigest(),
        size=len(payload),
        kind="sdist",
        licence="test",
    )
    path = tmp_path / "archives" / arc.filename
    path.parent.mkdir(parents=True)
    path.write_bytes(payload)
    return arc, path


def test_tampered_archive_is_refused_even_with_matching_marker(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQLAB_HOME", str(tmp_path))
    arc, path = _fake_archive(tmp_path)
    assert assets.fetch(arc) == path  # verified, marker written
    stat = path.stat()
    data = bytearray(path.read_bytes())
    data[100] ^= 0x01  # one bit, same size ...
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # ... and the same mtime: the marker still matches
    with pytest.raises(SeqlabError, match="sha256"):
        assets.fetch(arc)
    with pytest.raises(SeqlabError, match="sha256"):
        assets.extract_member(arc, "anything")


def test_unpacking_never_writes_outside_its_folder(tmp_path, monkeypatch):
    """A wheel member named with "../" (zip slip) is refused, even in a pinned archive."""
    import hashlib
    import zipfile

    monkeypatch.setenv("SEQLAB_HOME", str(tmp_path / "home"))
    wheel = tmp_path / "evil-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as bundle:
        bundle.writestr("pkg/model/config.json", "{}")
        bundle.writestr("pkg/model/../../../escaped.txt", "outside")
    arc = assets.Archive(
        name="evil",
        requirement="evil==1.0",
        filename=wheel.name,
        sha256=hashlib.sha256(wheel.read_bytes()).hexdigest(),
        size=wheel.stat().st_size,
        kind="wheel",
        licence="test",
    )
    (tmp_path / "home" / "archives").mkdir(parents=True)
    shutil.copy(wheel, tmp_path / "home" / "archives" / wheel.name)
    with pytest.raises(SeqlabError, match="outside"):
        assets.extract_tree(arc, "pkg/model/", "evil")
    assert not list(tmp_path.rglob("escaped.txt")) and not (tmp_path / "home" / "extracted" / "evil").exists()


def test_pip_is_given_the_pin(tmp_path):
    """pip checks --hash as soon as the file arrives, before it runs an sdist's build code for
    its metadata; seqlab's own check afterwards cannot stop that code."""
    arc, _ = _fake_archive(tmp_path)
    command = assets._pip_command(arc, tmp_path / "files", False, tmp_path / "req.txt")
    assert "--require-hashes" in command and command[-2:] == ["-r", str(tmp_path / "req.txt")]
    assert (tmp_path / "req.txt").read_text() == f"fake==1.0 --hash=sha256:{arc.sha256}\n"


# --------------------------------------------------------------------------- server


def test_server_binds_loopback_by_default():
    serve = pytest.importorskip("seqlab.cli.serve").serve
    assert inspect.signature(serve).parameters["host"].default == "127.0.0.1"


def test_a_request_cannot_name_a_path(classify_run):
    """Requests pick among the models loaded at start; a path in `model` is an unknown name."""
    create_app = pytest.importorskip("seqlab.serve.app").create_app
    from fastapi.testclient import TestClient

    with TestClient(create_app({"sentiment": str(classify_run)})) as client:
        response = client.post("/v1/classify", json={"model": str(classify_run), "texts": ["good"]})
    assert response.status_code == 404 and response.json()["code"] == "unknown_model"
