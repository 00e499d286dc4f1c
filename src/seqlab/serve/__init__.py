"""`seqlab serve`: every task over HTTP (FastAPI) and a web playground; see `app.create_app`."""

from seqlab.serve.settings import ServeSettings

__all__ = ["ServeSettings", "create_app"]


def __getattr__(name: str):
    if name == "create_app":  # FastAPI is imported only when a server is wanted
        from seqlab.serve.app import create_app

        return create_app
    raise AttributeError(name)
