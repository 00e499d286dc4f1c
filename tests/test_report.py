"""A report for every run (`seqlab.report`): training writes RUN/report.html, one self-contained
page (nothing from the network, every picture inside it) with the task's plots and sample
predictions; `seqlab report RUN` writes it again; a report that fails never fails training.
The same pages in a real browser: tests/test_browser.py."""

from __future__ import annotations

import base64
import json
import logging
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import sentiment_rows, write_csv
from typer.testing import CliRunner

from seqlab import api, report, runs
from seqlab.cli.main import app as cli
from seqlab.config import build_config

PNG = b"\x89PNG\r\n\x1a\n"


class Links(HTMLParser):
    """Every URL-valued attribute of a page, and its images' sources."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.images: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        for name, value in attrs:
            if name in ("src", "href", "srcset", "action", "data", "poster") and value is not None:
                self.urls.append(value)
        if tag == "img":
            self.images.append(dict(attrs).get("src") or "")


def check_self_contained(page: Path) -> Links:
    """The page loads nothing: no script, no stylesheet link, no URL but data: images, and
    every image is a whole PNG."""
    text = page.read_text(encoding="utf-8")
    links = Links()
    links.feed(text)
    assert not {"script", "link", "iframe", "object"} & links.tags
    assert all(url.startswith("data:image/png;base64,") for url in links.urls), [u[:60] for u in links.urls]
    assert "http://" not in text and "https://" not in text and "url(" not in text
    for src in links.images:
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG)
    return links


@pytest.fixture(scope="module")
def classify_run(tmp_path_factory) -> Path:
    """A transformer classifier with [CLS] pooling (it has attention), trained for 3 epochs."""
    folder = tmp_path_factory.mktemp("report-classify")
    data = write_csv(folder / "sentiment.csv", sentiment_rows(200))
    return api.train(
        build_config(
            {},
            [
                f"data.train={data}",
                "model.arch=transformer",
                "model.pooling=cls",
                "model.preset=tiny",
                "train.epochs=3",
                "train.batch_size=16",
                "train.lr=0.01",
                f"output_dir={folder}",
                "name=cls",
            ],
        ),
        progress="off",
    )


def test_training_writes_a_self_contained_classify_report(classify_run):
    page = classify_run / runs.REPORT
    assert page.is_file()
    links = check_self_contained(page)
    assert len(links.images) >= 3  # learning curves, confusion matrix, attention
    text = page.read_text(encoding="utf-8")
    for heading in (
        "Summary",
        "Learning curves",
        "Confusion matrix (test)",
        "Attention",
        "Sample predictions",
        "Data",
        "Config",
        "Versions and timings",
    ):
        assert heading in text, heading
    metrics = json.loads((classify_run / runs.METRICS).read_text(encoding="utf-8"))
    samples = metrics["test"]["samples"]
    assert 0 < len(samples) <= 20 and {"text", "gold", "predicted", "probability"} <= samples[0].keys()
    wrong = sum(s["gold"] != s["predicted"] for s in samples)
    assert text.count("<tr class='error'>") == wrong  # every wrong prediction, and only those, highlighted
    assert json.loads((classify_run / "manifest.json").read_text())["versions"]["torch"] in text
    # derived: complete.json does not vouch for it, so writing it again leaves the run loadable
    assert runs.REPORT not in json.loads((classify_run / runs.COMPLETE).read_text())["files"]


def test_seqlab_report_writes_it_again_and_elsewhere(classify_run, tmp_path):
    (classify_run / runs.REPORT).unlink()
    result = CliRunner().invoke(cli, ["report", str(classify_run)])
    assert result.exit_code == 0, result.output
    assert (classify_run / runs.REPORT).is_file() and "wrote" in result.output
    api.load(classify_run)  # the run is still whole
    elsewhere = tmp_path / "cls.html"
    assert CliRunner().invoke(cli, ["report", str(classify_run), "--output", str(elsewhere)]).exit_code == 0
    check_self_contained(elsewhere)
    bad = CliRunner().invoke(cli, ["report", str(tmp_path)])
    assert bad.exit_code == 1 and "not a seqlab run folder" in bad.output and "Traceback" not in bad.output


def test_a_failing_report_never_fails_training(tmp_path, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("no pictures today")

    monkeypatch.setattr(report, "render", broken)
    data = write_csv(tmp_path / "s.csv", sentiment_rows(60))
    with caplog.at_level(logging.WARNING, logger="seqlab"):
        run = api.train(
            build_config(
                {},
                [
                    f"data.train={data}",
                    "model.arch=cnn",
                    "model.preset=tiny",
                    "train.epochs=1",
                    f"output_dir={tmp_path}",
                    "name=cnn",
                ],
            ),
            progress="off",
        )
    assert (run / runs.COMPLETE).is_file() and not (run / runs.REPORT).exists()
    assert "report could not be written" in caplog.text and "no pictures today" in caplog.text
    api.load(run)


def test_translate_report_has_bleu_by_length_samples_and_alignments(tmp_path):
    run = api.train(
        build_config(
            {"task": "translate"},
            [
                "data.train=reverse:80",
                "tokenizer.level=word",
                "model.preset=tiny",
                "model.hidden_dim=32",
                "train.batch_size=16",
                "train.lr=0.01",
                "train.epochs=3",
                "train.patience=null",
                f"output_dir={tmp_path}",
                "name=rev",
            ],
        ),
        progress="off",
    )
    page = run / runs.REPORT
    links = check_self_contained(page)
    text = page.read_text(encoding="utf-8")
    assert "BLEU by source length (test)" in text and "Alignment" in text and "Sample predictions" in text
    samples = json.loads((run / runs.METRICS).read_text())["test"]["samples"]
    wrong = sum(s["output"] not in s["references"] for s in samples)
    assert text.count("<tr class='error'>") == wrong
    assert len(links.images) >= 2 + min(len(samples), 2)  # curves, BLEU by length, one alignment per sample shown


def tagged_file(path: Path, count: int = 24) -> Path:
    people, firms, places = ["Alice", "Bob", "Carol"], [["Acme"], ["Globex", "Corp"]], [["Paris"], ["New", "York"]]
    blocks = []
    for i in range(count):
        firm, place = firms[i % 2], places[(i // 2) % 2]
        rows = [(people[i % 3], "B-PER"), ("works", "O"), ("for", "O")]
        rows += [(w, ("B-" if j == 0 else "I-") + "ORG") for j, w in enumerate(firm)]
        rows += [("in", "O")] + [(w, ("B-" if j == 0 else "I-") + "LOC") for j, w in enumerate(place)] + [(".", "O")]
        blocks.append("\n".join(f"{w} {t}" for w, t in rows))
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    return path


def test_tag_report_shows_entity_scores_and_gold_against_predicted(tmp_path):
    data = tagged_file(tmp_path / "people.conll")
    run = api.train(
        build_config(
            {"task": "tag"},
            [
                f"data.train={data}",
                "model.preset=tiny",
                "train.epochs=2",
                "train.batch_size=8",
                "tokenizer.min_frequency=1",
                f"output_dir={tmp_path}",
                "name=tag",
            ],
        ),
        progress="off",
    )
    check_self_contained(run / runs.REPORT)
    text = (run / runs.REPORT).read_text(encoding="utf-8")
    assert "Entity F1 per type (test)" in text and "class='tagged" in text
    samples = json.loads((run / runs.METRICS).read_text())["test"]["samples"]
    assert samples and {"words", "gold", "predicted"} <= samples[0].keys()
    assert all(len(span) == 3 for s in samples for span in s["gold"])


def test_lm_report_shows_generated_samples(tmp_path):
    text = tmp_path / "lm.txt"
    text.write_text("".join(f"the cat sat on the mat {i % 7} times and the dog ran to the park .\n" for i in range(80)))
    run = api.train(
        build_config(
            {"task": "lm"},
            [
                f"data.train={text}",
                "model.preset=tiny",
                "tokenizer.max_length=32",
                "train.epochs=1",
                "train.batch_size=16",
                f"output_dir={tmp_path}",
                "name=lm",
            ],
        ),
        progress="off",
    )
    check_self_contained(run / runs.REPORT)
    metrics = json.loads((run / runs.METRICS).read_text())
    split = "test" if "test" in metrics else "valid"  # (an lm holds out no test text by default)
    samples = metrics[split]["samples"]
    assert samples and all(s["prompt"].startswith("the cat") and s["continuation"] for s in samples)
    page = (run / runs.REPORT).read_text(encoding="utf-8")
    assert f"perplexity ({split})" in page and samples[0]["prompt"] in page
