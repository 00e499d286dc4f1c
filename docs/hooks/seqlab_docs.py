"""MkDocs hooks: the pages of the site that are generated from the code, at build time.

* `index.md` is the README, its links rewritten for the site (`docs/x.md` -> `x.md`), so the
  landing page on GitHub and the site's home page are one text; `security.md` is SECURITY.md.
* `<!-- seqlab:config-reference -->` in a page becomes the configuration reference, walked from
  the pydantic models of `seqlab.config` (every section, every field: type, default, limits,
  description), plus the model presets and the per-task and per-architecture defaults.
* `<!-- seqlab:cli-reference -->` becomes the `--help` of every `seqlab` command and
  subcommand, rendered by click from the typer app (`seqlab.cli.main.app`).

Nothing here reaches the network; the generators only import seqlab.
"""

from __future__ import annotations

import enum
import re
import types
import typing
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

CONFIG_MARKER = "<!-- seqlab:config-reference -->"
CLI_MARKER = "<!-- seqlab:cli-reference -->"


# --------------------------------------------------------------------------- the home page


# pages of the site that live at the top of the repository: (file there, page in the site)
TOP_LEVEL_PAGES = (("README.md", "index.md"), ("SECURITY.md", "security.md"))


def on_files(files: Files, config) -> Files:
    """Add the README as the site's `index.md` and SECURITY.md as `security.md`."""
    root = Path(config.config_file_path).parent
    for source, page in TOP_LEVEL_PAGES:
        if files.get_file_from_path(page) is None:
            text = (root / source).read_text(encoding="utf-8")
            files.append(File.generated(config, page, content=readme_for_site(text)))
    return files


def readme_for_site(text: str) -> str:
    """A top-level page with its repository-relative links made relative to docs/:
    `docs/x.md` -> `x.md`, `SECURITY.md` -> `security.md`."""
    text = re.sub(r"\]\(docs/", "](", text)
    for source, page in TOP_LEVEL_PAGES:
        text = text.replace(f"]({source}", f"]({page}")
    return text


def on_page_markdown(markdown: str, page, config, files) -> str:
    if CONFIG_MARKER in markdown:
        markdown = markdown.replace(CONFIG_MARKER, config_reference())
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, cli_reference())
    return markdown


# --------------------------------------------------------------------------- configuration


def config_reference() -> str:
    """Markdown tables of every `RunConfig` section and field, the presets and the defaults
    that depend on the task or the architecture."""
    from seqlab import config as cfg
    from seqlab.models.presets import PRESETS

    out: list[str] = []
    top = {name: field for name, field in cfg.RunConfig.model_fields.items() if _section_of(field.annotation) is None}
    out += ["## Top level", "", _doc(cfg.RunConfig), "", *_field_table(top)]
    for name, field in cfg.RunConfig.model_fields.items():
        section = _section_of(field.annotation)
        if section is None or name == "model":
            continue
        out += ["", f"## `{name}`", ""]
        if field.description:
            out += [f"*{_cell(field.description)}*", ""]
        out += [_doc(section), "", *_field_table(section.model_fields, prefix=f"{name}.")]

    out += ["", "## `model`", "",
            ("`model.arch` picks one of the model families below; each has its own keys, and a key of "
             "another family is an error. Sizes left unset come from `model.preset` "
             "(see [Presets](#presets))."), ""]
    for member in _config_classes(cfg.RunConfig.model_fields["model"].annotation):
        archs = typing.get_args(member.model_fields["arch"].annotation)
        out += [f"### {', '.join(f'`{a}`' for a in archs)}", "", _doc(member), ""]
        fields = {k: v for k, v in member.model_fields.items() if k != "arch"}
        out += [*_field_table(fields, prefix="model."), ""]

    out += ["## Presets", "",
            ("`model.preset` fills in every size you did not set; the saved `config.yaml` lists them "
             "all, so to resize a re-run of a saved config, override the sizes themselves."), "",
            "| family (`model.arch`) | preset | sizes |", "|---|---|---|"]
    for family, presets in PRESETS.items():
        archs = ", ".join(f"`{a}`" for a in _archs_of_family(family, cfg.MODEL_ARCHS))
        for preset, sizes in presets.items():
            out.append(f"| {archs} | `{preset}` | {', '.join(f'`{k}={_value(v)}`' for k, v in sizes.items())} |")

    out += ["", "## Defaults by task", "",
            ("With `task` set, these defaults replace the ones above for every key you do not set "
             "(the `model` ones only when `model.arch` is the task's default architecture)."), "",
            "| task | section | defaults |", "|---|---|---|"]
    for task, sections in cfg.TASK_DEFAULTS.items():
        for section, values in sections.items():
            shown = ", ".join(f"`{section}.{k}={_value(v)}`" for k, v in values.items()) or "(the section is on)"
            out.append(f"| `{task}` | `{section}` | {shown} |")
    out.append(f"\nTask `lm` with `model.arch=hf` loads `model.model={cfg.DEFAULT_CAUSAL_LM}` unless you name another.")

    out += ["", "## Defaults by architecture", "",
            "Training defaults for some architectures, applied unless you set the key.", "",
            "| `model.arch` | `model.strategy` | defaults |", "|---|---|---|"]
    for (arch, strategy), values in cfg.ARCH_TRAIN_DEFAULTS.items():
        out.append(f"| `{arch}` | `{strategy}` | {', '.join(f'`train.{k}={_value(v)}`' for k, v in values.items())} |")
    return "\n".join(out) + "\n"


