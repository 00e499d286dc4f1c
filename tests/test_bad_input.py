"""The bad-input suite (issue 10 §4): one table of bad inputs across the CLI, the Python API
and the HTTP server.

Every row must end in one line naming the problem, with no traceback and nothing written:
- CLI (typer's runner, in process): exit code 2 for a malformed command line (click's own
  checks), 1 for everything seqlab checks; stderr holds one `error: ...` line (log lines
  `seqlab: ...` aside).
- real subprocesses (`python -m seqlab.cli.main`): the same, as a terminal sees it.
- Python API: a `SeqlabError` whose message is one line.
- server (`seqlab.serve.app.create_app`): a 4xx JSON error.
and in every case no file under the test's folder (run folders, outputs, caches) is new or
changed afterwards.

Each row is `Case(id, kind, prepare, expect, code)`: `prepare(world)` builds the bad input
(before the snapshot of the folder is taken) and returns the CLI arguments, the API call or the
HTTP request.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import sentiment_rows, write_csv
from typer.testing import CliRunner

from seqlab import api
from seqlab.cli.main import app
from seqlab.config import build_config, load_config
from seqlab.errors import SeqlabError

REPO = Path(__file__).resolve().parents[1]
SHARED_HOME = Path(os.environ.get("SEQLAB_HOME", "/tmp/seqlab-home"))
CONLL = (
    "\n\n".join(
        "\n".join(
            f"{w} {t}"
            for w, t in [(p, "B-PER"), ("works", "O"), ("for", "O"), (f, "B-ORG"), ("in", "O"), (c, "B-LOC"), (".", "O")]
        )
        for p, f, c in [
            ("Alice", "Acme", "Paris"),
            ("Bob", "Globex", "London"),
            ("Carol", "Initech", "Rome"),
            ("Dave", "Acme", "Oslo"),
        ]
        * 3
    )
    + "\n"
)
LM_TEXT = "".join(f"the cat sat on the mat {i % 7} times and the dog ran.\n" for i in range(40))


# --------------------------------------------------------------------------- the world


@dataclass
class World:
    """Tiny finished runs of every task, and a scratch folder every case writes its inputs to."""

    root: Path
    classify: Path
    lm: Path
    translate: Path
    tag: Path

    def file(self, name: str, content: str | bytes) -> Path:
        path = self.root / "inputs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    def broken_run(self, source: Path, name: str, change: Callable[[Path], Any]) -> Path:
        """A copy of a finished run (weights, tokenizer, labels, config) with one thing broken."""
        copy = self.root / "broken" / name
        if not copy.exists():
            shutil.copytree(source, copy, ignore=shutil.ignore_patterns("checkpoints", "logs"))
            change(copy)
        return copy

    def tampered_home(self, name: str, keep_mtime: bool) -> Path:
        """A private SEQLAB_HOME holding the rt-polarity archive with one byte changed (same size):
        with `keep_mtime`, its size, mtime and `.sha256-ok` marker all still look verified.
        (The shared cache is copied, never changed.)"""
        from seqlab import assets

        home = self.root / f"home-{name}"
        source = SHARED_HOME / "archives" / assets.ARCHIVES["vaderSentiment-3.3.2"].filename
        if not source.is_file():
            pytest.skip(f"{source} is not fetched (seqlab data get rt-polarity)")
        target = home / "archives" / source.name
        target.parent.mkdir(parents=True)
        shutil.copy2(source, target)
        stat = target.stat()
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0xFF
        target.write_bytes(bytes(data))
        if keep_mtime:
            os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
            marker = target.with_name(target.name + ".sha256-ok")
            marker.write_text(f"{stat.st_size} {stat.st_mtime_ns} {assets.ARCHIVES['vaderSentiment-3.3.2'].sha256}\n")
        return home


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    root = tmp_path_factory.mktemp("bad-input")
    runs = root / "runs"
    common = ["model.preset=tiny", "train.epochs=1", f"output_dir={runs}", "train.precision=32-true"]
    csv = write_csv(root / "sentiment.csv", sentiment_rows(60))
    text = root / "corpus.txt"
    text.write_text(LM_TEXT, encoding="utf-8")
    conll = root / "people.conll"
    conll.write_text(CONLL, encoding="utf-8")
    trained = {
        "classify": ({"task": "classify"}, [f"data.train={csv}", "model.arch=cnn", "train.batch_size=16"]),
        "lm": ({"task": "lm"}, [f"data.train={text}", "tokenizer.max_length=32", "train.batch_size=16"]),
        "translate": (
            {"task": "translate"},
            ["data.train=reverse:40", "tokenizer.level=word", "model.hidden_dim=16", "train.batch_size=16"],
        ),
        "tag": ({"task": "tag"}, [f"data.train={conll}", "tokenizer.min_frequency=1", "train.batch_size=8"]),
    }
    made = {
        name: api.train(build_config(base, [*common, *extra, f"name={name}"]), progress="off")
        for name, (base, extra) in trained.items()
    }
    (root / "cwd").mkdir()
    return World(root=root, **made)


@pytest.fixture(scope="module")
def server(world: World):
    """The HTTP app over the tiny runs, through FastAPI's in-process client."""
    create_app = pytest.importorskip("seqlab.serve.app").create_app
    from fastapi.testclient import TestClient

    app = create_app({"sentiment": str(world.classify), "writer": str(world.lm), "reverser": str(world.translate)})
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Case:
    id: str
    kind: str  # "cli", "proc" (a real subprocess), "api", "http"
    prepare: Callable[[World], Any]  # → CLI arguments, a no-argument callable ("api"), or request arguments ("http")
    expect: str  # a fragment the one error line must hold (case-insensitive)
    code: int = 1  # exit code: 2 malformed command line, 1 everything seqlab checks; "http": the 4xx status
    env: Callable[[World], dict[str, str]] | None = None  # extra environment (cli and proc)


