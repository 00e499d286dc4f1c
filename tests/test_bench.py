"""`seqlab.bench` and the fast decoding paths (`quantize.with_dtype`) on tiny random models:
the rows and their fields, valid tokens from every dtype, the greedy-equality check, and the
preallocated KV cache growing past its first size. No wall-clock thresholds."""

import pytest
import torch
from torch import nn

from seqlab import bench
from seqlab.decoding import GenerationConfig, generate, left_pad
from seqlab.errors import SeqlabError
from seqlab.models.gpt import GPT, KVCache
from seqlab.tasks.lm import quantize

TINY = bench.BenchSettings(new_tokens=6, prompt_tokens=4, repeats=1, threads=1, isolate=False)


def test_bench_rows_have_every_field_and_seqlab_fp32_matches_hf():
    rows = bench.bench_generate(["gpt2-tiny"], settings=TINY)
    assert [r["path"] for r in rows] == bench.default_paths("gpt2-tiny")  # hf-fp32 first, no-cache included for GPT-2 shapes
    assert "seqlab-bf16-int4-compiled" not in bench.default_paths("gpt2-tiny")  # minutes of compilation: only when named
    for row in rows:
        assert row["model"] == "gpt2-tiny" and row["threads"] == 1 and len(row["seconds"]) == 1
        assert row["tokens_per_s"] > 0 and row["ms_per_token"] > 0 and row["speedup_vs_hf"] > 0
        assert row["peak_rss_mb"] is None and row["perplexity"] is None  # in-process; random weights
        assert isinstance(row["same_tokens_as_hf"], bool)
    by_path = {r["path"]: r for r in rows}
    for exact in ("hf-fp32", "seqlab-fp32", "seqlab-fp32-nocache"):
        assert by_path[exact]["same_tokens_as_hf"] and by_path[exact]["first_difference"] is None
    table = bench.markdown_table(rows)
    assert table.count("\n") == len(rows) + 2 and "seqlab-bf16-int8" in table


def test_bench_token_check_reports_the_first_difference():
    runs = {
        "hf-fp32": [{"seconds": 1.0, "tokens": [1, 2, 3], "peak_rss_mb": None, "peak_reset": False}],
        "seqlab-int8": [{"seconds": 0.5, "tokens": [1, 2, 4], "peak_rss_mb": 10.0, "peak_reset": True}],
    }
    paths = [bench.PATHS["hf-fp32"], bench.PATHS["seqlab-int8"]]
    rows = bench._rows("m", paths, runs, {"hf-fp32": 10.0, "seqlab-int8": 10.5}, TINY)
    assert rows[1]["same_tokens_as_hf"] is False and rows[1]["first_difference"] == 2
    assert rows[1]["speedup_vs_hf"] == pytest.approx(2.0) and rows[1]["ppl_change_pct"] == pytest.approx(5.0)
    assert rows[1]["peak_rss_note"] == "decode"


def test_unknown_models_and_paths_are_one_line_errors():
    with pytest.raises(SeqlabError, match="gpt2-shapes"):
        bench.bench_generate(["gpt3"], settings=TINY)
    with pytest.raises(SeqlabError, match="seqlab-int8"):
        bench.bench_generate(["gpt2-tiny"], ["seqlab-int4"], settings=TINY)


def tiny_gpt() -> GPT:
    torch.manual_seed(0)
    model = GPT(vocab_size=60, d_model=32, num_heads=2, num_layers=2, ff_dim=64, max_len=128, dropout=0.0)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(std=0.3)
    return model.eval()


