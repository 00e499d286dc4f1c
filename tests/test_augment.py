"""Text augmentation (issue 7): the seed's dictionary example, WordNet, EDA operations, data sets,
NER safety, the label filter, the model-based methods on tiny local models, and bad input."""

from __future__ import annotations

import csv
import io
import json
import logging
import random
import tarfile
import time
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import sentiment_rows, write_csv
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from seqlab import api, assets
from seqlab.cli.main import app
from seqlab.config import build_config
from seqlab.data import wordnet
from seqlab.data.conll import TaggedSentence, read_conll
from seqlab.errors import SeqlabError
from seqlab.tasks.augment import methods as aug_tasks
from seqlab.tasks.augment import pipeline as aug

SEED_DICT = {"happy": ["joyful", "cheerful"], "sad": ["unhappy", "sorrowful"]}
SEED_TEXT = "I am happy but sometimes sad"
SEED_OUTPUT = "I am cheerful but sometimes unhappy"


def invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def one_line_error(result, fragment: str) -> None:
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], result.output
    assert "Traceback" not in result.output


def units(text: str) -> list[aug_tasks.Unit]:
    """Hand-made units: every word replaceable except those in CAPS (an entity) and 'the'."""
    out = []
    for word in text.split():
        if word.isupper() and len(word) > 1:
            out.append(aug_tasks.Unit(word, " ", None, True, "ORG"))
        else:
            out.append(aug_tasks.Unit(word, " ", "n", fixed=word == "the"))
    return out


def words(us) -> list[str]:
    return aug_tasks.render(us).split()


# --------------------------------------------------------------------------- the seed's dictionary


def test_seed_dictionary_reproduces_the_seed_output():
    variants = api.augment(SEED_TEXT, "synonym", n=4, seed=0, synonyms=SEED_DICT)[0]
    # every dictionary word is replaced (as the seed does); four distinct variants = all four choices
    assert sorted(variants) == sorted(f"I am {a} but sometimes {b}" for a in SEED_DICT["happy"] for b in SEED_DICT["sad"])
    assert SEED_OUTPUT in variants
    # the seeded choice is pinned: seed 0's second draw is the seed course's sentence
    assert variants == [
        "I am joyful but sometimes sorrowful",
        SEED_OUTPUT,
        "I am cheerful but sometimes sorrowful",
        "I am joyful but sometimes unhappy",
    ]


def test_seed_dictionary_from_a_file_through_the_cli(tmp_path):
    path = tmp_path / "synonyms.json"
    path.write_text(json.dumps(SEED_DICT), encoding="utf-8")
    result = invoke("augment", SEED_TEXT, "--synonyms", path, "-n", "4", "--seed", "0", "--json")
    assert result.exit_code == 0, result.output
    assert SEED_OUTPUT in json.loads(result.output)[0]["variants"]


def test_seeded_outputs_are_stable_and_independent_of_the_batch():
    texts = ["the happy dog is sad today", "a sad and happy tale"]
    first = api.augment(texts, "eda", n=3, seed=7, synonyms=SEED_DICT)
    assert first == api.augment(texts, "eda", n=3, seed=7, synonyms=SEED_DICT)
    assert (
        first[1] == api.augment(texts[1:], "eda", n=3, seed=7, synonyms=SEED_DICT)[0]
    )  # a text's variants do not depend on its neighbours
    assert any(api.augment(texts, "eda", n=3, seed=s, synonyms=SEED_DICT) != first for s in range(8, 12))


def test_wordnet_synonyms_are_pos_aware_and_keep_entities_and_stop_words():
    text = "Barack Obama crossed the old bridge in Paris with quiet dogs"
    variants = api.augment(text, "synonym", n=4, seed=0, tagger="wordnet", rate=0.5)[0]
    for v in variants:
        assert v != text and "Obama" in v and "Paris" in v and " the " in v and " in " in v
    wn = aug_tasks.WordNetSynonyms()
    assert "glad" in wn("happy", "a") and "glad" not in wn("happy", "n")
    assert "domestic dogs" in wn("dogs", "n")  # a regular plural noun keeps its ending
    assert wn("ran", "v") == ()  # an inflected verb gets no base-form synonym
    assert wn("Happy", "a")[0][0].isupper()


# --------------------------------------------------------------------------- EDA, hand-made cases


