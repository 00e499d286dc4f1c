"""The language-model pipelines behind `api.train` (task `lm`), `api.load_generator` and
`api.generate`: the life cycle of an `lm` run folder, and a loaded LM that generates text.

```
runs/<name>/
  config.yaml        task: lm, the resolved config
  tokenizer.json     the char/word/BPE vocabulary (arch hf: the pretrained model's tokenizer files)
  model.safetensors  the weights (arch hf: with config.json, written by save_pretrained, so
                     `AutoModelForCausalLM.from_pretrained(run)` loads the folder as it is)
  metrics.json       best val_loss, epochs; valid/test loss, perplexity, bits per character
  manifest.json      seed, versions, per-split characters/tokens and sha256, timings
  checkpoints/ logs/ as for every run (--resume, learning curves)
```

As for every run, the data is checked before the folder exists, a crash before the first
checkpoint removes the folder, and `model.safetensors` marks a finished run.
"""

from __future__ import annotations

import gc
import logging
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch import nn

from seqlab import decoding, runs
from seqlab.config import RunConfig
from seqlab.data.tokenize import load_tokenizer
from seqlab.errors import SeqlabError
from seqlab.tasks import lm

log = logging.getLogger("seqlab")


class GeneratorPipeline:
    """A language model and its tokenizer: prompts in, continuations out.

    Attributes:
        name: the run folder, built-in name, folder or hub id it was loaded from.
        context_length: the most positions the model takes (None: unlimited, an RNN).
    """

    def __init__(self, model: nn.Module, codec: lm.Codec, name: str, config: RunConfig | None = None):
        self.model = model.eval()
        self.codec = codec
        self.name = name
        self.config = config
        self.lm = decoding.as_incremental(self.model)
        self.context_length = self.lm.context_length
        self.truncated = 0  # prompts cut from the left in the last call

    # ----------------------------------------------------------------------------- prompts

    def encode_prompts(self, prompts: Sequence[str], max_new_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded (B, T) ids and mask; a prompt too long for the context loses its start."""
        if self.context_length is not None and max_new_tokens >= self.context_length:
            raise SeqlabError(f"max_new_tokens={max_new_tokens} does not fit the model's context of {self.context_length} tokens; "
                              f"ask for at most {self.context_length - 1}")
        encoded, self.truncated = [], 0
        for number, prompt in enumerate(prompts, 1):
            if not isinstance(prompt, str):
                raise SeqlabError(f"prompt {number} is {type(prompt).__name__}, not text")
            ids = self.codec.encode(prompt) if prompt else []
            if not ids:
                if self.codec.bos_id is None:
                    raise SeqlabError(f"prompt {number} is empty and {self.name} has no beginning-of-text token to start from; give some text")
                ids = [self.codec.bos_id]
            room = None if self.context_length is None else self.context_length - max_new_tokens
            if room is not None and len(ids) > room:
                log.warning("prompt %d has %d tokens; kept its last %d so that %d new tokens fit the context of %d",
                            number, len(ids), room, max_new_tokens, self.context_length)
                ids, self.truncated = ids[-room:], self.truncated + 1
            encoded.append(ids)
        if not encoded:
            raise SeqlabError("no prompt given")
        return decoding.left_pad(encoded, self.codec.pad_id)

    def settings(self, **kwargs) -> decoding.GenerationConfig:
        """Decoding settings, with this model's end-of-text and padding ids filled in."""
        kwargs.setdefault("eos_token_id", self.codec.eos_id)
        kwargs.setdefault("pad_token_id", self.codec.pad_id)
        return decoding.GenerationConfig.create(**kwargs)

    # ----------------------------------------------------------------------------- generation

    def generate(self, prompts: str | Sequence[str], **kwargs) -> list[str]:
        """Continue every prompt; keyword arguments are `decoding.GenerationConfig` fields
        (max_new_tokens, do_sample, temperature, top_k, top_p, repetition_penalty,
        no_repeat_ngram_size, num_beams, length_penalty, stop, seed).

        Returns:
            The new text of each prompt (without the prompt).
        """
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        config = self.settings(**kwargs)
        ids, mask = self.encode_prompts(prompts, config.max_new_tokens)
        with torch.inference_mode():
            new = decoding.generate(self.lm, ids, mask, config, decode=self.codec.decode)
        return [self.codec.decode(tokens) for tokens in new]

    def stream(self, prompt: str, **kwargs) -> Iterator[str]:
        """Continue one prompt, yielding text pieces as tokens are chosen (greedy or sampled)."""
        config = self.settings(**kwargs)
        ids, mask = self.encode_prompts([prompt], config.max_new_tokens)
        steps = decoding.stream(self.lm, ids, mask, config, decode=self.codec.decode)
        return self._pieces(steps, set(config.eos_ids))

    def _pieces(self, steps: Iterator[torch.Tensor], eos: set[int]) -> Iterator[str]:
        """Token ids → text pieces; each piece is the growth of the decoded text, so multi-token
        characters and the decoder's spacing come out right."""
        tokens: list[int] = []
        shown = ""
        with torch.inference_mode():
            for step in steps:
                token = int(step[0])
                if token in eos:
                    return
                tokens.append(token)
                text = self.codec.decode(tokens)
                if len(text) > len(shown) and not text.endswith("\ufffd"):  # wait out half a UTF-8 character
                    yield text[len(shown):]
                    shown = text

    def perplexity(self, text: str) -> dict:
        """Loss per token, perplexity and bits per character of `text` under this model."""
        if not isinstance(text, str) or not text.strip():
            raise SeqlabError("give some text to score")
        block = self.context_length or (self.config.tokenizer.max_length if self.config else 256)
        return lm.evaluate(self.model, self.codec.encode_stream(text), len(text), min(block, 1024))


def load_generator(spec: str | Path, dtype: str = "fp32", engine: str = "hf", compile: bool = False) -> GeneratorPipeline:
    """An `lm` run folder, a built-in causal LM (smollm2-135m), a transformers folder or a hub id.

    `engine="seqlab"` runs GPT-2 weights in seqlab's own GPT and Llama weights (SmolLM2) in
    seqlab's own Llama (same logits as transformers) instead of the transformers model.
    `compile=True` compiles seqlab's model with `torch.compile` (see `compiled`).
    """
    if engine not in ("hf", "seqlab"):
        raise SeqlabError(f"unknown engine {engine!r}; choose hf (transformers) or seqlab (seqlab's own GPT / Llama)")
    dtype = resolve_dtype(dtype)
    path = Path(spec)
    if (path / runs.CONFIG).is_file():
        pipeline = _load_run(path, dtype)
    else:
        model, codec = lm.load_pretrained_lm(str(spec))
        if engine == "seqlab":
            model = _as_seqlab_gpt(model, str(spec))
        pipeline = GeneratorPipeline(with_dtype(model, dtype), codec, str(spec))
    if compile:
        compiled(pipeline.model)
    return pipeline


def compiled(model: nn.Module) -> nn.Module:
    """seqlab's GPT or Llama with its `forward` compiled by `torch.compile` (dynamic shapes: the
    KV cache grows every step), in place. A 30-layer model at batch 1 spends most of a step on
    per-operation overhead, which the compiled graph removes; the first calls of each new input
    shape (the prompt, then single tokens) pay the compilation, minutes on a small CPU."""
    from seqlab.models.gpt import GPT
    from seqlab.models.llama import Llama

    if not isinstance(model, (GPT, Llama)):
        raise SeqlabError(f"compile works on seqlab's GPT and Llama; for a {type(model).__name__} use --engine seqlab "
                          "(GPT-2 and Llama weights) or a GPT run")
    # Guards run before every call; with dict tags Dynamo skips the checks of a module whose
    # attributes did not change since the last call (sound, not on by default): 0.62 → 0.26 ms
    # of a GPT-2-small step here. Read when the guards are built, at the first calls.
    torch._dynamo.config.use_recursive_dict_tags_for_guards = True
    model.forward = torch.compile(model.forward, dynamic=True)
    return model


def _as_seqlab_gpt(model: nn.Module, name: str) -> nn.Module:
    """A transformers GPT-2 → seqlab's GPT, a Llama (SmolLM2, ...) → seqlab's Llama, with the
    same weights."""
    from seqlab.models.gpt import GPT
    from seqlab.models.llama import Llama

    kind = type(model).__name__
    if kind == "GPT2LMHeadModel":
        return GPT.from_gpt2(model)
    if kind == "LlamaForCausalLM":
        try:
            return Llama.from_llama(model)
        except ValueError as error:
            raise SeqlabError(f"{name}: {error}") from None
    raise SeqlabError(f"{name} is a {kind}; seqlab's own engine runs GPT-2 and Llama weights, use --engine hf")


def _load_run(path: Path, dtype: str = "fp32") -> GeneratorPipeline:
    cfg = runs.finished_config(path, "lm", "text generation")
    if cfg.model.arch == "hf":
        model, codec = lm.load_pretrained_lm(str(path))
        return GeneratorPipeline(with_dtype(model, dtype), codec, str(path), cfg)
    tokenizer = load_tokenizer(path / runs.TOKENIZER)
    model = lm.build_lm(cfg, tokenizer.get_vocab_size())
    runs.load_weights(model, path / runs.WEIGHTS)
    return GeneratorPipeline(with_dtype(model, dtype), lm.Codec(tokenizer), str(path), cfg)


# --------------------------------------------------------------------------- weights for decoding

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
        from seqlab.train import bf16_supported

        # the fastest path within 1% of fp32's perplexity on SmolLM2 (`seqlab bench generate`);
        # without bf16 instructions bf16 is emulated and slow, and int8 can cost far more than 1%
        return "bf16-int8" if bf16_supported() else "fp32"
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
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"weight=int4 (groups of {self.GROUP}, {self.passes} pass{'es' if self.passes > 1 else ''})")


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
        from seqlab.train import bf16_supported

        weight = next(model.parameters(), None)
        return (torch.backends.mkldnn.is_available() and weight is not None and weight.device.type == "cpu"
                and (weight.dtype == torch.float32 or (weight.dtype == torch.bfloat16 and bf16_supported())))

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


