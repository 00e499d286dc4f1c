"""seqlab: train, compare, inspect and serve sequence models for NLP, offline-first.

    >>> import seqlab
    >>> run = seqlab.train("classify", data="rt-polarity", arch="cnn", epochs=5)
    >>> seqlab.load(run)("a gorgeous, witty film")
    >>> seqlab.evaluate(run, "rt-polarity")

`train`, `load`, `evaluate` and `compare` are `seqlab.api`'s; importing `seqlab` imports none of
the machinery behind them until one is called.
"""

from __future__ import annotations

from typing import Any

from seqlab.errors import SeqlabError

__version__ = "0.1.0"

_API = ("train", "load", "evaluate", "compare", "configure")


def __getattr__(name: str) -> Any:
    if name in _API:
        from seqlab import api

        return getattr(api, name)
    raise AttributeError(f"module 'seqlab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])


__all__ = ["SeqlabError", "__version__", *_API]
