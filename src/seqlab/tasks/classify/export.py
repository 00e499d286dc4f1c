"""ONNX export of a classifier run, and the ONNX Runtime backend that `api.load` can use instead
of PyTorch.

    >>> from seqlab import api, export
    >>> export.export_onnx("runs/minilm", quantize="int8")   # runs/minilm/model.onnx, model.int8.onnx
    >>> api.load("runs/minilm", backend="onnx").predict(["a gorgeous, witty film"])

The graph contract (every exported file, every architecture):

    inputs   input_ids       (batch, sequence) int64
             attention_mask  (batch, sequence) int64, 1 = real token, 0 = padding
    output   logits          (batch, num_outputs) float32   (a tagger will add (batch, sequence, tags))

Both axes are dynamic. The mask is int64, not bool, because that is what Hugging Face tokenizers,
ONNX Runtime's BERT fusions and every other ONNX consumer of an encoder expect; the graph turns it
into seqlab's bool mask itself. The exporter is PyTorch's TorchScript-based one (`dynamo=False`):
it exports the recurrent models' packed sequences (`pack_padded_sequence` becomes the ONNX
LSTM/GRU/RNN `sequence_lens`), which the `torch.export`-based exporter cannot trace, and needs no
onnxscript.

`export_onnx` writes only after a parity check: on padded batches of several sizes and lengths,
the fp32 graph's logits must be within `PARITY_TOLERANCE` of PyTorch's. Pretrained (BERT-family)
encoders and seqlab's Transformer are also passed through ONNX Runtime's transformer optimizer
(fused Attention, EmbedLayerNormalization, SkipLayerNormalization, BiasGelu); an `hf` encoder is
traced with eager attention, whose graph the optimizer recognises (the SDPA graph it does not).

`quantize="int8"` adds `model.int8.onnx`: dynamic int8 quantization (int8 weights, per output
channel; activations quantized per batch at run time) of every MatMul, fused Attention, LSTM and
Conv, with the embeddings and the output layer kept fp32. A quantized model's outputs depend
slightly on which sentences share its batch, and no parity bound holds for them; see
benchmarks/minilm_inference.py for what it costs in accuracy (MiniLM on MR: within 0.5 point).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from seqlab import runs
from seqlab.errors import SeqlabError
from seqlab.tasks.classify.onnx_backend import INPUTS, INT8_FILE, ONNX_FILE, OnnxClassifier  # noqa: F401 (re-exported)

log = logging.getLogger("seqlab")

OPSET = 17
PARITY_TOLERANCE = 1e-4  # max |logit difference| allowed between the fp32 graph and PyTorch
# What each task's graph outputs, with its dynamic axes. A tagger adds
# "tag": {"logits": {0: "batch", 1: "sequence"}} and its own probe comparison; nothing else changes.
OUTPUT_AXES = {"classify": {"logits": {0: "batch"}}}
# Encoder families whose graphs ONNX Runtime's BERT optimizer fuses (transformers' model_type).
BERT_LIKE = {"bert", "roberta", "xlm-roberta", "camembert", "electra", "distilbert", "mpnet"}
QUANTIZED_OPS = ["MatMul", "Attention", "LSTM", "Conv"]  # embeddings (Gather) and the head stay fp32
GELU_OPS = {"Gelu", "BiasGelu", "FastGelu", "Erf"}


# --------------------------------------------------------------------------- export


class _LogitsGraph(nn.Module):
    """What gets traced: (input_ids, attention_mask int64) → logits, nothing else."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids, attention_mask.bool()).logits  # (B, C)