def _tied_seqlab_lm(model: nn.Module) -> bool:
    """seqlab's GPT or Llama computing its logits from the token embedding (no `lm_head`)."""
    from seqlab.models.gpt import GPT
    from seqlab.models.llama import Llama

    return isinstance(model, (GPT, Llama)) and model.lm_head is None


def _own_memory(model: nn.Module, skip: set[int] = frozenset()) -> None:
    """Give every parameter and buffer (except those in `skip`, by id) memory of its own.
    Weights loaded from safetensors can be views of the memory-mapped file, and one small such
    tensor (a norm's gain) keeps the whole mapping, with every page a conversion has read,
    resident next to the converted copies."""
    for tensor in [*model.parameters(), *model.buffers()]:
        if id(tensor) not in skip:
            tensor.data = tensor.data.clone()


def _linears(model: nn.Module) -> list[tuple[nn.Module, str, nn.Linear]]:
    """(parent, attribute, layer) of every plain `nn.Linear`."""
    return [(parent, name, child) for parent in model.modules() for name, child in parent.named_children()
            if type(child) is nn.Linear]


def _linear_layers(model: nn.Module) -> None:
    """Make every matrix product of the model an `nn.Linear`, which quantisation replaces: a
    tied output layer that seqlab's GPT computes from the embedding matrix gets a layer sharing
    those weights, and GPT-2's `Conv1D` layers (weights stored transposed) become `nn.Linear`."""
    if _tied_seqlab_lm(model):
        embedding = model.token_embedding.weight
        model.lm_head = nn.Linear(embedding.size(1), embedding.size(0), bias=False)
        model.lm_head.weight = embedding
    try:
        from transformers.pytorch_utils import Conv1D
    except ImportError:
        return
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, Conv1D):
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
            raise SeqlabError(f"dtype int8 needs torch.ao.quantization, which torch {torch.__version__} no longer has; "
                              "use bf16-int8") from None
        return quantize_dynamic(model, {nn.Linear: per_channel_dynamic_qconfig}, inplace=True)


