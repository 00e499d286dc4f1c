"""A BERT pretrained here: WordPiece vocabulary, masking and NSP statistics, pretrain → save →
reload → fill-mask, fine-tuning with --init, and every kind of bad input as one line."""

from __future__ import annotations

import json
import random
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest
import torch
from conftest import write_csv
from safetensors.torch import load_file
from typer.testing import CliRunner

from seqlab import api, load
from seqlab.cli.main import app
from seqlab.config import build_config, load_config
from seqlab.data.batching import pad_batch
from seqlab.data.corpus import load_corpus
from seqlab.data.tokenize import train_tokenizer
from seqlab.errors import SeqlabError
from seqlab.models import build_classifier
from seqlab.models.bert import BertForPretraining
from seqlab.tasks.pretrain import finetune
from seqlab.tasks.pretrain import recipe as mlm

ANIMALS = ["cat", "dog", "bird", "horse", "fox", "king", "queen", "hound"]
VERBS = ["sees", "loves", "follows", "fears", "calls"]


def write_corpus(path: Path, documents: int = 30, sentences: int = 10, seed: int = 0) -> Path:
    """A learnable corpus: blank lines between documents, one sentence per line."""
    rng = random.Random(seed)
    lines = []
    for d in range(documents):
        for s in range(sentences):
            lines.append(f"the {rng.choice(ANIMALS)} {VERBS[(d + s) % 5]} the {rng.choice(ANIMALS)} in chapter {s} .")
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def pretrain_config(corpus: Path, out: Path, name: str, *extra: str):
    # tiny, but 32 wide: d=16 needs many more steps to get past predicting "the" everywhere
    return build_config(
        {"task": "pretrain-mlm"},
        [
            f"data.train={corpus}",
            "model.preset=tiny",
            "model.d_model=32",
            "model.ff_dim=64",
            "model.dropout=0",
            "train.epochs=8",
            "train.lr=0.003",
            "train.batch_size=4",
            "train.patience=null",
            "tokenizer.max_length=32",
            f"output_dir={out}",
            f"name={name}",
            *extra,
        ],
    )


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> Path:
    """One tiny BERT (MLM + NSP) pretrained on a small corpus, shared by the tests below."""
    folder = tmp_path_factory.mktemp("pretrain")
    corpus = write_corpus(folder / "corpus.txt")
    return api.pretrain(pretrain_config(corpus, folder / "runs", "bert", "pretrain.nsp=true"), progress="off")


# --------------------------------------------------------------------------- vocabulary and model


def test_wordpiece_vocabulary_has_bert_special_tokens_and_segments():
    tokenizer = train_tokenizer(["To be, or not to be", "that is the question"] * 5, "wordpiece", 200)
    assert [tokenizer.id_to_token(i) for i in range(5)] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    single = tokenizer.encode("to be or not to [MASK]")
    assert single.tokens[0] == "[CLS]" and single.tokens[-1] == "[SEP]" and "[MASK]" in single.tokens
    pair = tokenizer.encode("to be", "the question")
    assert pair.tokens == ["[CLS]", "to", "be", "[SEP]", "the", "question", "[SEP]"]
    assert pair.type_ids == [0, 0, 0, 0, 1, 1, 1]


def test_classifier_encoder_keys_are_a_subset_of_bert_and_padding_never_matters():
    torch.manual_seed(0)
    bert = BertForPretraining(50, d_model=16, num_heads=2, num_layers=1, ff_dim=32).eval()
    cfg = build_config({}, ["model.arch=transformer", "model.preset=tiny", "model.num_segments=2", "model.init=x"])
    classifier = build_classifier(cfg.model, 50, 2)
    bert_state = bert.state_dict()
    encoder = {k: v for k, v in classifier.state_dict().items() if k.startswith("encoder.")}
    assert encoder and all(bert_state[k].shape == v.shape for k, v in encoder.items())
    assert "cls" not in classifier.state_dict()  # [CLS] comes from the vocabulary, not a prepended vector
    ids, mask = pad_batch([[2, 7, 8, 4, 3]])
    alone = bert(ids, mask, select=ids == 4).mlm_logits
    ids, mask = pad_batch([[2, 7, 8, 4, 3], [2, 9, 9, 9, 9, 9, 9, 3]])
    in_batch = bert(ids, mask, select=ids == 4).mlm_logits
    torch.testing.assert_close(alone, in_batch[:1], atol=1e-5, rtol=1e-4)


