"""Overfit a handful of examples, save, reload, same predictions: for every architecture."""

import json

import pytest
import torch
from conftest import sentiment_rows, write_csv

from seqlab import api, load
from seqlab.config import ARCHS, build_config
from seqlab.errors import SeqlabError

FEW = [
    ("I love this course", "pos"),
    ("This is an amazing class", "pos"),
    ("I enjoy learning NLP", "pos"),
    ("I hate this subject", "neg"),
    ("This class is boring", "neg"),
    ("what a dull awful lecture", "neg"),
]


def overfit_config(data, tmp_path, arch, *extra):
    return build_config(
        {},
        [
            f"data.train={data}",
            "data.valid_fraction=0",
            "data.test_fraction=0",
            f"model.arch={arch}",
            "model.preset=tiny",
            "model.dropout=0",
            "train.epochs=60",
            "train.batch_size=6",
            "train.lr=0.02",
            f"output_dir={tmp_path / 'runs'}",
            f"name={arch}",
            *extra,
        ],
    )


@pytest.mark.parametrize("arch", [a for a in ARCHS if a != "hf"])  # hf: tests/test_pretrained.py
def test_overfit_save_reload(tmp_path, arch):
    data = write_csv(tmp_path / "few.csv", FEW)
    run = api.train(overfit_config(data, tmp_path, arch), progress="off")
    for name in ("config.yaml", "model.safetensors", "tokenizer.json", "labels.json", "metrics.json", "manifest.json"):
        assert (run / name).is_file(), name
    assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "logs" / "metrics.csv").is_file()
    pipe = load(run)
    texts = [text for text, _ in FEW]
    assert [p["label"] for p in pipe.predict(texts)] == [label for _, label in FEW]
    again = load(run).predict_proba(texts)
    torch.testing.assert_close(pipe.predict_proba(texts), again)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["seed"] == 13 and manifest["data"]["train"]["examples"] == len(FEW)


def test_sigmoid_head_reproduces_the_course_example(tmp_path):
    data = write_csv(tmp_path / "few.csv", FEW)
    run = api.train(overfit_config(data, tmp_path, "lstm", "model.head=sigmoid"), progress="off")
    pred = load(run).predict(["I enjoy learning NLP", "I hate this subject"])
    assert [p["label"] for p in pred] == ["pos", "neg"]
    assert pred[0]["probabilities"]["pos"] > 0.5 > pred[1]["probabilities"]["pos"]


def test_same_seed_same_model(tmp_path):
    data = write_csv(tmp_path / "d.csv", sentiment_rows(120))
    probs = []
    for name in ("a", "b"):
        cfg = overfit_config(data, tmp_path, "gru", "train.epochs=2", f"name={name}")
        probs.append(load(api.train(cfg, progress="off")).predict_proba(["great fun movie"]))
    torch.testing.assert_close(probs[0], probs[1])


def test_resume_continues_an_unfinished_run(tmp_path):
    data = write_csv(tmp_path / "d.csv", sentiment_rows(120))
    cfg = overfit_config(data, tmp_path, "cnn", "train.epochs=2")
    run = api.train(cfg, progress="off")
    # make it look interrupted after epoch 2, with the config asking for 4 epochs
    (run / "model.safetensors").unlink()
    (run / "config.yaml").write_text((run / "config.yaml").read_text().replace("epochs: 2", "epochs: 4"))
    with pytest.raises(SeqlabError, match="did not finish"):
        load(run)
    api.train(None, resume=run, progress="off")
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 4
    with pytest.raises(SeqlabError, match="already finished"):
        api.train(None, resume=run)


def test_label_only_in_test_data_fails_before_any_folder(tmp_path):
    train = write_csv(tmp_path / "train.csv", sentiment_rows(40))
    test = write_csv(tmp_path / "test.csv", [("so so", "neutral")])
    cfg = build_config({}, [f"data.train={train}", f"data.test={test}", f"output_dir={tmp_path / 'runs'}", "name=x"])
    with pytest.raises(SeqlabError, match="'neutral' appears in the test data"):
        api.train(cfg)
    assert not (tmp_path / "runs" / "x").exists()


def test_existing_run_folder_is_never_overwritten(tmp_path):
    data = write_csv(tmp_path / "d.csv", sentiment_rows(60))
    cfg = overfit_config(data, tmp_path, "cnn", "train.epochs=1")
    api.train(cfg, progress="off")
    with pytest.raises(SeqlabError, match="already exists"):
        api.train(cfg, progress="off")


def test_evaluate_and_attention(tmp_path):
    data = write_csv(tmp_path / "d.csv", sentiment_rows(200))
    cfg = overfit_config(data, tmp_path, "transformer", "model.pooling=cls", "train.epochs=15")
    pipe = load(api.train(cfg, progress="off"))
    from seqlab.data.readers import read_examples

    metrics = pipe.evaluate(read_examples(write_csv(tmp_path / "t.csv", sentiment_rows(100, seed=9))))
    assert metrics["accuracy"] > 0.9
    assert sum(map(sum, metrics["confusion_matrix"])) == 100
    tokens, layers = pipe.attention("great fun movie")
    assert tokens[0] == "[CLS]" and layers[0].shape[-1] == len(tokens)
    with pytest.raises(SeqlabError, match="characters"):
        pipe.predict(["x" * 1_000_001])


def test_multiclass_with_separate_valid_and_test_files(tmp_path):
    rows = [
        (f"{word} {filler}", label)
        for word, label in (("red", "colour"), ("seven", "number"), ("paris", "city"))
        for filler in ("is here", "again", "once more", "today", "and then")
    ]
    train = write_csv(tmp_path / "train.csv", rows)
    valid = write_csv(tmp_path / "valid.csv", [("red today", "colour"), ("paris again", "city")])
    test = write_csv(tmp_path / "test.csv", [("seven once more", "number"), ("red", "colour")])
    cfg = overfit_config(train, tmp_path, "gru", f"data.valid={valid}", f"data.test={test}", "train.patience=null")
    run = api.train(cfg, progress="off")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["labels"] == ["city", "colour", "number"] and metrics["test"]["accuracy"] == 1.0
    assert len(load(run).predict(["paris"])[0]["probabilities"]) == 3
