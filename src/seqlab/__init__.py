"""seqlab: train, compare, inspect and serve sequence models for NLP, offline-first."""

from seqlab.errors import SeqlabError

__version__ = "0.1.0"


def load(path_or_name: str):
    """Load a run folder (or a built-in model name) as a ready-to-use Pipeline."""
    from seqlab.api import load as _load

    return _load(path_or_name)


__all__ = ["SeqlabError", "load", "__version__"]
