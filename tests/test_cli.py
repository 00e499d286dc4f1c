"""The command line through typer's test runner: the happy path, and every kind of bad input
ending in one line, exit code 1, no traceback and no run folder."""

import json
from pathlib import Path

import pytest
from conftest import sentiment_rows, write_csv
from typer.testing import CliRunner

from seqlab.cli.main import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def assert_one_line_error(result, fragment: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    message = result.stderr.strip()
    assert message.startswith("error:") and "\n" not in message, message
    assert fragment in message, message


def test_train_predict_evaluate(tmp_path, sentiment_csv):
    runs = tmp_path / "runs"
    result = invoke(
        "train",
        "classify",
        "--arch",
        "cnn",
        "--data",
        sentiment_csv,
        "--preset",
        "tiny",
        "--epochs",
        "3",
        "--output-dir",
        runs,
        "--name",
        "c",
        "train.lr=0.01",
    )
    assert result.exit_code == 0, result.output
    assert "trained" in result.stdout
    run = runs / "c"
    result = invoke("predict", run, "great fun movie", "awful dull plot")
    assert result.exit_code == 0 and result.stdout.count("=") == 4

    texts = tmp_path / "in.txt"
    texts.write_text("great fun\n\nawful dull plot\n")
    out = tmp_path / "pred.jsonl"
    result = invoke("predict", run, "--input", texts, "--output", out)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert result.exit_code == 0 and [x["text"] for x in lines] == ["great fun", "awful dull plot"]
    assert set(lines[0]["probabilities"]) == {"neg", "pos"}

    result = invoke("evaluate", run, "--data", sentiment_csv, "--json")
    metrics = json.loads(result.stdout)
    assert result.exit_code == 0 and 0 <= metrics["accuracy"] <= 1 and Path(metrics["confusion_matrix_png"]).is_file()


def test_train_from_config_file_with_overrides(tmp_path, sentiment_csv):
    config = tmp_path / "c.yaml"
    config.write_text(f"data:\n  train: {sentiment_csv}\nmodel:\n  arch: gru\n  preset: tiny\ntrain:\n  epochs: 1\n")
    result = invoke("train", config, f"output_dir={tmp_path / 'runs'}", "name=y", "train.batch_size=16")
    assert result.exit_code == 0, result.output
    saved = (tmp_path / "runs" / "y" / "config.yaml").read_text()
    assert "arch: gru" in saved and "batch_size: 16" in saved


def bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    good = sentiment_rows(30)
    cases = {}
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    cases["empty file"] = (empty, "empty")
    nolabel = tmp_path / "nolabel.csv"
    nolabel.write_text("text,stars\nhello,5\n")
    cases["missing column"] = (nolabel, "--label-column")
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"text,label\ncaf\xe9 ok,pos\n")
    cases["non-UTF-8"] = (latin, "UTF-8")
    blank = write_csv(tmp_path / "blank.csv", good + [("   ", "pos")])
    cases["empty string"] = (blank, "empty")
    huge = write_csv(tmp_path / "huge.csv", good + [("word " * 210_000, "pos")])
    cases["1 MB line"] = (huge, "characters")
    return cases


@pytest.mark.parametrize("case", ["empty file", "missing column", "non-UTF-8", "empty string", "1 MB line"])
def test_bad_data_is_one_line_and_leaves_no_run_folder(tmp_path, case):
    path, fragment = bad_files(tmp_path)[case]
    runs = tmp_path / "runs"
    result = invoke("train", "classify", "--data", path, "--output-dir", runs)
    assert_one_line_error(result, fragment)
    assert path.name in result.stderr
    assert not runs.exists() or not any(runs.iterdir())


def test_label_only_in_test_data(tmp_path):
    train = write_csv(tmp_path / "train.csv", sentiment_rows(40))
    test = write_csv(tmp_path / "test.csv", [("meh", "neutral")])
    result = invoke("train", "classify", "--data", train, "--test", test, "--output-dir", tmp_path / "runs")
    assert_one_line_error(result, "'neutral'")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["train", "classify", "--arch", "lstmm"], "unknown architecture 'lstmm'"),
        (["train", "classify", "train.epochz=1"], "train.epochz: unknown key"),
        (["train", "summarise"], "unknown task"),
        (["train", "classify", "--arch", "hf", "--model", "./no/such/folder"], "not a folder"),
        (["train", "missing.yaml"], "does not exist"),
        (["predict", "no/such/run", "hi"], "does not exist"),
        (["compare", "classify", "--archs", "cnn,nope"], "unknown architecture 'nope'"),
        (["data", "get", "imdb"], "imdb"),
    ],
)
def test_bad_options_are_one_line(args, fragment):
    assert_one_line_error(invoke(*args), fragment)


def test_run_folder_missing_its_tokenizer(tmp_path, sentiment_csv):
    runs = tmp_path / "runs"
    invoke(
        "train",
        "classify",
        "--arch",
        "cnn",
        "--data",
        sentiment_csv,
        "--preset",
        "tiny",
        "--epochs",
        "1",
        "--output-dir",
        runs,
        "--name",
        "r",
    )
    (runs / "r" / "tokenizer.json").unlink()
    assert_one_line_error(invoke("predict", runs / "r", "hello"), "tokenizer")


def test_help_answers_the_question():
    result = invoke("train", "--help")
    assert result.exit_code == 0 and "--arch" in result.stdout and "section.key=value" in result.stdout
