"""Turn expected errors into one red line at the edge of every command: exit code 1 for a
`SeqlabError` (anything seqlab checks), 2 for a malformed command line (click's own checks)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

import click
import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperGroup

from seqlab.errors import SeqlabError

try:  # typer 0.2x parses with its own vendored copy of click, whose errors are other classes
    from typer._click.exceptions import UsageError as _TyperUsageError
except ImportError:  # an older typer on the real click
    _TyperUsageError = click.UsageError  # type: ignore[misc, assignment]  # mypy sees only the first branch's class
_USAGE_ERRORS = (click.UsageError, _TyperUsageError)

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


class OneLineUsageErrors(TyperGroup):
    """The `seqlab` command group, with click's usage errors (a missing argument, an unknown
    option, `--epochs many`) printed as one `error: ...` line and exit code 2, like every other
    error, instead of click's usage block and framed panel.

    Parsing happens in `make_context` (the group's own options) and inside `invoke` (a
    subcommand's), so both are wrapped; `--help` and a bare `seqlab` still print help.
    """

    def make_context(self, *args, **kwargs):
        with _one_line_usage():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx):
        with _one_line_usage():
            return super().invoke(ctx)


@contextmanager
def _one_line_usage() -> Iterator[None]:
    """A click usage error → one line on stderr and exit code 2 (`typer.Exit`)."""
    try:
        yield
    except _USAGE_ERRORS as err:
        if type(err).__name__ == "NoArgsIsHelpError":
            raise  # a bare `seqlab CMD`: click shows the help
        command = err.ctx.command_path if err.ctx is not None else "seqlab"
        print_error(f"{' '.join(err.format_message().split())} (see `{command} --help`)")
        raise typer.Exit(err.exit_code) from None
