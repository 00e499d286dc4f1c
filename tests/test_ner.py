"""`seqlab ner` with spaCy pipelines: the course's sentence through the pinned en_core_web_sm,
output formats, long documents, files, and bad input."""

import json

import pytest
from typer.testing import CliRunner

from seqlab import api
from seqlab.cli.main import app
from seqlab.errors import SeqlabError
from seqlab.tasks.tag import pipeline as ner

runner = CliRunner()
APPLE = "Apple is looking at buying U.K. startup for $1 billion"
EXPECTED = [("Apple", "ORG"), ("U.K.", "GPE"), ("$1 billion", "MONEY")]


@pytest.fixture(scope="module")
def ruler_pipeline(tmp_path_factory):
    """A spaCy pipeline whose `ner` is an entity ruler: fixed entities, nothing to download."""
    import spacy

    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler", name="ner")
    ruler.add_patterns(
        [
            {"label": "ORG", "pattern": "Apple"},
            {"label": "GPE", "pattern": "U.K."},
            {"label": "MONEY", "pattern": [{"TEXT": "$"}, {"LIKE_NUM": True}, {"LOWER": "billion"}]},
        ]
    )
    folder = tmp_path_factory.mktemp("ruler") / "pipeline"
    nlp.to_disk(folder)
    return folder


@pytest.mark.network
def test_the_course_sentence_with_the_pinned_en_core_web_sm():
    assert [e.pair for e in api.ner(APPLE)[0]] == EXPECTED
    result = runner.invoke(app, ["ner", APPLE])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(EXPECTED)


def test_json_has_offsets_and_descriptions(ruler_pipeline):
    (entities,) = api.ner([APPLE], model=str(ruler_pipeline))
    payload = ner.as_json(APPLE, entities)
    assert [(e["text"], e["label"]) for e in payload["entities"]] == EXPECTED
    assert all(APPLE[e["start"] : e["end"]] == e["text"] for e in payload["entities"])
    assert payload["entities"][1]["description"] == "Countries, cities, states"
    result = runner.invoke(app, ["ner", "--model", str(ruler_pipeline), "--format", "json", APPLE])
    assert json.loads(result.output)["entities"][2] == {
        "text": "$1 billion",
        "label": "MONEY",
        "start": 44,
        "end": 54,
        "description": "Monetary values, including unit",
    }


def test_displacy_html_shows_every_entity_and_needs_nothing_online(ruler_pipeline, tmp_path):
    out = tmp_path / "ents.html"
    result = runner.invoke(
        app, ["ner", "--model", str(ruler_pipeline), "--format", "html", "--output", str(out), APPLE, "Nothing <here> & there"]
    )
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    for text, label in EXPECTED:
        assert text in page and label in page
    assert "&lt;here&gt;" in page  # the text is escaped
    assert "<script" not in page and "<link" not in page and "src=" not in page


def test_empty_text_has_no_entities_and_non_text_is_an_error(ruler_pipeline):
    pipe = api.load_ner(str(ruler_pipeline))
    assert pipe.entities(["", "   \n", APPLE])[:2] == [[], []]
    with pytest.raises(SeqlabError, match="input 2 is int, not text"):
        pipe.entities([APPLE, 3])
    result = runner.invoke(app, ["ner", "--model", str(ruler_pipeline), ""])
    assert result.exit_code == 0 and result.output.strip() == "[]"


def test_long_documents_are_chunked_with_offsets_into_the_whole_text(ruler_pipeline):
    text = "\n".join(f"Line {i}: {APPLE}." for i in range(40))
    pipe = ner.SpacyNER(api.load_ner(str(ruler_pipeline)).nlp, "ruler", chunk_chars=300)
    assert len(ner.chunk_text(text, 300)) > 5
    (entities,) = pipe.entities(text)
    assert [e.pair for e in entities] == EXPECTED * 40
    assert all(text[e.start : e.end] == e.text for e in entities)
    pieces = ner.chunk_text("word " * 100, 33)
    assert "".join(piece for _, piece in pieces) == "word " * 100 and all(len(p) <= 33 for _, p in pieces)
    assert all(offset == sum(len(p) for _, p in pieces[:i]) for i, (offset, _) in enumerate(pieces))