LOOKUP = aug_tasks.DictionarySynonyms({"cat": ["feline"], "sat": ["perched"], "mat": ["rug"]})


def test_eda_swap_keeps_the_words_and_moves_two():
    out = aug_tasks.eda_variant(units("the cat sat on a mat"), random.Random(0), LOOKUP, "rs", 0.1)
    assert sorted(words(out)) == sorted(["the", "cat", "sat", "on", "a", "mat"]) and words(out) != [
        "the",
        "cat",
        "sat",
        "on",
        "a",
        "mat",
    ]
    assert sum(a != b for a, b in zip(words(out), ["the", "cat", "sat", "on", "a", "mat"])) == 2


def test_eda_deletion_never_deletes_everything_or_an_entity():
    out = aug_tasks.eda_variant(units("cat sat ACME mat"), random.Random(0), LOOKUP, "rd", 1.0)
    assert words(out) == ["ACME"]  # every word may go but the entity
    alone = aug_tasks.eda_variant(units("cat sat mat"), random.Random(0), LOOKUP, "rd", 1.0)
    assert len(words(alone)) == 1


def test_eda_insertion_and_replacement_use_synonyms():
    inserted = aug_tasks.eda_variant(units("the cat sat on the mat"), random.Random(1), LOOKUP, "ri", 0.4)
    assert len(words(inserted)) == 8  # max(1, int(0.4 * 6)) = 2 new words
    new = list(words(inserted))
    for w in ["the", "cat", "sat", "on", "the", "mat"]:
        new.remove(w)
    assert set(new) <= {"feline", "perched", "rug"}
    replaced = aug_tasks.eda_variant(units("the cat sat on the mat"), random.Random(1), LOOKUP, "sr", 0.5)
    assert len(words(replaced)) == 6 and sum(w in ("feline", "perched", "rug") for w in words(replaced)) == 3


def test_eda_variants_take_turns_over_the_four_operations():
    variants = api.augment(
        "the cat sat on the warm mat near the cat",
        "eda",
        n=4,
        seed=0,
        synonyms={"cat": ["feline"], "mat": ["rug"]},
        alpha_sr=0.2,
        alpha_ri=0.2,
        alpha_rs=0.2,
        p_rd=0.3,
    )[0]
    lengths = sorted(len(v.split()) for v in variants)
    assert len(set(variants)) == 4 and lengths[-1] > 10 and lengths[0] < 10  # one insertion, one deletion among them


# --------------------------------------------------------------------------- NER safety


TOKENS = ["the", "cat", "sat", "on", "mat", "big", "red", "dog", "ran", "home", "Acme", "Corp", "Paris", "John"]


@st.composite
def tagged_sentences(draw):
    tokens = draw(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=12))
    spans, i = [], 0
    while i < len(tokens):
        if draw(st.booleans()) and draw(st.booleans()):
            end = min(len(tokens), i + draw(st.integers(1, 3)))
            spans.append((i, end, draw(st.sampled_from(["PER", "ORG", "LOC"]))))
            i = end
        else:
            i += 1
    return TaggedSentence(tokens, spans)


def entities(sentence: TaggedSentence) -> list[tuple]:
    return sorted((tuple(sentence.tokens[s:e]), label) for s, e, label in sentence.spans)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sentence=tagged_sentences(), method=st.sampled_from(["eda", "synonym"]), seed=st.integers(0, 1000))
def test_entity_spans_are_never_altered_and_tags_stay_aligned(sentence, method, seed):
    options = {"alpha_sr": 0.5, "alpha_ri": 0.5, "alpha_rs": 0.5, "p_rd": 0.5} if method == "eda" else {"rate": 1.0}
    synonyms = {"cat": ["feline"], "dog": ["hound"], "mat": ["rug"], "Paris": ["Lutetia"], "Corp": ["Inc"], "John": ["Jon"]}
    for variant in aug.augment_tagged([sentence], method, n=3, seed=seed, synonyms=synonyms, tagger="wordnet", **options)[0]:
        assert entities(variant) == entities(sentence)
        assert len(variant.tags()) == len(variant.tokens)


