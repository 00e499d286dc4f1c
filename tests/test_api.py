"""The Python API a user expects: one `train`, `load`, `evaluate` and `compare` for every task,
and the rules the five tasks used to disagree on (text checks, learning-rate schedules)."""

from __future__ import annotations

import json

import pytest
from test_tag import tagged_lines

import seqlab
from seqlab import api
from seqlab.data.texts import check_texts
from seqlab.errors import SeqlabError


@pytest.fixture(scope="module")
def classify_run(tmp_path_factory):
    from conftest import sentiment_rows, write_csv

    root = tmp_path_factory.mktemp("api")
    data = write_csv(root / "sentiment.csv", sentiment_rows(200))
    return seqlab.train(
        "classify",
        data=str(data),
        arch="cnn",
        epochs=2,
        preset="tiny",
        output_dir=str(root / "runs"),
        name="cnn",
        overrides=["train.batch_size=16"],
    ), data


def test_train_with_keywords_writes_a_finished_run(classify_run):
    run, _ = classify_run
    for name in (
        "config.yaml",
        "tokenizer.json",
        "labels.json",
        "model.safetensors",
        "metrics.json",
        "manifest.json",
        "complete.json",
    ):
        assert (run / name).is_file(), name
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["parameters"] > 0 and manifest["data"]["train"]["examples"] == 160


def test_load_gives_a_callable_pipeline_with_a_readable_repr(classify_run):
    run, _ = classify_run
    pipe = seqlab.load(run)
    assert pipe.task == "classify" and "ClassifierPipeline(task=classify" in repr(pipe)
    (one,) = pipe("great fun")
    assert one == pipe.predict(["great fun"])[0] and set(one["probabilities"]) == {"neg", "pos"}


def test_evaluate_scores_a_run_on_labelled_data(classify_run):
    run, data = classify_run
    metrics = seqlab.evaluate(run, str(data))
    assert metrics["data"] == str(data) and metrics["examples"] == 200 and 0.0 <= metrics["accuracy"] <= 1.0


def test_tag_runs_load_and_evaluate_through_the_same_calls(tmp_path):
    data = tmp_path / "people.conll"
    data.write_text(tagged_lines(24), encoding="utf-8")
    run = seqlab.train(
        "tag",
        data=str(data),
        arch="bilstm-crf",
        preset="tiny",
        epochs=2,
        output_dir=str(tmp_path / "runs"),
        overrides=["data.valid_fraction=0", "data.test_fraction=0", "tokenizer.min_frequency=1"],
    )
    pipe = seqlab.load(run)
    assert pipe.task == "tag" and "TaggerPipeline(task=tag" in repr(pipe)
    assert isinstance(pipe("Alice works for Acme Corp in Paris ."), list)
    metrics = seqlab.evaluate(run, str(data))
    assert {"precision", "recall", "f1", "per_type"} <= set(metrics)


def test_configure_maps_keywords_and_dotted_keys():
    cfg = api.configure("translate", arch="transformer", epochs=3, **{"model.dropout": 0.25}, train__lr=0.002)
    assert cfg.model.arch == "transformer-seq2seq" and cfg.train.epochs == 3
    assert cfg.model.dropout == 0.25 and cfg.train.lr == 0.002
    assert api.configure("lm", name="001").name == "001"  # a string stays a string
    with pytest.raises(SeqlabError, match="unknown setting 'colour'"):
        api.configure("classify", colour="red")
    with pytest.raises(SeqlabError, match="trains no model of its own"):
        api.configure("augment")
    with pytest.raises(SeqlabError, match="unknown task"):
        seqlab.train("summarize", data="rt-polarity")


def test_resume_takes_nothing_else(tmp_path):
    with pytest.raises(SeqlabError, match="give nothing else"):
        seqlab.train("classify", resume=tmp_path)
    with pytest.raises(SeqlabError, match="not a seqlab run folder"):
        seqlab.train(resume=tmp_path)


@pytest.mark.parametrize("verb", ["classify", "translate", "augment", "tag"])
def test_every_task_checks_texts_by_the_same_rules(verb):
    with pytest.raises(SeqlabError, match=f"nothing to {verb}"):
        check_texts([], verb)
    with pytest.raises(SeqlabError, match="input 2 is int, not text"):
        check_texts(["fine", 3], verb)
    with pytest.raises(SeqlabError, match="over the limit of 5"):
        check_texts(["much too long"], verb, max_chars=5)
    assert check_texts("one text", verb) == ["one text"]


def test_only_tagging_accepts_a_blank_text():
    with pytest.raises(SeqlabError, match="input 1 is empty"):
        check_texts(["  "], "classify")
    assert check_texts(["", "Alice"], "tag", allow_blank=True) == ["", "Alice"]


def test_a_tagger_follows_the_learning_rate_schedule(monkeypatch):
    """Tag runs used to accept train.lr_schedule/warmup_steps and ignore them."""
    import torch

    import seqlab.trainer
    from seqlab.config import build_config
    from seqlab.tasks.tag.recipe import TaggerModule

    monkeypatch.setattr(seqlab.trainer, "schedule_horizon", lambda module, cfg: 10)  # (no Trainer attached here)
    cfg = build_config({"task": "tag"}, ["train.lr_schedule=cosine", "train.warmup_steps=3"])
    module = TaggerModule(torch.nn.Linear(2, 2), ["O", "B-PER", "I-PER"], cfg.train)
    configured = module.configure_optimizers()
    scheduler = configured["lr_scheduler"]["scheduler"]
    rates = []
    for _ in range(10):
        rates.append(scheduler.get_last_lr()[0])
        configured["optimizer"].step()
        scheduler.step()
    assert rates[0] < rates[3] and rates[-1] < rates[3]  # warm-up, then cosine decay