def test_files_in_jsonl_out_through_nlp_pipe(ruler_pipeline, tmp_path):
    source = tmp_path / "texts.txt"
    source.write_text(f"{APPLE}\nno entities here\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = runner.invoke(
        app,
        [
            "ner",
            "--model",
            str(ruler_pipeline),
            "--input",
            str(source),
            "--output",
            str(out),
            "--batch-size",
            "1",
            "--processes",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["text"] for r in rows] == [APPLE, "no entities here"]
    assert [e["label"] for e in rows[0]["entities"]] == ["ORG", "GPE", "MONEY"] and rows[1]["entities"] == []


def test_a_pipeline_without_ner_and_unknown_names_are_one_line(tmp_path):
    import spacy

    spacy.blank("en").to_disk(tmp_path / "blank")
    result = runner.invoke(app, ["ner", "--model", str(tmp_path / "blank"), APPLE])
    assert result.exit_code == 1 and "has no ner component" in result.output
    with pytest.raises(SeqlabError, match="unknown spaCy pipeline 'xx_nothing'"):
        api.load_ner("xx_nothing")
    result = runner.invoke(app, ["ner", "--format", "xml", APPLE])
    assert result.exit_code == 1 and "unknown format 'xml'" in result.output


# --------------------------------------------------------------------------- the CoNLL-2003 baseline (issue 18 §2)


def test_ontonotes_types_map_to_the_four_conll_types():
    from seqlab.tasks.tag.ontonotes import DROPPED, ONTONOTES_TO_CONLL, to_conll

    assert to_conll(
        [
            (0, 1, "PERSON"),
            (1, 2, "GPE"),
            (2, 3, "FAC"),
            (3, 4, "NORP"),
            (4, 5, "DATE"),
            (5, 6, "ORG"),
            (6, 7, "MONEY"),
            (7, 8, "LAW"),
        ]
    ) == [(0, 1, "PER"), (1, 2, "LOC"), (2, 3, "LOC"), (3, 4, "MISC"), (5, 6, "ORG"), (7, 8, "MISC")]
    assert set(ONTONOTES_TO_CONLL.values()) == {"PER", "ORG", "LOC", "MISC"}
    assert len(ONTONOTES_TO_CONLL) + len(DROPPED) == 18  # every OntoNotes 5 type is mapped or dropped


def test_a_spacy_pipeline_is_scored_on_conll_tokens_with_mapped_labels():
    import spacy

    from seqlab.data.conll import TaggedSentence
    from seqlab.tasks.tag.ontonotes import score_pipeline, spacy_entities

    nlp = spacy.blank("en")
    nlp.add_pipe("entity_ruler").add_patterns(
        [
            {"label": "PERSON", "pattern": [{"TEXT": "Peter"}, {"TEXT": "Blackburn"}]},
            {"label": "GPE", "pattern": "BRUSSELS"},
            {"label": "NORP", "pattern": "German"},
            {"label": "DATE", "pattern": "Thursday"},
            {"label": "ORG", "pattern": "EU"},
        ]
    )
    sentences = [
        TaggedSentence(["EU", "rejects", "German", "call"], [(0, 1, "ORG"), (2, 3, "MISC")]),
        TaggedSentence(["Peter", "Blackburn", "in", "BRUSSELS", "on", "Thursday"], [(0, 2, "PER"), (3, 4, "LOC")]),
        TaggedSentence(["U.S.", "says"], [(0, 1, "LOC")]),
    ]
    assert spacy_entities(nlp, [s.tokens for s in sentences])[1] == [(0, 2, "PERSON"), (3, 4, "GPE"), (5, 6, "DATE")]
    scores = score_pipeline(nlp, sentences)  # the DATE is dropped, U.S. is missed
    assert (scores["precision"], scores["recall"]) == (1.0, pytest.approx(4 / 5))
    assert scores["per_type"]["LOC"]["recall"] == 0.5 and scores["words"] == 12
