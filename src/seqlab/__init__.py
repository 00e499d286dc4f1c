"""seqlab: train, compare, inspect and serve sequence models for NLP, offline-first."""

from seqlab.errors import SeqlabError

__version__ = "0.1.0"


def load(path_or_name: str, backend: str = "auto"):
    """Load a classifier run folder as a ready-to-use Pipeline (`backend`: auto, torch, onnx,
    onnx-int8; see `seqlab.api.load`)."""
    from seqlab.api import load as _load

    return _load(path_or_name, backend=backend)


__all__ = ["SeqlabError", "load", "__version__"]