# --------------------------------------------------------------------------- training


def train_lm(cfg: RunConfig | None, *, resume: str | Path | None = None, progress: str | None = None) -> Path:
    """Train (or fine-tune, arch hf) a language model into a new run folder, or continue one.

    Returns:
        The run folder.
    """
    started = time.perf_counter()
    if resume is not None:
        run_dir = Path(resume)
        cfg = runs.resumable_config(run_dir, "lm")
    splits = lm.split_text(cfg)
    model, codec = _fresh_model(cfg, splits.train, run_dir if resume is not None else None)
    ids = {name: codec.encode_stream(getattr(splits, name)) for name in ("train", "valid", "test")}
    if resume is None:
        run_dir = runs.start_run(cfg)
    prepared = time.perf_counter()
    log.info("run folder %s: %s train / %s valid / %s test tokens", run_dir, *(f"{len(ids[n]):,}" for n in ("train", "valid", "test")))
    with runs.guard_new_run(run_dir, fresh=resume is None):
        if resume is None and not codec.pretrained:
            codec.tokenizer.save(str(run_dir / runs.TOKENIZER))  # saved first: --resume needs the same ids
        fitted = lm.fit_lm(cfg, model, ids["train"], ids["valid"], run_dir, resume=resume is not None, progress=progress)
        runs.raise_if_interrupted(fitted.result.interrupted, run_dir, "seqlab train")
        _write_finished_run(run_dir, cfg, splits, ids, codec, fitted, started, prepared)
        runs.finish_run(run_dir)  # last: complete.json marks the folder finished
    return run_dir


