"""The theory experiments built on the task models (issue 9): heads, decoder, pretraining,
attention-vs-fixed-context. Each `--quick` run is checked for the shape of what it writes, never
for a hoped-for result; plus the head mask they rely on."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from seqlab.cli.main import app
from seqlab.models.attention import MultiHeadAttention


def _check_saved(result, output, rows: int) -> None:
    """The table has `rows` rows of the columns' width, and every file it names exists."""
    assert len(result.rows) == rows
    assert all(len(row) == len(result.columns) for row in result.rows)
    result.save(output)
    saved = json.loads((output / "results.json").read_text(encoding="utf-8"))
    assert saved["columns"] == result.columns and len(saved["rows"]) == rows
    assert result.plots and all(p.is_file() and p.stat().st_size > 0 for p in result.plots)
    assert result.verdict.startswith("quick run")


def test_head_mask_removes_exactly_one_head():
    torch.manual_seed(0)
    attention = MultiHeadAttention(8, 2).eval()
    x = torch.randn(2, 5, 8)
    full, _ = attention(x)
    attention.head_mask = torch.ones(2)
    same, _ = attention(x)
    torch.testing.assert_close(same, full)  # a mask of ones changes nothing
    attention.head_mask = torch.tensor([1.0, 0.0])
    masked, _ = attention(x)
    # by hand: head 1's slice of the concatenated heads is zero before the output projection
    q, k, v = (attention._split_heads(p(x)) for p in (attention.q_proj, attention.k_proj, attention.v_proj))
    heads = torch.softmax(q @ k.transpose(-2, -1) / 2.0, dim=-1) @ v  # (B, H, T, hd), head_dim 4
    heads[:, 1] = 0.0
    expected = attention.out_proj(heads.transpose(1, 2).reshape(2, 5, 8))
    torch.testing.assert_close(masked, expected)
    assert not torch.allclose(masked, full)
    assert "head_mask" not in attention.state_dict()  # never saved with the weights


def test_heads_quick(tmp_path):
    from seqlab.experiments import heads

    result = heads.run(True, tmp_path)
    # one row per (layer, head) of the quick model: 1 layer × 4 heads
    _check_saved(result, tmp_path, rows=4)
    assert {row[1] for row in result.rows} == {0, 1, 2, 3}
    for row in result.rows:
        assert 0.0 <= row[2] <= 1.0 + 1e-6  # normalised entropy
        assert 0.0 <= row[9] <= 1.0  # accuracy without the head
    assert 0.0 <= result.settings["full_accuracy"] <= 1.0


def test_decoder_quick(tmp_path):
    from seqlab.experiments import decoder

    result = decoder.run(True, tmp_path)
    _check_saved(result, tmp_path, rows=3)
    assert [row[0] for row in result.rows] == ["seq2seq", "seq2seq-attn", "transformer"]
    steps = result.settings["steps"]
    assert steps and [row[4] for row in steps] == list(range(1, len(steps) + 1))  # the cache grows by one per step
    assert all(float(row[-1]) < 1e-4 for row in steps)  # cached step == recomputed prefix
    assert all(row[4] for row in result.settings["kv_cache"])  # same tokens with and without the cache
    assert (tmp_path / "steps.md").is_file() and (tmp_path / "kv_cache.md").is_file()


def test_pretraining_quick(tmp_path):
    from seqlab.experiments import pretraining

    result = pretraining.run(True, tmp_path)
    _check_saved(result, tmp_path, rows=2)
    assert [row[0] for row in result.rows] == [40, 80]
    assert (tmp_path / "compare.md").is_file()


def test_attention_vs_fixed_context_quick(tmp_path):
    from seqlab.experiments import attention_vs_fixed_context

    result = attention_vs_fixed_context.run(True, tmp_path)
    _check_saved(result, tmp_path, rows=2)
    assert [row[0] for row in result.rows] == ["seq2seq", "bahdanau"]
    by_length = result.settings["by_length"]
    assert len(by_length) == 2 and all(1 <= int(n) <= 12 for curve in by_length.values() for n in curve)


def test_heads_cli_bad_run_is_one_line(tmp_path):
    result = CliRunner().invoke(
        app, ["experiment", "heads", "--run", str(tmp_path / "missing"), "--output", str(tmp_path / "out")]
    )
    assert result.exit_code == 1
    assert "Traceback" not in result.output and result.output.strip()
    assert not (tmp_path / "out" / "table.md").exists()


@pytest.mark.parametrize("name", ["heads", "decoder", "pretraining", "attention-vs-fixed-context"])
def test_commands_are_registered(name):
    result = CliRunner().invoke(app, ["experiment", name, "--help"])
    assert result.exit_code == 0 and "--quick" in result.output


def test_cli_quick_prints_and_saves(tmp_path):
    result = CliRunner().invoke(app, ["experiment", "attention-vs-fixed-context", "--quick", "--output", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "bahdanau" in result.output and (tmp_path / "table.md").is_file()


def test_pretraining_cli_missing_init_is_one_line(tmp_path):
    result = CliRunner().invoke(
        app, ["experiment", "pretraining", "--quick", "--init", str(tmp_path / "missing"), "--output", str(tmp_path / "out")]
    )
    assert result.exit_code == 1
    assert "Traceback" not in result.output and "missing" in result.output
    assert not (tmp_path / "out" / "table.md").exists()
