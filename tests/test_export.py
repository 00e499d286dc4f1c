"""ONNX export and the ONNX Runtime backend: every classifier family, a tiny random BERT and a
fine-tuned pretrained-here encoder export with logits within 1e-4 of PyTorch's at any batch size
and length; predictions through ONNX Runtime equal PyTorch's; bad input is one line."""

import json
from pathlib import Path

import onnx
import pytest
import torch
from conftest import sentiment_rows, write_csv
from typer.testing import CliRunner

from seqlab import api, runs
from seqlab.cli.main import app
from seqlab.config import build_config, save_config
from seqlab.data.readers import Example
from seqlab.errors import SeqlabError
from seqlab.tasks.classify import export
from seqlab.tasks.classify.pipeline import ClassifierPipeline

TEXTS = ["great fun movie", "awful dull plot , really bad", "the", "a good film " * 12]


def train_tiny(folder: Path, name: str, *overrides: str) -> Path:
    data = write_csv(folder / f"{name}.csv", sentiment_rows(60))
    cfg = build_config(
        {},
        [
            f"data.train={data}",
            "data.valid_fraction=0",
            "data.test_fraction=0",
            "model.preset=tiny",
            "train.epochs=1",
            "train.batch_size=16",
            "train.precision=32-true",
            f"output_dir={folder}",
            f"name={name}",
            *overrides,
        ],
    )
    return api.train(cfg, progress="off")


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    """A random 2-layer BERT with a word-level vocabulary, saved as a transformers folder."""
    from conftest import FILLER, NEGATIVE, POSITIVE
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    (folder / "vocab.txt").write_text(
        "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *POSITIVE, *NEGATIVE, *FILLER]) + "\n"
    )
    BertTokenizerFast(vocab=str(folder / "vocab.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=5 + len(POSITIVE + NEGATIVE + FILLER),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(folder)
    return folder


ARCHS = {
    "lstm": [],
    "bigru": ["model.pooling=max"],
    "cnn": [],
    "transformer": ["model.pooling=cls"],
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_bert) -> dict[str, Path]:
    """arch → a tiny trained run with model.onnx and model.int8.onnx written into it."""
    folder = tmp_path_factory.mktemp("runs")
    made = {}
    for arch, extra in [*ARCHS.items(), ("hf", ["model.arch=hf", f"model.model={tiny_bert}", "tokenizer.max_length=48"])]:
        run = train_tiny(folder, arch, *(extra if arch == "hf" else [f"model.arch={arch}", *extra]))
        assert export.export_onnx(run, quantize="int8") == run / "model.onnx"
        made[arch] = run
    return made


@pytest.mark.parametrize("arch", [*ARCHS, "hf"])
def test_logits_match_pytorch_at_any_batch_size_and_length(exported, arch):
    run = exported[arch]
    torch_model = api.load(run, backend="torch").model
    session = export.OnnxClassifier(run / "model.onnx")
    vocab = api.load(run, backend="torch").tokenizer.get_vocab_size()
    generator = torch.Generator().manual_seed(0)
    for size, length in [(1, 1), (4, 6), (9, 21), (2, 48)]:  # none of these is the traced (2, 4)
        ids = torch.randint(5, vocab, (size, length), generator=generator)
        mask = torch.ones(size, length, dtype=torch.long)
        mask[1:, length // 2 + 1 :] = 0  # every row after the first padded
        ids = ids.masked_fill(mask == 0, 0)
        with torch.inference_mode():
            expected = torch_model(ids, mask.bool()).logits
        got = session(ids, mask).logits
        assert got.shape == expected.shape
        assert (got - expected).abs().max() <= export.PARITY_TOLERANCE
    meta = {p.key: p.value for p in onnx.load(str(run / "model.onnx"), load_external_data=False).metadata_props}
    assert meta["seqlab.arch"] == api.load(run, backend="torch").config.model.arch and json.loads(meta["seqlab.labels"]) == [
        "neg",
        "pos",
    ]


@pytest.mark.parametrize("arch", [*ARCHS, "hf"])
def test_onnx_backend_predicts_what_pytorch_predicts(exported, arch):
    run = exported[arch]
    reference = api.load(run, backend="torch")
    onnx_pipe = api.load(run, backend="onnx")
    assert onnx_pipe.backend == "onnx"
    assert [p["label"] for p in onnx_pipe.predict(TEXTS)] == [p["label"] for p in reference.predict(TEXTS)]
    torch.testing.assert_close(onnx_pipe.predict_proba(TEXTS), reference.predict_proba(TEXTS), atol=1e-5, rtol=0)
    examples = [Example(text, label) for text, label in sentiment_rows(20, seed=3)]
    assert onnx_pipe.evaluate(examples)["accuracy"] == reference.evaluate(examples)["accuracy"]
    # int8: a valid distribution for every text (no parity bound)
    probs = api.load(run, backend="onnx-int8").predict_proba(TEXTS)
    assert probs.shape == (len(TEXTS), 2) and torch.isfinite(probs).all()
    torch.testing.assert_close(probs.sum(-1), torch.ones(len(TEXTS)))


def test_auto_backend_prefers_int8_for_hf_then_fp32_onnx_then_torch(exported, tmp_path):
    assert api.load(exported["hf"]).backend == "onnx-int8"
    assert api.load(exported["cnn"]).backend == "onnx"  # int8 only where its accuracy was measured
    bare = train_tiny(tmp_path, "bare", "model.arch=cnn")
    assert api.load(bare).backend == "torch"
    pipe = api.load(exported["transformer"], backend="onnx")
    tokens, layers = pipe.attention("great fun movie")  # attention weights come from the PyTorch model
    assert layers[0].shape[-1] == len(tokens)


def test_transformer_fine_tuned_from_a_pretrained_encoder_exports(tmp_path):
    from test_pretrain import pretrain_config, write_corpus

    corpus = write_corpus(tmp_path / "corpus.txt", documents=6, sentences=4)
    bert = api.pretrain(pretrain_config(corpus, tmp_path / "runs", "bert", "train.epochs=1"), progress="off")
    run = train_tiny(tmp_path / "runs", "ft", "model.arch=transformer", "model.pooling=cls", f"model.init={bert}")
    written = export.export_onnx(run, output=tmp_path / "out")
    assert written == tmp_path / "out" / "model.onnx" and not (run / "model.onnx").exists()
    texts = ["the cat sees the dog", "the king fears the queen in chapter 2 ."]
    reference = api.load(run, backend="torch").predict_proba(texts)
    pipe = ClassifierPipeline(runs.open_run(run), export.OnnxClassifier(written), "onnx")
    torch.testing.assert_close(pipe.predict_proba(texts), reference, atol=1e-5, rtol=0)


def test_a_graph_that_disagrees_with_pytorch_is_not_written(exported, tmp_path, monkeypatch):
    monkeypatch.setattr(export, "PARITY_TOLERANCE", -1.0)
    with pytest.raises(SeqlabError, match="nothing was written"):
        export.export_onnx(exported["cnn"], output=tmp_path)
    assert list(tmp_path.iterdir()) == []  # no model.onnx, no temporary folder


# --------------------------------------------------------------------------- the command line

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_one_line_error(result, fragment: str) -> None:
    assert result.exit_code == 1, result.output
    message = result.stderr.strip()
    assert message.startswith("error:") and "\n" not in message and "Traceback" not in result.output, message
    assert fragment in message, message


def test_cli_export_then_predict_and_evaluate_with_onnx(tmp_path):
    run = train_tiny(tmp_path, "c", "model.arch=cnn")
    assert_one_line_error(invoke("predict", run, "great fun", "--backend", "onnx"), f"seqlab export {run}")
    assert_one_line_error(invoke("predict", run, "great fun", "--backend", "onnx-int8"), "--quantize int8")
    result = invoke("export", run, "--format", "onnx", "--quantize", "int8")
    assert result.exit_code == 0, result.output
    assert (run / "model.onnx").is_file() and (run / "model.int8.onnx").is_file()
    outputs = {
        backend: invoke("predict", run, "great fun movie", "awful dull plot", "--backend", backend).stdout
        for backend in ("torch", "onnx")
    }
    assert outputs["torch"] == outputs["onnx"] and outputs["torch"].count("=") == 4
    data = write_csv(tmp_path / "eval.csv", sentiment_rows(30, seed=5))
    result = invoke("evaluate", run, "--data", data, "--backend", "onnx", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["examples"] == 30


def test_cli_bad_input_is_one_line(tmp_path):
    assert_one_line_error(invoke("export", tmp_path / "nope"), "does not exist")
    lm = tmp_path / "lm"
    lm.mkdir()
    save_config(build_config({"task": "lm"}, []), lm / "config.yaml")
    assert_one_line_error(invoke("export", lm), "classifier runs only")
    assert_one_line_error(invoke("export", lm, "--format", "tflite"), "unknown export format")
    assert_one_line_error(invoke("predict", tmp_path / "nope", "x", "--backend", "cuda"), "unknown backend")
