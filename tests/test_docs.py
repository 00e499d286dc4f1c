"""The documentation site: `mkdocs build --strict` passes (no broken link or anchor, no page
missing from the files, every docstring the API reference renders), the generated references
cover the code, the site loads nothing from the network, and the README stays a landing page
whose links lead into the site.

One build for the module (~10 s on 2 cores); deselect with `-m "not docs"`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.docs


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return out


def text_of(page: Path) -> str:
    """The page's visible text, roughly: tags dropped, entities left as they are."""
    return re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8"))


def test_every_page_is_built(site):
    for page in [
        "index.html",
        "getting-started.html",
        "notebooks.html",
        "concepts.html",
        "benchmarks.html",
        "architecture.html",
        "security.html",
        "reference/config.html",
        "reference/cli.html",
        "reference/python.html",
        *(
            f"guides/{name}.html"
            for name in ("classify", "generate", "tag", "translate", "augment", "pretrain", "training", "data", "serve", "tour")
        ),
    ]:
        assert (site / page).is_file(), page


def test_configuration_reference_lists_every_key(site):
    from pydantic import BaseModel

    from seqlab.config import RunConfig

    page = text_of(site / "reference/config.html")
    for section, field in RunConfig.model_fields.items():
        annotation = [
            a
            for a in (field.annotation, *getattr(field.annotation, "__args__", ()))
            if isinstance(a, type) and issubclass(a, BaseModel)
        ]
        if section == "model" or not annotation:
            assert section in page
            continue
        for key in annotation[0].model_fields:
            assert f"{section}.{key}" in page, f"{section}.{key} is not in the configuration reference"
    for key in ("model.hidden_dim", "model.filter_sizes", "model.num_heads", "model.strategy", "model.attention"):
        assert key in page
    assert "{{" not in page and "seqlab:config-reference" not in page


def test_cli_reference_has_the_help_of_every_command(site):
    import typer

    from seqlab.cli.main import app

    page = text_of(site / "reference/cli.html")
    root = typer.main.get_command(app)
    ctx = root.context_class(root, info_name="seqlab")
    for name in root.list_commands(ctx):
        command = root.get_command(ctx, name)
        assert f"Usage: seqlab {name}" in page, f"seqlab {name} has no help in the CLI reference"
        for sub in getattr(command, "list_commands", lambda _: [])(ctx):
            assert f"Usage: seqlab {name} {sub}" in page
    assert "--temperature" in page and "seqlab:cli-reference" not in page


def test_python_reference_renders_the_stable_modules(site):
    html = (site / "reference/python.html").read_text(encoding="utf-8")
    for anchor in (
        "seqlab.api.train",
        "seqlab.api.load",
        "seqlab.api.evaluate",
        "seqlab.config.RunConfig",
        "seqlab.config.build_config",
        "seqlab.decoding.GenerationConfig",
    ):
        assert f'id="{anchor}"' in html, anchor


def test_the_site_loads_nothing_from_the_network(site):
    """Material with `font: false`: no web fonts, no CDN script or stylesheet, no analytics."""
    for page in site.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        remote = re.findall(r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)=\"(?:https?:)?//[^\"]+\"", html)
        assert not remote, f"{page.relative_to(site)} loads {remote[:3]}"
        assert "fonts.googleapis" not in html and "fonts.gstatic" not in html


def test_readme_is_a_landing_page_whose_links_work_on_github_and_in_the_site(site):
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    assert "make demo" in readme and "make test" in readme
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)\s]*)?\)", readme)
    local = [link for link in links if not link.startswith(("http://", "https://"))]
    assert any(link.startswith("docs/") for link in local)
    for link in local:
        assert (REPO / link).exists(), f"README links to {link}, which does not exist"
    home = (site / "index.html").read_text(encoding="utf-8")
    assert 'href="getting-started.html"' in home  # the README's docs/ links, rewritten for the site


def test_readme_commands_are_commands_of_the_cli():
    """Every `seqlab X` in the README's code blocks is a command the CLI has."""
    import typer

    from seqlab.cli.main import app

    root = typer.main.get_command(app)
    commands = set(root.list_commands(root.context_class(root, info_name="seqlab")))
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = "\n".join(re.findall(r"```bash\n(.*?)```", readme, flags=re.DOTALL))
    used = set(re.findall(r"^\s*seqlab ([a-z-]+)", blocks, flags=re.MULTILINE))
    assert used and used <= commands, used - commands