# --------------------------------------------------------------------------- masking and NSP


def test_masking_statistics_and_special_tokens_never_masked():
    rng = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 1000, (64, 100), generator=rng)
    ids[:, 0], ids[:, 50], ids[:, 99] = 2, 3, 3  # [CLS] ... [SEP] ... [SEP]
    ids[::4, 60:] = 0  # padding in every fourth row
    real = ids != 0
    maskable = real & (ids >= 5)
    generator = torch.Generator().manual_seed(1)
    chosen = masked = kept = swapped = 0
    for _ in range(20):
        corrupted, labels = mlm.mask_tokens(ids, maskable, 1000, 0.15, generator)
        picked = labels != mlm.IGNORE
        assert not (picked & ~maskable).any()  # never a special token or padding
        assert torch.equal(corrupted[~picked], ids[~picked]) and torch.equal(labels[picked], ids[picked])
        chosen += int(picked.sum())
        masked += int((corrupted[picked] == mlm.MASK_ID).sum())
        kept += int((corrupted[picked] == ids[picked]).sum())
        swapped += int(((corrupted[picked] != ids[picked]) & (corrupted[picked] != mlm.MASK_ID)).sum())
        assert int(corrupted[picked].min()) >= 0 and int(corrupted[picked & (corrupted != mlm.MASK_ID)].min()) >= 5
    assert chosen / (20 * int(maskable.sum())) == pytest.approx(0.15, abs=0.005)
    assert masked / chosen == pytest.approx(0.8, abs=0.015)
    assert kept / chosen == pytest.approx(0.1, abs=0.01)  # (+ the rare random pick of the same token)
    assert swapped / chosen == pytest.approx(0.1, abs=0.01)


def test_collator_masks_anew_every_call_and_reproducibly():
    examples = [mlm.MLMExample([2, *range(10, 40), 3], [0] * 32) for _ in range(8)]
    first, second = mlm.MaskingCollator(100, 0.15, seed=3), mlm.MaskingCollator(100, 0.15, seed=3)
    a1, a2 = first(examples), first(examples)
    assert not torch.equal(a1["labels"], a2["labels"])  # dynamic masking: a new draw each epoch
    assert torch.equal(second(examples)["labels"], a1["labels"])  # same seed, same masks
    fixed = mlm.fix_masks(examples, 100, 0.15, seed=3)
    assert torch.equal(first(fixed)["labels"], first(fixed)["labels"])  # held-out masks never change


def test_nsp_pairs_are_half_real_next_sentences():
    # token 5 + 100*d + s (s < 100) marks sentence s of document d; sentences are 1-6 tokens long
    rng = random.Random(0)
    documents = [[[5 + 100 * d + s] * rng.randint(1, 6) for s in range(rng.randint(2, 40))] for d in range(150)]
    examples = mlm.build_examples(documents, 24, nsp=True, rng=random.Random(1))
    assert len(examples) > 600
    assert sum(ex.is_next for ex in examples) / len(examples) == pytest.approx(0.5, abs=0.05)
    for ex in examples:
        assert len(ex.ids) <= 24 and ex.ids[0] == mlm.CLS_ID and ex.ids[-1] == mlm.SEP_ID
        sep = ex.ids.index(mlm.SEP_ID)
        a, b = ex.ids[1:sep], ex.ids[sep + 1 : -1]
        assert a and b and ex.type_ids == [0] * (len(a) + 2) + [1] * (len(b) + 1)
        (doc_a, last_a), (doc_b, first_b) = divmod(a[-1] - 5, 100), divmod(b[0] - 5, 100)
        if ex.is_next:
            assert (doc_b, first_b) == (doc_a, last_a + 1)  # B starts with the sentence after A
        else:
            assert doc_b != doc_a
    singles = mlm.build_examples(documents, 24, nsp=False, rng=random.Random(1))
    assert all(ex.is_next == -1 and set(ex.type_ids) == {0} for ex in singles)
    covered = Counter(t for ex in singles for t in ex.ids[1:-1])
    assert len(covered) == sum(map(len, documents))  # packing keeps every sentence


