"""seqlab's Llama (models/llama.py) against transformers, and the int4 weight-only layer."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM

from seqlab import decoding
from seqlab.errors import SeqlabError
from seqlab.models.gpt import KVCache
from seqlab.models.llama import Llama
from seqlab.tasks.lm import pipeline as generation
from seqlab.tasks.lm.quantize import Int4Linear


def _hf_llama(**overrides) -> LlamaForCausalLM:
    torch.manual_seed(0)
    settings = dict(
        vocab_size=97,
        hidden_size=48,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=6,
        num_key_value_heads=2,
        max_position_embeddings=64,
        rope_theta=50000.0,
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM(LlamaConfig(**{**settings, **overrides})).eval()


@pytest.mark.parametrize("tied", [True, False])
def test_same_logits_as_transformers(tied):
    hf = _hf_llama(tie_word_embeddings=tied)
    model = Llama.from_llama(hf)
    ids = torch.randint(0, 97, (2, 12))
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[0, :4] = 0  # a left-padded row
    positions = (mask.cumsum(-1) - 1).clamp_min(0)
    with torch.no_grad():
        expected = hf(ids, attention_mask=mask, position_ids=positions).logits
        got = model(ids, attention_mask=mask).logits
    torch.testing.assert_close(got[1], expected[1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got[0, 4:], expected[0, 4:], atol=1e-5, rtol=1e-5)  # real positions


def test_cache_steps_equal_one_pass_and_weights_path():
    model = Llama.from_llama(_hf_llama())
    ids = torch.randint(0, 97, (1, 9))
    with torch.no_grad():
        whole = model(ids).logits
        cache = KVCache()
        first = model(ids[:, :5], cache=cache).logits
        steps = [model(ids[:, i : i + 1], cache=cache).logits for i in range(5, 9)]
        weighted = model(ids, need_weights=True)
    torch.testing.assert_close(torch.cat([first, *steps], 1), whole, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(weighted.logits, whole, atol=1e-5, rtol=1e-5)  # readable attention path
    assert weighted.attentions[0].shape == (1, 6, 9, 9)
    assert torch.allclose(weighted.attentions[0].sum(-1), torch.ones(1, 6, 9))
    assert weighted.attentions[0][0, :, 0, 1:].abs().max() == 0  # causal


def test_greedy_tokens_match_transformers_generate():
    hf = _hf_llama()
    hf.generation_config.eos_token_id = None
    hf.generation_config.pad_token_id = 0
    prompt = torch.randint(0, 97, (1, 6))
    expected = hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=12, do_sample=False)[0, 6:]
    ours = decoding.generate(Llama.from_llama(hf), prompt, config=decoding.GenerationConfig(max_new_tokens=12))
    assert ours[0] == expected.tolist()


def test_unsupported_rope_scaling_is_refused(tiny_llama):
    hf = _hf_llama(rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0})
    with pytest.raises(ValueError, match="rotary scaling"):
        Llama.from_llama(hf)


def test_seqlab_engine_loads_a_llama_folder(tiny_llama):
    ours = generation.load_generator(str(tiny_llama), engine="seqlab")
    theirs = generation.load_generator(str(tiny_llama), engine="hf")
    assert type(ours.model).__name__ == "Llama"
    settings = dict(max_new_tokens=6, do_sample=False)
    assert ours.generate("the cat", **settings) == theirs.generate("the cat", **settings)
    with pytest.raises(SeqlabError, match="unknown engine"):
        generation.load_generator(str(tiny_llama), engine="onnx")


def _q4_1_weights(out_features: int, in_features: int) -> torch.Tensor:
    """Weights llama.cpp's Q4_1 can hold exactly: per 32 inputs, low + q · step, q in 0..15."""
    groups = in_features // 32
    low = torch.randn(out_features, groups, 1) * 0.1
    step = torch.rand(out_features, groups, 1) * 0.01 + 0.001
    levels = torch.randint(0, 16, (out_features, groups, 32)).float()
    levels[..., 0], levels[..., 1] = 0, 15  # every group spans the whole range
    # what bfloat16 steps and offsets can express, as the kernel stores them
    step = step.bfloat16().float()
    zero = (low + 8 * step).bfloat16().float()
    return ((levels - 8) * step + zero).view(out_features, in_features)


def test_int4_linear_is_exact_for_q4_1_weights_and_close_otherwise():
    torch.manual_seed(0)
    exact = nn.Linear(64, 40, bias=True)  # 40 rows: padded to 48 inside
    exact.weight.data = _q4_1_weights(40, 64)
    x = torch.randn(3, 5, 64)
    quantized = Int4Linear(exact)
    expected = x.bfloat16().float() @ exact.weight.t() + exact.bias.bfloat16().float()
    torch.testing.assert_close(quantized(x), expected, atol=0.05, rtol=0.02)  # bf16 activations only
    assert quantized(x).shape == (3, 5, 40)
    lossy = nn.Linear(64, 32, bias=False)
    error = (Int4Linear(lossy)(x) - lossy(x)).norm() / lossy(x).norm()
    assert 0 < error < 0.15  # 16 levels per group of 32: a few percent, never more
    finer = (Int4Linear(lossy, passes=2)(x) - lossy(x)).norm() / lossy(x).norm()
    assert finer < error / 5  # the second pass quantises what the first missed
    assert not Int4Linear.fits(nn.Linear(40, 8))


def test_bf16_int4_dtype_decodes(tiny_llama):
    pipeline = generation.load_generator(str(tiny_llama), engine="seqlab", dtype="bf16-int4")
    layers = [m for m in pipeline.model.modules() if isinstance(m, Int4Linear)]
    assert layers, "no linear layer was quantized"
    output = pipeline.model.lm_head
    assert (not Int4Linear.fits(nn.Linear(output.in_features, 1))) or output.passes == 2  # the output layer: two passes
    tokens = decoding.generate(pipeline.model, torch.tensor([[1, 5, 6]]), config=decoding.GenerationConfig(max_new_tokens=4))
    assert len(tokens[0]) == 4


@pytest.mark.compile
def test_compile_needs_seqlab_models(tiny_llama):
    with pytest.raises(SeqlabError, match="compile works on seqlab's GPT and Llama"):
        generation.load_generator(str(tiny_llama), engine="hf", compile=True)


@pytest.mark.compile
@pytest.mark.slow  # torch.compile: ~1 min on the shared 2-core machine
def test_compiled_llama_decodes_the_same_tokens(tiny_llama):
    eager = generation.load_generator(str(tiny_llama), engine="seqlab")
    fast = generation.load_generator(str(tiny_llama), engine="seqlab", compile=True)
    prompt = torch.tensor([[1, 5, 6, 7]])
    config = decoding.GenerationConfig(max_new_tokens=6)
    assert decoding.generate(fast.model, prompt, config=config) == decoding.generate(eager.model, prompt, config=config)