def _fresh_model(cfg: RunConfig, train_text: str, run_dir: Path | None) -> tuple[nn.Module, lm.Codec]:
    """The model before training: a pretrained causal LM (arch hf) or a seeded new one."""
    if cfg.model.arch == "hf":
        return lm.load_pretrained_lm(cfg.model.model)
    tokenizer = load_tokenizer(run_dir / runs.TOKENIZER) if run_dir else lm.learn_tokenizer(cfg, train_text)
    torch.manual_seed(cfg.train.seed)  # same initial weights for the same seed
    return lm.build_lm(cfg, tokenizer.get_vocab_size()), lm.Codec(tokenizer)


def _write_finished_run(run_dir: Path, cfg: RunConfig, splits: lm.TextSplits, ids: dict[str, torch.Tensor], codec: lm.Codec,
                        fitted: lm.FittedLM, started: float, prepared: float) -> None:
    block = cfg.tokenizer.max_length
    metrics = {"best_" + cfg.train.monitor: fitted.result.best_score, "epochs": fitted.result.epochs}
    for name in ("valid", "test"):
        if len(ids[name]) > 1:
            metrics[name] = lm.evaluate(fitted.model, ids[name], len(getattr(splits, name)), block)
    if codec.pretrained:
        _save_pretrained(fitted.model, codec.tokenizer, run_dir)
    else:
        runs.save_weights(fitted.model, run_dir / runs.WEIGHTS)
    runs.write_json(run_dir / runs.METRICS, metrics)
    data = {
        name: {"source": splits.sources[name], "characters": len(getattr(splits, name)), "tokens": len(ids[name]),
               "sha256": runs.data_hash([(getattr(splits, name), "")])}
        for name in ("train", "valid", "test")
    }
    parameters = sum(p.numel() for p in fitted.model.parameters())
    runs.write_json(run_dir / runs.MANIFEST, runs.manifest(cfg, data, parameters, started, prepared, fitted.result.seconds))


def _save_pretrained(model: nn.Module, tokenizer, run_dir: Path) -> None:
    """`save_pretrained` into a temporary folder, then move the files in, weights last (they
    mark the run finished)."""
    staging = run_dir / ".save_pretrained"
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    files = sorted(staging.iterdir(), key=lambda f: f.name == runs.WEIGHTS)
    for file in files:
        file.replace(run_dir / file.name)
    staging.rmdir()