def test_splits_keep_sentences_in_order_and_hold_out_whole_runs(tmp_path):
    cfg = pretrain_config(write_corpus(tmp_path / "c.txt", documents=20), tmp_path, "x")
    splits = mlm.load_splits(cfg)
    sizes = [sum(map(len, getattr(splits, name))) for name in ("train", "valid", "test")]
    assert sizes == [160, 20, 20]
    original = load_corpus(str(tmp_path / "c.txt"))
    for doc in splits.valid + splits.test:  # every held-out document is a run of some original document
        assert any(" ".join(doc) in " ".join(source) for source in original)


# --------------------------------------------------------------------------- pretrain, save, reload


def test_pretrain_saves_a_run_that_reloads_with_the_same_predictions(pretrained):
    for name in ("config.yaml", "tokenizer.json", "model.safetensors", "metrics.json", "manifest.json"):
        assert (pretrained / name).is_file(), name
    metrics = json.loads((pretrained / "metrics.json").read_text())
    vocab = api.load_masked_lm(pretrained).tokenizer.get_vocab_size()
    assert 1 < metrics["test"]["perplexity"] < vocab / 3 and 0 <= metrics["test"]["nsp_accuracy"] <= 1
    manifest = json.loads((pretrained / "manifest.json").read_text())
    assert manifest["data"]["train"]["documents"] >= 20 and manifest["data"]["test"]["sentences"] == 30

    predictions = api.fill_mask(pretrained, "the cat [MASK] the dog in chapter [MASK] .", top_k=3)
    assert len(predictions) == 2 and all(len(p) == 3 for p in predictions)
    for candidates in predictions:
        probs = [c["probability"] for c in candidates]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
    assert api.load_masked_lm(pretrained).fill_mask("the cat [MASK] the dog in chapter [MASK] .", 3) == predictions

    # the held-out score, recomputed from the reloaded weights, is the one measured after training
    pipe = api.load_masked_lm(pretrained)
    cfg = pipe.config
    data = mlm.make_examples(cfg, mlm.load_splits(cfg), pipe.tokenizer)
    again = mlm.evaluate(pipe.model, data.examples["test"], nsp=True)
    assert again["mlm_accuracy"] == metrics["test"]["mlm_accuracy"]
    assert again["mlm_loss"] == pytest.approx(metrics["test"]["mlm_loss"], rel=1e-5)


def test_mlm_learns_on_one_sentence_documents(tmp_path):
    rows = [(f"the {a} {v} the {b} .", "x") for a in ANIMALS for v in VERBS for b in ANIMALS]
    data = write_csv(tmp_path / "s.csv", rows)
    cfg = pretrain_config(data, tmp_path / "runs", "m", "train.epochs=6", "data.test_fraction=0.25")
    run = api.pretrain(cfg, progress="off")
    test = json.loads((run / "metrics.json").read_text())["test"]
    assert "nsp_accuracy" not in test and test["masked_tokens"] > 50
    assert test["mlm_accuracy"] > 0.4  # "the" everywhere scores 0.33; "the", "." and the verbs' slot are learnable
    assert len(api.fill_mask(run, "the [MASK] loves the dog .", top_k=4)[0]) == 4