def export_onnx(run: str | Path, output: str | Path | None = None, quantize: str | None = None, optimize: bool = True) -> Path:
    """Write a classifier run as ONNX, after checking its logits against PyTorch's.

    Args:
        run: a finished classifier run folder.
        output: where to write: a `.onnx` file, or a folder (created if needed); default the run
            folder. The int8 file goes next to it as `<name>.int8.onnx`.
        quantize: None, or "int8" to also write the dynamically quantized model.
        optimize: apply ONNX Runtime's transformer fusions (hf encoders, seqlab's Transformer).

    Returns:
        The fp32 `.onnx` file.

    Raises:
        SeqlabError: not a finished classifier run, or the exported graph disagrees with PyTorch
            by more than `PARITY_TOLERANCE` (nothing is written then).
    """
    from seqlab.tasks.classify.pipeline import load as load_classifier

    if quantize not in (None, "int8"):
        raise SeqlabError(f"unknown quantization {quantize!r}; seqlab export writes fp32, or int8 with --quantize int8")
    task = runs.task_of(run) if Path(run).is_dir() else None
    if task is not None and task not in OUTPUT_AXES:
        raise SeqlabError(f"{run} is a {task} run; seqlab export writes ONNX for classifier runs only")
    pipe = load_classifier(run, backend="torch")
    target = _target(pipe.path, output)
    target.parent.mkdir(parents=True, exist_ok=True)
    model = pipe.model.eval()
    probes = probe_batches(pipe.tokenizer.get_vocab_size(), pipe.config.tokenizer.max_length)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as scratch_name:
        scratch = Path(scratch_name)
        plain = _trace(model, pipe.config, scratch / "plain.onnx")
        chosen, worst = plain, _parity(plain, model, probes)
        fused = _optimize(plain, model, pipe.config, scratch / "fused.onnx") if optimize else None
        if fused is not None:
            fused_worst = _parity(fused, model, probes)
            if fused_worst <= PARITY_TOLERANCE:
                chosen, worst = fused, fused_worst
            else:
                log.warning("the optimized graph differs from PyTorch by %.1e; writing the unoptimized one", fused_worst)
        if worst > PARITY_TOLERANCE:
            raise SeqlabError(
                f"the exported graph's logits differ from PyTorch's by {worst:.1e} (> {PARITY_TOLERANCE:g}); nothing was written"
            )
        _stamp(chosen, pipe, quantization="none", parity=worst)
        log.info("exported %s: max |logit difference| to PyTorch %.1e on %d padded batches", target, worst, len(probes))
        if quantize == "int8":
            quantized = scratch / "int8.onnx"
            quantize_int8(chosen, quantized)
            _check_quantized(quantized, model, probes)
            _stamp(quantized, pipe, quantization="int8")
            os.replace(quantized, int8_path(target))
            log.info("quantized %s (int8 weights, dynamic int8 activations)", int8_path(target))
        os.replace(chosen, target)
    return target


def int8_path(fp32: Path) -> Path:
    """model.onnx → model.int8.onnx."""
    return fp32.with_name(fp32.stem + ".int8.onnx")


def _target(run_dir: Path, output: str | Path | None) -> Path:
    if output is None:
        return run_dir / ONNX_FILE
    output = Path(output)
    return output if output.suffix == ".onnx" else output / ONNX_FILE


def _trace(model: nn.Module, cfg, path: Path) -> Path:
    """torch.onnx (TorchScript exporter) with dynamic batch and sequence axes."""
    max_length = cfg.tokenizer.max_length
    positions = getattr(getattr(model, "encoder", None), "positions", None)
    if positions is not None and hasattr(positions, "table"):
        positions(max_length + 1)  # sinusoids: bake a table long enough for every input (+ [CLS])
    restore = None
    if cfg.model.arch == "hf":  # eager attention: the graph ONNX Runtime's optimizer fuses into Attention
        encoder = cast(Any, model).encoder  # a transformers model
        restore = encoder.config._attn_implementation
        encoder.set_attn_implementation("eager")
    ids = torch.tensor([[5, 6, 7, 8], [5, 6, 0, 0]]) % max(model_vocab(model), 1)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    axes = {name: {0: "batch", 1: "sequence"} for name in INPUTS} | OUTPUT_AXES[cfg.task]
    try:
        with _quiet(), _native_stderr_muted(), torch.no_grad():
            torch.onnx.export(
                _LogitsGraph(model).eval(),
                (ids, mask),
                str(path),
                dynamo=False,
                opset_version=OPSET,
                input_names=list(INPUTS),
                output_names=list(OUTPUT_AXES[cfg.task]),
                dynamic_axes=axes,
            )
    except Exception as err:  # the exporter raises many types; one line names the model
        raise SeqlabError(f"could not export the {cfg.model.arch} model to ONNX ({str(err).splitlines()[0][:200]})") from None
    finally:
        if restore is not None:
            cast(Any, model).encoder.set_attn_implementation(restore)
        model.eval()
    return path


