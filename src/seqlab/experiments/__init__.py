"""`seqlab experiment NAME`: the course's theory claims (and the augmentation question) as experiments.

One module per experiment (`parallelism`, `long_range`, `positions`, `bidirectional`, `heads`,
`decoder`, `pretraining`, `attention_vs_fixed_context`, `augmentation`). Each exposes
`run(quick: bool, output: Path, **options) -> ExperimentResult`: it trains or measures with the
task modules' own models (no second copy of a model), prints nothing, and writes its table
(`table.md`, `results.json`) and plot (`*.png`) under `output`. The CLI (`seqlab.cli.experiment`)
prints the table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

# What a `--quick` run's verdict says: it checks that the experiment runs, not the claim.
QUICK_VERDICT = "quick run: the table's shape only, too small a budget for a verdict"


@dataclass
class ExperimentResult:
    """What an experiment measured: a table (column names + rows) and the files it wrote."""

    name: str
    columns: list[str]
    rows: list[list]
    verdict: str = ""
    plots: list[Path] = field(default_factory=list)
    settings: dict = field(default_factory=dict)

    def markdown(self) -> str:
        head = "| " + " | ".join(self.columns) + " |\n|" + "---|" * len(self.columns) + "\n"
        body = "".join("| " + " | ".join(_cell(v) for v in row) + " |\n" for row in self.rows)
        return head + body

    def save(self, output: Path) -> None:
        """Write `table.md` and `results.json` under `output` (the plots are already there)."""
        output.mkdir(parents=True, exist_ok=True)
        (output / "table.md").write_text(self.markdown() + (f"\n{self.verdict}\n" if self.verdict else ""), encoding="utf-8")
        payload = {
            "name": self.name,
            "columns": self.columns,
            "rows": self.rows,
            "verdict": self.verdict,
            "plots": [str(p) for p in self.plots],
            "settings": self.settings,
        }
        (output / "results.json").write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
