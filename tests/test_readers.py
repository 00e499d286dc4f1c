"""Reading users' files: good formats work, every bad input is one line naming file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seqlab.data.datasets import load_examples
from seqlab.data.readers import Example, read_examples
from seqlab.errors import SeqlabError


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def error_of(path: Path, **kwargs: object) -> str:
    """The message of the SeqlabError raised by reading `path`, checked to be one line."""
    with pytest.raises(SeqlabError) as err:
        read_examples(path, **kwargs)  # type: ignore[arg-type]
    message = str(err.value)
    assert "\n" not in message and "\r" not in message
    assert path.name in message
    return message


def test_csv_with_bom_and_crlf(tmp_path: Path) -> None:
    content = b'\xef\xbb\xbftext,label\r\n"good, really",pos\r\nbad,neg\r\n\r\n'
    path = write(tmp_path, "a.csv", content)
    assert read_examples(path) == [Example("good, really", "pos"), Example("bad", "neg")]


def test_tsv_and_default_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "a.tsv", "id\tSentence\tsentiment\n1\tfine day\t1\n2\tawful\t0\n")
    assert read_examples(path) == [Example("fine day", "1"), Example("awful", "0")]
    tab = write(tmp_path, "a.tab", "review\ty\nok\t1\n")
    assert read_examples(tab) == [Example("ok", "1")]


def test_explicit_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "a.csv", "body,tag,text\nhello,x,ignored\n")
    assert read_examples(path, text_column="body", label_column="tag") == [Example("hello", "x")]


def test_jsonl_labels_become_strings(tmp_path: Path) -> None:
    lines = [{"text": "a", "label": 1}, {"text": "b", "label": "neg"}, {"text": "c", "label": 2.5}]
    path = write(tmp_path, "a.jsonl", "\r\n".join(json.dumps(x) for x in lines) + "\r\n\r\n")
    assert read_examples(path) == [Example("a", "1"), Example("b", "neg"), Example("c", "2.5")]


def test_missing_file_and_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(SeqlabError, match="does not exist"):
        read_examples(tmp_path / "nope.csv")
    message = error_of(write(tmp_path, "a.xlsx", "x"))
    assert ".csv" in message and ".jsonl" in message


@pytest.mark.parametrize("name", ["e.csv", "e.jsonl"])
@pytest.mark.parametrize("content", ["", "  \r\n\n"])
def test_empty_file(tmp_path: Path, name: str, content: str) -> None:
    message = error_of(write(tmp_path, name, content))
    assert "is empty" in message and "line 1" in message


def test_missing_default_column_names_the_flag(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "a.csv", "words,label\nhi,x\n"))
    assert "line 1" in message and "--text-column" in message and "'words'" in message
    message = error_of(write(tmp_path, "b.csv", "text,stars\nhi,5\n"))
    assert "--label-column" in message and "'stars'" in message


def test_missing_explicit_column(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "a.csv", "text,label\nhi,x\n"), label_column="gold")
    assert "line 1" in message and "'gold'" in message


@pytest.mark.parametrize(
    ("content", "line", "words"),
    [
        ("text,label\nok,a\nonly-one-field\n", 3, "field"),
        ("text,label\nok,a\n\nstill,b\ntoo,many,fields\n", 5, "field"),
        ("text,label\nok,a\n,b\n", 3, "text is empty"),
        ("text,label\nok,a\n   ,b\n", 3, "text is empty"),
        ("text,label\nok,a\nhello,\n", 3, "label is empty"),
        ('text,label\n"multi\nline",a\nhello, \n', 4, "label is empty"),
        ("text,label\n", 1, "no examples"),
    ],
)
def test_bad_csv_rows(tmp_path: Path, content: str, line: int, words: str) -> None:
    message = error_of(write(tmp_path, "bad.csv", content))
    assert f"line {line}:" in message and words in message


def test_not_utf8_names_line_and_offset(tmp_path: Path) -> None:
    path = write(tmp_path, "latin.csv", b"text,label\r\ncaf\xe9,a\r\n")
    message = error_of(path)
    assert "line 2" in message and "byte offset 15" in message and "UTF-8" in message


def test_text_over_max_chars(tmp_path: Path) -> None:
    # Longer than csv's default field limit (128 KiB): our limit must be the one that speaks.
    path = write(tmp_path, "long.csv", "text,label\nshort,a\n" + "x" * 1_048_576 + ",b\n")
    message = error_of(path)
    assert "line 3" in message and "1,048,576 characters" in message
    assert "100,000 (data.max_chars)" in message
    assert len(read_examples(path, max_chars=2_000_000)) == 2


@pytest.mark.parametrize(
    ("content", "line", "words"),
    [
        ('{"text": "a", "label": "x"}\n{"text": "b", "label": \n', 2, "invalid JSON"),
        ('[{"text": "a", "label": "x"},\n', 1, "JSON array"),
        ('{"text": "a", "label": "x"}\n[1, 2]\n', 2, "JSON object"),
        ('{"text": "a", "label": "x"}\n{"text": "b"}\n', 2, "'label'"),
        ('{"text": "a", "label": "x"}\n{"text": "", "label": "y"}\n', 2, "text is empty"),
        ('{"text": "a", "label": "x"}\n{"text": "b", "label": null}\n', 2, "label"),
        ('{"text": "a", "label": "x"}\n{"text": 5, "label": "y"}\n', 2, "string"),
        ('{"words": "a", "label": "x"}\n', 1, "--text-column"),
    ],
)
def test_bad_jsonl(tmp_path: Path, content: str, line: int, words: str) -> None:
    message = error_of(write(tmp_path, "bad.jsonl", content))
    assert f"line {line}" in message and words in message


def test_load_examples_dispatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "mine.csv", "content,class\nhello,greeting\n")
    assert load_examples(str(path)) == [Example("hello", "greeting")]
    monkeypatch.setenv("SEQLAB_HOME", str(tmp_path / "home"))
    with pytest.raises(SeqlabError, match="rt-polarity.*\\.csv"):
        load_examples("no-such-dataset")