def model_vocab(model: nn.Module) -> int:
    """Rows of the model's token embedding (its valid ids)."""
    duck: Any = model  # an hf encoder (get_input_embeddings) or seqlab's own embedding
    if hasattr(duck, "encoder") and hasattr(duck.encoder, "get_input_embeddings"):
        return duck.encoder.get_input_embeddings().num_embeddings
    embedding = getattr(duck, "embedding", None) or duck.encoder.embedding
    return embedding.num_embeddings


def _optimize(plain: Path, model: nn.Module, cfg, path: Path) -> Path | None:
    """ONNX Runtime's BERT fusions for a BERT-family hf encoder or seqlab's Transformer; None
    for everything else (ONNX Runtime's own graph optimizations still run at load time)."""
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    if cfg.model.arch == "hf":
        config = cast(Any, model).encoder.config  # a transformers config
        if config.model_type not in BERT_LIKE:
            return None
        heads, hidden = config.num_attention_heads, config.hidden_size
    elif cfg.model.arch == "transformer":
        heads, hidden = cfg.model.num_heads, cfg.model.d_model
    else:
        return None
    options = FusionOptions("bert")
    options.use_raw_attention_mask(True)  # any 0/1 mask, not only right padding
    with _quiet():
        optimized = optimize_model(
            str(plain), model_type="bert", num_heads=heads, hidden_size=hidden, optimization_options=options
        )
        optimized.save_model_to_file(str(path))
        fused = {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}
    log.debug("ONNX Runtime fusions: %s", fused)
    return path


