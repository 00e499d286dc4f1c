"""Translation on real sentences (issue 17), end to end on the Tatoeba fixture: a tiny
Transformer trained a few steps on `tests/fixtures/tatoeba-en-fr-300.tsv` with every
real-scale knob (BPE, token-budget batches, warm-up and decay, label smoothing, val_bleu),
then `seqlab evaluate` (multi-reference sacreBLEU, equal to sacreBLEU's own command),
`seqlab translate` (n-best, alignments of BPE pieces), unknown characters and long lines.
Nothing is downloaded: the fixture is cut from the real file."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from seqlab import api
from seqlab.cli.main import app
from seqlab.config import build_config
from seqlab.data import parallel
from seqlab.tasks.translate import recipe as translate

runner = CliRunner()
FIXTURE = Path(__file__).parent / "fixtures" / "tatoeba-en-fr-300.tsv"


def tiny_config(tmp_path, *extra):
    return build_config(
        {"task": "translate"},
        [
            f"data.train={FIXTURE}",
            "data.valid_sources=15",
            "data.test_sources=40",
            "tokenizer.vocab_size=400",
            "translate.shared_vocab=true",
            "model.arch=transformer-seq2seq",
            "model.preset=tiny",
            "model.share_embeddings=true",
            "train.batch_tokens=300",
            "train.epochs=2",
            "train.lr=0.003",
            "train.lr_schedule=cosine",
            "train.warmup_steps=3",
            "train.max_minutes=5",
            "train.eval_every_steps=8",
            "train.log_every_n_steps=5",
            "train.patience=null",
            "translate.label_smoothing=0.1",
            "translate.val_bleu_sentences=10",
            "translate.beam=3",
            f"output_dir={tmp_path / 'runs'}",
            *extra,
        ],
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tatoeba")
    return api.train(tiny_config(tmp, "name=fixture"), progress="off")


def test_splits_hold_out_sources_with_all_their_references(tmp_path):
    splits = translate.load_splits(tiny_config(tmp_path))
    held = {parallel.source_key(r.source) for r in splits.valid + splits.test}
    assert not held & {parallel.source_key(p.source) for p in splits.train}  # leakage-free
    assert (len(splits.valid), len(splits.test)) == (15, 40)
    every = parallel.group_by_source(parallel.read_pairs(str(FIXTURE)))
    references = {parallel.source_key(r.source): set(r.references) for r in every}
    assert all(set(r.references) == references[parallel.source_key(r.source)] for r in splits.test)


def test_a_run_logs_val_bleu_and_scores_its_test_split_with_every_reference(run):
    metrics = json.loads((run / "metrics.json").read_text())
    assert "best_val_bleu" in metrics
    test = metrics["test"]
    assert test["examples"] == 40 and test["references"] >= 40 and test["beam"] == 3
    assert "nrefs:var" in test["bleu_signature"] or "nrefs:1" in test["bleu_signature"]
    assert test["by_length"] and test["by_length"][0]["unit"] == "words"
    logged = (run / "logs" / "metrics.csv").read_text()
    assert "val_bleu" in logged.splitlines()[0] and "lr-Adam" in logged.splitlines()[0]
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["data"]["test"]["sources"] == 40


def test_evaluate_prints_signatures_and_equals_the_sacrebleu_command(run, tmp_path):
    result = runner.invoke(app, ["evaluate", str(run), "--data", str(FIXTURE)])
    assert result.exit_code == 0, result.output
    assert (
        "BLEU" in result.output and "nrefs:" in result.output and "chrF" in result.output and "by source length" in result.output
    )
    result = runner.invoke(app, ["evaluate", str(run), "--data", str(FIXTURE), "--json"])
    metrics = json.loads(result.output)
    assert metrics["examples"] == 40 and "own held-out test" in metrics["scored"]

    # the same sources translated by the pipeline and scored by sacreBLEU's own command
    pipe = api.load_translator(run)
    test = translate.load_splits(pipe.config).test
    hypotheses = pipe.translate([r.source for r in test])
    streams = parallel.reference_streams(test, repeat=True)
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
    assert cli["BLEU"]["score"] == pytest.approx(metrics["bleu"], abs=1e-8)
    assert cli["chrF2"]["score"] == pytest.approx(metrics["chrf"], abs=1e-8)


def test_translate_n_best_alignments_and_unknown_characters(run, tmp_path):
    result = runner.invoke(app, ["translate", str(run), "I'm OK.", "Get out!", "--beam", "3", "--n-best", "2"])
    assert result.exit_code == 0, result.output
    assert result.output.count("score") == 4 and "1." in result.output and "2." in result.output
    result = runner.invoke(app, ["translate", str(run), "Get out!", "--beam", "3", "--n-best", "3", "--json"])
    (record,) = [json.loads(line) for line in result.output.splitlines()]
    assert len(record["translations"]) == 3 and record["translations"][0]["score"] >= record["translations"][-1]["score"]
    result = runner.invoke(app, ["translate", str(run), "Get out!", "--beam", "2", "--n-best", "3"])
    assert result.exit_code == 1 and "--n-best 3 needs a beam" in result.output
    page = tmp_path / "a.html"
    result = runner.invoke(app, ["translate", str(run), "I would like a cup of coffee.", "--attention", str(page)])
    assert result.exit_code == 0, result.output
    html = page.read_text(encoding="utf-8")
    assert "<table>" in html and "▁" in html and "http" not in html.split("<body>")[1]
    png = tmp_path / "a.png"
    assert (
        runner.invoke(app, ["translate", str(run), "I'm OK.", "--attention", str(png)]).exit_code == 0
        and png.stat().st_size > 1000
    )
    pipe = api.load_translator(run)
    (out,) = pipe.translate(["I ❤️ 東京 😀"])  # unknown characters: [UNK] in, nothing out, no error
    assert isinstance(out, str) and pipe.unknown >= 3


def test_a_line_of_100000_characters_is_cut_and_counted(tmp_path):
    data = tmp_path / "pairs.tsv"
    data.write_text(FIXTURE.read_text(encoding="utf-8") + "a" * 100_001 + "\tb\n", encoding="utf-8")
    cfg = tiny_config(
        tmp_path,
        f"data.train={data}",
        "train.epochs=1",
        "train.max_steps=2",
        "train.warmup_steps=1",
        "translate.val_bleu_sentences=2",
        "name=long",
    )
    run = api.train(cfg, progress="off")
    assert json.loads((run / "manifest.json").read_text())["truncated_lines"] == 1


def test_loading_and_translating_imports_no_training_code(run):
    code = (
        "import sys; from seqlab import api; api.load_translator(sys.argv[1]).translate(['I am OK.'], beam=2); "
        "assert 'lightning' not in sys.modules, 'lightning was imported'"
    )
    subprocess.run([sys.executable, "-c", code, str(run)], check=True, capture_output=True, text=True, timeout=120)