def _section_of(annotation: Any):
    """The config class of a section field (`DataConfig`, `TagConfig | None`; for the model union,
    its first member), else None: a plain value of the top level."""
    classes = _config_classes(annotation)
    return classes[0] if classes else None


def _config_classes(annotation: Any) -> list[type]:
    """The pydantic models inside an annotation: `X`, `X | None`, `Annotated[Union[X, Y], ...]`."""
    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [found for arg in typing.get_args(annotation) for found in _config_classes(arg)]


def _doc(model: type) -> str:
    doc = (model.__doc__ or "").strip()
    if not doc or doc.startswith(("Usage docs", "A base class")):
        return ""
    return " ".join(line.strip() for line in doc.splitlines())


def _field_table(fields: dict[str, Any], prefix: str = "") -> list[str]:
    rows = ["| key | type | default | description |", "|---|---|---|---|"]
    for name, field in fields.items():
        rows.append(f"| `{prefix}{name}` | {_cell(_type_name(field.annotation))}{_limits(field.metadata)} "
                    f"| {_default(field)} | {_cell(field.description or '')} |")
    return rows


def _default(field: Any) -> str:
    from pydantic_core import PydanticUndefined

    if field.default_factory is not None:
        try:
            value = field.default_factory()
        except TypeError:
            return "(computed)"
        return f"`{_value(value)}`" if not hasattr(value, "model_dump") else "(see below)"
    if field.default is PydanticUndefined:
        return "from the preset"
    return f"`{_value(field.default)}`"


def _value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_value(v) for v in value) + "]"
    return str(value)


def _limits(metadata: list[Any]) -> str:
    symbols = {"gt": ">", "ge": "≥", "lt": "<", "le": "≤", "min_length": "length ≥", "max_length": "length ≤"}
    parts = [f"{symbols[key]} {getattr(item, key)}" for item in metadata for key in symbols if hasattr(item, key)]
    return f" ({', '.join(parts)})" if parts else ""


def _type_name(annotation: Any) -> str:
    """`Literal['a', 'b']` -> `"a" | "b"`, `int | None`, `list[int]`, ... as a reader writes them."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return " | ".join(f"`{_value(a)}`" for a in args)
    if origin is typing.Annotated:
        return _type_name(args[0]) + _limits(list(args[1:]) + [m for a in args[1:] for m in getattr(a, "metadata", [])])
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin in (list, tuple, dict):
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in args)}]"
    if annotation is type(None):
        return "`null`"
    return getattr(annotation, "__name__", str(annotation))


def _cell(text: str) -> str:
    return text.replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|").replace("\n", " ")


def _archs_of_family(family: str, archs: tuple[str, ...]) -> list[str]:
    from seqlab.models.presets import family_of

    return [arch for arch in archs if family_of(arch) == family]


# --------------------------------------------------------------------------- command line


def cli_reference() -> str:
    """`seqlab --help` and the help of every command and subcommand below it, in click's plain
    format (rich's boxes are for a terminal)."""
    import typer

    from seqlab.cli.main import app

    root = typer.main.get_command(app)
    sections: list[str] = []

    def walk(command: Any, path: list[str], parent: Any) -> None:
        if getattr(command, "hidden", False):
            return
        name = " ".join(path)
        # (typer may carry its own copy of click: take the context class from the command)
        settings = {"terminal_width": 100, "max_content_width": 100, **(command.context_settings or {})}
        ctx = command.context_class(command, info_name=path[-1], parent=parent, **settings)
        _plain(command)
        level = "#" * min(len(path) + 1, 4)
        sections.extend([f"{level} `{name}`", "", "```text", ctx.get_help().rstrip(), "```", ""])
        if hasattr(command, "list_commands"):
            for sub in command.list_commands(ctx):
                walk(command.get_command(ctx, sub), [*path, sub], ctx)

    walk(root, ["seqlab"], None)
    return "\n".join(sections)


def _plain(command: Any) -> None:
    """Have typer's command render its help with click's formatter (as text, not rich panels)."""
    if hasattr(command, "rich_markup_mode"):
        command.rich_markup_mode = None