def test_an_interrupted_pretraining_resumes(tmp_path):
    corpus = write_corpus(tmp_path / "c.txt", documents=10)
    run = api.pretrain(pretrain_config(corpus, tmp_path / "runs", "r", "train.epochs=1"), progress="off")
    # make it look interrupted after epoch 1, with the config asking for 2 epochs
    (run / "model.safetensors").unlink()
    (run / "config.yaml").write_text((run / "config.yaml").read_text().replace("epochs: 1", "epochs: 2"))
    with pytest.raises(SeqlabError, match="did not finish"):
        api.load_masked_lm(run)
    api.train(None, resume=run, progress="off")  # `seqlab train --resume` hands it to pretrain
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 2
    assert_one_line_error(invoke("pretrain", "mlm", "--resume", run), "already finished")


# --------------------------------------------------------------------------- fine-tuning with --init

FEW = [
    ("the cat loves the dog", "pos"),
    ("the king loves the queen", "pos"),
    ("the fox loves the bird", "pos"),
    ("the cat fears the dog", "neg"),
    ("the king fears the queen", "neg"),
    ("the fox fears the bird", "neg"),
]


def test_init_fine_tunes_the_pretrained_encoder_and_reloads_without_it(pretrained, tmp_path):
    data = write_csv(tmp_path / "few.csv", FEW)
    copy = tmp_path / "bert"
    shutil.copytree(pretrained, copy)
    cfg = build_config(
        {},
        [
            f"data.train={data}",
            "data.valid_fraction=0",
            "data.test_fraction=0",
            "model.arch=transformer",
            "model.pooling=cls",
            "model.dropout=0",
            f"model.init={copy}",
            "train.epochs=40",
            "train.batch_size=6",
            "train.lr=0.01",
            f"output_dir={tmp_path / 'runs'}",
            "name=ft",
        ],
    )
    run = api.train(cfg, progress="off")
    saved = load_config(run / "config.yaml")
    assert saved.model.d_model == 32 and saved.model.num_segments == 2 and saved.tokenizer.level == "wordpiece"
    assert (run / "tokenizer.json").read_text() == (copy / "tokenizer.json").read_text()
    texts = [text for text, _ in FEW]
    probs = load(run).predict_proba(texts)
    shutil.rmtree(copy)  # the fine-tuned run stands on its own
    pipe = load(run)
    assert [p["label"] for p in pipe.predict(texts)] == [label for _, label in FEW]
    torch.testing.assert_close(pipe.predict_proba(texts), probs)
    tokens, layers = pipe.attention("the cat loves the dog")
    assert tokens[0] == "[CLS]" and tokens.count("[CLS]") == 1 and layers[0].shape[-1] == len(tokens)


def test_init_loads_the_pretrained_encoder_weights(pretrained):
    cfg = finetune.init_config(build_config({}, ["model.arch=transformer", f"model.init={pretrained}"]))
    model = build_classifier(cfg.model, finetune.open_pretrained(pretrained).tokenizer.get_vocab_size(), 2)
    finetune.load_encoder(model, pretrained)
    state = load_file(str(pretrained / "model.safetensors"))
    for key, value in model.state_dict().items():
        if key.startswith("encoder."):
            torch.testing.assert_close(value, state[key])


# --------------------------------------------------------------------------- bad input: one line

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_one_line_error(result, fragment: str) -> None:
    assert result.exit_code == 1, result.output
    message = result.stderr.strip()
    assert message.startswith("error:") and "\n" not in message and "Traceback" not in result.output, message
    assert fragment in message, message