def cli(id: str, prepare: Callable[[World], list], expect: str, code: int = 1, env=None) -> Case:
    return Case(id, "cli", prepare, expect, code, env)


def proc(id: str, prepare: Callable[[World], list], expect: str, code: int = 1, env=None) -> Case:
    return Case(id, "proc", prepare, expect, code, env)


def call(id: str, prepare: Callable[[World], Callable[[], Any]], expect: str) -> Case:
    return Case(id, "api", prepare, expect)


def http(id: str, path: str, expect: str, status: int, **request: Any) -> Case:
    """A POST to the server (`request`: json=..., content=..., headers=...)."""
    return Case(id, "http", lambda w: {"method": request.pop("method", "POST"), "url": path, **request}, expect, status)


def train_on(name: str, content: str | bytes, *extra: str, task: str = "classify") -> Callable[[World], list]:
    """`seqlab train TASK --data <a file holding content>`."""
    return lambda w: ["train", task, "--data", w.file(name, content), "--preset", "tiny", "--epochs", "1", *extra]


def folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def yaml_config(name: str, content: str | bytes) -> Callable[[World], list]:
    return lambda w: ["train", w.file(name, content), "train.epochs=1"]


def predict_input(name: str, content: str | bytes) -> Callable[[World], list]:
    return lambda w: ["predict", w.classify, "--input", w.file(name, content)]


def corrupt(relative: str, content: bytes | None = None, truncate: int | None = None) -> Callable[[Path], None]:
    """Replace a run file's bytes, cut it to `truncate` bytes, or (neither) delete it."""

    def change(run: Path) -> None:
        path = run / relative
        if content is not None:
            path.write_bytes(content)
        elif truncate is not None:
            path.write_bytes(path.read_bytes()[:truncate])
        else:
            path.unlink()

    return change


def scramble(relative: str) -> Callable[[Path], None]:
    """Overwrite a run file's first bytes (the safetensors header) with junk, keeping its size."""

    def change(run: Path) -> None:
        data = bytearray((run / relative).read_bytes())
        data[: min(64, len(data))] = b"\xff" * min(64, len(data))
        (run / relative).write_bytes(bytes(data))

    return change


def unfinished_with_checkpoint(content: bytes) -> Callable[[Path], None]:
    """Make a finished run's copy an unfinished one whose checkpoints/last.ckpt holds `content`."""

    def change(run: Path) -> None:
        for name in ("model.safetensors", "complete.json", "metrics.json", "manifest.json"):
            (run / name).unlink(missing_ok=True)
        (run / "checkpoints").mkdir()
        (run / "checkpoints" / "last.ckpt").write_bytes(content)

    return change


def with_broken(task: str, name: str, change: Callable[[Path], None], command: Callable[[Path], list]) -> Callable[[World], list]:
    return lambda w: command(w.broken_run(getattr(w, task), name, change))


def generate_with(*options: str) -> Callable[[World], list]:
    return lambda w: ["generate", "--model", w.lm, "the cat", *options]


def set_config(key: str, value: Any) -> Callable[[Path], None]:
    def change(run: Path) -> None:
        import yaml

        raw = yaml.safe_load((run / "config.yaml").read_text())
        section, _, field = key.rpartition(".")
        (raw[section] if section else raw)[field] = value
        (run / "config.yaml").write_text(yaml.safe_dump(raw))

    return change


GOOD_CSV = "text,label\n" + "".join(f"{text},{label}\n" for text, label in sentiment_rows(20))
GOOD_TSV = "\n".join(f"{a}\t{b}" for a, b in [("one two", "two one"), ("three four", "four three")] * 5) + "\n"
BINARY = bytes(range(256)) * 40
PNG = b"\x89PNG\r\n\x1a\n" + bytes(200)
YAML_RCE = "!!python/object/apply:os.system ['touch pwned-by-yaml']\n"

