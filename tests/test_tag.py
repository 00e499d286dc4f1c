"""Task tag: the CRF, tag schemes, tagged-file readers, entity F1, and the three taggers
(overfit a handful of sentences, save, reload, same predictions)."""

import itertools
import json
import random
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from seqlab import api
from seqlab.cli.main import app
from seqlab.config import build_config
from seqlab.data import conll
from seqlab.errors import SeqlabError
from seqlab.models.crf import CRF
from seqlab.tasks.tag import recipe as tag

runner = CliRunner()
FIXTURES = Path(__file__).parent / "fixtures"


# --------------------------------------------------------------------------- CRF vs brute force


def _brute_force(crf, emissions, length):
    """Score of every path of `length` tags, by enumeration."""
    transitions, start, end = crf._scores()
    paths, scores = [], []
    for path in itertools.product(range(crf.num_tags), repeat=length):
        score = start[path[0]] + end[path[-1]] + sum(emissions[t, y] for t, y in enumerate(path))
        score = score + sum(transitions[a, b] for a, b in itertools.pairwise(path))
        paths.append(list(path))
        scores.append(score)
    return paths, torch.stack(scores)


@pytest.mark.parametrize("constrained", [False, True])
def test_crf_forward_algorithm_and_viterbi_match_brute_force(constrained):
    torch.manual_seed(0)
    names = ["O", "B-X", "I-X"]
    crf = CRF(3, *tag.allowed_transitions(names, "bio")) if constrained else CRF(3)
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_()
    lengths = [4, 1, 3]
    emissions = torch.randn(3, 4, 3)
    mask = torch.arange(4)[None, :] < torch.tensor(lengths)[:, None]
    tags = torch.randint(0, 3, (3, 4))
    with torch.no_grad():
        log_z = crf.log_partition(emissions, mask)
        scores = crf.score(emissions, tags, mask)
        best = crf.viterbi(emissions, mask)
        for row, length in enumerate(lengths):
            paths, every = _brute_force(crf, emissions[row], length)
            assert float(log_z[row]) == pytest.approx(float(torch.logsumexp(every, 0)), abs=1e-4)
            assert best[row] == paths[int(every.argmax())]
            assert float(scores[row]) == pytest.approx(float(every[paths.index(tags[row, :length].tolist())]), abs=1e-4)
        assert torch.all(crf.log_likelihood(emissions, tags, mask) <= 1e-6)
    if constrained:  # O → I-X and a start on I-X are never decoded
        assert all(path[0] != 2 and all(not (a == 0 and b == 2) for a, b in itertools.pairwise(path)) for path in best)


def test_allowed_transitions_follow_the_scheme():
    names = conll.tag_names(["LOC", "PER"], "iobes")
    allowed, start, end = tag.allowed_transitions(names, "iobes")

    def ok(a: str, b: str) -> bool:
        return bool(allowed[names.index(a), names.index(b)])

    assert ok("B-PER", "I-PER") and ok("I-PER", "E-PER") and ok("E-PER", "B-LOC") and ok("S-PER", "O")
    assert not ok("B-PER", "O") and not ok("O", "I-PER") and not ok("B-PER", "E-LOC") and not ok("I-PER", "S-LOC")
    assert not start[names.index("I-PER")] and not end[names.index("B-PER")] and end[names.index("E-PER")]
    bio = conll.tag_names(["PER"], "bio")
    allowed, start, end = tag.allowed_transitions(bio, "bio")
    assert allowed[bio.index("B-PER"), bio.index("O")] and not allowed[bio.index("O"), bio.index("I-PER")]
    assert end.all() and not start[bio.index("I-PER")]


# --------------------------------------------------------------------------- schemes


@st.composite
def sentences_with_spans(draw):
    length = draw(st.integers(0, 12))
    spans, position = [], 0
    while position < length:
        position += draw(st.integers(0, 3))
        width = draw(st.integers(1, 4))
        if position + width > length:
            break
        spans.append((position, position + width, draw(st.sampled_from(["PER", "LOC", "ORG"]))))
        position += width  # the next entity may follow at once (adjacent entities)
    return length, spans


@settings(max_examples=200, deadline=None)
@given(sentences_with_spans(), st.sampled_from(conll.SCHEMES))
def test_spans_to_tags_and_back_round_trip(case, scheme):
    length, spans = case
    tags = conll.spans_to_tags(spans, length, scheme)
    assert conll.tags_to_spans(tags) == spans
    other = "iobes" if scheme == "bio" else "bio"
    assert conll.convert_tags(conll.convert_tags(tags, other), scheme) == tags


