"""Tiny runs of every servable task, trained once per test session, for tests/test_serve.py and
tests/test_browser.py (both ask for them; the first one trains them)."""

from __future__ import annotations

from pathlib import Path

from conftest import sentiment_rows, write_csv

from seqlab import api
from seqlab.config import build_config

LM_TEXT = "".join(f"the cat sat on the mat {i % 7} times and the dog ran to the park.\n" for i in range(60))
CORPUS = "\n\n".join(
    "\n".join(f"the {a} sees the {b} in chapter {s} ." for s in range(6))
    for a, b in [("cat", "dog"), ("king", "queen"), ("fox", "hound"), ("bird", "horse")] * 4
)

_trained: dict[str, str] = {}


def tiny_models(folder: Path) -> dict[str, str]:
    """{name: spec} for a server holding one model per task: sentiment (a transformer classifier
    with [CLS] pooling, so it has attention), cnn (a classifier without attention), lm (a char
    GPT), rev (a seq2seq-attn that reverses word sequences), mlm (a tiny BERT) and ents
    (the built-in en_core_web_sm)."""
    if _trained:
        return dict(_trained)
    folder.mkdir(parents=True, exist_ok=True)
    out = f"output_dir={folder}"
    data = write_csv(folder / "sentiment.csv", sentiment_rows(160))
    classify = ["data.valid_fraction=0", "data.test_fraction=0", "model.preset=tiny", "train.batch_size=16", "train.lr=0.01", out]
    sentiment = api.train(
        build_config(
            {},
            [f"data.train={data}", "model.arch=transformer", "model.pooling=cls", "train.epochs=4", "name=sentiment", *classify],
        ),
        progress="off",
    )
    cnn = api.train(
        build_config({}, [f"data.train={data}", "model.arch=cnn", "train.epochs=2", "name=cnn", *classify]), progress="off"
    )
    text = folder / "lm.txt"
    text.write_text(LM_TEXT, encoding="utf-8")
    lm = api.train(
        build_config(
            {"task": "lm"},
            [
                f"data.train={text}",
                "model.preset=tiny",
                "tokenizer.max_length=32",
                "train.epochs=3",
                "train.batch_size=16",
                "name=lm",
                out,
            ],
        ),
        progress="off",
    )
    rev = api.train(
        build_config(
            {"task": "translate"},
            [
                "data.train=reverse:60",
                "data.valid_fraction=0",
                "data.test_fraction=0",
                "tokenizer.level=word",
                "model.preset=tiny",
                "model.hidden_dim=32",
                "train.batch_size=16",
                "train.lr=0.01",
                "train.epochs=8",
                "train.patience=null",
                "name=rev",
                out,
            ],
        ),
        progress="off",
    )
    corpus = folder / "corpus.txt"
    corpus.write_text(CORPUS, encoding="utf-8")
    mlm = api.pretrain(
        build_config(
            {"task": "pretrain-mlm"},
            [
                f"data.train={corpus}",
                "model.preset=tiny",
                "model.d_model=32",
                "model.ff_dim=64",
                "train.epochs=1",
                "train.batch_size=8",
                "train.patience=null",
                "tokenizer.max_length=32",
                "name=mlm",
                out,
            ],
        ),
        progress="off",
    )
    _trained.update(sentiment=str(sentiment), cnn=str(cnn), lm=str(lm), rev=str(rev), mlm=str(mlm), ents="en_core_web_sm")
    return dict(_trained)
