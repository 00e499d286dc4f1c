"""The tasks seqlab knows: one `Task` per folder under `seqlab/tasks/`, one line each in `TASKS`.

A task has one name, used for its package (`seqlab.tasks.<name>`), the config (`task: <name>`)
and `seqlab train <name>`, and one verb, what a loaded run does, used for the command that
runs it (`seqlab <verb>`) and its HTTP route (`/v1/<verb>`). Older spellings stay as aliases.

This table is data: it imports no task code. `Task.recipe()` and `Task.pipeline()` import a
task's package only when it is used, so `import seqlab` stays light and the config, the CLI and
the server can all read the table without importing what only training needs.

Adding a task: write `seqlab/tasks/<name>/recipe.py` (`RECIPE`, see `seqlab.lifecycle.Recipe`)
and `seqlab/tasks/<name>/pipeline.py` (`load(path, **options)`), then add its line here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from seqlab.errors import SeqlabError


@dataclass(frozen=True)
class Task:
    """One task.

    Attributes:
        name: The one name (package, config `task`, `seqlab train NAME`).
        verb: What a loaded run does: the CLI command and the HTTP route `/v1/<verb>`.
        summary: One line for help texts.
        aliases: Older names still accepted wherever `name` is.
        trains: False for a task without run folders of its own (augment uses other tasks' runs).
    """

    name: str
    verb: str
    summary: str
    aliases: tuple[str, ...] = ()
    trains: bool = True

    @property
    def package(self) -> str:
        return f"seqlab.tasks.{self.name}"

    def recipe(self) -> Any:
        """The task's training steps (`seqlab.lifecycle.Recipe`); imports its training code."""
        if not self.trains:
            raise SeqlabError(f"task {self.name} trains no model of its own")
        return importlib.import_module(f"{self.package}.recipe").RECIPE

    def pipeline(self) -> ModuleType:
        """The task's inference module: `load(path, **options)` gives a pipeline for a run."""
        return importlib.import_module(f"{self.package}.pipeline")


TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task("classify", "classify", "label a text (sentiment, question type, ...): RNN/LSTM/GRU/CNN/Transformer/MiniLM"),
        Task(
            "lm",
            "generate",
            "language models that generate text: RNN/LSTM, GPT from scratch, GPT-2/SmolLM2",
            aliases=("generate",),
        ),
        Task("tag", "ner", "tag every word (named entities): BiLSTM-CRF, Transformer, MiniLM; spaCy pipelines", aliases=("ner",)),
        Task("translate", "translate", "translate between languages: seq2seq, Bahdanau/Luong attention, Transformer"),
        Task(
            "pretrain",
            "fill-mask",
            "pretrain a BERT-style encoder (masked LM, next-sentence prediction)",
            aliases=("pretrain-mlm", "fill-mask", "mlm"),
        ),
        Task("augment", "augment", "new training texts from old: synonyms, EDA, back-translation, masked LM", trains=False),
    )
}

_BY_ANY_NAME = {alias: task for task in TASKS.values() for alias in (task.name, task.verb, *task.aliases)}


def get_task(name: str) -> Task:
    """The task called `name` (its name, verb or an alias), else one line listing the tasks."""
    try:
        return _BY_ANY_NAME[name]
    except KeyError:
        raise SeqlabError(f"unknown task {name!r}; seqlab knows: {', '.join(TASKS)}") from None


def canonical(name: str) -> str:
    """`name` (or an alias of it) as the task's one name; unknown names are returned as given."""
    task = _BY_ANY_NAME.get(name)
    return task.name if task is not None else name


def trainable() -> list[str]:
    """Names of the tasks that train run folders."""
    return [task.name for task in TASKS.values() if task.trains]
