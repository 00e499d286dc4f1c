"""Causal LMs for generation (`seqlab.hub.load_causal_lm`): the loading code on a tiny random
Llama with a tiny tokenizer saved locally (nothing downloaded), and one test on the real pinned
SmolLM2-135M-Instruct (converted once per SEQLAB_HOME)."""

import json
import shutil

import pytest
import torch

from seqlab import assets, hub
from seqlab.errors import SeqlabError


def test_tiny_llama_loads_with_pad_eos_on_the_left(tiny_llama):
    from transformers import LlamaForCausalLM

    model, tokenizer = hub.load_causal_lm(str(tiny_llama))
    assert isinstance(model, LlamaForCausalLM) and not model.training and model.dtype == torch.float32
    assert getattr(tokenizer, "is_fast", False)
    assert tokenizer.pad_token == tokenizer.eos_token == "</s>" and tokenizer.padding_side == "left"
    assert model.generation_config.pad_token_id == tokenizer.eos_token_id == 2

    batch = tokenizer(["the cat", "the dog ran in the park"], return_tensors="pt", padding=True)
    assert batch["input_ids"][0, :4].tolist() == [2, 2, 2, 2] and batch["attention_mask"][0, :4].sum() == 0
    with torch.no_grad():
        padded = model(**batch).logits[0, -1]
        alone = model(**tokenizer(["the cat"], return_tensors="pt")).logits[0, -1]
    torch.testing.assert_close(padded, alone, rtol=1e-4, atol=1e-5)  # left padding + mask: the same next token
    out = model.generate(**batch, do_sample=False, max_new_tokens=3)
    assert out.shape == (2, batch["input_ids"].shape[1] + 3)


def test_dtype_and_an_own_pad_token_are_kept(tiny_llama, tmp_path):
    from transformers import AutoTokenizer

    folder = tmp_path / "with-pad"
    shutil.copytree(tiny_llama, folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.pad_token = "[PAD]"
    tokenizer.save_pretrained(folder)
    model, tokenizer = hub.load_causal_lm(str(folder), dtype=torch.bfloat16)
    assert model.dtype == torch.bfloat16
    assert tokenizer.pad_token == "[PAD]" and model.generation_config.pad_token_id == tokenizer.pad_token_id == 3


def test_resolve_causal_lm_folders_and_hub_ids(tiny_llama):
    assert hub.resolve_causal_lm(str(tiny_llama)) == str(tiny_llama)
    assert hub.resolve_causal_lm("gpt2") == "gpt2"  # a hub id is passed through, not looked up


def test_bad_sources_are_one_line(tiny_llama, tmp_path, monkeypatch):
    from transformers import BertConfig, BertModel

    (tmp_path / "empty").mkdir()
    (tmp_path / "file.txt").write_text("x")
    encoder = tmp_path / "encoder"
    BertModel(
        BertConfig(
            vocab_size=8,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=16,
        )
    ).save_pretrained(encoder)
    no_tokenizer = tmp_path / "no-tokenizer"
    no_tokenizer.mkdir()
    shutil.copy(tiny_llama / "config.json", no_tokenizer)
    shutil.copy(tiny_llama / "model.safetensors", no_tokenizer)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # huggingface_hub reads it once, at import, which has happened:
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    cases = [
        (tmp_path / "empty", "has no config.json"),
        (tmp_path / "file.txt", "is not a folder"),
        (encoder, r"is not a causal language model \(BertModel\).*smollm2-135m"),
        ("minilm-l6", "minilm-l6 is a built-in encoder, not a causal language model.*smollm2-135m"),
        (no_tokenizer, "has no usable tokenizer"),
        ("gpt2", r"could not load 'gpt2' from the Hugging Face hub.*built-in causal LM \(smollm2-135m"),
        ("no-such-org/no-such-model", "smollm2-135m"),
    ]
    for source, fragment in cases:
        with pytest.raises(SeqlabError, match=fragment) as caught:
            hub.load_causal_lm(str(source))
        assert "\n" not in str(caught.value), str(caught.value)


def test_offline_error_names_hub_ids_in_the_local_cache(tmp_path, monkeypatch):
    repo = tmp_path / "hf" / "models--acme--tiny-gpt"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc")
    (repo / "blobs").mkdir()
    (repo / "blobs" / "0123").write_text("{}")
    (repo / "snapshots" / "abc").mkdir(parents=True)
    (repo / "snapshots" / "abc" / "config.json").symlink_to("../../blobs/0123")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf"))
    err = hub._offline_error("gpt2", OSError("offline"), "causal LM", hub._causal_names())
    assert str(err).endswith("or a cached hub id (cached here: acme/tiny-gpt)")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "none"))
    assert hub._cached_hub_ids() == []


def test_a_converted_folder_is_trusted_and_a_failed_conversion_leaves_nothing(tiny_llama, tmp_path, monkeypatch):
    monkeypatch.setenv("SEQLAB_HOME", str(tmp_path / "home"))
    spec = hub.BUILTIN_CAUSAL_LMS["smollm2-135m"]

    def no_download(*args, **kwargs):
        raise AssertionError("nothing should be downloaded")

    monkeypatch.setattr(assets, "fetch", no_download)
    with pytest.raises(AssertionError, match="nothing should be downloaded"):
        hub.load_causal_lm("smollm2-135m")
    monkeypatch.setattr(assets, "fetch", lambda *args, **kwargs: None)
    monkeypatch.setattr(assets, "extract_member", lambda *args, **kwargs: b"not a gguf file")
    with pytest.raises(Exception):  # noqa: B017 (whatever the reader raises on garbage; the point is what is left behind)
        hub.load_causal_lm("smollm2-135m")
    assert list((tmp_path / "home" / "extracted").iterdir()) == []  # no half folder, no temporary left

    shutil.copytree(tiny_llama, spec.folder)  # as if converted: read directly, never refetched
    monkeypatch.setattr(assets, "fetch", no_download)
    model, tokenizer = hub.load_causal_lm("smollm2-135m")
    assert model.config.vocab_size == len(tokenizer) and tokenizer.padding_side == "left"
    assert hub._causal_names() == "smollm2-135m [cached]"


@pytest.mark.network
def test_real_smollm2_knows_the_capital_of_france():
    """The pinned SmolLM2-135M-Instruct GGUF, dequantised to fp32 once per SEQLAB_HOME; greedy."""
    model, tokenizer = hub.load_causal_lm("smollm2-135m")
    folder = hub.BUILTIN_CAUSAL_LMS["smollm2-135m"].folder
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "llama" and "quantization_config" not in config
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    # the shorter prompt is left-padded: padding must not change its greedy answer
    batch = tokenizer(
        ["The capital of France is", "Here is a list of the largest cities in Europe:"], return_tensors="pt", padding=True
    )
    with torch.no_grad():
        out = model.generate(**batch, do_sample=False, max_new_tokens=8)
    answer = tokenizer.decode(out[0, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer, answer
