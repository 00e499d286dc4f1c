"""The models a server holds: each loaded once at start-up through `seqlab.api`, with its own
inference thread and, for classify / ner / translate, its own micro-batcher; a generate model's
inference thread is its `Scheduler` (continuous batching, `seqlab.serve.scheduler`).

Every call into a pipeline goes through the model's single-thread executor: PyTorch and spaCy
then never run one model from two threads at once, and the event loop stays free to accept
requests while a batch runs. Parallelism across requests comes from batching, and across models
from their separate threads (see `seqlab serve --help` for the thread settings).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqlab import api, registry
from seqlab.errors import SeqlabError
from seqlab.inflight import batch_for
from seqlab.serve.batching import MicroBatcher
from seqlab.serve.scheduler import Scheduler
from seqlab.serve.settings import ServeSettings

log = logging.getLogger("seqlab")

# what a served model does: its task's verb, which is also its route (/v1/classify, /v1/generate, ...)
TASKS = tuple(task.verb for task in registry.TASKS.values() if task.trains)


def _classify_batch(pipe: Any) -> Callable[[Hashable, list[str]], list[dict]]:
    return lambda key, texts: pipe.predict(texts)


def _ner_batch(pipe: Any) -> Callable[[Hashable, list[str]], list[list[dict]]]:
    return lambda key, texts: [[e.as_dict() for e in found] for found in pipe.entities(texts)]


def _translate_batch(pipe: Any) -> Callable[[Hashable, list[str]], list[dict]]:
    def run(key: Hashable, texts: list[str]) -> list[dict]:
        beam, attention = key
        return (
            pipe.translate(texts, beam=beam, return_attention=True)
            if attention
            else [{"source": text, "translation": out} for text, out in zip(texts, pipe.translate(texts, beam=beam))]
        )

    return run


BATCHED: dict[str, Callable[[Any], Callable[[Hashable, list], list]]] = {
    "classify": _classify_batch,
    "ner": _ner_batch,
    "translate": _translate_batch,
}


@dataclass
class ServedModel:
    """One loaded model: its name in requests, what it does, and where its calls run."""

    name: str
    spec: str
    task: str
    pipeline: Any
    executor: ThreadPoolExecutor = field(repr=False)
    batcher: MicroBatcher | None = field(default=None, repr=False)
    scheduler: Scheduler | None = field(default=None, repr=False)

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(*args)` on this model's inference thread (a generate model's: between two steps
        of its running batch)."""
        if self.scheduler is not None:
            return await asyncio.wrap_future(self.scheduler.call(fn, *args))
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    def describe(self) -> dict[str, Any]:
        """What a client needs to call it: labels, whether it has attention weights to show..."""
        pipe, details = self.pipeline, {}
        if self.task == "classify":
            details = {
                "labels": list(pipe.labels),
                "arch": pipe.config.model.arch,
                "backend": pipe.backend,
                "attention": pipe.config.model.arch in ("transformer", "hf"),
            }
        elif self.task == "generate":
            details = {"context_length": pipe.context_length}
        elif self.task == "ner":
            details = {"labels": list(pipe.labels)}
        elif self.task == "translate":
            details = {
                "arch": pipe.config.model.arch,
                "attention": pipe.config.model.arch != "seq2seq",
                "beam": pipe.config.translate.beam,
            }
        elif self.task == "fill-mask":
            details = {"mask": "[MASK]"}
        if self.batcher is not None:
            details["batches"] = {"calls": self.batcher.calls, "items": self.batcher.items}
        if self.scheduler is not None:
            details["scheduler"] = self.scheduler.describe()
        return details


def load_models(models: dict[str, str], settings: ServeSettings) -> dict[str, ServedModel]:
    """Open every `name → spec` (a run folder or a built-in) once, before serving starts.

    Raises:
        SeqlabError: a bad name, a spec that does not load, or a task with no pipeline.
    """
    if not models:
        raise SeqlabError("give at least one model: seqlab serve --model NAME=RUN (or a built-in such as en_core_web_sm)")
    served: dict[str, ServedModel] = {}
    for name, spec in models.items():
        if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise SeqlabError(f"model name {name!r} must be letters, digits, '-', '_' or '.' (it appears in URLs and JSON)")
        spec = str(Path(spec).expanduser()) if Path(spec).expanduser().exists() else str(spec)
        task = api.task_of_model(spec).verb
        log.info("loading %s = %s (%s)", name, spec, task)
        pipeline = api.load(spec, **(_generator_options(settings) if task == "generate" else {}))
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"seqlab-{name}")
        batcher = scheduler = None
        if task in BATCHED:
            batcher = MicroBatcher(
                BATCHED[task](pipeline),
                executor,
                settings.max_batch_size,
                settings.batch_wait_ms,
                max_pending=settings.max_queue,
                name=name,
            )
        if task == "generate":
            scheduler = Scheduler(name, batch_for(pipeline.model), settings.max_active, settings.max_queue)
            log.info("%s: %s batching, at most %d sequences at once", name, scheduler.mode, settings.max_active)
        served[name] = ServedModel(name, spec, task, pipeline, executor, batcher, scheduler)
    return served


def _generator_options(settings: ServeSettings) -> dict[str, Any]:
    """`api.load_generator`'s engine and dtype, where the operator chose them."""
    return {name: value for name, value in (("engine", settings.engine), ("dtype", settings.dtype)) if value is not None}
