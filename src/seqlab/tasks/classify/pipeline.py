"""A trained classifier: text in, label and probabilities out (`seqlab.load` of a classify run).

>>> import seqlab
>>> pipe = seqlab.load("runs/classify-cnn-...")
>>> pipe(["a gorgeous, witty film"])
[{'label': 'positive', 'probabilities': {'negative': 0.12, 'positive': 0.88}}]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from seqlab import runs
from seqlab.data.readers import Example
from seqlab.data.texts import check_texts
from seqlab.data.tokenize import encode
from seqlab.errors import SeqlabError
from seqlab.tasks.classify import inference as classify
from seqlab.tasks.classify.onnx_backend import INT8_FILE, ONNX_FILE, OnnxClassifier


class ClassifierPipeline:
    """A trained classifier: text in, label and probabilities out."""

    task = "classify"

    def __repr__(self) -> str:
        return (
            f"ClassifierPipeline(task=classify, run={str(self.path)!r}, arch={self.config.model.arch}, "
            f"labels={self.labels}, backend={self.backend})"
        )

    def __init__(self, files: runs.RunFiles, model: nn.Module, backend: str = "torch"):
        self.path = files.path
        self.config = files.config
        self.tokenizer = files.tokenizer
        self.labels = files.labels
        self.model = model.eval()
        self.backend = backend  # "torch", or "onnx"/"onnx-int8": `model` is an OnnxClassifier

    @property
    def sigmoid(self) -> bool:
        return self.config.model.head == "sigmoid"

    def check_texts(self, texts: str | Sequence[str]) -> list[str]:
        """`texts` as a list; one clear error for input the model cannot take (`data.texts.check_texts`)."""
        return check_texts(texts, "classify", max_chars=self.config.data.max_chars)

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
        tokens = cast("list[str]", [self.tokenizer.id_to_token(i) for i in ids])  # this tokenizer's own ids: never None
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
    files = runs.open_run(path)
    if backend == "auto":
        if files.config.model.arch == "hf" and (files.path / INT8_FILE).is_file():
            backend = "onnx-int8"  # int8 only where its accuracy was measured: the pretrained encoders
        else:
            backend = "onnx" if (files.path / ONNX_FILE).is_file() else "torch"
    if backend == "torch":
        return ClassifierPipeline(files, _torch_model(files))
    name, flag = (ONNX_FILE, "") if backend == "onnx" else (INT8_FILE, " --quantize int8")
    if not (files.path / name).is_file():
        raise SeqlabError(f"run {files.path} has no {name}; write it with `seqlab export {files.path}{flag}`")
    return ClassifierPipeline(files, OnnxClassifier(files.path / name, labels=files.labels), backend)


def _torch_model(files: runs.RunFiles) -> nn.Module:
    pretrained = files.config.model.arch == "hf"
    if pretrained and not (files.path / runs.ENCODER / "config.json").is_file():
        raise SeqlabError(f"run {files.path} has no {runs.ENCODER}/config.json: the fine-tuned encoder is missing")
    encoder = str(files.path / runs.ENCODER) if pretrained else None
    model = classify.make_model(files.config, files.tokenizer, files.labels, encoder_source=encoder)
    runs.load_weights(model, files.path / runs.WEIGHTS, skip_prefix="encoder." if pretrained else None)
    return model.eval()


def evaluate(pipe: ClassifierPipeline, data: str, text_column: str | None = None, label_column: str | None = None) -> dict:
    """Accuracy, macro-F1, confusion matrix and sentences/s on a labelled dataset or file."""
    from seqlab.data.datasets import load_examples

    examples = load_examples(data, text_column=text_column, label_column=label_column, max_chars=pipe.config.data.max_chars)
    return {"data": data, **pipe.evaluate(examples)}


def report_attention(run_dir: Path, config: Any, metrics: dict, pipe: ClassifierPipeline | None = None) -> list[dict]:
    """The run report's attention map (`seqlab.report` draws it): what a transformer's last
    layer attends to in one held-out sentence, mean of its heads; other architectures have none."""
    if config.model.arch != "transformer":
        return []
    split = next((s for s in ("test", "valid") if isinstance(metrics.get(s), dict) and metrics[s].get("samples")), None)
    texts = [s["text"] for s in metrics[split]["samples"]] if split else []
    text = next(
        (t for t in texts if len(t.split()) <= 25), " ".join(texts[0].split()[:25]) if texts else "a gorgeous, witty film"
    )
    tokens, layers = (pipe if pipe is not None and pipe.backend == "torch" else load(run_dir, backend="torch")).attention(text)
    last = layers[-1].float().mean(dim=0)  # (T, T): each row one query's weights over the keys
    return [
        {
            "kind": "attention",
            "title": f"last layer, mean of {layers[-1].size(0)} heads",
            "weights": last.tolist(),
            "rows": tokens,
            "columns": tokens,
            "caption": f"{len(layers)} layer(s); {'a held-out' if texts else 'an example'} sentence: {text}",
        }
    ]