def test_iob1_and_bilou_read_as_entities():
    assert conll.tags_to_spans(["I-PER", "I-PER", "B-PER", "O", "I-LOC"]) == [(0, 2, "PER"), (2, 3, "PER"), (4, 5, "LOC")]
    assert conll.tags_to_spans(["U-PER", "B-LOC", "L-LOC"]) == [(0, 1, "PER"), (1, 3, "LOC")]
    assert conll.convert_tags(["B-PER", "I-PER", "O", "B-LOC"], "iobes") == ["B-PER", "E-PER", "O", "S-LOC"]
    with pytest.raises(ValueError, match="not in a known scheme"):
        conll.tags_to_spans(["X-PER"])


# --------------------------------------------------------------------------- readers

CONLL = """-DOCSTART- -X- -X- O

EU NNP B-NP I-ORG
rejects VBZ B-VP O
German JJ B-NP I-MISC
call NN I-NP O

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER
"""


def test_conll_reader_takes_the_last_column_and_skips_docstart(tmp_path):
    path = tmp_path / "train.conll"
    path.write_text(CONLL, encoding="utf-8")
    first, second = conll.read_tagged(path)
    assert first.tokens == ["EU", "rejects", "German", "call"] and first.spans == [(0, 1, "ORG"), (2, 3, "MISC")]
    assert second.tags("iobes") == ["B-PER", "E-PER"]


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("EU B-ORG\nrejects\n", 2, "one column"),
        ("EU NNP B-ORG\nrejects O\n", 2, "2 columns, but line 1 has 3"),
        ("EU B-ORG\nrejects X-VERB\n", 2, "not in a known scheme"),
    ],
)
def test_malformed_conll_names_file_and_line(tmp_path, text, line, message):
    path = tmp_path / "bad.conll"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SeqlabError, match=rf"bad.conll: line {line}: .*{message}"):
        conll.read_tagged(path)