def test_init_from_a_classify_run_or_a_missing_folder(tmp_path, pretrained):
    data = write_csv(tmp_path / "few.csv", FEW * 5)
    runs = tmp_path / "runs"
    result = invoke(
        "train",
        "classify",
        "--arch",
        "cnn",
        "--data",
        data,
        "--preset",
        "tiny",
        "--epochs",
        "1",
        "--output-dir",
        runs,
        "--name",
        "c",
    )
    assert result.exit_code == 0, result.output
    base = ["train", "classify", "--arch", "transformer", "--data", data, "--output-dir", runs]
    assert_one_line_error(invoke(*base, "--init", runs / "c"), "is a classify run of a cnn model")
    assert_one_line_error(invoke(*base, "--init", tmp_path / "nope"), "does not exist")
    assert_one_line_error(
        invoke("train", "classify", "--arch", "lstm", "--data", data, "--init", pretrained), "model.init: unknown key"
    )
    assert sorted(p.name for p in runs.iterdir()) == ["c"]
    assert_one_line_error(invoke("fill-mask", runs / "c", "a [MASK]"), "is a classify run")
    assert_one_line_error(invoke("predict", pretrained, "hello"), "is a pretrain run")


def test_fill_mask_errors(pretrained):
    assert_one_line_error(invoke("fill-mask", pretrained, "no mask here"), "no [MASK]")
    assert_one_line_error(invoke("fill-mask", pretrained, "the " * 40 + "[MASK]"), "over the model's limit")
    result = invoke("fill-mask", pretrained, "the cat [MASK] the dog", "--top-k", "2")
    assert result.exit_code == 0 and result.stdout.startswith("[MASK] 1:")
    assert len(re.findall(r" \d\.\d{3}", result.stdout)) == 2  # two tokens, each with its probability


def bad_corpora(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    latin = tmp_path / "latin.txt"
    latin.write_bytes(b"a line\ncaf\xe9\n")
    one_doc = tmp_path / "one.txt"
    one_doc.write_text("\n".join(f"sentence number {i} ." for i in range(50)))
    singles = write_csv(tmp_path / "s.csv", [(f"text {i}", "x") for i in range(50)])
    return {
        "empty": (empty, "is empty"),
        "missing": (tmp_path / "missing.txt", "does not exist"),
        "non-UTF-8": (latin, "line 2"),
        "nsp one document": (one_doc, "one document"),
        "nsp single sentences": (singles, "drop --nsp"),
    }


@pytest.mark.parametrize("case", ["empty", "missing", "non-UTF-8", "nsp one document", "nsp single sentences"])
def test_bad_corpus_is_one_line_and_leaves_no_run_folder(tmp_path, case):
    path, fragment = bad_corpora(tmp_path)[case]
    runs = tmp_path / "runs"
    assert_one_line_error(invoke("pretrain", "mlm", "--data", path, "--nsp", "--output-dir", runs), fragment)
    assert not runs.exists() or not any(runs.iterdir())


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["pretrain", "mlm", "--data", "x.txt", "pretrain.masking=0.2"], "pretrain.masking: unknown key"),
        (["pretrain", "mlm", "--data", "x.txt", "model.arch=lstm"], "trains a transformer encoder"),
        (["pretrain", "mlm", "--data", "x.txt", "tokenizer.level=bpe"], "tokenizer.level=wordpiece"),
        (["pretrain", "mlm", "--data", "imdb"], "unknown corpus 'imdb'"),
        (["pretrain", "mlm"], "--data"),
        (["train", "classify", "pretrain.nsp=true"], "only for task pretrain"),
        (["train", "classify", "--data", "shakespeare"], "unlabelled text"),
    ],
)
def test_bad_options_are_one_line(args, fragment):
    assert_one_line_error(invoke(*args), fragment)


@pytest.mark.network
def test_shakespeare_real_download(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQLAB_HOME", str(tmp_path / "home"))
    documents = load_corpus("shakespeare")
    assert len(documents) == 42
    assert sum(map(len, documents)) == 146_569
    assert any(line.startswith("To be, or not to be") for doc in documents for line in doc)