@pytest.mark.parametrize("dtype", ["fp32", "bf16", "int8", "bf16-int8"])
def test_every_dtype_decodes_valid_tokens_for_seqlab_gpt_and_hf_gpt2(dtype):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    hf = GPT2LMHeadModel(
        GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=60, n_positions=64, bos_token_id=0, eos_token_id=0)
    ).eval()
    ids, mask = left_pad([[5, 6, 7, 8], [9, 10]])
    reference = generate(tiny_gpt(), ids, mask, GenerationConfig(max_new_tokens=8))
    for model in (tiny_gpt(), hf):
        converted = quantize.with_dtype(model, dtype)
        if dtype in ("int8", "bf16-int8"):  # every matrix product quantised, output layer and Conv1D included
            assert not any(type(m) is nn.Linear for m in converted.modules())
            assert type(converted.lm_head) is not nn.Linear and converted.lm_head is not None
        tokens = generate(converted, ids, mask, GenerationConfig(max_new_tokens=8))
        assert [len(t) for t in tokens] == [8, 8] and all(0 <= t < 60 for row in tokens for t in row)
    if dtype == "fp32":  # a new memory layout only: the same greedy tokens
        assert tokens == generate(hf.float(), ids, mask, GenerationConfig(max_new_tokens=8))
        assert generate(quantize.with_dtype(tiny_gpt(), "fp32"), ids, mask, GenerationConfig(max_new_tokens=8)) == reference


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="oneDNN is not built into this torch")
def test_packed_linear_gives_the_linear_layers_values_at_any_batch():
    torch.manual_seed(0)
    layer = nn.Linear(48, 40)
    packed = quantize.PackedLinear(layer)
    for shape in [(1, 48), (3, 7, 48), (300, 48)]:  # a decoding step, a batch of prompts, an evaluation block
        x = torch.randn(shape)
        torch.testing.assert_close(packed(x), layer(x), atol=1e-5, rtol=1e-5)
    with torch.no_grad():  # compiled, the operator is called as it is
        compiled = torch.compile(packed, dynamic=True)
        x = torch.randn(5, 48)
        torch.testing.assert_close(compiled(x), layer(x), atol=1e-5, rtol=1e-5)
    model = quantize.with_dtype(tiny_gpt(), "fp32")
    assert model.lm_head is not None and not any(type(m) is nn.Linear for m in model.modules())
    assert isinstance(model.lm_head, quantize.PackedLinear)  # the tied output layer, packed copy


def test_auto_dtype_never_picks_bf16_without_bf16_instructions(monkeypatch):
    import seqlab.hardware

    monkeypatch.setattr(seqlab.hardware, "bf16_supported", lambda: False)
    assert quantize.resolve_dtype("auto") == "fp32"
    monkeypatch.setattr(seqlab.hardware, "bf16_supported", lambda: True)
    assert quantize.resolve_dtype("auto") == "bf16-int8"
    with pytest.raises(SeqlabError, match="bf16-int8"):
        quantize.resolve_dtype("fp8")


@torch.no_grad()
def test_the_preallocated_cache_grows_and_keeps_the_logits():
    model = tiny_gpt()
    ids = torch.randint(0, 60, (2, 12))
    full = model(ids).logits
    cache = KVCache(capacity=3)  # room for 3 positions: the prompt fits, then it doubles twice
    logits = [model(ids[:, :3], cache=cache).logits]
    for t in range(3, 12):
        logits.append(model(ids[:, t : t + 1], cache=cache).logits)
    assert cache.length == 12 and cache.layers[0][0].shape == (2, 2, 12, 16)
    torch.testing.assert_close(torch.cat(logits, dim=1), full, atol=1e-5, rtol=1e-5)
    assert model(ids[:, :5], logits_to_keep=1).logits.shape == (2, 1, 60)


@torch.no_grad()
def test_a_bf16_model_keeps_its_cache_in_float32_on_the_cpu():
    model = tiny_gpt().to(torch.bfloat16)
    ids = torch.randint(0, 60, (1, 8))
    cache = KVCache()
    steps = [model(ids[:, :3], cache=cache).logits] + [model(ids[:, t : t + 1], cache=cache).logits for t in range(3, 8)]
    assert cache.layers[0][0].dtype == torch.float32 and steps[-1].dtype == torch.bfloat16
    full = model(ids).logits.float()  # no cache: bf16 attention throughout
    torch.testing.assert_close(torch.cat(steps, dim=1).float(), full, atol=0.05 * full.abs().max().item(), rtol=0)


def test_cli_prints_the_table_and_writes_json(tmp_path):
    import json

    from typer.testing import CliRunner

    from seqlab.cli.main import app

    out = tmp_path / "bench.json"
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "generate",
            "--models",
            "gpt2-tiny",
            "--paths",
            "seqlab-fp32",
            "--repeats",
            "1",
            "--new-tokens",
            "3",
            "--prompt-tokens",
            "2",
            "--threads",
            "1",
            "--in-process",
            "--output",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "| gpt2-tiny | seqlab-fp32 | 1 |" in result.output and "load average" in result.output
    rows = json.loads(out.read_text())["rows"]
    assert [r["path"] for r in rows] == ["hf-fp32", "seqlab-fp32"] and rows[1]["same_tokens_as_hf"]
    bad = CliRunner().invoke(app, ["bench", "generate", "--threads", "two"])
    assert bad.exit_code == 1 and "--threads" in bad.output