def probe_batches(vocab_size: int, max_length: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Right-padded (input_ids, attention_mask) batches of several sizes and lengths, up to
    `max_length`: what the parity checks compare on."""
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for size, length in [(1, 1), (2, 5), (5, 33), (8, max_length)]:
        length = min(length, max_length)
        ids = torch.randint(min(5, vocab_size - 1), vocab_size, (size, length), generator=generator)
        lengths = torch.randint(1, length + 1, (size,), generator=generator)
        lengths[0] = length
        mask = torch.arange(length)[None, :] < lengths[:, None]
        batches.append((ids.masked_fill(~mask, 0), mask.long()))
    return batches


def _parity(path: Path, model: nn.Module, probes: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Max |logit difference| between ONNX Runtime and PyTorch over the probe batches."""
    session = OnnxClassifier(path)
    worst = 0.0
    with torch.inference_mode():
        for ids, mask in probes:
            expected = model(ids, mask.bool()).logits
            worst = max(worst, float((session(ids, mask).logits - expected).abs().max()))
    return worst


def _check_quantized(path: Path, model: nn.Module, probes: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> None:
    """An int8 graph has no parity bound, but must give finite logits; log how close it is."""
    session = OnnxClassifier(path)
    agree = total = 0
    worst = 0.0
    with torch.inference_mode():
        for ids, mask in probes:
            expected = model(ids, mask.bool()).logits
            got = session(ids, mask).logits
            if not torch.isfinite(got).all():
                raise SeqlabError("the int8 model gives non-finite logits; nothing was written")
            worst = max(worst, float((got - expected).abs().max()))
            agree += (
                int((got.argmax(-1) == expected.argmax(-1)).sum())
                if got.size(-1) > 1
                else int(((got > 0) == (expected > 0)).sum())
            )
            total += len(ids)
    log.info(
        "int8 against fp32 on %d random probe rows: max |logit difference| %.3f, same argmax %d/%d", total, worst, agree, total
    )


def quantize_int8(source: str | Path, target: str | Path, keep_ffn_output_fp32: bool = False) -> None:
    """Dynamic int8 quantization of an fp32 graph (ONNX Runtime's `quantize_dynamic`): int8
    weights per output channel, activations quantized per batch at run time.

    The embeddings and the output layer stay fp32 (no speed to gain there). With
    `keep_ffn_output_fp32`, every MatMul that reads a GELU's output (the second linear layer of
    each feed-forward block, whose input has the widest range) stays fp32 too: slower, closer to
    fp32 (see benchmarks/minilm_inference.py).
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(source), load_external_data=False).graph
    exclude = head_nodes(graph) + (gelu_fed_matmuls(graph) if keep_ffn_output_fp32 else [])
    with _quiet():
        quantize_dynamic(
            str(source),
            str(target),
            op_types_to_quantize=QUANTIZED_OPS,
            per_channel=True,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=exclude,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )


def head_nodes(graph) -> list[str]:
    """The MatMul/Gemm nodes that compute a graph output (through at most one Add): the head."""
    producers = {out: node for node in graph.node for out in node.output}
    heads = []
    for output in graph.output:
        node = producers.get(output.name)
        if node is not None and node.op_type == "Add":
            node = next((producers[i] for i in node.input if i in producers and producers[i].op_type in ("MatMul", "Gemm")), node)
        if node is not None and node.op_type in ("MatMul", "Gemm"):
            heads.append(node.name)
            if node.op_type == "Gemm":
                heads.append(node.name + "_MatMul")  # the quantizer first splits a Gemm into <name>_MatMul + <name>_Add
    return heads


def gelu_fed_matmuls(graph) -> list[str]:
    """MatMul nodes whose input comes from a GELU (fused, or its erf form through a few Mul/Add)."""
    producers = {out: node for node in graph.node for out in node.output}

    def reads_gelu(name: str, depth: int) -> bool:
        node = producers.get(name)
        if node is None or depth < 0:
            return False
        if node.op_type in GELU_OPS:
            return True
        return node.op_type in ("Mul", "Add", "Div", "Cast") and any(reads_gelu(i, depth - 1) for i in node.input)

    return [node.name for node in graph.node if node.op_type == "MatMul" and reads_gelu(node.input[0], 3)]


def _stamp(path: Path, pipe, quantization: str, parity: float | None = None) -> None:
    """Record in the file's metadata what it is, so it can be recognised without its run."""
    import onnx

    model = onnx.load(str(path))
    meta = {
        "seqlab.version": metadata.version("seqlab"),
        "seqlab.task": pipe.config.task,
        "seqlab.arch": pipe.config.model.arch,
        "seqlab.labels": json.dumps(pipe.labels),
        "seqlab.head": pipe.config.model.head,
        "seqlab.quantization": quantization,
        "seqlab.inputs": "input_ids int64 (B,T); attention_mask int64 (B,T), 1 = real token",
    }
    if parity is not None:
        meta["seqlab.parity_max_abs_diff"] = f"{parity:.3e}"
    onnx.helper.set_model_props(model, meta)
    onnx.save(model, str(path))


@contextmanager
def _quiet() -> Iterator[None]:
    """The exporter's and quantizer's advice (tracer, deprecation and root-logger warnings) is
    about their internals, not the user's model."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            yield
        finally:
            logging.disable(logging.NOTSET)


@contextmanager
def _native_stderr_muted() -> Iterator[None]:
    """The TorchScript exporter prints C++ warnings about packed sequences' shape inference
    ("prim::PackPadded") straight to file descriptor 2; the parity check is what tells whether
    the graph is right. Errors still arrive as Python exceptions."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
