"""`seqlab data`: list, fetch and verify the built-in datasets and pinned archives.

A thin skin over `seqlab.assets` and `seqlab.data.datasets`; mounted by the main CLI with
`app.add_typer(data_app, name="data")`.
"""

import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from seqlab.cli._errors import handle_errors
from seqlab.errors import SeqlabError

# The datasets and archives (`seqlab.assets`, `seqlab.data`) are imported by the commands that use
# them: every `seqlab` command builds this sub-app, and `seqlab predict` should not pay for them.

data_app = typer.Typer(
    help="Built-in datasets: list them, download and verify their pinned archives.",
    no_args_is_help=True,
)
_out = Console()

NamesArg = Annotated[
    list[str],
    typer.Argument(help="Dataset names (see `seqlab data list`), archive names, or 'all'."),
]


@data_app.command("list")
@handle_errors
def list_cmd() -> None:
    """Show the built-in datasets, their size, licence and whether they are cached."""
    from seqlab import assets
    from seqlab.data import datasets, tatoeba

    table = Table(title=f"built-in datasets (cache: {assets.home()})")
    table.add_column("name", no_wrap=True)
    table.add_column("examples", justify="right")
    table.add_column("archive", justify="right", no_wrap=True)
    table.add_column("cached")
    table.add_column("description and licence")
    for row in [*datasets.dataset_rows(), *tatoeba.dataset_rows()]:
        about = Text(row["description"])
        about.append(f"\n{row['licence']}", style="dim")
        table.add_row(row["name"], f"{row['examples']:,}", f"{row['size_mb']:.1f} MB", row["cached"], about)
    _out.print(table)


@data_app.command("get")
@handle_errors
def get_cmd(
    names: NamesArg,
    force: Annotated[bool, typer.Option("--force", help="Delete cached copies and download again.")] = False,
) -> None:
    """Download, verify and parse datasets; print where each one is cached."""
    from seqlab import assets
    from seqlab.data import datasets, tatoeba, vectors
    from seqlab.data.corpus import load_corpus

    ds_names, archive_names = _resolve(names)
    if force:
        for name in ds_names:
            if name in tatoeba.TATOEBA:
                tatoeba.remove_cached(name)
            elif name in datasets.BUILTIN_DATASETS:
                datasets.remove_cached(name)
        for name in archive_names:
            assets.remove(name)
    progress = sys.stderr.isatty()
    # Fetch each archive once even when several datasets share it.
    for name in archive_names:
        path = assets.fetch(name, progress=progress)
        _out.print(f"{name}: {path}", soft_wrap=True, markup=False)
    for name in ds_names:
        if name in tatoeba.TATOEBA:
            pairs = tatoeba.load_pairs(name, progress=progress)
            _out.print(f"{name}: {len(pairs):,} sentence pairs in {tatoeba.cache_path(name)}", soft_wrap=True, markup=False)
            continue
        if name in vectors.TEXT_VECTORS:
            table = vectors.load_vectors(name)
            _out.print(f"{name}: {table.table.shape[0]:,} words × {table.dim} dimensions", soft_wrap=True, markup=False)
            continue
        if datasets.BUILTIN_DATASETS[name].task != "classify":  # a text corpus (shakespeare)
            documents = load_corpus(name)
            where = assets.archive_path(datasets.BUILTIN_DATASETS[name].archive)
            _out.print(
                f"{name}: {len(documents):,} documents, {sum(map(len, documents)):,} lines in {where}",
                soft_wrap=True,
                markup=False,
            )
            continue
        examples = datasets.load_builtin(name, progress=progress)
        where = datasets.cache_path(name)
        _out.print(f"{name}: {len(examples):,} examples in {where}", soft_wrap=True, markup=False)


@data_app.command("verify")
@handle_errors
def verify_cmd(
    names: Annotated[
        list[str] | None,
        typer.Argument(help="Datasets or archives to check (default: every archive)."),
    ] = None,
) -> None:
    """Rehash cached archives against their pins; exit 1 if any does not match."""
    from seqlab import assets

    archive_names = _resolve(names)[1] if names else list(assets.ARCHIVES)
    mismatches = 0
    for name in archive_names:
        if not assets.is_cached(name):
            _out.print(f"{name}: not cached", soft_wrap=True)
            continue
        ok, detail = assets.verify(name)
        mismatches += not ok
        style = "green" if ok else "bold red"
        _out.print(f"{name}: [{style}]{detail}[/{style}]", soft_wrap=True)
    if mismatches:
        raise SeqlabError(
            f"{mismatches} archive(s) do not match their pinned sha256; refetch with `seqlab data get NAME --force`"
        )


def _resolve(names: list[str]) -> tuple[list[str], list[str]]:
    """Split names into (datasets, archives every one of them needs), without duplicates.

    Raises:
        SeqlabError: A name is neither a dataset nor an archive.
    """
    from seqlab import assets
    from seqlab.data import datasets, tatoeba, vectors

    known = {
        **{name: ds.archive for name, ds in datasets.BUILTIN_DATASETS.items()},
        **{name: ds.archive for name, ds in tatoeba.TATOEBA.items()},
        **{name: table.archive for name, table in vectors.TEXT_VECTORS.items()},
    }
    if "all" in names:
        names = list(known)
    ds_names: list[str] = []
    archive_names: list[str] = []
    for name in names:
        if name in assets.ARCHIVES:
            archive = name
        elif name in known:
            archive = known[name]
            ds_names += [name] if name not in ds_names else []
        else:
            raise SeqlabError(
                f"unknown dataset {name!r}; datasets: {', '.join(known)}; archives: {', '.join(assets.ARCHIVES)}; or 'all'"
            )
        archive_names += [archive] if archive not in archive_names else []
    return ds_names, archive_names