CASES: list[Case] = [
    # --- malformed, empty, mis-encoded, binary and huge data files (classify) --------------
    cli("csv-empty", train_on("empty.csv", ""), "empty"),
    cli("csv-header-only", train_on("header.csv", "text,label\n"), "no examples"),
    cli("csv-missing-label-column", train_on("nolabel.csv", "text,stars\nhello,5\n"), "label"),
    cli("csv-short-row", train_on("short.csv", GOOD_CSV + "just text\n"), "line 22"),
    cli("csv-unclosed-quote", train_on("quote.csv", GOOD_CSV + '"never closed,pos\n'), "line 22"),
    cli("csv-latin-1", train_on("latin.csv", b"text,label\ncaf\xe9 ok,pos\n"), "utf-8"),
    cli("csv-utf-16", train_on("utf16.csv", GOOD_CSV.encode("utf-16")), "utf-16"),
    cli("csv-binary", train_on("random.csv", BINARY), "utf-8"),
    cli("csv-png", train_on("image.csv", PNG), "utf-8"),
    cli("csv-huge-line", train_on("huge.csv", GOOD_CSV + "word " * 210_000 + ",pos\n"), "characters"),
    cli("csv-blank-text", train_on("blank.csv", GOOD_CSV + "   ,pos\n"), "empty"),
    cli("csv-one-label", train_on("onelabel.csv", "text,label\n" + "a fine film,pos\n" * 20), "label"),
    cli("tsv-wrong-columns", train_on("bad.tsv", "text\tlabel\n" + "good\tpos\textra\n" * 3), "line 2"),
    cli("jsonl-malformed", train_on("bad.jsonl", '{"text": "good", "label": "pos"}\n{"text": "oops"\n'), "line 2"),
    cli("jsonl-not-object", train_on("list.jsonl", '["good", "pos"]\n'), "line 1"),
    cli("jsonl-empty", train_on("empty.jsonl", "\n\n"), "empty"),
    cli("data-unsupported-suffix", train_on("data.xlsx", GOOD_CSV), "unsupported"),
    cli(
        "data-is-directory",
        lambda w: ["train", "classify", "--data", folder(w.root / "inputs" / "folder.csv"), "--epochs", "1"],
        "not a file",
    ),
    cli("data-missing", lambda w: ["train", "classify", "--data", w.root / "nope.csv", "--epochs", "1"], "does not exist"),
    # --- other tasks' data files ------------------------------------------------------------
    cli("conll-empty", train_on("empty.conll", "", task="tag"), "empty"),
    cli("conll-one-column", train_on("cols.conll", "Alice\nworks\n", task="tag"), "line 1"),
    cli("conll-bad-tag", train_on("tag.conll", "Alice X-PER\nworks O\n", task="tag"), "line 1"),
    cli("conll-latin-1", train_on("latin.conll", b"Jos\xe9 B-PER\n", task="tag"), "utf-8"),
    # --- the field's benchmarks (issue 18 §6) --------------------------------------------------
    cli("conll-wrong-column-count", train_on("cols4.conll", "EU NNP B-NP B-ORG\nrejects VBZ O\n", task="tag"), "line 2"),
    cli("conll-unknown-tag-scheme", train_on("bilou.conll", CONLL, "tag.scheme=bilou", task="tag"), "tag.scheme"),
    cli(
        "conll-label-in-test-only",
        lambda w: [
            "train",
            "tag",
            "--data",
            w.root / "people.conll",
            "--test",
            w.file("misc.conll", "German B-MISC\nbeer O\n"),
            "--epochs",
            "1",
            "--output-dir",
            w.root / "bad-runs",
        ],
        "'MISC' appears in the test data",
    ),
    cli(
        "embedding-ragged-row",
        lambda w: [
            "train",
            "classify",
            "--data",
            w.root / "sentiment.csv",
            "--embeddings",
            w.file("ragged.txt", "good 0.1 0.2 0.3\nbad 0.4 0.5\n"),
            "--preset",
            "tiny",
            "--epochs",
            "1",
            "--output-dir",
            w.root / "bad-runs",
        ],
        "line 2",
    ),
    cli(
        "wikitext-split-missing",
        lambda w: ["train", "lm", "--data", "wikitext-2:dev", "--level", "word"],
        "wikitext-2 has no split 'dev'",
    ),
    cli(
        "perplexity-split-missing",
        lambda w: ["perplexity", w.lm, "--data", "wikitext-2", "--split", "dev"],
        "wikitext-2 has no split 'dev'",
    ),
    cli(
        "perplexity-split-of-a-file",
        lambda w: ["perplexity", w.lm, "--data", w.root / "corpus.txt", "--split", "test"],
        "--split",
    ),
    cli("conll-split-missing", lambda w: ["evaluate", w.tag, "--data", "conll2003:dev"], "conll2003 has no split 'dev'"),
    cli("parallel-one-column", train_on("pairs.tsv", "just a source\n" * 5, task="translate"), "line 1"),
    cli("parallel-empty", train_on("empty.tsv", "", task="translate"), "empty"),
    cli("parallel-binary", train_on("random.tsv", BINARY, task="translate"), "utf-8"),
    # --- translation on real data (issue 17 §7; a 100,000-character line is cut and counted, see test_translate_tatoeba)
    cli(
        "parallel-empty-target",
        train_on("notarget.tsv", "one two\ttwo one\nthree four\t\n", task="translate"),
        "line 2: empty target",
    ),
    cli("parallel-latin-1", train_on("latin.tsv", b"caf\xe9 noir\tblack coffee\n", task="translate"), "utf-8"),
    cli(
        "translate-unknown-direction",
        lambda w: ["train", "translate", "--data", "tatoeba-en-fr", "data.direction=de-en"],
        "unknown direction",
    ),
    cli(
        "translate-direction-of-a-file", train_on("dir.tsv", GOOD_TSV, "data.direction=fr-en", task="translate"), "data.direction"
    ),
    cli("translate-n-best-over-beam", lambda w: ["translate", w.translate, "one two", "--beam", "2", "--n-best", "3"], "n-best"),
    cli(
        "evaluate-direction-of-a-file",
        lambda w: ["evaluate", w.translate, "--data", w.file("ok.tsv", GOOD_TSV), "--direction", "fr-en"],
        "direction",
    ),
    cli("compare-budget-unreadable", lambda w: ["compare", "translate", "--budget", "soon"], "--budget"),
    cli(
        "augment-via-classifier",
        lambda w: ["augment", "one two", "--method", "backtranslate", "--via", f"{w.classify},{w.translate}"],
        "translate run",
    ),
    cli(
        "augment-via-one-run",
        lambda w: ["augment", "one two", "--method", "backtranslate", "--via", str(w.translate)],
        "two translate runs",
    ),
    cli("lm-text-empty", train_on("empty.txt", "", task="lm"), "empty"),
    cli("lm-text-utf-16", train_on("utf16.txt", LM_TEXT.encode("utf-16"), task="lm"), "utf-16"),
    # --- config files and overrides ----------------------------------------------------------
    cli("override-unknown-key", lambda w: ["train", "classify", "model.bogus=1"], "model.bogus"),
    cli("override-wrong-type", lambda w: ["train", "classify", "train.epochs=many"], "train.epochs"),
    cli("override-no-equals", lambda w: ["train", "classify", "train.epochs"], "section.key=value"),
    cli("override-into-value", lambda w: ["train", "classify", "train.epochs=3", "train.epochs.max=3"], "not a section"),
    cli("override-negative-lr", lambda w: ["train", "classify", "train.lr=-1"], "train.lr"),
    cli("yaml-invalid", yaml_config("bad.yaml", "model: [unclosed\n"), "not valid yaml"),
    cli("yaml-unknown-key", yaml_config("unknown.yaml", "model:\n  arch: cnn\n  colour: blue\n"), "model.colour"),
    cli("yaml-wrong-type", yaml_config("type.yaml", "train:\n  batch_size: [16]\n"), "train.batch_size"),
    cli("yaml-not-mapping", yaml_config("list.yaml", "- data\n- model\n"), "mapping"),
    cli("yaml-python-tag", yaml_config("rce.yaml", YAML_RCE), "not valid yaml"),
    cli("yaml-latin-1", yaml_config("latin.yaml", b"name: caf\xe9\n"), "yaml"),
    cli("yaml-missing", lambda w: ["train", w.root / "missing.yaml"], "does not exist"),
    cli("yaml-directory", lambda w: ["train", folder(w.root / "inputs" / "dir.yaml")], "directory"),
    cli("option-wrong-type", lambda w: ["train", "classify", "--epochs", "many"], "--epochs", code=2),
    cli("option-unknown", lambda w: ["predict", w.classify, "--colour", "red"], "--colour", code=2),
    cli("argument-missing", lambda w: ["predict"], "missing argument", code=2),
    # --- unknown names -----------------------------------------------------------------------
    cli("unknown-task", lambda w: ["train", "summarise"], "unknown task"),
    cli("unknown-dataset", lambda w: ["train", "classify", "--data", "imdb-9000"], "imdb-9000"),
    cli("unknown-arch", lambda w: ["train", "classify", "--arch", "mamba"], "mamba"),
    cli("unknown-preset", lambda w: ["train", "classify", "--preset", "huge"], "huge"),
    cli(
        "unknown-builtin-model",
        lambda w: ["train", "classify", "--arch", "hf", "--model", "no-such-model-xyz"],
        "no-such-model-xyz",
    ),
    cli("unknown-causal-lm", lambda w: ["generate", "--model", "no-such-lm-xyz", "hi"], "no-such-lm-xyz"),
    cli("unknown-compare-method", lambda w: ["compare", "classify", "--archs", "cnn,telepathy"], "telepathy"),
    cli("unknown-compare-task", lambda w: ["compare", "summarise"], "unknown task"),
    cli("unknown-data-get", lambda w: ["data", "get", "imdb-9000"], "imdb-9000"),
    cli("unknown-spacy-pipeline", lambda w: ["ner", "--model", "xx_no_such_pipeline", "Apple"], "xx_no_such_pipeline"),
    cli("unknown-ner-format", lambda w: ["ner", "--format", "xml", "Apple"], "xml"),
    cli("unknown-backend", lambda w: ["predict", w.classify, "--backend", "tpu", "good"], "tpu"),
    cli("unknown-dtype", lambda w: ["generate", "--model", w.lm, "--dtype", "fp8", "hi"], "fp8"),
    cli("unknown-engine", lambda w: ["generate", "--model", w.lm, "--engine", "vllm", "hi"], "vllm"),
    cli("unknown-export-format", lambda w: ["export", w.classify, "--format", "tflite"], "tflite"),
    cli("unknown-translate-task", lambda w: ["train", "translate", "--data", "klingon:100"], "klingon"),
    cli("serve-bad-port", lambda w: ["serve", "--model", f"c={w.classify}", "--port", "99999"], "port"),
    cli("serve-unknown-model-path", lambda w: ["serve", "--model", f"c={w.root / 'nope'}"], "nope"),
    cli("unknown-experiment", lambda w: ["experiment", "no-such-claim"], "no-such-claim", code=2),
    # --- broken run folders ------------------------------------------------------------------
    cli(
        "weights-garbage",
        with_broken("classify", "garbage", scramble("model.safetensors"), lambda r: ["predict", r, "good"]),
        "safetensors",
    ),
    cli(
        "weights-truncated",
        with_broken("classify", "truncated", corrupt("model.safetensors", truncate=300), lambda r: ["predict", r, "good"]),
        "safetensors",
    ),
    cli(
        "weights-wrong-shape",
        with_broken("classify", "shape", set_config("model.num_filters", 7), lambda r: ["predict", r, "good"]),
        "does not match",
    ),
    cli(
        "weights-missing",
        with_broken("classify", "noweights", corrupt("model.safetensors"), lambda r: ["predict", r, "good"]),
        "--resume",
    ),
    cli(
        "tokenizer-truncated",
        with_broken("classify", "tok", corrupt("tokenizer.json", truncate=100), lambda r: ["predict", r, "good"]),
        "tokenizer",
    ),
    cli(
        "tokenizer-binary",
        with_broken("lm", "tokbin", corrupt("tokenizer.json", BINARY), lambda r: ["generate", "--model", r, "hi"]),
        "tokenizer",
    ),
    cli(
        "tokenizer-missing",
        with_broken("translate", "notok", corrupt("tokenizer.json"), lambda r: ["translate", r, "one two"]),
        "tokenizer",
    ),
    cli(
        "labels-missing",
        with_broken("classify", "nolabels", corrupt("labels.json"), lambda r: ["predict", r, "good"]),
        "labels.json",
    ),
    cli(
        "labels-corrupt",
        with_broken("tag", "badlabels", scramble("labels.json"), lambda r: ["ner", "--model", r, "Alice"]),
        "labels.json",
    ),
    cli(
        "config-missing",
        with_broken("classify", "noconfig", corrupt("config.yaml"), lambda r: ["predict", r, "good"]),
        "config.yaml",
    ),
    cli(
        "config-corrupt",
        with_broken("translate", "badconfig", corrupt("config.yaml", b"task: [translate\n"), lambda r: ["translate", r, "one"]),
        "yaml",
    ),
    cli(
        "config-unknown-key",
        with_broken("lm", "keyconfig", set_config("train.colour", "blue"), lambda r: ["generate", "--model", r, "hi"]),
        "train.colour",
    ),
    cli("run-missing", lambda w: ["predict", w.root / "runs" / "nope", "good"], "does not exist"),
    cli("run-is-file", lambda w: ["translate", w.root / "sentiment.csv", "one"], "not a seqlab run"),
    # --- a run of one task given to another task's command ----------------------------------
    cli("classify-to-generate", lambda w: ["generate", "--model", w.classify, "hi"], "lm run"),
    cli("classify-to-translate", lambda w: ["translate", w.classify, "one two"], "translate run"),
    cli("classify-to-ner", lambda w: ["ner", "--model", w.classify, "Alice"], "tagger"),
    cli("classify-to-fill-mask", lambda w: ["fill-mask", w.classify, "a [MASK] film"], "classify"),
    cli("lm-to-predict", lambda w: ["predict", w.lm, "good"], "language model"),
    cli("lm-evaluate-missing-text", lambda w: ["evaluate", w.lm, "--data", w.root / "missing.txt"], "missing.txt"),
    cli("translate-to-predict", lambda w: ["predict", w.translate, "good"], "translation"),
    cli("tag-to-generate", lambda w: ["generate", "--model", w.tag, "hi"], "lm run"),
    cli("lm-to-translate", lambda w: ["translate", w.lm, "one"], "translate run"),
    cli("lm-to-export", lambda w: ["export", w.lm], "classifier"),
    cli("classify-to-perplexity", lambda w: ["perplexity", "--model", w.classify, "--data", w.root / "corpus.txt"], "lm run"),
    cli("lm-to-fill-mask", lambda w: ["fill-mask", w.lm, "a [MASK] film"], "pretrained encoder"),
    cli("tag-eval-on-csv", lambda w: ["evaluate", w.tag, "--data", w.root / "sentiment.csv"], "unsupported"),
    cli("finished-to-resume", lambda w: ["train", "--resume", w.classify], "already finished"),
    cli(
        "resume-corrupt-checkpoint",
        with_broken(
            "classify", "badckpt", unfinished_with_checkpoint(b"not a checkpoint" * 64), lambda r: ["train", "--resume", r]
        ),
        "last.ckpt",
    ),
    # --- decoding settings --------------------------------------------------------------------
    cli("temperature-negative", generate_with("--temperature", "-0.5"), "temperature"),
    cli("top-p-zero", generate_with("--top-p", "0"), "top_p"),
    cli("top-p-over-one", generate_with("--top-p", "1.5"), "top_p"),
    cli("top-k-negative", generate_with("--top-k", "-1"), "top_k"),
    cli("beams-zero", generate_with("--beams", "0"), "num_beams"),
    cli("max-new-tokens-zero", generate_with("--max-new-tokens", "0"), "max_new_tokens"),
    cli("max-new-tokens-negative", generate_with("--max-new-tokens", "-3"), "max_new_tokens"),
    cli("translate-beam-zero", lambda w: ["translate", w.translate, "one two", "--beam", "0"], "beam"),
    cli(
        "translate-length-ratio-zero",
        lambda w: ["translate", w.translate, "one two", "--max-length-ratio", "0"],
        "max_length_ratio",
    ),
    # --- empty text and unreadable input ------------------------------------------------------
    cli("predict-empty-text", lambda w: ["predict", w.classify, ""], "empty"),
    cli("predict-blank-text", lambda w: ["predict", w.classify, "  \t "], "empty"),
    cli("predict-nothing", lambda w: ["predict", w.classify], "nothing to predict"),
    cli("generate-empty-prompt", lambda w: ["generate", "--model", w.lm, ""], "empty"),
    cli("translate-empty-text", lambda w: ["translate", w.translate, ""], "empty"),
    cli("input-latin-1", predict_input("latin.txt", b"caf\xe9\n"), "utf-8"),
    cli("input-utf-16", predict_input("utf16.txt", "good film\n".encode("utf-16")), "utf-16"),
    cli("input-binary", predict_input("random.txt", BINARY), "utf-8"),
    cli("input-empty", predict_input("empty.txt", ""), "empty"),
    cli("input-huge-line", predict_input("huge.txt", "word " * 210_000 + "\n"), "characters"),
    cli("input-directory", lambda w: ["predict", w.classify, "--input", folder(w.root / "inputs" / "folder.txt")], "not a file"),
    cli(
        "eval-data-utf-16",
        lambda w: ["evaluate", w.classify, "--data", w.file("eval16.csv", GOOD_CSV.encode("utf-16"))],
        "utf-16",
    ),
    cli("perplexity-data-missing", lambda w: ["perplexity", "--model", w.lm, "--data", w.root / "nope.txt"], "does not exist"),
    cli("input-missing", lambda w: ["predict", w.classify, "--input", w.root / "nope.txt"], "does not exist"),
    # --- outputs that cannot be written ---------------------------------------------------------
    cli(
        "output-missing-folder",
        lambda w: ["predict", w.classify, "good", "--output", w.root / "no" / "such" / "out.jsonl"],
        "does not exist",
    ),
    cli("output-is-directory", lambda w: ["predict", w.classify, "good", "--output", w.root / "runs"], "directory"),
    cli(
        "output-under-a-file",
        lambda w: ["translate", w.translate, "one", "--output", w.root / "sentiment.csv" / "out.jsonl"],
        "not a directory",
    ),
    cli("ner-output-is-directory", lambda w: ["ner", "--model", w.tag, "Alice", "--output", w.root / "runs"], "directory"),
    cli(
        "plot-is-directory",
        lambda w: ["evaluate", w.classify, "--data", w.root / "sentiment.csv", "--plot", w.root / "runs"],
        "directory",
    ),
    cli("attention-wrong-suffix", lambda w: ["translate", w.translate, "one", "--attention", w.root / "cwd" / "a.pdf"], "png"),
    # --- a tampered asset: a cached archive whose bytes changed ---------------------------------
    cli(
        "asset-tampered",
        lambda w: ["train", "classify", "--data", "rt-polarity", "--epochs", "1"],
        "sha256",
        env=lambda w: {"SEQLAB_HOME": str(w.tampered_home("cli-touched", keep_mtime=False))},
    ),
    cli(
        "asset-tampered-same-mtime",
        lambda w: ["train", "classify", "--data", "rt-polarity", "--epochs", "1"],
        "sha256",
        env=lambda w: {"SEQLAB_HOME": str(w.tampered_home("cli-same-mtime", keep_mtime=True))},
    ),
    # --- real subprocesses: what a terminal sees ------------------------------------------------
    proc(
        "proc-garbage-weights",
        with_broken("classify", "garbage", scramble("model.safetensors"), lambda r: ["predict", r, "good"]),
        "safetensors",
    ),
    proc("proc-top-p", generate_with("--top-p", "1.5"), "top_p"),
    proc("proc-option-wrong-type", lambda w: ["train", "classify", "--epochs", "many"], "--epochs", code=2),
    proc(
        "proc-asset-tampered",
        lambda w: ["data", "get", "rt-polarity"],
        "sha256",
        env=lambda w: {"SEQLAB_HOME": str(w.tampered_home("proc-same-mtime", keep_mtime=True))},
    ),
    # --- the Python API ----------------------------------------------------------------------
    call("api-predict-empty", lambda w: lambda: api.load(w.classify).predict([""]), "empty"),
    call("api-predict-not-text", lambda w: lambda: api.load(w.classify).predict([42]), "not text"),
    call("api-predict-too-long", lambda w: lambda: api.load(w.classify).predict(["x" * 200_001]), "max_chars"),
    call("api-load-missing", lambda w: lambda: api.load(w.root / "nope"), "does not exist"),
    call("api-load-lm-as-classifier", lambda w: lambda: api.load_classifier(w.lm), "language model"),
    call("api-generate-temperature", lambda w: lambda: api.generate(w.lm, "the", do_sample=True, temperature=-1), "temperature"),
    call("api-generate-top-p", lambda w: lambda: api.generate(w.lm, "the", top_p=0.0), "top_p"),
    call("api-generate-top-k", lambda w: lambda: api.generate(w.lm, "the", top_k=-2), "top_k"),
    call("api-generate-beams", lambda w: lambda: api.generate(w.lm, "the", num_beams=0), "num_beams"),
    call("api-generate-max-new", lambda w: lambda: api.generate(w.lm, "the", max_new_tokens=0), "max_new_tokens"),
    call("api-generate-unknown-setting", lambda w: lambda: api.generate(w.lm, "the", temprature=0.5), "temprature"),
    call("api-generate-empty", lambda w: lambda: api.generate(w.lm, [""]), "empty"),
    call("api-translate-empty", lambda w: lambda: api.translate(w.translate, [""]), "empty"),
    call("api-translate-beam", lambda w: lambda: api.translate(w.translate, ["one"], beam=-1), "beam"),
    call("api-translator-of-tag-run", lambda w: lambda: api.load_translator(w.tag), "translate run"),
    call("api-tagger-of-lm-run", lambda w: lambda: api.load_tagger(w.lm), "tagger"),
    call("api-config-unknown-key", lambda w: lambda: build_config({"model": {"arch": "cnn", "width": 3}}), "model.width"),
    # --- the HTTP server (models: "sentiment" classify, "writer" lm, "reverser" translate) -------
    http(
        "http-malformed-json",
        "/v1/classify",
        "not valid json",
        400,
        content=b'{"texts": ["good"',
        headers={"content-type": "application/json"},
    ),
    http("http-json-not-object", "/v1/classify", "body", 422, json=["good"]),
    http("http-texts-not-list", "/v1/classify", "texts", 422, json={"texts": 42}),
    http("http-text-not-string", "/v1/classify", "texts", 422, json={"texts": [{"a": 1}]}),
    http("http-missing-texts", "/v1/classify", "texts", 422, json={"model": "sentiment"}),
    http("http-unknown-field", "/v1/classify", "colour", 422, json={"texts": ["good"], "colour": "red"}),
    http("http-empty-text", "/v1/classify", "texts", 422, json={"texts": [""]}),
    http("http-blank-text", "/v1/classify", "blank", 422, json={"texts": ["   "]}),
    http("http-no-texts", "/v1/classify", "texts", 422, json={"texts": []}),
    http("http-10mb-body", "/v1/classify", "limit", 413, json={"texts": ["x" * 10_000_000]}),
    http("http-text-too-long", "/v1/classify", "characters", 422, json={"texts": ["word " * 3000]}),
    http("http-unknown-model", "/v1/classify", "no-such-model", 404, json={"model": "no-such-model", "texts": ["good"]}),
    http("http-wrong-task", "/v1/generate", "sentiment", 422, json={"model": "sentiment", "prompt": "the"}),
    http("http-no-model-for-task", "/v1/ner", "ner", 404, json={"texts": ["Alice"]}),
    http(
        "http-temperature-negative",
        "/v1/generate",
        "temperature",
        422,
        json={"prompt": "the", "do_sample": True, "temperature": -1},
    ),
    http("http-top-p-over-one", "/v1/generate", "top_p", 422, json={"prompt": "the", "do_sample": True, "top_p": 1.5}),
    http("http-top-k-negative", "/v1/generate", "top_k", 422, json={"prompt": "the", "do_sample": True, "top_k": -1}),
    http("http-beams-zero", "/v1/generate", "num_beams", 422, json={"prompt": "the", "num_beams": 0}),
    http("http-max-new-tokens-zero", "/v1/generate", "max_new_tokens", 422, json={"prompt": "the", "max_new_tokens": 0}),
    http(
        "http-max-new-tokens-over-cap", "/v1/generate", "max_new_tokens", 422, json={"prompt": "the", "max_new_tokens": 100_000}
    ),
    http("http-translate-beam-zero", "/v1/translate", "beam", 422, json={"texts": ["one"], "beam": 0}),
    http("http-unknown-endpoint", "/v1/summarise", "/v1/summarise", 404, json={"texts": ["good"]}),
    http("http-wrong-method", "/v1/classify", "not allowed", 405, method="GET"),
    call("api-config-python-tag", lambda w: functools.partial(load_config, w.file("api-rce.yaml", YAML_RCE)), "not valid yaml"),
]


