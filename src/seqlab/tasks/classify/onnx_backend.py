"""The ONNX Runtime backend of a classifier run: what `seqlab.load(run, backend="onnx")` opens.

Kept apart from `export` (which writes the graphs and imports the PyTorch pipeline), so loading
an exported graph imports neither the exporter nor the training code.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from seqlab.errors import SeqlabError
from seqlab.models.outputs import ClassifierOutput

ONNX_FILE, INT8_FILE = "model.onnx", "model.int8.onnx"
INPUTS = ("input_ids", "attention_mask")


class OnnxClassifier(nn.Module):
    """An exported classifier run by ONNX Runtime (CPU), behind the classifier interface:
    `model(input_ids (B, T), attention_mask (B, T)) → ClassifierOutput(logits (B, C))`, so
    `classify.predict_proba` and `evaluate_examples` use it unchanged. It has no parameters
    and no attention weights.

    Args:
        path: an `.onnx` file written by `export_onnx`.
        threads: ONNX Runtime's intra-op threads; default `torch.get_num_threads()`, so both
            backends use the same cores.
        labels: the run's label names; a file exported from a run with other labels is refused.
    """

    def __init__(self, path: str | Path, threads: int | None = None, labels: Sequence[str] | None = None):
        super().__init__()
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        self.path = Path(path)
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime's own error types
            raise SeqlabError(
                f"{path} could not be opened by ONNX Runtime ({str(err).splitlines()[0][:200]}); "
                f"write it again with `seqlab export`"
            ) from None
        names = [i.name for i in self.session.get_inputs()]
        if names != list(INPUTS):
            raise SeqlabError(f"{path} takes inputs {names}, not {list(INPUTS)}: it was not written by seqlab export")
        self.metadata = self.session.get_modelmeta().custom_metadata_map
        exported = json.loads(self.metadata.get("seqlab.labels", "null"))
        if labels is not None and exported is not None and exported != list(labels):
            raise SeqlabError(
                f"{path} was exported from a run with labels {exported}, not {list(labels)}; "
                f"export this run again with `seqlab export`"
            )

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, need_weights: bool = False) -> ClassifierOutput:
        """input_ids, attention_mask (bool or int): (B, T) → logits (B, C)."""
        if need_weights:
            raise SeqlabError("attention weights need the PyTorch model; load the run with backend='torch'")
        feeds = {
            "input_ids": np.ascontiguousarray(input_ids.numpy(), dtype=np.int64),
            "attention_mask": np.ascontiguousarray(attention_mask.numpy(), dtype=np.int64),
        }
        (logits,) = self.session.run(["logits"], feeds)
        return ClassifierOutput(torch.from_numpy(logits))