def test_jsonl_character_spans_become_token_spans(tmp_path):
    path = tmp_path / "spans.jsonl"
    rows = [
        {"text": "Apple is buying U.K.  startup", "entities": [[0, 5, "ORG"], {"start": 16, "end": 20, "label": "GPE"}]},
        {"tokens": ["Peter", "Blackburn", "spoke"], "tags": ["B-PER", "I-PER", "O"]},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    first, second = conll.read_tagged(path)
    assert first.tokens == ["Apple", "is", "buying", "U.K.", "startup"]  # the double space is no token
    assert first.spans == [(0, 1, "ORG"), (3, 4, "GPE")]
    assert second.spans == [(0, 2, "PER")]
    path.write_text(json.dumps({"text": "Apple is big", "entities": [[0, 3, "ORG"]]}) + "\n", encoding="utf-8")
    with pytest.raises(SeqlabError, match=r"line 1: span \[0, 3\) 'App' does not fall on token boundaries"):
        conll.read_tagged(path)
    path.write_text('{"text": "a b"}\n{"text": "Apple", "entities": [[0, 5, "ORG"], [0, 5, "X"]]}\n', encoding="utf-8")
    with pytest.raises(SeqlabError, match="line 2: entities .* overlap"):
        conll.read_tagged(path)


def test_docbin_documents_split_into_sentences(tmp_path):
    import spacy
    from spacy.tokens import DocBin, Span

    nlp = spacy.blank("en")
    doc = nlp("Alice met Bob in Paris . Then she left .")
    doc.ents = [Span(doc, 0, 1, "PER"), Span(doc, 2, 3, "PER"), Span(doc, 4, 5, "LOC")]
    for token in doc:
        token.is_sent_start = token.i in (0, 6)
    path = tmp_path / "train.spacy"
    DocBin(docs=[doc, nlp("nothing here")]).to_disk(path)
    sentences = conll.read_tagged(path)
    assert [s.tokens[:2] for s in sentences] == [["Alice", "met"], ["Then", "she"], ["nothing", "here"]]
    assert sentences[0].spans == [(0, 1, "PER"), (2, 3, "PER"), (4, 5, "LOC")] and sentences[1].spans == []


def test_unknown_file_type_is_one_line(tmp_path):
    with pytest.raises(SeqlabError, match="unsupported file type '.xml'"):
        conll.load_tagged(str(tmp_path / "x.xml"))
    with pytest.raises(SeqlabError, match="unknown tagged dataset 'gold-ner'; use silver-ner"):
        conll.load_tagged("gold-ner")


# --------------------------------------------------------------------------- entity F1


def test_seqeval_entity_scores_on_a_hand_made_case():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "I-ORG"]]  # PER right; LOC typed wrong; ORG too long
    scores = tag.entity_scores(gold, pred)
    assert scores["precision"] == pytest.approx(1 / 3) and scores["recall"] == pytest.approx(1 / 3)
    assert scores["f1"] == pytest.approx(1 / 3) and scores["support"] == 3
    assert scores["per_type"]["PER"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    assert scores["per_type"]["LOC"]["recall"] == 0.0 and scores["per_type"]["ORG"]["precision"] == 0.0
    assert tag.entity_scores([["O"]], [["O"]])["f1"] == 0.0


def test_entity_scores_match_conlleval_counts_on_a_fixture():
    """conlleval on tests/fixtures/conlleval-example.txt prints: processed 23 tokens with 9
    phrases; found: 12 phrases; correct: 6 (P 50.00%, R 66.67%, F1 57.14); ORG P 33.33 R 50.00
    F1 40.00, MISC 75.00/100.00/85.71, PER 50.00/50.00/50.00, LOC 33.33/50.00/40.00."""
    gold, pred = [[]], [[]]
    for line in (FIXTURES / "conlleval-example.txt").read_text(encoding="utf-8").split("\n"):
        if line.strip():
            _, g, p = line.split()
            gold[-1].append(g)
            pred[-1].append(p)
        elif gold[-1]:
            gold.append([])
            pred.append([])
    gold, pred = [g for g in gold if g], [p for p in pred if p]
    expected = {"PER": (1 / 2, 1 / 2, 2), "ORG": (1 / 3, 1 / 2, 2), "LOC": (1 / 3, 1 / 2, 2), "MISC": (3 / 4, 1.0, 3)}
    # as predicted, and as seqlab scores a model's output (read leniently into spans, written as BIO)
    normalized = [conll.spans_to_tags(conll.tags_to_spans(p), len(p), "bio") for p in pred]
    for predicted in (pred, normalized):
        scores = tag.entity_scores(gold, predicted)
        assert (sum(map(len, gold)), scores["support"]) == (23, 9)
        assert sum(len(conll.tags_to_spans(p)) for p in predicted) == 12
        assert scores["precision"] == pytest.approx(6 / 12) and scores["recall"] == pytest.approx(6 / 9)
        assert round(100 * scores["f1"], 2) == 57.14
        for name, (precision, recall, support) in expected.items():
            row = scores["per_type"][name]
            assert (row["precision"], row["recall"], row["support"]) == (pytest.approx(precision), pytest.approx(recall), support)
        assert round(100 * scores["per_type"]["MISC"]["f1"], 2) == 85.71


# --------------------------------------------------------------------------- taggers

PEOPLE = ["Alice", "Bob", "Newton", "Carol"]
PLACES = [["Paris"], ["London"], ["New", "York"]]
FIRMS = [["Acme"], ["Acme", "Corp"], ["Globex"]]


def tagged_lines(count: int, seed: int = 0) -> str:
    """Synthetic CoNLL sentences whose entities follow from the words."""
    rng = random.Random(seed)
    blocks = []
    for _ in range(count):
        person, place, firm = rng.choice(PEOPLE), rng.choice(PLACES), rng.choice(FIRMS)
        rows = [(person, "B-PER"), ("works", "O"), ("for", "O")]
        rows += [(w, ("B-" if i == 0 else "I-") + "ORG") for i, w in enumerate(firm)]
        rows += [("in", "O")] + [(w, ("B-" if i == 0 else "I-") + "LOC") for i, w in enumerate(place)] + [(".", "O")]
        if rng.random() < 0.5:
            rows = [("Yesterday", "O"), (",", "O")] + rows
        blocks.append("\n".join(f"{w} {t}" for w, t in rows))
    return "\n\n".join(blocks) + "\n"


@pytest.fixture
def conll_file(tmp_path):
    path = tmp_path / "people.conll"
    path.write_text(tagged_lines(24), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tiny_bert_words(tmp_path_factory):
    """A random 2-layer BERT whose vocabulary splits "Newton" into new ##ton."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert-tagger")
    words = [
        "alice",
        "bob",
        "new",
        "##ton",
        "carol",
        "works",
        "for",
        "acme",
        "corp",
        "glob",
        "##ex",
        "in",
        "paris",
        "london",
        "york",
        "yesterday",
        ",",
        ".",
    ]
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    BertTokenizerFast(vocab=str(folder / "vocab.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    BertModel(
        BertConfig(
            vocab_size=5 + len(words),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=37,
            max_position_embeddings=64,
        )
    ).save_pretrained(folder)
    return folder


def tag_config(tmp_path, data, *extra):
    return build_config(
        {"task": "tag"},
        [
            f"data.train={data}",
            "data.valid_fraction=0",
            "data.test_fraction=0",
            "model.preset=tiny",
            "model.dropout=0",
            "train.epochs=30",
            "train.batch_size=8",
            "train.lr=0.01",
            "train.patience=null",
            "train.precision=32-true",
            "tokenizer.min_frequency=1",
            f"output_dir={tmp_path / 'runs'}",
            *extra,
        ],
    )


@pytest.mark.parametrize(
    "arch, extra",
    [
        ("bilstm-crf", []),
        ("bilstm-crf", ["model.char_features=cnn", "model.casing_dim=4", "model.char_dim=8", "model.char_hidden=8"]),
        ("bilstm-crf", ["model.char_features=lstm", "model.char_dim=8", "model.char_hidden=8", "tokenizer.lowercase=true"]),
        ("transformer", ["tag.scheme=iobes", "tag.crf=true", "train.lr=0.005"]),
        ("hf", ["train.lr=0.003", "train.epochs=25"]),
    ],
)
def test_each_tagger_overfits_saves_and_reloads(tmp_path, conll_file, tiny_bert_words, arch, extra):
    model = [f"model.model={tiny_bert_words}"] if arch == "hf" else []
    name = arch + "".join(e.split("=")[1] for e in extra if e.startswith("model.char_features"))
    run = api.train(tag_config(tmp_path, conll_file, f"model.arch={arch}", f"name={name}", *model, *extra), progress="off")
    for name in ("config.yaml", "tokenizer.json", "labels.json", "model.safetensors", "metrics.json", "manifest.json"):
        assert (run / name).is_file(), name
    pipe = api.load_tagger(run)
    sentences = conll.read_tagged(conll_file)
    scores = pipe.evaluate(sentences)
    assert scores["f1"] >= 0.9, scores
    words = [s.tokens for s in sentences[:6]]
    first = pipe.tag(words)
    assert api.load_tagger(run).tag(words) == first  # the same predictions after a reload
    text = "Yesterday, Newton works for Acme Corp in New York."
    (entities,) = pipe.entities(text)
    assert [(e.text, e.label) for e in entities] == [("Newton", "PER"), ("Acme Corp", "ORG"), ("New York", "LOC")]
    assert all(text[e.start : e.end] == e.text for e in entities)
    assert api.load_ner(run).entities(["", "  "]) == [[], []]


def test_long_sentences_are_tagged_in_pieces(tmp_path, conll_file):
    run = api.train(tag_config(tmp_path, conll_file, "tokenizer.max_length=6", "name=short"), progress="off")
    pipe = api.load_tagger(run)
    sentence = conll.read_tagged(conll_file)[0].tokens * 3
    assert len(tag.encode_words(pipe.tokenizer, [sentence], 6)) > 1
    assert len(pipe.tag([sentence])[0]) == len(sentence)


def test_bad_tag_data_leaves_no_run_folder(tmp_path, conll_file):
    bad = tmp_path / "bad.conll"
    bad.write_text("Alice B-PER\nworks O\nhere Z-LOC\n", encoding="utf-8")
    with pytest.raises(SeqlabError, match="bad.conll: line 3"):
        api.train(tag_config(tmp_path, bad, "name=bad"), progress="off")
    plain = tmp_path / "plain.conll"
    plain.write_text("nothing O\nhere O\n", encoding="utf-8")
    with pytest.raises(SeqlabError, match="has no entities"):
        api.train(tag_config(tmp_path, plain, "name=plain"), progress="off")
    assert not (tmp_path / "runs" / "bad").exists() and not (tmp_path / "runs" / "plain").exists()


def test_tag_config_checks():
    with pytest.raises(SeqlabError, match="a sequence tagger is one of bilstm-crf, transformer, hf, not 'cnn'"):
        build_config({"task": "tag"}, ["model.arch=cnn"])
    with pytest.raises(SeqlabError, match="tag.scheme"):
        build_config({"task": "tag"}, ["tag.scheme=bilou"])
    with pytest.raises(SeqlabError, match="train it with task tag"):
        build_config({}, ["model.arch=bilstm-crf"])
    with pytest.raises(SeqlabError, match="tag: only for task tag"):
        build_config({}, ["tag.crf=true"])
    assert build_config({"task": "tag"}, ["model.arch=transformer"]).tag.crf is False
    assert build_config({"task": "tag"}, []).tag.crf is True


def test_cli_trains_evaluates_and_tags(tmp_path, conll_file):
    result = runner.invoke(
        app,
        [
            "train",
            "tag",
            "--arch",
            "bilstm-crf",
            "--data",
            str(conll_file),
            "--preset",
            "tiny",
            "--epochs",
            "30",
            "--batch-size",
            "8",
            "--lr",
            "0.01",
            "--name",
            "cli",
            "--output-dir",
            str(tmp_path / "runs"),
            "data.valid_fraction=0",
            "data.test_fraction=0",
            "train.patience=null",
            "tokenizer.min_frequency=1",
        ],
    )
    assert result.exit_code == 0, result.output
    run = tmp_path / "runs" / "cli"
    result = runner.invoke(app, ["evaluate", str(run), "--data", str(conll_file), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["f1"] >= 0.9
    result = runner.invoke(app, ["evaluate", str(run), "--data", str(conll_file)])
    assert "entity F1" in result.output and "PER" in result.output
    result = runner.invoke(app, ["ner", "--model", str(run), "Bob works for Globex in Paris."])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "[('Bob', 'PER'), ('Globex', 'ORG'), ('Paris', 'LOC')]"
    result = runner.invoke(app, ["train", "--resume", str(run)])
    assert result.exit_code == 1 and "already finished" in result.output
    result = runner.invoke(app, ["predict", str(run), "text"])
    assert result.exit_code == 1 and "is a tagger, not a classifier" in result.output


# --------------------------------------------------------------------------- word features


def suffix_lines(count: int, seed: int) -> str:
    """Sentences whose two entity slots hold made-up lowercase words, a person when the word
    ends in -son, a place in -burg, no entity in -ing: the type shows only in the characters
    (every word has the same shape, and the test words never occur in training)."""
    rng = random.Random(seed)
    blocks = []
    for _ in range(count):
        rows = [("the", "O")]
        for slot in ("met", "."):
            kind = rng.choice(["PER", "LOC", "O"])
            word = "".join(rng.choice("abcdefghiklmnoprstuvw") for _ in range(rng.randint(3, 6)))
            word += {"PER": "son", "LOC": "burg", "O": "ing"}[kind]
            rows += [(word, "O" if kind == "O" else f"B-{kind}"), (slot, "O")]
        blocks.append("\n".join(f"{w} {t}" for w, t in rows))
    return "\n\n".join(blocks) + "\n"


def test_character_features_learn_what_only_the_characters_show(tmp_path):
    train, test = tmp_path / "train.conll", tmp_path / "test.conll"
    train.write_text(suffix_lines(60, 0), encoding="utf-8")
    test.write_text(suffix_lines(30, 1), encoding="utf-8")
    scores = {}
    for chars in ("cnn", "none"):
        cfg = tag_config(
            tmp_path,
            train,
            f"model.char_features={chars}",
            "model.char_dim=8",
            "model.char_hidden=16",
            "train.epochs=12",
            "tokenizer.min_frequency=2",
            f"name=suffix-{chars}",
        )
        scores[chars] = api.load_tagger(api.train(cfg, progress="off")).evaluate(conll.read_tagged(test))["f1"]
    assert scores["cnn"] >= 0.9, scores
    assert scores["none"] <= 0.7, scores  # words alone: an entity, but which one is a guess


def test_char_ids_and_casing_classes():
    from seqlab.models.tagger import CASINGS, CHAR_VOCAB, casing_id, char_ids

    assert [CASINGS[casing_id(w)] for w in ("1996", "1996-08-22", "said", "EU", "Paris", "iPhone", "$5", "--")] == [
        "numeric",
        "mainly_numeric",
        "all_lower",
        "all_upper",
        "initial_upper",
        "mixed_case",
        "contains_digit",
        "other",
    ]
    assert char_ids("Ab", 30) == [1 + ord("A"), 1 + ord("b")] and len(char_ids("x" * 50, 30)) == 30
    assert all(0 < i < CHAR_VOCAB for i in char_ids("Zürich→東京", 30))


@pytest.mark.parametrize("chars", ["cnn", "lstm"])
def test_word_features_ignore_padding_and_carry_gradients(chars):
    from seqlab.models.tagger import BiLSTMTagger

    torch.manual_seed(0)
    model = BiLSTMTagger(
        20, 5, embed_dim=6, hidden_dim=7, dropout=0.0, char_features=chars, char_dim=4, char_hidden=5, casing_dim=3
    ).eval()
    pieces = tag.encode_words(_tokenizer(["Paris", "is", "big"]), [["Paris", "is", "big"], ["Paris"]], 16, 30)
    batch = tag.collate_pieces([(p, None) for p in pieces])
    assert batch["char_ids"].shape == (2, 3, 5) and batch["casing_ids"].tolist() == [[5, 3, 3], [5, 0, 0]]
    logits = model(**tag.tagger_inputs(batch)).logits  # (B, W, K)
    alone = model(**tag.tagger_inputs(tag.collate_pieces([(pieces[1], None)]))).logits
    torch.testing.assert_close(logits[1, :1], alone[0])  # padding changes nothing
    logits.sum().backward()
    assert model.chars.embedding.weight.grad.abs().sum() > 0 and model.casing.weight.grad.abs().sum() > 0


def _tokenizer(words):
    from tokenizers import Tokenizer, models, pre_tokenizers

    tokenizer = Tokenizer(
        models.WordLevel({"[PAD]": 0, "[UNK]": 1, **{w: i + 2 for i, w in enumerate(words)}}, unk_token="[UNK]")
    )
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return tokenizer


def test_glove_initialises_a_cased_vocabulary_lowercased_and_adds_its_words(tmp_path, conll_file):
    glove = Path(__file__).parent / "fixtures" / "glove-6b-50d-head.txt"  # "the , . of to and in a ..."
    conll_file.write_text(conll_file.read_text() + "\nThe O\nman O\nFrom O\nParis B-LOC\n", encoding="utf-8")
    cfg = tag_config(
        tmp_path,
        conll_file,
        f"model.embeddings={glove}",
        "model.embed_dim=50",
        "model.vector_words=40",
        "train.epochs=1",
        "name=glove",
    )
    run = api.train(cfg, progress="off")
    manifest = json.loads((run / "manifest.json").read_text())["embeddings"]
    vocab = api.load_tagger(run).tokenizer.get_vocab()
    assert "The" in vocab and "Alice" in vocab  # the training words, as written
    assert "of" in vocab and "said" in vocab  # GloVe's words too, never seen in training
    assert manifest["lowercase"] == 2 and manifest["exact"] >= 40 and manifest["dim"] == 50  # The → the, From → from
    with pytest.raises(SeqlabError, match="model.embed_dim=16 does not match the 50-d vectors"):
        api.train(tag_config(tmp_path, conll_file, f"model.embeddings={glove}", "name=glove-bad"), progress="off")


def test_conll2003_alone_means_its_standard_splits(tmp_path, monkeypatch):
    """`data.train=conll2003`: train, valid and test as released (here the excerpt served as
    all three), in file order; `seqlab evaluate RUN --data conll2003` scores conll2003:test."""
    from test_benchmark_data import conll_archive

    from seqlab.tasks.tag import inference, pipeline

    monkeypatch.setenv("SEQLAB_HOME", str(tmp_path / "home"))
    conll_archive(monkeypatch, tmp_path / "home")
    cfg = tag_config(tmp_path, "conll2003", "train.epochs=1", "name=conll")
    splits = inference.load_splits(cfg)
    assert splits.sources == {"train": "conll2003", "valid": "conll2003:valid", "test": "conll2003:test"}
    assert [s.tokens[0] for s in splits.train][:3] == ["EU", "Peter", "BRUSSELS"]  # not re-shuffled
    assert len(splits.valid) == len(splits.test) == len(splits.train) == 6
    assert inference.standard_splits("conll2003:test") is None and inference.standard_splits("silver-ner") is None
    run = api.train(cfg, progress="off")
    sentences, what = pipeline.evaluation_data(api.load_tagger(run), "conll2003")
    assert what == "conll2003:test (the standard test split)" and len(sentences) == 6
