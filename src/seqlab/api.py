"""The Python API that the CLI, the server and notebooks all stand on.

    >>> import seqlab
    >>> run = seqlab.train("classify", data="rt-polarity", arch="cnn", epochs=2)
    >>> pipe = seqlab.load(run)
    >>> pipe(["a gorgeous, witty film"])
    [{'label': 'positive', 'probabilities': {'negative': 0.12, 'positive': 0.88}}]
    >>> seqlab.evaluate(run, "rt-polarity")["accuracy"]
    0.78

Every task goes through the same four calls: `train(task, ...)`, `load(run)`, `evaluate(run,
data)` and `compare(task, ...)`; they read the task table (`seqlab.registry.TASKS`) and hold no
task-specific code. The task-named helpers below (`generate`, `ner`, `translate`, `fill_mask`,
`augment`) are one-line conveniences over a task's pipeline.

Importing this module imports no training code: Lightning, torchmetrics and transformers are
imported only by the calls that need them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seqlab import runs
from seqlab.config import RunConfig, build_config
from seqlab.errors import SeqlabError
from seqlab.registry import TASKS, Task, get_task

# Keyword arguments of `train` and `configure` that stand for a config key.
SHORTCUTS = {
    "data": "data.train",
    "valid": "data.valid",
    "test": "data.test",
    "text_column": "data.text_column",
    "label_column": "data.label_column",
    "arch": "model.arch",
    "model": "model.model",
    "preset": "model.preset",
    "init": "model.init",
    "embeddings": "model.embeddings",
    "embeddings_mode": "model.embeddings_mode",
    "level": "tokenizer.level",
    "epochs": "train.epochs",
    "batch_size": "train.batch_size",
    "lr": "train.lr",
    "seed": "train.seed",
    "max_minutes": "train.max_minutes",
    "devices": "train.devices",
    "num_nodes": "train.num_nodes",
    "strategy": "train.strategy",
    "name": "name",
    "output_dir": "output_dir",
}


def configure(task: str, overrides: Sequence[str] = (), **settings: Any) -> RunConfig:
    """The validated config of a `task` run: the task's defaults, then `settings`, then
    `overrides` (`"section.key=value"` strings, as on the command line).

    `settings` are the shortcuts of `SHORTCUTS` (`data`, `arch`, `epochs`, `lr`, ...) or any
    config key written with dots (`**{"model.dropout": 0.3}`) or double underscores
    (`model__dropout=0.3`); None values are skipped.

    Raises:
        SeqlabError: an unknown task or key, or a value of the wrong type.
    """
    spec = get_task(task)
    if not spec.trains:
        raise SeqlabError(
            f"task {spec.name} trains no model of its own; seqlab trains: {', '.join(t for t in TASKS if TASKS[t].trains)}"
        )
    given = []
    for key, value in settings.items():
        if value is None:
            continue
        dotted = SHORTCUTS.get(key, key.replace("__", "."))
        if "." not in dotted and dotted not in ("name", "output_dir"):
            raise SeqlabError(f"unknown setting {key!r}; use one of {', '.join(SHORTCUTS)} or a config key such as model.dropout")
        if dotted == "model.arch" and spec.name == "translate" and value == "transformer":
            value = "transformer-seq2seq"  # the Transformer of translation is the encoder-decoder
        given.append(f"{dotted}={json.dumps(value) if isinstance(value, str) else value}")  # (a string stays a string)
    return build_config({"task": spec.name}, [*given, *overrides])


def train(
    task: str | RunConfig | None = None,
    *,
    resume: str | Path | None = None,
    progress: str | None = None,
    overrides: Sequence[str] = (),
    **settings: Any,
) -> Path:
    """Train a model into a new run folder, or continue the unfinished run `resume`.

        >>> seqlab.train("classify", data="rt-polarity", arch="cnn", epochs=5)
        >>> seqlab.train("lm", data="shakespeare", arch="gpt", preset="tiny", max_minutes=5)
        >>> seqlab.train(config.load_config("run.yaml"))      # a typed config
        >>> seqlab.train(resume="runs/classify-cnn-...")      # carry on after a crash or Ctrl-C

    Args:
        task: a task name (`classify`, `lm`, `tag`, `translate`, `pretrain`) or a `RunConfig`.
        resume: an unfinished run folder (its saved config is used; give nothing else).
        progress: "bar", "lines" or None (a bar at a terminal, lines otherwise).
        overrides, settings: see `configure`.

    Returns:
        The run folder: config.yaml, weights, metrics.json, manifest.json, complete.json.
    """
    from seqlab import lifecycle  # (imports nothing heavy itself; the recipe brings the training code)

    if resume is not None:
        if task is not None or overrides or settings:
            raise SeqlabError("--resume continues a run with its saved config; give nothing else")
        name = runs.task_of(resume)
        if name is None:
            raise SeqlabError(f"{resume} is not a seqlab run folder (no {runs.CONFIG})")
        return lifecycle.train_run(get_task(name).recipe(), None, resume=resume, progress=progress)
    if task is None:
        raise SeqlabError('say what to train: seqlab.train("classify", data="rt-polarity", arch="cnn")')
    cfg = task if isinstance(task, RunConfig) else configure(task, overrides, **settings)
    if isinstance(task, RunConfig) and (overrides or settings):
        raise SeqlabError("a RunConfig is complete: change it with config.build_config, or pass a task name with settings")
    return lifecycle.train_run(
        get_task(cfg.task).recipe(),
        cfg,
        progress=progress,
        resume_command="seqlab pretrain mlm" if cfg.task == "pretrain" else "seqlab train",
    )


def task_of_model(spec: str | Path) -> Task:
    """The task a model spec belongs to. A run folder says so in its config; a spaCy pipeline
    (a built-in name, an installed package or a folder with config.cfg) tags; anything else is
    taken as a causal LM (a built-in, a transformers folder or a hub id), which loading checks."""
    from seqlab.data import spacy_models

    path = Path(spec).expanduser()
    task = runs.task_of(path)
    if task is not None:
        return get_task(task)
    name = str(spec)
    if not path.exists() and (path.is_absolute() or name.startswith((".", "~"))):  # a path, not a name or hub id
        raise SeqlabError(
            f"{spec} does not exist; give a run folder, a built-in model (smollm2-135m, en_core_web_sm) or a hub id"
        )
    if name in spacy_models.BUILTIN_PIPELINES or (path / "config.cfg").is_file() or spacy_models._installed(name):
        return TASKS["tag"]
    if path.is_dir() and not (path / "config.json").is_file():
        raise SeqlabError(
            f"{path} is neither a seqlab run (config.yaml), a spaCy pipeline (config.cfg) nor a transformers model (config.json)"
        )
    return TASKS["lm"]


def load(spec: str | Path, **options: Any) -> Any:
    """A ready-to-use pipeline for any run folder or built-in model.

        >>> seqlab.load("runs/classify-cnn-...")(["a witty film"])          # ClassifierPipeline
        >>> seqlab.load("smollm2-135m").generate("The capital of France is")  # GeneratorPipeline
        >>> seqlab.load("en_core_web_sm").entities("Apple buys U.K. startup")  # SpacyNER
        >>> seqlab.load("runs/translate-...").translate("I like tea.")        # TranslatorPipeline

    Every pipeline is callable (`pipe(texts)`), takes one text or a list (batched), and raises
    `SeqlabError` with one line for input it cannot take.

    Args:
        spec: a run folder, a built-in name (`smollm2-135m`, `en_core_web_sm`), a transformers or
            spaCy folder, or a hub id where the hub is reachable.
        options: passed to the task's loader: classify `backend` (auto, torch, onnx, onnx-int8);
            lm `dtype`, `engine`, `compile`.
    """
    return task_of_model(spec).pipeline().load(spec, **options)


def evaluate(run: str | Path | Any, data: str, **options: Any) -> dict:
    """Score a run (or a loaded pipeline) on labelled data, with the task's own metrics.

    classify: accuracy, macro-F1, confusion matrix (`text_column`, `label_column`); tag: entity
    precision/recall/F1 per type (CoNLL rules); translate: BLEU, chrF, exact match, by source
    length, with sacreBLEU's signatures (`beam`, `direction` for Tatoeba); lm: loss, perplexity,
    bits per character. When `data` is the built-in dataset a run trained on, its own held-out
    test split is scored (tag, translate).

    Returns:
        The metrics, with "data" saying what was scored.
    """
    pipe = load(run) if isinstance(run, (str, Path)) else run
    task = get_task(pipe.task)
    return task.pipeline().evaluate(pipe, data, **options)


def compare(
    task: str | dict = "classify",
    archs: Sequence[str] | str | None = None,
    overrides: Sequence[str] = (),
    *,
    data: str | None = None,
    output_dir: str | Path | None = None,
    seeds: int = 1,
    **options: Any,
) -> tuple[list[dict], Path]:
    """Train several architectures on the same data; write results.json, table.md and a chart.

        >>> rows, folder = seqlab.compare("classify", "lstm,cnn,transformer", data="trec", cv=None)
        >>> rows, folder = seqlab.compare("translate", "seq2seq,bahdanau,transformer", data="numbers-en-fr")

    Args:
        task: classify or translate (a dict is taken as classify's base config, as before).
        archs: architectures or named recipes, a list or comma-separated.
        overrides: `key=value` for every entry, or `ENTRY:key=value` for one.
        options: classify `cv`, `train_sizes`, `min_epoch_examples`; translate `budget_minutes`
            (every entry's wall-clock training budget).

    Returns:
        (one summary row per entry, the output folder).
    """
    base = task if isinstance(task, dict) else {}
    name = "classify" if isinstance(task, dict) else get_task(task).name
    if data is not None:
        base = {**base, "data": {**base.get("data", {}), "train": data}}
    entries = archs.split(",") if isinstance(archs, str) else list(archs or [])
    if name == "classify":
        from seqlab.tasks.classify import compare as comparison

        return comparison.run(
            base, entries or ["lstm", "bilstm", "cnn", "transformer"], overrides, output_dir=output_dir, seeds=seeds, **options
        )
    if name == "translate":
        from seqlab.tasks.translate import compare as comparison

        return comparison.run(
            base,
            entries or list(comparison.DEFAULT_ENTRIES),
            overrides,
            output_dir,
            seeds,
            budget_minutes=options.pop("budget_minutes", None),
            **options,
        )
    raise SeqlabError(f"seqlab compares classify and translate runs, not {name}")


# --------------------------------------------------------------------------- task-named conveniences


def load_classifier(path: str | Path, backend: str = "auto") -> Any:
    """Open a finished classify run (`backend`: auto, torch, onnx, onnx-int8; see
    `seqlab.tasks.classify.pipeline.load`); any other folder is one line saying what it is."""
    return TASKS["classify"].pipeline().load(path, backend=backend)


def pretrain(cfg: RunConfig | None, *, resume: str | Path | None = None, progress: str | None = None) -> Path:
    """Pretrain a BERT-style encoder (task pretrain): `train` with a pretrain config."""
    if cfg is not None and cfg.task != "pretrain":
        raise SeqlabError(f"pretrain needs a config with task: pretrain, got {cfg.task}")
    return train(cfg, resume=resume, progress=progress)


def load_masked_lm(path: str | Path) -> Any:
    """Open a finished pretrain run; `.fill_mask(text, top_k)` predicts its [MASK]s."""
    return TASKS["pretrain"].pipeline().load(path)


def fill_mask(run: str | Path, text: str, top_k: int = 5) -> list[list[dict]]:
    """The `top_k` likeliest wordpieces for each [MASK] in `text`, by the pretrained run `run`:
    one list per [MASK] of {"token", "probability"}, most likely first."""
    return load_masked_lm(run).fill_mask(text, top_k)


def load_generator(spec: str | Path, dtype: str = "fp32", engine: str = "hf", compile: bool = False) -> Any:
    """A language model to generate with: an `lm` run folder, a built-in (`smollm2-135m`), a
    transformers folder or a hub id (`gpt2`, where the hub is reachable); `engine="seqlab"` runs
    GPT-2 and Llama weights in seqlab's own GPT / Llama; `compile=True` compiles seqlab's model."""
    return TASKS["lm"].pipeline().load(spec, dtype=dtype, engine=engine, compile=compile)


def generate(model: str | Path, prompts: str | Sequence[str], **settings: Any) -> list[str]:
    """Continue `prompts` with `model` (see `load_generator`); `settings` are decoding options:
    max_new_tokens, do_sample, temperature, top_k, top_p, repetition_penalty, num_beams, stop, seed."""
    return load_generator(model).generate(prompts, **settings)


def load_ner(spec: str | Path = "en_core_web_sm") -> Any:
    """A named-entity recogniser: a spaCy pipeline (`en_core_web_sm`, `en_core_web_md`, an
    installed package or a folder) or a tag run folder; `.entities(texts)` for both."""
    return TASKS["tag"].pipeline().load(spec)


def load_tagger(path: str | Path) -> Any:
    """Open a finished tag run: `.tag(word_lists)`, `.entities(texts)`, `.evaluate(sentences)`."""
    return TASKS["tag"].pipeline().load_tagger(path)


def ner(
    texts: str | Sequence[str], model: str | Path = "en_core_web_sm", batch_size: int | None = None, n_process: int = 1
) -> list[list[Any]]:
    """The named entities of each text (`Entity(text, label, start, end)`, character offsets);
    a blank text has none."""
    return load_ner(model).entities(texts, batch_size=batch_size, n_process=n_process)


def load_translator(path: str | Path) -> Any:
    """Open a finished translate run: `.translate(texts, beam=5, return_attention=False)`,
    `.save_attention(texts, "out.png"|"out.html")`, `.evaluate(pairs)`."""
    return TASKS["translate"].pipeline().load(path)


def translate(run: str | Path, texts: str | Sequence[str], beam: int | None = None, **settings: Any) -> list:
    """Translate `texts` with the translate run `run` (greedy with beam=1; default: the run's
    `translate.beam`); `settings`: length_penalty, max_length_ratio, return_attention."""
    return load_translator(run).translate(texts, beam=beam, **settings)


def compare_translation(
    base: dict,
    archs: Sequence[str],
    overrides: Sequence[str] = (),
    output_dir: str | Path | None = None,
    seeds: int = 1,
    budget_minutes: float | None = None,
) -> tuple[list[dict], Path]:
    """`compare("translate", ...)` with a base config dict; `budget_minutes` trains every
    entry for that long (`train.max_minutes`)."""
    from seqlab.tasks.translate import compare as comparison

    return comparison.run(base, list(archs), overrides, output_dir, seeds, budget_minutes)


def augment(
    texts: str | Sequence[str], method: str = "synonym", n: int = 4, seed: int | None = 0, **options: Any
) -> list[list[str]]:
    """`n` augmented variants of each text (see `seqlab.tasks.augment.pipeline`): method "synonym" (WordNet,
    POS-aware; `synonyms=` a {"word": [...]} dict or JSON file instead), "eda" (`alpha_sr`,
    `alpha_ri`, `alpha_rs`, `p_rd`), "backtranslate" (`forward=`, `backward=` translate runs or
    HF seq2seq folders; `temperature`, `top_k`, `top_p`) or "contextual" (`model=` a pretrain
    run or HF masked-LM folder; `rate`, `top_k`, `temperature`). Raises `SeqlabError` (one line)
    for bad input."""
    return TASKS["augment"].pipeline().augment(texts, method, n, seed, **options)


def augment_methods() -> tuple[str, ...]:
    """The methods `augment` takes (for clients that offer a choice, such as the server)."""
    from seqlab.tasks.augment.methods import METHODS

    return METHODS