# --------------------------------------------------------------------------- running a case


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under `root` with its size and mtime."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def written(before: dict, after: dict) -> list[str]:
    """Files that are new or changed (a deleted file, such as a stale `.sha256-ok`, is not a write)."""
    return sorted(path for path, stamp in after.items() if before.get(path) != stamp)


def error_lines(stderr: str) -> list[str]:
    """stderr less log lines (`seqlab: ...`, rich's `INFO ...` at a terminal)."""
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith("seqlab: ")]


def check_one_line(stderr: str, case: Case) -> None:
    assert "Traceback" not in stderr, stderr
    lines = error_lines(stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), f"want one `error: ...` line, got:\n{stderr}"
    assert case.expect.lower() in lines[0].lower(), lines[0]


def run_cli(case: Case, args: list, env: dict[str, str], monkeypatch) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)  # (a traceback)
    assert result.exit_code == case.code, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.stdout
    check_one_line(result.stderr, case)


def run_process(case: Case, args: list, env: dict[str, str], cwd: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1", **env}
    done = subprocess.run(
        [sys.executable, "-m", "seqlab.cli.main", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
        check=False,
    )
    assert done.returncode == case.code, (done.returncode, done.stderr)
    assert "Traceback" not in done.stdout
    check_one_line(done.stderr, case)


def run_http(case: Case, request: dict, client) -> None:
    response = client.request(**request)
    assert response.status_code == case.code, (response.status_code, response.text[:300])
    body = response.json()
    assert set(body) == {"error", "code"}, body
    assert "\n" not in body["error"] and "Traceback" not in body["error"], body
    assert case.expect.lower() in body["error"].lower(), body


def run_api(case: Case, function: Callable[[], Any]) -> None:
    with pytest.raises(SeqlabError) as err:
        function()
    message = str(err.value)
    assert "\n" not in message and message, repr(message)
    assert case.expect.lower() in message.lower(), message


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, world: World, monkeypatch, request) -> None:
    monkeypatch.chdir(world.root / "cwd")  # the default runs/ folder would appear in the snapshot
    prepared = case.prepare(world)
    env = case.env(world) if case.env else {}
    before = snapshot(world.root)
    if case.kind == "cli":
        run_cli(case, prepared, env, monkeypatch)
    elif case.kind == "proc":
        run_process(case, prepared, env, world.root / "cwd")
    elif case.kind == "http":
        run_http(case, prepared, request.getfixturevalue("server"))
    else:
        run_api(case, prepared)
    assert written(before, snapshot(world.root)) == [], "a bad input must leave nothing written"
    assert not list((world.root / "cwd").iterdir()), "nothing may be written to the working folder"


def test_table_is_large_and_distinct() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 50
    assert {c.kind for c in CASES} == {"cli", "proc", "api", "http"}
