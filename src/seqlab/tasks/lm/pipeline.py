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

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from seqlab import decoding, runs
from seqlab.config import RunConfig
from seqlab.data.tokenize import load_tokenizer
from seqlab.errors import SeqlabError
from seqlab.tasks.lm import inference as lm
from seqlab.tasks.lm.quantize import resolve_dtype, with_dtype

log = logging.getLogger("seqlab")


class GeneratorPipeline:
    """A language model and its tokenizer: prompts in, continuations out.

    Attributes:
        name: the run folder, built-in name, folder or hub id it was loaded from.
        context_length: the most positions the model takes (None: unlimited, an RNN).
    """

    task = "lm"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """`generate`: every pipeline is callable."""
        return self.generate(*args, **kwargs)

    def predict(self, *args: Any, **kwargs: Any) -> Any:
        """`generate`, under the name every pipeline shares."""
        return self.generate(*args, **kwargs)

    def __repr__(self) -> str:
        return f"GeneratorPipeline(task=lm, model={self.name!r}, arch={self.config.model.arch if self.config else 'pretrained'}, context={self.context_length})"

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
        return decoding.left_pad(self.prompt_ids(prompts, max_new_tokens), self.codec.pad_id)

    def prompt_ids(self, prompts: Sequence[str], max_new_tokens: int) -> list[list[int]]:
        """Each prompt's token ids (a beginning-of-text token for an empty one); a prompt too long
        for the context with `max_new_tokens` more loses its start."""
        if self.context_length is not None and max_new_tokens >= self.context_length:
            raise SeqlabError(
                f"max_new_tokens={max_new_tokens} does not fit the model's context of {self.context_length} tokens; "
                f"ask for at most {self.context_length - 1}"
            )
        encoded, self.truncated = [], 0
        for number, prompt in enumerate(prompts, 1):
            if not isinstance(prompt, str):
                raise SeqlabError(f"prompt {number} is {type(prompt).__name__}, not text")
            ids = self.codec.encode(prompt) if prompt else []
            if not ids:
                if self.codec.bos_id is None:
                    raise SeqlabError(
                        f"prompt {number} is empty and {self.name} has no beginning-of-text token to start from; give some text"
                    )
                ids = [self.codec.bos_id]
            room = None if self.context_length is None else self.context_length - max_new_tokens
            if room is not None and len(ids) > room:
                log.warning(
                    "prompt %d has %d tokens; kept its last %d so that %d new tokens fit the context of %d",
                    number,
                    len(ids),
                    room,
                    max_new_tokens,
                    self.context_length,
                )
                ids, self.truncated = ids[-room:], self.truncated + 1
            encoded.append(ids)
        if not encoded:
            raise SeqlabError("no prompt given")
        return encoded

    def settings(self, **kwargs) -> decoding.GenerationConfig:
        """Decoding settings, with this model's end-of-text and padding ids filled in."""
        kwargs.setdefault("eos_token_id", self.codec.eos_id)
        kwargs.setdefault("pad_token_id", self.codec.pad_id)
        return decoding.GenerationConfig.create(**kwargs)

    # ----------------------------------------------------------------------------- generation

    def generate(self, prompts: str | Sequence[str], batch_size: int | None = None, **kwargs) -> list[str]:
        """Continue every prompt; keyword arguments are `decoding.GenerationConfig` fields
        (max_new_tokens, do_sample, temperature, top_k, top_p, repetition_penalty,
        no_repeat_ngram_size, num_beams, length_penalty, stop, seed).

        Args:
            batch_size: prompts decoded together (None: all of them). Each batch is left-padded;
                a row that ends (eos, a stop string) stops while the others go on. Prompts of
                similar length share a batch (less padding); greedy and beam search give each
                prompt the text it gets alone. With sampling and a seed, batch k draws from
                seed + k.

        Returns:
            The new text of each prompt (without the prompt), in the order of `prompts`.
        """
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        config = self.settings(**kwargs)
        if batch_size is not None and batch_size < 1:
            raise SeqlabError(f"batch_size must be at least 1, got {batch_size}")
        encoded = self.prompt_ids(prompts, config.max_new_tokens)
        size = min(batch_size or len(encoded), len(encoded))
        order = list(range(len(encoded)))
        if size < len(encoded):
            order.sort(key=lambda i: len(encoded[i]))
        texts: list[str] = [""] * len(encoded)
        for number, start in enumerate(range(0, len(order), size)):
            chosen = order[start : start + size]
            ids, mask = decoding.left_pad([encoded[i] for i in chosen], self.codec.pad_id)
            settings = config if not number or config.seed is None else config.model_copy(update={"seed": config.seed + number})
            with torch.inference_mode():
                new = decoding.generate(self.lm, ids, mask, settings, decode=self.codec.decode)
            for i, tokens in zip(chosen, new):
                texts[i] = self.codec.decode(tokens)
        return texts

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
                    yield text[len(shown) :]
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
        raise SeqlabError(
            f"compile works on seqlab's GPT and Llama; for a {type(model).__name__} use --engine seqlab "
            "(GPT-2 and Llama weights) or a GPT run"
        )
    # Guards run before every call; with dict tags Dynamo skips the checks of a module whose
    # attributes did not change since the last call (sound, not on by default): 0.62 → 0.26 ms
    # of a GPT-2-small step here. Read when the guards are built, at the first calls.
    torch._dynamo.config.use_recursive_dict_tags_for_guards = True
    model.forward = torch.compile(model.forward, dynamic=True)  # type: ignore[method-assign]  # torch.compile's documented way to compile a module's forward
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


load = load_generator  # (the registry's name for a task's loader)


def evaluate(pipe: GeneratorPipeline, data: str) -> dict:
    """Loss, perplexity and bits per character on a text file or built-in corpus."""
    from seqlab.tasks.lm.inference import load_text

    return {"data": data, **pipe.perplexity(load_text(data))}
