"""Conventions people bring from other tools (issue 20 §4):

* `--temperature 0` is greedy decoding, as in the OpenAI API, llama.cpp and vLLM, not an error;
* progress bars are drawn only at a terminal: a log gets no raw carriage-return frames (the
  one-time GGUF conversion of `make demo` printed them);
* (`make test` without root skips the browser test with its reason: tests/test_browser.py.)

Everything runs on tiny random models made here; nothing is downloaded.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from seqlab import hub
from seqlab.decoding import GenerationConfig, HFCausalLM, generate
from seqlab.errors import SeqlabError

GREEDY = GenerationConfig(max_new_tokens=12)


# --- temperature 0 -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [
        {"do_sample": True, "temperature": 0},
        {"do_sample": True, "temperature": 0.0, "top_k": 50, "top_p": 0.9, "seed": 3},  # sampling-only settings: nothing to shape
        {"temperature": 0},
    ],
)
def test_temperature_zero_is_the_greedy_config(settings):
    config = GenerationConfig(max_new_tokens=12, **settings)
    assert not config.do_sample
    assert config.model_dump(exclude={"seed"}) == GREEDY.model_dump(exclude={"seed"})


def test_temperature_zero_is_documented_on_the_field():
    assert "0 means greedy" in GenerationConfig.model_fields["temperature"].description


def test_a_negative_temperature_is_still_an_error():
    with pytest.raises(SeqlabError, match="temperature must be > 0 when sampling, or 0 for greedy"):
        GenerationConfig(do_sample=True, temperature=-0.5)


@pytest.fixture(scope="module")
def llama_lm(tiny_llama):
    from transformers import AutoModelForCausalLM

    return HFCausalLM(AutoModelForCausalLM.from_pretrained(tiny_llama).eval())


def test_temperature_zero_decodes_the_greedy_tokens(llama_lm):
    ids = torch.tensor([[5, 6, 7, 8], [0, 9, 10, 11]])
    mask = torch.tensor([[1, 1, 1, 1], [0, 1, 1, 1]], dtype=torch.bool)
    greedy = generate(llama_lm, ids, mask, GREEDY)
    zero = generate(llama_lm, ids, mask, GenerationConfig(max_new_tokens=12, do_sample=True, temperature=0, top_k=5, seed=1))
    assert zero == greedy
    sampled = [generate(llama_lm, ids, mask, GenerationConfig(max_new_tokens=12, do_sample=True, seed=s)) for s in range(3)]
    assert any(s != greedy for s in sampled)  # (so the equality above is not a model with one answer)


def test_cli_temperature_zero_prints_the_greedy_text(tiny_llama):
    from seqlab.cli.main import app

    runner = CliRunner()
    args = ["generate", "--model", str(tiny_llama), "the cat", "--max-new-tokens", "8"]
    greedy = runner.invoke(app, [*args, "--greedy"])
    zero = runner.invoke(app, [*args, "--temperature", "0"])
    assert greedy.exit_code == 0, greedy.output
    assert zero.exit_code == 0, zero.output
    assert zero.stdout == greedy.stdout


# --- progress bars only at a terminal ------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bars_are_wanted_only_at_a_terminal():
    assert hub.progress_bars_wanted(Terminal())
    assert not hub.progress_bars_wanted(io.StringIO())
    closed = io.StringIO()
    closed.close()  # (isatty raises ValueError)
    assert not hub.progress_bars_wanted(closed)
    assert not hub.progress_bars_wanted(object())


def write_tiny_gguf(path) -> None:
    """A 1-layer Llama (d=8) with a byte-pair tokenizer, in the layout of the SmolLM2 GGUF file."""
    import gguf

    vocab, dim, ff, heads = 16, 8, 16, 2
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(32)
    writer.add_embedding_length(dim)
    writer.add_block_count(1)
    writer.add_feed_forward_length(ff)
    writer.add_head_count(heads)
    writer.add_head_count_kv(heads)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(dim // heads)
    writer.add_vocab_size(vocab)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(["<s>", "</s>", *(chr(ord("a") + i) for i in range(vocab - 4)), "Ġ", "ab"])
    writer.add_token_types([3, 3] + [1] * (vocab - 2))
    writer.add_token_merges(["a b"])
    writer.add_token_scores([0.0] * vocab)
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(1)
    rng = np.random.default_rng(0)

    def weight(*shape):
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    writer.add_tensor("token_embd.weight", weight(vocab, dim))
    writer.add_tensor("output_norm.weight", np.ones(dim, np.float32))
    writer.add_tensor("output.weight", weight(vocab, dim))
    for name, shape in [
        ("attn_q", (dim, dim)),
        ("attn_k", (dim, dim)),
        ("attn_v", (dim, dim)),
        ("attn_output", (dim, dim)),
        ("ffn_gate", (ff, dim)),
        ("ffn_up", (ff, dim)),
        ("ffn_down", (dim, ff)),
    ]:
        writer.add_tensor(f"blk.0.{name}.weight", weight(*shape))
    writer.add_tensor("blk.0.attn_norm.weight", np.ones(dim, np.float32))
    writer.add_tensor("blk.0.ffn_norm.weight", np.ones(dim, np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@pytest.fixture
def tiny_builtin(tmp_path, monkeypatch):
    """A built-in causal LM whose pinned archive is a tiny GGUF file made here."""
    gguf_file = tmp_path / "tiny.gguf"
    write_tiny_gguf(gguf_file)
    monkeypatch.setenv("SEQLAB_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(hub.assets, "fetch", lambda archive, **_: None)
    monkeypatch.setattr(hub.assets, "extract_member", lambda archive, member: gguf_file.read_bytes())
    return lambda name: hub.BuiltinCausalLM(name, "tiny-archive", "tiny/tiny.gguf", "a tiny test model")


def test_gguf_conversion_draws_no_bar_into_a_log(tiny_builtin, capsys):
    """stderr here is pytest's capture, not a terminal: the conversion writes no '\\r' frame."""
    folder = hub._convert_builtin(tiny_builtin("tiny-log"))
    assert (folder / "config.json").is_file() and (folder / "tokenizer.json").is_file()
    err = capsys.readouterr().err
    assert "\r" not in err, err[-500:]


def test_gguf_conversion_draws_its_bar_at_a_terminal(tiny_builtin, capsys, monkeypatch):
    """The same conversion for a person at a terminal still shows the bar (so the test above
    would see one if it were drawn), and the block restores the loader's own tqdm afterwards."""
    import transformers.modeling_gguf_pytorch_utils as gguf_loader

    before = gguf_loader.tqdm
    monkeypatch.setattr(hub, "progress_bars_wanted", lambda stream=None: True)
    hub._convert_builtin(tiny_builtin("tiny-terminal"))
    assert "\r" in capsys.readouterr().err
    assert gguf_loader.tqdm is before
