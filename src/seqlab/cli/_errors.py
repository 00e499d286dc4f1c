"""Turn expected errors into one red line and exit code 1 at the edge of every command."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from seqlab.errors import SeqlabError

P = ParamSpec("P")
R = TypeVar("R")

# rich decides on colour by itself: red at a terminal, plain text when stderr is redirected.
_stderr = Console(stderr=True)


def print_error(message: str) -> None:
    """Print `error: <message>` on stderr as one line (never wrapped, never markup)."""
    _stderr.print(Text.assemble(("error:", "bold red"), " ", (message, "red")), soft_wrap=True)


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Decorate a typer command so a `SeqlabError` exits with code 1 instead of a traceback.

    Put it below `@app.command()`; `functools.wraps` keeps the signature typer reads.
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except SeqlabError as err:
            print_error(str(err))
            raise typer.Exit(1) from None

    return wrapper
