"""The Python API that the CLI and the server both stand on.

    >>> import seqlab
    >>> from seqlab import api, config
    >>> run = api.train(config.build_config({}, ["model.arch=cnn", "train.epochs=2"]))
    >>> pipe = seqlab.load(run)
    >>> pipe.predict(["a gorgeous, witty film"])
    [{'label': 'positive', 'probabilities': {'negative': 0.12, 'positive': 0.88}}]
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from seqlab import hub, plots, runs
from seqlab.config import RunConfig
from seqlab.data.readers import Example
from seqlab.data.tokenize import encode
from seqlab.errors import SeqlabError
from seqlab import generation, pretraining
from seqlab import ner as named_entities
from seqlab import translation
from seqlab.tasks import classify
from seqlab.tasks import finetune
from seqlab.tasks import compare as comparison

log = logging.getLogger("seqlab")


class ClassifierPipeline:
    """A trained classifier: text in, label and probabilities out."""

    def __init__(self, files: runs.RunFiles, model: nn.Module, backend: str = "torch"):
        self.path = files.path
        self.config = files.config
        self.tokenizer = files.tokenizer
        self.labels = files.labels
        self.model = model.eval()
        self.backend = backend  # "torch", or "onnx"/"onnx-int8": `model` is an export.OnnxClassifier

    @property
    def sigmoid(self) -> bool:
        return self.config.model.head == "sigmoid"

    def check_texts(self, texts: Sequence[str]) -> list[str]:
        """One clear error for input a model cannot take: not text, empty, or absurdly long."""
        if isinstance(texts, str):
            texts = [texts]
        limit = self.config.data.max_chars
        for number, text in enumerate(texts, 1):
            if not isinstance(text, str):
                raise SeqlabError(f"input {number} is {type(text).__name__}, not text")
            if not text.strip():
                raise SeqlabError(f"input {number} is empty; give some text to classify")
            if len(text) > limit:
                raise SeqlabError(f"input {number} is {len(text):,} characters, over the limit of {limit:,} (data.max_chars)")
        return list(texts)

    def predict_proba(self, texts: Sequence[str]) -> torch.Tensor:
        """(N, C) probabilities, columns in `self.labels` order."""
        texts = self.check_texts(texts)
        return classify.predict_proba(self.model, self.tokenizer, texts, self.config.tokenizer.max_length, self.sigmoid)

    def predict(self, texts: Sequence[str] | str) -> list[dict]:
        """[{"label": ..., "probabilities": {label: p, ...}}, ...] for each text."""
        probs = self.predict_proba(texts)
        return [
            {
                "label": self.labels[int(row.argmax())],
                "probabilities": {name: round(float(p), 6) for name, p in zip(self.labels, row)},
            }
            for row in probs
        ]

    __call__ = predict

    def evaluate(self, examples: Sequence[Example]) -> dict:
        """Accuracy, macro-F1, confusion matrix and sentences/s on labelled examples."""
        if not examples:
            raise SeqlabError("no examples to evaluate")
        return classify.evaluate_examples(
            self.model, self.tokenizer, self.labels, examples, self.config.tokenizer.max_length, self.sigmoid
        )

    def attention(self, text: str) -> tuple[list[str], list[torch.Tensor]]:
        """Tokens and per-layer (H, T, T) attention weights of one text (Transformer only)."""
        (text,) = self.check_texts([text])
        (ids,), _ = encode(self.tokenizer, [text], self.config.tokenizer.max_length)
        tokens = [self.tokenizer.id_to_token(i) for i in ids]
        input_ids = torch.tensor([ids])
        model = self.model if self.backend == "torch" else _torch_model(runs.open_run(self.path))  # ONNX has no weights to show
        with torch.inference_mode():
            out = model(input_ids, torch.ones_like(input_ids, dtype=torch.bool), need_weights=True)
        if out.attentions is None:
            raise SeqlabError(f"a {self.config.model.arch} model has no attention weights; use a transformer run")
        if self.config.model.arch == "transformer" and self.config.model.pooling == "cls" and not self.config.model.init:
            tokens = ["[CLS]"] + tokens  # the prepended [CLS] vector (a pretrained vocabulary has its own)
        return tokens, [layer[0] for layer in out.attentions]


BACKENDS = ("auto", "torch", "onnx", "onnx-int8")


def load(path: str | Path, backend: str = "auto") -> ClassifierPipeline:
    """Open a finished run folder.

    Args:
        backend: "torch" (the PyTorch model: predictions equal those made right after
            training); "onnx" (RUN/model.onnx through ONNX Runtime, logits within 1e-4 of
            PyTorch's); "onnx-int8" (RUN/model.int8.onnx, int8); both written by `seqlab export`.
            "auto", the default inference path, takes the fastest exported graph whose accuracy is
            known: an `hf` run's model.int8.onnx (about 3× Hugging Face fp32 eager on MiniLM at
            batch 32×128, MR accuracy within 0.5 point: benchmarks/minilm_inference.py), else
            model.onnx (fp32, 2-8× PyTorch on this CPU: benchmarks/onnx_vs_torch.py), else PyTorch.
    """
    if backend not in BACKENDS:
        raise SeqlabError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    from seqlab import export  # (export_onnx loads the PyTorch model through this function)

    files = runs.open_run(path)
    if backend == "auto":
        if files.config.model.arch == "hf" and (files.path / export.INT8_FILE).is_file():
            backend = "onnx-int8"  # int8 only where its accuracy was measured: the pretrained encoders
        else:
            backend = "onnx" if (files.path / export.ONNX_FILE).is_file() else "torch"
    if backend == "torch":
        return ClassifierPipeline(files, _torch_model(files))
    name, flag = (export.ONNX_FILE, "") if backend == "onnx" else (export.INT8_FILE, " --quantize int8")
    if not (files.path / name).is_file():
        raise SeqlabError(f"run {files.path} has no {name}; write it with `seqlab export {files.path}{flag}`")
    return ClassifierPipeline(files, export.OnnxClassifier(files.path / name, labels=files.labels), backend)


def _torch_model(files: runs.RunFiles) -> nn.Module:
    pretrained = files.config.model.arch == "hf"
    if pretrained and not (files.path / runs.ENCODER / "config.json").is_file():
        raise SeqlabError(f"run {files.path} has no {runs.ENCODER}/config.json: the fine-tuned encoder is missing")
    encoder = str(files.path / runs.ENCODER) if pretrained else None
    model = classify.make_model(files.config, files.tokenizer, files.labels, encoder_source=encoder)
    runs.load_weights(model, files.path / runs.WEIGHTS, skip_prefix="encoder." if pretrained else None)
    return model.eval()


def train(cfg: RunConfig | None, *, resume: str | Path | None = None, progress: str | None = None) -> Path:
    """Train a classifier into a new run folder (or continue an unfinished one).

    Every check on the data happens before the folder is created, so bad input leaves nothing
    behind; a crash mid-training removes the folder unless it already holds a checkpoint.

    Returns:
        The run folder.
    """
    task = cfg.task if cfg is not None else runs.task_of(resume)
    if task == "pretrain-mlm":
        return pretrain(cfg, resume=resume, progress=progress)
    if task == "lm":
        return generation.train_lm(cfg, resume=resume, progress=progress)
    if task == "tag":
        return named_entities.train_tagger(cfg, resume=resume, progress=progress)
    if task == "translate":
        return translation.train_translator(cfg, resume=resume, progress=progress)
    started = time.perf_counter()
    tokenizer = labels = None
    if resume is not None:
        files = _resumable(Path(resume))
        cfg, run_dir = files.config, files.path
        tokenizer, labels = files.tokenizer, files.labels
    elif cfg.model.arch == "transformer" and cfg.model.init:
        cfg = finetune.init_config(cfg)  # the pretrained run's sizes and vocabulary, saved with this run
    splits = classify.load_splits(cfg)
    if resume is None:
        tokenizer, labels = classify.learn_vocabulary(cfg, splits.train)
        run_dir = runs.start_run(cfg)
    prepared = time.perf_counter()
    log.info("run folder %s: %d train / %d valid / %d test examples", run_dir, len(splits.train), len(splits.valid), len(splits.test))
    with runs.guard_new_run(run_dir, fresh=resume is None):
        if resume is None and runs.is_rank_zero():
            runs.save_tokenizer(tokenizer, run_dir / runs.TOKENIZER)  # saved first: --resume needs the same ids
            runs.write_json(run_dir / runs.LABELS, labels)
        elif resume is None:  # another DDP rank: rank 0's vocabulary, so that token ids agree
            tokenizer, labels = runs.shared_vocabulary(run_dir)
        fitted = classify.fit_classifier(
            cfg, splits.train, splits.valid, run_dir, tokenizer=tokenizer, labels=labels,
            resume=resume is not None, progress=progress,
        )
        runs.raise_if_interrupted(fitted.result.interrupted, run_dir, "seqlab train")
        if runs.is_rank_zero():  # (only rank 0 writes the run folder)
            _write_finished_run(run_dir, cfg, splits, fitted, started, prepared)
            runs.finish_run(run_dir)  # last: complete.json marks the folder finished
    return run_dir


def pretrain(cfg: RunConfig | None, *, resume: str | Path | None = None, progress: str | None = None) -> Path:
    """Pretrain a BERT-style encoder (masked LM, optionally NSP) into a new run folder, or
    continue an unfinished one; `cfg.task` must be "pretrain-mlm" (see `seqlab.pretraining`).

    Returns:
        The run folder; `fill_mask` uses it, and `model.init=RUN` fine-tunes its encoder.
    """
    return pretraining.pretrain(cfg, resume=resume, progress=progress)


def load_masked_lm(path: str | Path) -> pretraining.MaskedLMPipeline:
    """Open a finished pretrain-mlm run; `.fill_mask(text, top_k)` predicts its [MASK]s."""
    return pretraining.load_masked_lm(path)


def fill_mask(run: str | Path, text: str, top_k: int = 5) -> list[list[dict]]:
    """The `top_k` likeliest wordpieces for each [MASK] in `text`, by the pretrained run `run`:
    one list per [MASK] of {"token", "probability"}, most likely first."""
    return pretraining.load_masked_lm(run).fill_mask(text, top_k)


def load_generator(spec: str | Path, dtype: str = "fp32", engine: str = "hf", compile: bool = False) -> generation.GeneratorPipeline:
    """A language model to generate with: an `lm` run folder, a built-in (`smollm2-135m`), a
    transformers folder or a hub id (`gpt2`, where the hub is reachable); `engine="seqlab"` runs
    GPT-2 and Llama weights in seqlab's own GPT / Llama; `compile=True` compiles seqlab's model
    (faster steps after a compilation of minutes)."""
    return generation.load_generator(spec, dtype, engine, compile)


def generate(model: str | Path, prompts: str | Sequence[str], **settings) -> list[str]:
    """Continue `prompts` with `model` (see `load_generator`); `settings` are decoding options:
    max_new_tokens, do_sample, temperature, top_k, top_p, repetition_penalty, num_beams, stop, seed."""
    return generation.load_generator(model).generate(prompts, **settings)


def load_ner(spec: str | Path = "en_core_web_sm") -> named_entities.SpacyNER | named_entities.TaggerPipeline:
    """A named-entity recogniser: a spaCy pipeline (`en_core_web_sm`, `en_core_web_md`, an
    installed package or a folder) or a tag run folder; `.entities(texts)` for both."""
    return named_entities.load_ner(spec)


def load_tagger(path: str | Path) -> named_entities.TaggerPipeline:
    """Open a finished tag run: `.tag(word_lists)`, `.entities(texts)`, `.evaluate(sentences)`."""
    return named_entities.load_tagger(path)


def ner(texts: str | Sequence[str], model: str | Path = "en_core_web_sm", batch_size: int | None = None,
        n_process: int = 1) -> list[list[named_entities.Entity]]:
    """The named entities of each text (`Entity(text, label, start, end)`, character offsets);
    an empty text has none."""
    return named_entities.load_ner(model).entities(texts, batch_size=batch_size, n_process=n_process)


def load_translator(path: str | Path) -> translation.TranslatorPipeline:
    """Open a finished translate run: `.translate(texts, beam=5, return_attention=False)`,
    `.save_attention(texts, "out.png"|"out.html")`, `.evaluate(pairs)`."""
    return translation.load_translator(path)


def translate(run: str | Path, texts: str | Sequence[str], beam: int | None = None, **settings) -> list:
    """Translate `texts` with the translate run `run` (greedy with beam=1; default: the run's
    `translate.beam`); `settings`: length_penalty, max_length_ratio, return_attention."""
    return translation.load_translator(run).translate(texts, beam=beam, **settings)


SERVED_TASKS = {"classify": "classify", "lm": "generate", "tag": "ner", "translate": "translate", "pretrain-mlm": "fill-mask"}


def task_of_model(spec: str | Path) -> str:
    """What a model spec does, by the name of the function that uses it: "classify" (`load`),
    "generate" (`load_generator`), "ner" (`load_ner`), "translate" (`load_translator`) or
    "fill-mask" (`load_masked_lm`). A run folder says so in its config; a spaCy pipeline (a
    built-in name, an installed package or a folder with config.cfg) is "ner"; anything else is
    taken as a causal LM (a built-in, a transformers folder or a hub id), which loading checks."""
    from seqlab.data import spacy_models

    path = Path(spec)
    task = runs.task_of(path)
    if task is not None:
        if task not in SERVED_TASKS:
            raise SeqlabError(f"run {path} is a {task} run, which has no inference pipeline")
        return SERVED_TASKS[task]
    name = str(spec)
    if name in spacy_models.BUILTIN_PIPELINES or (path / "config.cfg").is_file() or spacy_models._installed(name):
        return "ner"
    if path.is_dir() and not (path / "config.json").is_file():
        raise SeqlabError(f"{path} is neither a seqlab run (config.yaml), a spaCy pipeline (config.cfg) nor a transformers model (config.json)")
    return "generate"


def compare_translation(base: dict, archs: Sequence[str], overrides: Sequence[str] = (), output_dir: str | Path | None = None,
                        seeds: int = 1) -> tuple[list[dict], Path]:
    """Train translation models (`seq2seq`, `seq2seq-attn`, `transformer`, or an attention
    kind: `bahdanau`, `luong-dot`, `luong-general`, `dot`) on the same pairs; write
    results.json, table.md (with exact match and BLEU by source length) and comparison.png."""
    return translation.compare(base, archs, overrides, output_dir, seeds)


def augment(texts: str | Sequence[str], method: str = "synonym", n: int = 4, seed: int | None = 0, **options) -> list[list[str]]:
    """`n` augmented variants of each text (see `seqlab.augment`): method "synonym" (WordNet,
    POS-aware; `synonyms=` a {"word": [...]} dict or JSON file instead), "eda" (`alpha_sr`,
    `alpha_ri`, `alpha_rs`, `p_rd`), "backtranslate" (`forward=`, `backward=` translate runs or
    HF seq2seq folders; `temperature`, `top_k`, `top_p`) or "contextual" (`model=` a pretrain-mlm
    run or HF masked-LM folder; `rate`, `top_k`, `temperature`). Raises `SeqlabError` (one line)
    for bad input."""
    from seqlab import augment as augmentation

    return augmentation.augment(texts, method, n, seed, **options)


def augment_methods() -> tuple[str, ...]:
    """The methods `augment` takes (for clients that offer a choice, such as the server)."""
    from seqlab.tasks.augment import METHODS

    return METHODS


def _resumable(run_dir: Path) -> runs.RunFiles:
    cfg = runs.resumable_config(run_dir, "classify")
    return runs.RunFiles(run_dir, cfg, runs.load_tokenizer(run_dir / runs.TOKENIZER), runs.read_labels(run_dir))


def _write_finished_run(run_dir: Path, cfg: RunConfig, splits: classify.Splits, fitted: classify.Fitted,
                        started: float, prepared: float) -> None:
    sigmoid = cfg.model.head == "sigmoid"
    max_length = cfg.tokenizer.max_length
    metrics = {"best_" + cfg.train.monitor: fitted.result.best_score, "epochs": fitted.result.epochs}
    for name in ("valid", "test"):
        examples = getattr(splits, name)
        if examples:
            metrics[name] = classify.evaluate_examples(fitted.model, fitted.tokenizer, fitted.labels, examples, max_length, sigmoid)
    if cfg.model.arch == "hf":  # transformers loads the encoder; seqlab adds the head
        hub.save_for_transformers(fitted.model.encoder, cfg.model.model, run_dir / runs.ENCODER)
        runs.save_weights(fitted.model, run_dir / runs.WEIGHTS, skip_prefix="encoder.")
    else:
        runs.save_weights(fitted.model, run_dir / runs.WEIGHTS)
    runs.write_json(run_dir / runs.METRICS, metrics)
    data = {
        name: {"source": splits.sources[name], "examples": len(getattr(splits, name)),
               "sha256": runs.data_hash((ex.text, ex.label) for ex in getattr(splits, name))}
        for name in ("train", "valid", "test")
    }
    extra = {"truncated": fitted.truncated, **({"embeddings": fitted.embeddings} if fitted.embeddings else {})}
    runs.write_json(run_dir / runs.MANIFEST, runs.manifest(
        cfg, data, classify.count_parameters(fitted.model), started, prepared, fitted.result.seconds, **extra,
    ))


def compare(
    base: dict,
    archs: list[str],
    overrides: Sequence[str] = (),
    cv: int | None = None,
    output_dir: str | Path | None = None,
    train_sizes: str | None = None,
    seeds: int = 1,
    min_epoch_examples: int = 2000,
) -> tuple[list[dict], Path]:
    """Train every entry of `archs` (architectures or recipes such as `minilm-frozen`) on the
    same data, `seeds` times each; write results.json, table.md and a chart (comparison.png, or
    learning_curve.png when several `train_sizes` are given, e.g. "100,500,all") into
    `output_dir`. Finished runs are appended to partial.jsonl as they come. A training set
    smaller than `min_epoch_examples` is repeated within each epoch (0: never), so small sets
    get as many optimiser steps per epoch as a set of that size.

    Returns:
        (one summary row per entry and size, the output folder).
    """
    archs = comparison.parse_archs(",".join(archs))
    sizes = comparison.parse_sizes(train_sizes)
    output = Path(output_dir or Path("runs") / f"compare-{time.strftime('%Y%m%d-%H%M%S')}")
    output.mkdir(parents=True, exist_ok=True)

    def save_partial(result: comparison.FoldResult) -> None:
        with open(output / "partial.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(vars(result)) + "\n")

    results = comparison.compare(base, archs, list(overrides), cv, sizes, seeds, save_partial, min_epoch_examples)
    rows = comparison.summarise(results)
    runs.write_json(output / "results.json", {"cv": cv, "train_sizes": train_sizes, "seeds": seeds, "min_epoch_examples": min_epoch_examples,
                                              "summary": rows, "runs": [vars(r) for r in results]})
    (output / "table.md").write_text(comparison.markdown_table(rows) + "\n", encoding="utf-8")
    protocol = f"{cv}-fold CV" if cv else "held-out test split"
    title = f"{base.get('data', {}).get('train', 'rt-polarity')} · {protocol}"
    if len(sizes) > 1:
        plots.learning_curve_by_size(rows, output / "learning_curve.png", title)
    else:
        plots.comparison(rows, output / "comparison.png", title)
    return rows, output
