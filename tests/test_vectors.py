"""Pretrained word vectors in the embedding layer: lookup and coverage, scaling, static vs
non-static training, reload without the vectors, one-line errors, and the real spacy-md asset."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import sentiment_rows, write_csv
from safetensors.torch import load_file
from typer.testing import CliRunner

from seqlab import api, load
from seqlab.config import build_config, load_config
from seqlab.data.tokenize import SPECIAL_TOKENS, load_tokenizer
from seqlab.data.vectors import embedding_matrix, load_vectors
from seqlab.errors import SeqlabError
from seqlab.models import build_classifier
from seqlab.models.embeddings import set_word_vectors, word_embedding
from seqlab.tasks.word_vectors import apply_word_vectors

DIM = 16  # the tiny presets' embedding size
WORDS = ["great", "good", "love", "bad", "awful", "hate", "movie", "Film"]


def random_vectors(words: list[str], dim: int = DIM, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {word: rng.normal(0, 0.5, dim).astype(np.float32) for word in words}


@pytest.fixture
def vectors_dir(tmp_path: Path) -> Path:
    """A spaCy vocab folder (`Vocab.to_disk`) holding a few 16-d vectors; "fine" shares the row of
    "good", as words do in spaCy's pruned md table."""
    from spacy.vocab import Vocab

    vocab = Vocab()
    for word, vector in random_vectors(WORDS).items():
        vocab.set_vector(word, vector)
    vocab.vectors.add(vocab.strings.add("fine"), row=vocab.vectors.find(key="good"))
    vocab.to_disk(tmp_path / "vectors")
    return tmp_path / "vectors"


def test_coverage_counts_exact_then_lowercase_hits(vectors_dir):
    vectors = load_vectors(str(vectors_dir))
    assert vectors.dim == DIM
    vocab = {"[PAD]": 0, "[UNK]": 1, "good": 2, "Great": 3, "film": 4, "zzz": 5, "fine": 6}
    matrix, found, coverage = embedding_matrix(vocab, vectors, skip=SPECIAL_TOKENS)
    expected = random_vectors(WORDS)
    assert (coverage.words, coverage.exact, coverage.lowercase, coverage.found, coverage.distinct) == (5, 2, 1, 3, 2)
    assert coverage.describe() == f"{vectors_dir} vectors cover 3 of 5 vocabulary words (60.0%; 2 distinct vectors)"
    assert found.tolist() == [False, False, True, True, False, False, True]  # "film" ≠ "Film": no upper-casing
    np.testing.assert_array_equal(matrix[2], expected["good"])
    np.testing.assert_array_equal(matrix[3], expected["great"])
    np.testing.assert_array_equal(matrix[6], expected["good"])
    assert not matrix[[0, 1, 4, 5]].any()


def test_a_pipeline_folder_works_too(tmp_path):
    import spacy

    nlp = spacy.blank("en")
    nlp.vocab.set_vector("fun", np.ones(DIM, dtype=np.float32))
    nlp.to_disk(tmp_path / "pipeline")
    vectors = load_vectors(str(tmp_path / "pipeline"))
    assert vectors.rows(["fun", "dull"]).tolist()[1] == -1 and vectors.rows(["fun"])[0] >= 0


@pytest.mark.parametrize("arch", ["cnn", "lstm", "transformer"])
def test_vectors_rescaled_into_found_rows_others_keep_init(arch):
    cfg = build_config({}, [f"model.arch={arch}", "model.preset=tiny"])
    torch.manual_seed(0)
    model = build_classifier(cfg.model, 6, 2, 0)
    embedding = word_embedding(model)
    before = embedding.weight.detach().clone()
    vectors = torch.randn(6, DIM)
    found = torch.tensor([True, False, True, True, False, True])  # row 0 is [PAD]: never overwritten
    scale = set_word_vectors(embedding, vectors, found, freeze=False)
    after = embedding.weight.detach()
    init_std = 0.25 / 3**0.5 if arch != "transformer" else DIM**-0.5  # U(-.25,.25) or N(0, d^-1/2)
    assert scale * float(vectors[[2, 3, 5]].std()) == pytest.approx(float(before[1:].std()), rel=1e-5)
    assert float(before[1:].std()) == pytest.approx(init_std, rel=0.3)
    torch.testing.assert_close(after[[2, 3, 5]], vectors[[2, 3, 5]] * scale)
    torch.testing.assert_close(after[[1, 4]], before[[1, 4]])  # misses keep U(-0.25, 0.25) / N(0, d^-1/2)
    assert not after[0].any() and embedding.weight.requires_grad