def test_conll_file_in_conll_file_out(tmp_path):
    source = tmp_path / "train.conll"
    source.write_text(
        "John\tB-PER\nSmith\tI-PER\nloves\tO\nthe\tO\nhappy\tO\ncat\tO\n\nAcme\tB-ORG\nis\tO\nsad\tO\n\n", encoding="utf-8"
    )
    result = invoke(
        "augment",
        "--input",
        source,
        "--output",
        tmp_path / "aug.conll",
        "--method",
        "eda",
        "-n",
        "3",
        "--synonyms",
        _write(tmp_path / "s.json", SEED_DICT),
    )
    assert result.exit_code == 0, result.output
    out = read_conll(tmp_path / "aug.conll")
    assert out[0].tokens == ["John", "Smith", "loves", "the", "happy", "cat"] and len(out) > 2
    for sentence in out:
        assert [tuple(sentence.tokens[s:e]) for s, e, _ in sentence.spans] in ([("John", "Smith")], [("Acme",)])


def _write(path: Path, table: dict) -> Path:
    path.write_text(json.dumps(table), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- data sets and the filter


def test_csv_data_set_keeps_ids_and_labels(tmp_path):
    source = tmp_path / "train.csv"
    with source.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["id", "text", "label"], ["a1", "a happy film", "pos"], ["a2", "a sad film", "neg"]])
    result = invoke(
        "augment",
        "--input",
        source,
        "--output",
        tmp_path / "aug.csv",
        "--method",
        "synonym",
        "-n",
        "2",
        "--synonyms",
        _write(tmp_path / "s.json", SEED_DICT),
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((tmp_path / "aug.csv").open(encoding="utf-8")))
    assert [(r["id"], r["label"], r["variant"]) for r in rows] == [
        ("a1", "pos", "0"),
        ("a1", "pos", "1"),
        ("a1", "pos", "2"),
        ("a2", "neg", "0"),
        ("a2", "neg", "1"),
        ("a2", "neg", "2"),
    ]
    assert {r["text"] for r in rows if r["id"] == "a1"} == {"a happy film", "a joyful film", "a cheerful film"}
    assert not list(tmp_path.glob(".aug.csv*"))  # the temporary file was renamed away


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("augment-filter")
    data = write_csv(tmp / "train.csv", sentiment_rows(300))
    cfg = build_config(
        {},
        [
            "model.arch=cnn",
            "model.preset=tiny",
            f"data.train={data}",
            "train.epochs=6",
            "train.lr=0.01",
            "train.patience=null",
            f"output_dir={tmp}",
            "name=clf",
        ],
    )
    return api.train(cfg, progress="off")


def test_filter_drops_a_flipped_example(classifier, tmp_path):
    source = tmp_path / "train.jsonl"
    source.write_text(json.dumps({"id": 7, "text": "great great movie", "label": "pos"}) + "\n", encoding="utf-8")
    flips = _write(tmp_path / "flip.json", {"great": ["awful"], "movie": ["film"]})
    keeper = aug.LabelFilter(classifier, 0.6)
    assert keeper.keep(["great fun film", "awful awful film"], ["pos", "pos"]) == [True, False]
    result = invoke(
        "augment",
        "--input",
        source,
        "--output",
        tmp_path / "aug.jsonl",
        "--method",
        "eda",
        "-n",
        "4",
        "--synonyms",
        flips,
        "--alpha-sr",
        "0.34",
        "--alpha-ri",
        "0",
        "--alpha-rs",
        "0",
        "--p-rd",
        "0",
        "--filter",
        classifier,
        "--min-confidence",
        "0.6",
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tmp_path / "aug.jsonl").read_text().splitlines()]
    assert all(r["id"] == 7 and r["label"] == "pos" for r in rows)
    texts = [r["text"] for r in rows]
    assert "great great film" in texts and not any("awful" in t for t in texts)
    assert "dropped by the filter" in result.output


# --------------------------------------------------------------------------- model-based methods


