"""Weights converted for decoding (`--dtype`): float32/bfloat16 in oneDNN's blocked layout
(`PackedLinear`), weight-only int8 (`Int8Linear`) and int4 (`Int4Linear`) quantisation, dynamic
int8. `with_dtype` converts a model in place; `generation` calls it when it loads an LM.
Inference only: converted models are not trained or saved as runs."""

from __future__ import annotations

import gc
import sys
from typing import TYPE_CHECKING, TypeGuard

import torch
from torch import nn

from seqlab import hardware
from seqlab.errors import SeqlabError

if TYPE_CHECKING:
    from seqlab.models.gpt import GPT
    from seqlab.models.llama import Llama


DTYPES = {
    "fp32": "float32 weights, the reference numerics",
    "bf16": "bfloat16 weights and activations (CPUs with bf16 instructions, GPUs)",
    "int8": "int8 weights and int8 activations (dynamic quantisation of the linear layers): fastest, "
    "but models with outlier activations (SmolLM2: perplexity +14% and more) lose accuracy",
    "bf16-int8": "int8 weights (weight-only, one scale per output) with bfloat16 activations",
    "bf16-int4": "int4 weights (weight-only, groups of 32 with a step and an offset, llama.cpp's Q4_1 "
    "layout; the output layer in two 4-bit passes) with bfloat16 activations: the fewest bytes per step",
    "auto": "bf16-int8 where the CPU has bf16 instructions, else fp32",
}


def resolve_dtype(dtype: str) -> str:
    """`dtype` checked against `DTYPES`, "auto" replaced by this machine's choice."""
    if dtype not in DTYPES:
        raise SeqlabError(f"unknown dtype {dtype!r}; choose {', '.join(DTYPES)}")
    if dtype == "auto":
        # the fastest path within 1% of fp32's perplexity on SmolLM2 (`seqlab bench generate`);
        # without bf16 instructions bf16 is emulated and slow, and int8 can cost far more than 1%
        return "bf16-int8" if hardware.bf16_supported() else "fp32"
    return dtype


def with_dtype(model: nn.Module, dtype: str) -> nn.Module:
    """The model in eval mode with its weights converted for decoding (see `DTYPES`), in place.

    Quantised models are for inference only (not for training or saving as a run). The token
    embedding keeps the activations' dtype, since a lookup reads one row per token; an output
    layer tied to it (GPT-2, SmolLM2, seqlab's GPT) gets a quantised copy of its own.
    """
    dtype = resolve_dtype(dtype)
    model.eval()
    if dtype == "fp32":
        _packed_or_column_major(model.float())
    elif dtype == "bf16":
        _packed_or_column_major(model.to(torch.bfloat16))
    else:
        _linear_layers(model)
        if dtype == "int8":
            _own_memory(_quantize_dynamic(model.float()))
        elif dtype == "bf16-int4":
            output = getattr(model, "lm_head", None)
            for parent, name, layer in _linears(model):
                # The output layer gets two 4-bit passes (256 levels per group): one pass cost
                # SmolLM2 +3% perplexity there (its embedding is not 4-bit).
                if Int4Linear.fits(layer):
                    setattr(parent, name, Int4Linear(layer, passes=2 if layer is output else 1))
                elif layer is output:
                    setattr(parent, name, Int8Linear(layer))
            model.to(torch.bfloat16)
            _own_memory(model)
        else:
            model.to(torch.bfloat16)
            for parent, name, layer in _linears(model):
                setattr(parent, name, Int8Linear(layer))
    gc.collect()  # the replaced layers sit in reference cycles: free their float32 weights now
    return model