def train_run(tmp_path: Path, vectors_dir: Path, name: str, *extra: str) -> Path:
    data = write_csv(tmp_path / "d.csv", sentiment_rows(60))
    cfg = build_config(
        {},
        [
            f"data.train={data}",
            "data.valid_fraction=0",
            "data.test_fraction=0",
            "model.arch=cnn",
            "model.preset=tiny",
            f"model.embeddings={vectors_dir}",
            "train.epochs=2",
            "train.batch_size=10",
            "train.lr=0.01",
            f"output_dir={tmp_path / 'runs'}",
            f"name={name}",
            *extra,
        ],
    )
    return api.train(cfg, progress="off")


def initial_embedding(run: Path) -> torch.Tensor:
    """The embedding `fit_classifier` started from: same seed, same vectors."""
    cfg = load_config(run / "config.yaml")
    tokenizer = load_tokenizer(run / "tokenizer.json")
    torch.manual_seed(cfg.train.seed)
    model = build_classifier(cfg.model, tokenizer.get_vocab_size(), 2, 0)
    apply_word_vectors(model, cfg, tokenizer)
    return model.embedding.weight.detach()


def test_static_freezes_the_embedding_non_static_trains_it(tmp_path, vectors_dir):
    static = train_run(tmp_path, vectors_dir, "static", "model.embeddings_mode=static")
    moving = train_run(tmp_path, vectors_dir, "non-static")
    for run, frozen in ((static, True), (moving, False)):
        trained = load_file(str(run / "model.safetensors"))["embedding.weight"]
        start = initial_embedding(run)
        assert torch.equal(trained, start) is frozen, run.name
        assert not trained[0].any()  # [PAD] stays zero either way
        trained_head = load_file(str(run / "model.safetensors"))["head.weight"]
        assert trained_head.abs().sum() > 0
    manifest = json.loads((static / "manifest.json").read_text())["embeddings"]
    assert manifest["mode"] == "static" and manifest["source"] == str(vectors_dir)
    assert manifest["found"] == manifest["exact"] + manifest["lowercase"] >= 6  # great good love bad awful hate movie film
    assert 0 < manifest["coverage"] < 1 and manifest["words"] > manifest["found"]


def test_a_run_reloads_without_the_vectors(tmp_path, vectors_dir):
    run = train_run(tmp_path, vectors_dir, "r")
    texts = ["great fun movie", "awful dull plot", "unseen words only"]
    before = load(run).predict_proba(texts)
    shutil.rmtree(vectors_dir)
    torch.testing.assert_close(load(run).predict_proba(texts), before)


def test_cli_flags_map_to_the_model_keys(tmp_path, vectors_dir, sentiment_csv):
    from seqlab.cli.main import app

    result = CliRunner().invoke(
        app,
        [
            "train",
            "classify",
            "--arch",
            "lstm",
            "--data",
            str(sentiment_csv),
            "--preset",
            "tiny",
            "--epochs",
            "1",
            "--embeddings",
            str(vectors_dir),
            "--embeddings-mode",
            "static",
            "--output-dir",
            str(tmp_path / "runs"),
            "--name",
            "cli",
        ],
    )
    assert result.exit_code == 0, result.output
    saved = (tmp_path / "runs" / "cli" / "config.yaml").read_text()
    assert f"embeddings: {vectors_dir}" in saved and "embeddings_mode: static" in saved