@pytest.fixture(scope="module")
def hf_masked_lm(tmp_path_factory) -> Path:
    """A random 2-layer BERT with a masked-LM head and a word-level tokenizer."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import BertConfig, BertForMaskedLM, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-mlm")
    backend = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.train_from_iterator(
        ["the cat sat on the mat", "a dog ran to the park", "good fun film"],
        trainers.WordLevelTrainer(special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]"
    )
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    BertForMaskedLM(
        BertConfig(
            vocab_size=backend.get_vocab_size(),
            hidden_size=16,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=32,
        )
    ).save_pretrained(folder)
    return folder


def test_contextual_with_a_hf_masked_lm_folder(hf_masked_lm):
    text = "the cat sat on the mat"
    variants = api.augment(text, "contextual", n=3, seed=0, model=str(hf_masked_lm), rate=0.5, tagger="wordnet")[0]
    assert len(variants) == 3 and any(v != text for v in variants)
    vocabulary = {"the", "cat", "sat", "on", "mat", "a", "dog", "ran", "to", "park", "good", "fun", "film"}
    for v in variants:
        assert len(v.split()) == 6 and set(v.split()) <= vocabulary and v.split()[0] == "the" and v.split()[3] == "on"
    assert variants == api.augment(text, "contextual", n=3, seed=0, model=str(hf_masked_lm), rate=0.5, tagger="wordnet")[0]


def test_contextual_with_a_seqlab_mlm_run(tmp_path):
    corpus = tmp_path / "corpus.txt"
    rng = random.Random(0)
    corpus.write_text(
        "\n".join(f"the {rng.choice(['cat', 'dog', 'fox'])} {rng.choice(['sees', 'loves'])} the mat ." for _ in range(60))
    )
    run = api.pretrain(
        build_config(
            {"task": "pretrain-mlm"},
            [
                f"data.train={corpus}",
                "model.preset=tiny",
                "train.epochs=1",
                "train.batch_size=16",
                "tokenizer.max_length=16",
                f"output_dir={tmp_path}",
                "name=mlm",
            ],
        ),
        progress="off",
    )
    variants = api.augment("the cat loves the mat", "contextual", n=2, seed=0, model=str(run), rate=0.4, tagger="wordnet")[0]
    assert len(variants) == 2 and all(len(v.split()) == 5 for v in variants)


def test_backtranslate_samples_through_two_translate_runs(tmp_path):
    cfg = build_config(
        {"task": "translate"},
        [
            "data.train=reverse:200",
            "tokenizer.level=word",
            "model.preset=tiny",
            "train.epochs=1",
            "train.batch_size=32",
            f"output_dir={tmp_path}",
            "name=rev",
        ],
    )
    run = api.train(cfg, progress="off")
    texts = ["a b c", "d e f g"]
    out = api.augment(texts, "backtranslate", n=3, seed=0, forward=str(run), backward=str(run), temperature=1.0)
    assert [len(v) for v in out] == [3, 3] and all(isinstance(t, str) for v in out for t in v)
    assert out == api.augment(texts, "backtranslate", n=3, seed=0, forward=str(run), backward=str(run), temperature=1.0)
    greedy = api.augment(texts, "backtranslate", n=3, seed=0, forward=str(run), backward=str(run), temperature=0)
    assert all(len(set(v)) == 1 for v in greedy)  # without sampling every variant is the same
    via = api.augment(texts, "backtranslate", n=3, seed=0, via=f"{run},{run}", temperature=1.0)
    assert via == out  # --via RUN_A,RUN_B is --forward RUN_A --backward RUN_B
    beams = api.augment(texts, "backtranslate", n=2, seed=0, via=f"{run},{run}", beam=3, min_chrf=0)
    assert [len(v) for v in beams] == [2, 2]


def test_backtranslation_round_trip_filter():
    from seqlab.tasks.augment.methods import make_options, round_trip_ok

    opts = make_options("backtranslate", {"via": "a,b"})
    assert (opts.forward, opts.backward, opts.min_chrf) == ("a", "b", 30.0)
    assert round_trip_ok("I would like a cup of coffee.", "I'd like a cup of coffee.", opts)
    assert not round_trip_ok("I would like a cup of coffee.", "The dog.", opts)  # chrF too low, and too short
    assert not round_trip_ok("I would like a cup of coffee.", "", opts)
    long = "I would like a cup of coffee. " * 3
    assert not round_trip_ok("I would like a cup of coffee.", long, opts)  # over twice as long
    assert round_trip_ok(
        "I would like a cup of coffee.", long, make_options("backtranslate", {"via": "a,b", "max_length_ratio": 4.0})
    )
    with pytest.raises(SeqlabError, match="already names both"):
        make_options("backtranslate", {"via": "a,b", "forward": "c"})
    with pytest.raises(SeqlabError, match="min_chrf"):
        make_options("backtranslate", {"via": "a,b", "min_chrf": 120})


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["", "--synonyms", "{s}"], "input 1 is empty"),
        (["good film", "--method", "paraphrase"], "unknown augmentation method 'paraphrase'"),
        (["good film", "-n", "0", "--synonyms", "{s}"], "n must be a whole number ≥ 1"),
        (["good film", "--method", "eda", "--rate", "0.5"], "option 'rate' does not apply to --method eda"),
        (["good film", "--method", "contextual"], "needs a masked language model"),
        (["good film", "--method", "backtranslate", "--forward", "x"], "needs two translation models"),
        (["good film", "--synonyms", "missing.json"], "synonyms file missing.json does not exist"),
        (["good film", "--method", "eda", "--p-rd", "2"], "p_rd must be between 0 and 1"),
    ],
)
def test_bad_input_is_one_line(tmp_path, args, fragment):
    synonyms = _write(tmp_path / "s.json", SEED_DICT)
    one_line_error(invoke("augment", *[a.replace("{s}", str(synonyms)) for a in args]), fragment)


def test_only_stop_words_come_back_unchanged_and_say_so(caplog):
    with caplog.at_level(logging.WARNING, logger="seqlab"):
        assert api.augment("and so it is", "synonym", n=2, synonyms=SEED_DICT) == [["and so it is", "and so it is"]]
    assert "returned unchanged" in caplog.text


def test_data_set_errors_leave_no_output(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text('text,label\n"a good film",pos\n,neg\n', encoding="utf-8")
    one_line_error(invoke("augment", "--input", bad, "--output", tmp_path / "out.csv", "--method", "eda"), "line 3")
    one_line_error(invoke("augment", "--input", bad, "--output", tmp_path / "out.conll"), "same kind of file")
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "out.conll").exists()


def _fake_wordnet(path: Path, noun: bytes) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in (("data.noun", noun), ("index.noun", b"cat n 1\r\n")):
            info = tarfile.TarInfo(wordnet.PREFIX + name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_wordnet_is_converted_to_lf_atomically(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQLAB_HOME", str(tmp_path / "home"))
    archive = _fake_wordnet(tmp_path / "wn.tar.gz", b"  1 header\r\n00001740 03 n 01 entity 0\r\n")
    with pytest.raises(SeqlabError, match="md5"):
        wordnet.ensure_wordnet(archive)  # not the official data.noun: refused, nothing left behind
    assert not wordnet.corpus_dir().exists() and not list(wordnet.corpus_dir().parent.iterdir())
    folder = wordnet.ensure_wordnet(archive, expected_md5=None)
    assert (folder / "data.noun").read_bytes() == b"  1 header\n00001740 03 n 01 entity 0\n"
    assert (folder / "index.noun").read_bytes() == b"cat n 1\n"


def test_wordnet_offline_and_not_fetched_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQLAB_HOME", str(tmp_path / "home"))
    (tmp_path / "empty").mkdir()
    offline = replace(assets.ARCHIVES[wordnet.ARCHIVE], find_links=str(tmp_path / "empty"))
    monkeypatch.setitem(assets.ARCHIVES, wordnet.ARCHIVE, offline)
    with pytest.raises(SeqlabError, match="WordNet is not fetched yet and the download failed") as err:
        wordnet.ensure_wordnet()
    assert "\n" not in str(err.value)


def test_real_wordnet_has_the_official_data_noun():
    folder = wordnet.ensure_wordnet()
    assert wordnet._md5(folder / "data.noun") == wordnet.DATA_NOUN_MD5
    assert len(wordnet.wordnet().synsets("dog")) == 8


# --------------------------------------------------------------------------- the experiment


def test_augmentation_experiment_quick_runs_in_under_30_seconds(tmp_path, sentiment_csv):
    from seqlab.experiments import augmentation

    started = time.perf_counter()
    result = augmentation.run(True, tmp_path / "exp", data=str(sentiment_csv))
    assert time.perf_counter() - started < 30
    assert [row[1] for row in result.rows] == ["none", "eda"] and result.rows[1][3] > result.rows[0][3]
    assert (tmp_path / "exp" / "augmentation.png").is_file() and len(
        (tmp_path / "exp" / "runs.jsonl").read_text().splitlines()
    ) == 2
    with pytest.raises(SeqlabError, match="backtranslate needs --forward"):
        augmentation.run(True, tmp_path / "exp2", data=str(sentiment_csv), methods=["none", "backtranslate"])