class Int8Linear(nn.Module):
    """A linear layer with weight-only int8 quantisation: y = x (q · s)ᵀ + b, with q the int8
    weights (out, in), each row rounded to 255 levels, and s one scale per output row
    (max |w| / 127). Activations stay bfloat16; the matrix-vector product of a decoding step
    reads a quarter of the float32 bytes, and memory bandwidth is what bounds it."""

    weight: torch.Tensor  # buffers registered in __init__
    scale: torch.Tensor
    bias: torch.Tensor | None

    def __init__(self, linear: nn.Linear):
        super().__init__()
        weight = linear.weight.detach().float()
        scale = weight.abs().amax(dim=1).clamp_min(1e-12) / 127  # (out,)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("weight", (weight / scale[:, None]).round().clamp(-127, 127).to(torch.int8))
        self.register_buffer("scale", scale.to(torch.bfloat16))
        bias = linear.bias
        self.register_buffer("bias", None if bias is None else bias.detach().to(torch.bfloat16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in) → (..., out) in x's dtype; bfloat16 input takes the fast kernel."""
        flat = x.reshape(-1, self.in_features).to(torch.bfloat16)
        out = torch._weight_int8pack_mm(flat, self.weight, self.scale)  # (N, out)
        if self.bias is not None:
            out = out + self.bias
        return out.view(*x.shape[:-1], self.out_features).to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, weight=int8"


class Int4Linear(nn.Module):
    """A linear layer with weight-only int4 quantisation in groups: each run of `GROUP` input
    weights of an output row keeps 16 levels from its minimum to its maximum, w ≈ low + q·step
    (q in 0..15), the layout of llama.cpp's Q4_1. Weights that already are Q4_1 (SmolLM2's pinned
    GGUF) keep their levels; the step and offset are stored in bfloat16, as the kernel wants.
    Activations are bfloat16: PyTorch's packed int4 CPU kernel (`_weight_int4pack_mm_for_cpu`)
    is vectorised for bfloat16 only (float32 input runs ~30× slower here). A decoding step reads
    an eighth of the float32 bytes.

    `passes=2` quantises what the first pass missed (w − its 4-bit copy) in a second 4-bit pass
    and sums both products: 256 levels per group of 32, finer than int8 with one scale per row,
    at twice the int4 time, which is still ~3× faster than PyTorch's int8 weight-only kernel on
    an output layer here (1.5 vs 4.7 ms for SmolLM2's 49,152 × 576)."""

    GROUP = 32

    @classmethod
    def fits(cls, linear: nn.Linear) -> bool:
        """The packed kernel needs whole groups along the input."""
        return linear.in_features % cls.GROUP == 0

    def __init__(self, linear: nn.Linear, passes: int = 1):
        super().__init__()
        weight = linear.weight.detach().float()
        self.in_features, self.out_features, self.passes = linear.in_features, linear.out_features, passes
        padded = -(-self.out_features // 16) * 16  # the kernel packs output rows in sixteens
        rest = torch.cat([weight, weight.new_zeros(padded - self.out_features, self.in_features)])
        for index in range(passes):
            packed, scale_zero, approximation = self._quantize(rest)
            self.register_buffer(f"weight{index}", packed)
            self.register_buffer(f"scale_zero{index}", scale_zero)
            rest = rest - approximation  # what the next pass quantises
        bias = linear.bias
        self.register_buffer("bias", None if bias is None else bias.detach().to(torch.bfloat16))

    def _quantize(self, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(out, in) float32 → (packed levels, scale/zero (in/GROUP, out, 2) bfloat16, the
        weights they stand for, (out, in) float32)."""
        groups = weight.view(weight.size(0), self.in_features // self.GROUP, self.GROUP)
        low, high = groups.amin(-1, keepdim=True), groups.amax(-1, keepdim=True)
        step = ((high - low) / 15).clamp_min(1e-12)
        levels = ((groups - low) / step).round().clamp(0, 15)
        # the kernel computes (q - 8)·scale + zero, so zero = low + 8·step, both in bfloat16
        scale, zero = step.to(torch.bfloat16), (low + 8 * step).to(torch.bfloat16)
        approximation = ((levels - 8) * scale.float() + zero.float()).view_as(weight)
        packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(levels.to(torch.int32).view_as(weight), 1)
        return packed, torch.cat([scale, zero], -1).transpose(0, 1).contiguous(), approximation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in) → (..., out), in x's dtype (computed in bfloat16)."""
        flat = x.reshape(-1, self.in_features).to(torch.bfloat16)
        out = torch.ops.aten._weight_int4pack_mm_for_cpu(flat, self.weight0, self.GROUP, self.scale_zero0)
        if self.passes == 2:
            out = out + torch.ops.aten._weight_int4pack_mm_for_cpu(flat, self.weight1, self.GROUP, self.scale_zero1)
        out = out[:, : self.out_features]
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*x.shape[:-1], self.out_features).to(x.dtype)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"weight=int4 (groups of {self.GROUP}, {self.passes} pass{'es' if self.passes > 1 else ''})"
        )


# oneDNN's linear on a weight reordered once into its blocked layout: an operator of seqlab's
# own, so that torch.compile calls it as it is (inductor cannot lower the oneDNN operator on a
# weight that is an input rather than a frozen constant).
torch.library.define("seqlab::packed_linear", "(Tensor x, Tensor packed, Tensor? bias, int out_features) -> Tensor")


@torch.library.impl("seqlab::packed_linear", "CompositeExplicitAutograd")
def _packed_linear(x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None, out_features: int) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")


@torch.library.register_fake("seqlab::packed_linear")
def _packed_linear_shape(x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None, out_features: int) -> torch.Tensor:
    return x.new_empty(x.size(0), out_features)


class PackedLinear(nn.Module):
    """A linear layer whose weight oneDNN has reordered once into its blocked layout, same
    values and dtype (float32 or bfloat16). At batch 1 a decoding step multiplies one vector by
    each matrix, and oneDNN streams its own layout from memory with both cores where PyTorch's
    default kernel keeps to one: GPT-2 small's weights in 18 ms instead of 24–36 here (float32).
    Only the order of the summations changes, so logits agree to rounding. Inference only."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.packed = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach().contiguous(), 1)
        bias = linear.bias
        self.bias = None if bias is None else bias.detach().clone()

    @staticmethod
    def available(model: nn.Module) -> bool:
        """oneDNN is built in, the model is on the CPU, and bfloat16 weights have the CPU's
        bf16 instructions (oneDNN would emulate them)."""
        weight = next(model.parameters(), None)
        return (
            torch.backends.mkldnn.is_available()
            and weight is not None
            and weight.device.type == "cpu"
            and (weight.dtype == torch.float32 or (weight.dtype == torch.bfloat16 and hardware.bf16_supported()))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in) → (..., out), in x's dtype (the weight's)."""
        out = torch.ops.seqlab.packed_linear(x.reshape(-1, self.in_features), self.packed, self.bias, self.out_features)
        return out.view(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, weight=oneDNN blocked"


def _packed_or_column_major(model: nn.Module) -> nn.Module:
    """Every matrix product of the model as a `PackedLinear` where oneDNN can run it (the tied
    output layer gets a packed copy: the embedding keeps its rows for the lookups), else the
    weights stored column-major."""
    if not PackedLinear.available(model):
        return _column_major(model)
    _linear_layers(model)
    for parent, name, layer in _linears(model):
        setattr(parent, name, PackedLinear(layer))
    _own_memory(model)
    return model


def _column_major(model: nn.Module) -> nn.Module:
    """Store every linear layer's weight, and the embedding seqlab's GPT uses as its output
    layer, transposed in memory with the same shape and values (`w.t().contiguous().t()`): a
    decoding step multiplies one vector by each matrix, and the float32 kernel streams an
    (in, out) layout markedly faster (about 2× on GPT-2's 50257 × 768 output layer here).
    Only the order of the summations changes, so logits agree to rounding."""
    weights = [layer.weight for _, _, layer in _linears(model)]
    if _tied_seqlab_lm(model):
        weights.append(model.token_embedding.weight)
    for weight in {id(w): w for w in weights}.values():  # a tied weight once
        weight.data = weight.data.t().contiguous().t()
    _own_memory(model, skip={id(w) for w in weights})
    return model


def _tied_seqlab_lm(model: nn.Module) -> TypeGuard[GPT | Llama]:
    """seqlab's GPT or Llama computing its logits from the token embedding (no `lm_head`)."""
    from seqlab.models.gpt import GPT
    from seqlab.models.llama import Llama

    return isinstance(model, (GPT, Llama)) and model.lm_head is None


def _own_memory(model: nn.Module, skip: set[int] | frozenset[int] = frozenset()) -> None:
    """Give every parameter and buffer (except those in `skip`, by id) memory of its own.
    Weights loaded from safetensors can be views of the memory-mapped file, and one small such
    tensor (a norm's gain) keeps the whole mapping, with every page a conversion has read,
    resident next to the converted copies."""
    for tensor in [*model.parameters(), *model.buffers()]:
        if id(tensor) not in skip:
            tensor.data = tensor.data.clone()


def _linears(model: nn.Module) -> list[tuple[nn.Module, str, nn.Linear]]:
    """(parent, attribute, layer) of every plain `nn.Linear`."""
    return [
        (parent, name, child) for parent in model.modules() for name, child in parent.named_children() if type(child) is nn.Linear
    ]


def _linear_layers(model: nn.Module) -> None:
    """Make every matrix product of the model an `nn.Linear`, which quantisation replaces: a
    tied output layer that seqlab's GPT computes from the embedding matrix gets a layer sharing
    those weights, and GPT-2's `Conv1D` layers (weights stored transposed) become `nn.Linear`."""
    if _tied_seqlab_lm(model):
        embedding = model.token_embedding.weight
        model.lm_head = nn.Linear(embedding.size(1), embedding.size(0), bias=False)
        model.lm_head.weight = embedding
    # A Conv1D exists only once transformers has imported it: a seqlab model needs no transformers import.
    pytorch_utils = sys.modules.get("transformers.pytorch_utils")
    if pytorch_utils is None:
        return
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, pytorch_utils.Conv1D):
                linear = nn.Linear(child.weight.size(0), child.weight.size(1))
                linear.weight = nn.Parameter(child.weight.detach().t().contiguous())
                linear.bias = child.bias
                setattr(parent, name, linear)


def _quantize_dynamic(model: nn.Module) -> nn.Module:
    """PyTorch's dynamic quantisation of every `nn.Linear`: int8 weights with one scale per
    output channel; each call quantises its input on the fly and multiplies in int8."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization announces its move to torchao
        try:
            from torch.ao.quantization import (
                per_channel_dynamic_qconfig,
                quantize_dynamic,
            )
        except ImportError:
            raise SeqlabError(
                f"dtype int8 needs torch.ao.quantization, which torch {torch.__version__} no longer has; use bf16-int8"
            ) from None
        return quantize_dynamic(model, {nn.Linear: per_channel_dynamic_qconfig}, inplace=True)