def test_unknown_vectors_are_one_line_and_leave_no_folder(tmp_path):
    data = write_csv(tmp_path / "d.csv", sentiment_rows(40))
    cfg = build_config(
        {},
        [
            f"data.train={data}",
            "model.arch=cnn",
            "model.preset=tiny",
            "model.embeddings=glove",
            f"output_dir={tmp_path / 'runs'}",
            "name=x",
        ],
    )
    with pytest.raises(SeqlabError) as err:
        api.train(cfg, progress="off")
    message = str(err.value)
    assert "\n" not in message and "spacy-md" in message and "a folder" in message and "'glove'" in message
    assert not (tmp_path / "runs" / "x").exists()


def test_size_mismatch_names_the_key(tmp_path, vectors_dir):
    data = write_csv(tmp_path / "d.csv", sentiment_rows(40))
    cfg = build_config(
        {},
        [
            f"data.train={data}",
            "model.arch=transformer",
            "model.preset=tiny",
            "model.d_model=8",
            f"model.embeddings={vectors_dir}",
            f"output_dir={tmp_path / 'runs'}",
            "name=x",
        ],
    )
    with pytest.raises(SeqlabError, match=r"^model\.d_model=8 does not match the 16-d vectors .*; set model\.d_model=16$"):
        api.train(cfg, progress="off")
    assert not (tmp_path / "runs" / "x").exists()
    with pytest.raises(SeqlabError, match=r"^config: model\.embed_dim: must be 300 to match the spacy-md vectors"):
        build_config({}, ["model.arch=cnn", "model.embeddings=spacy-md", "model.embed_dim=128"])
    # the named vectors set the size the user left open, and the saved config says so
    assert build_config({}, ["model.arch=cnn", "model.preset=tiny", "model.embeddings=spacy-md"]).model.embed_dim == 300
    assert build_config({}, ["model.arch=transformer", "model.embeddings=spacy-md"]).model.d_model == 300


def test_a_folder_without_vectors_is_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SeqlabError, match="holds no spaCy vectors"):
        load_vectors(str(tmp_path / "empty"))


@pytest.mark.network
def test_spacy_md_real_vectors(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQLAB_HOME", str(tmp_path / "home"))
    vectors = load_vectors("spacy-md")
    assert vectors.dim == 300 and vectors.table.shape[0] >= 20_000
    assert (tmp_path / "home" / "extracted" / "spacy-md-vectors" / "vectors").is_file()
    words = (
        "the a movie film is was good bad great awful boring funny plot acting actor story director "
        "characters script love hate best worst it's n't , . !"
    ).split()
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS + words)}
    _, found, coverage = embedding_matrix(vocab, vectors, skip=SPECIAL_TOKENS)
    assert coverage.words == len(words) and coverage.fraction >= 0.9, coverage.describe()
    assert coverage.distinct <= coverage.found
    assert not found[:2].any()


def test_a_static_run_resumes(tmp_path, vectors_dir):
    run = train_run(tmp_path, vectors_dir, "resume", "model.embeddings_mode=static")
    # make it look interrupted after epoch 2 with 3 asked for: the frozen embedding must line up
    # with the optimiser state saved in last.ckpt
    (run / "model.safetensors").unlink()
    (run / "config.yaml").write_text((run / "config.yaml").read_text().replace("epochs: 2", "epochs: 3"))
    api.train(None, resume=run, progress="off")
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 3
    trained = load_file(str(run / "model.safetensors"))["embedding.weight"]
    assert torch.equal(trained, initial_embedding(run))


def test_vectors_and_a_pretrained_encoder_exclude_each_other():
    from seqlab.config import TransformerModelConfig

    if "init" not in TransformerModelConfig.model_fields:
        pytest.skip("no model.init in this tree")
    with pytest.raises(SeqlabError, match="model.embeddings and model.init both"):
        build_config({}, ["model.arch=transformer", "model.embeddings=spacy-md", "model.init=runs/mlm"])
