"""Task lm: training seqlab's own language models, run folders, generation and perplexity."""

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from seqlab import api
from seqlab.cli.main import app
from seqlab.config import build_config
from seqlab.errors import SeqlabError
from seqlab.tasks.lm import recipe as lm

runner = CliRunner()
TEXT = "".join(f"the cat sat on the mat {i % 7} times and the dog ran to the park.\n" for i in range(120))


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def lm_config(tmp_path, data, *extra):
    return build_config(
        {"task": "lm"},
        [
            f"data.train={data}",
            "model.preset=tiny",
            "tokenizer.max_length=32",
            "train.epochs=2",
            "train.batch_size=16",
            f"output_dir={tmp_path / 'runs'}",
            *extra,
        ],
    )


def test_splits_are_contiguous_and_cover_the_text(tmp_path, text_file):
    splits = lm.split_text(lm_config(tmp_path, text_file, "data.test_fraction=0.1"))
    assert splits.train + splits.valid + splits.test == TEXT
    assert len(splits.valid) == len(splits.test) == round(0.1 * len(TEXT))


def test_heldout_windows_score_every_token_once():
    ids = torch.arange(23)
    windows = lm.heldout_windows(ids, block=5)
    batch = lm.collate_windows(windows)
    targets = batch["targets"][batch["targets"] != lm.IGNORE]
    assert targets.tolist() == list(range(1, 23))  # every token after the first, once, in order


@pytest.mark.parametrize("arch", ["gpt", "lstm"])
def test_char_lm_trains_saves_and_reloads(tmp_path, text_file, arch):
    run = api.train(lm_config(tmp_path, text_file, f"model.arch={arch}", "train.lr=0.01", f"name={arch}"), progress="off")
    for name in ("config.yaml", "tokenizer.json", "model.safetensors", "metrics.json", "manifest.json"):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    valid = metrics["valid"]
    assert valid["loss"] < math.log(30)  # better than uniform over the ~30 characters
    assert valid["bits_per_char"] == pytest.approx(valid["loss"] * valid["tokens"] / math.log(2) / valid["characters"])
    pipe = api.load_generator(run)
    first = pipe.generate(["the cat", "a"], max_new_tokens=12)
    assert first == pipe.generate(["the cat", "a"], max_new_tokens=12)  # greedy: deterministic
    assert first[0] == pipe.generate("the cat", max_new_tokens=12)[0]  # left padding changes nothing
    streamed = "".join(pipe.stream("the cat", max_new_tokens=12))
    assert streamed == first[0]
    assert pipe.perplexity(TEXT[-300:])["perplexity"] > 1


def test_sampling_is_reproducible_with_a_seed(tmp_path, text_file):
    pipe = api.load_generator(api.train(lm_config(tmp_path, text_file, "train.epochs=1"), progress="off"))
    settings = {"max_new_tokens": 20, "do_sample": True, "temperature": 1.5, "seed": 3}
    assert pipe.generate("the", **settings) == pipe.generate("the", **settings)
    assert pipe.generate("the", **settings) != pipe.generate("the", **{**settings, "seed": 4})


def test_long_prompts_lose_their_start_and_bad_settings_are_clear(tmp_path, text_file):
    pipe = api.load_generator(api.train(lm_config(tmp_path, text_file, "model.max_len=32", "train.epochs=1"), progress="off"))
    out = pipe.generate("x" * 100, max_new_tokens=4)
    assert pipe.truncated == 1 and len(out) == 1
    with pytest.raises(SeqlabError, match="max_new_tokens=40 does not fit"):
        pipe.generate("the", max_new_tokens=40)
    with pytest.raises(SeqlabError, match="empty"):
        pipe.generate("", max_new_tokens=4)  # a char vocabulary has no beginning-of-text token
    for bad, match in [
        ({"do_sample": True, "temperature": -1}, "temperature"),
        ({"do_sample": True, "top_p": 1.5}, "top_p"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"num_beams": 0}, "num_beams"),
    ]:
        with pytest.raises(SeqlabError, match=match):
            pipe.generate("the", **bad)


def test_config_checks_for_language_models():
    assert build_config({"task": "lm"}).model.arch == "gpt"
    assert build_config({"task": "lm"}, ["model.arch=hf"]).model.model == "smollm2-135m"
    for overrides, match in [
        (["model.arch=cnn"], "language model is one of"),
        (["tokenizer.level=wordpiece"], "wordpiece"),
        (["model.max_len=16"], "max_len"),
    ]:
        with pytest.raises(SeqlabError, match=match):
            build_config({"task": "lm"}, overrides)
    with pytest.raises(SeqlabError, match="task lm"):
        build_config({}, ["model.arch=gpt"])


def test_cli_trains_generates_and_scores(tmp_path, text_file):
    result = runner.invoke(
        app,
        [
            "train",
            "lm",
            "--arch",
            "gru",
            "--data",
            str(text_file),
            "--preset",
            "tiny",
            "--epochs",
            "1",
            "--output-dir",
            str(tmp_path / "runs"),
            "--name",
            "g",
            "tokenizer.max_length=32",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "bits/char" in result.output
    run = tmp_path / "runs" / "g"
    result = runner.invoke(app, ["generate", "--model", str(run), "the cat", "--max-new-tokens", "5"])
    assert result.exit_code == 0 and result.output.startswith("the cat")
    result = runner.invoke(app, ["generate", "--model", str(run), "a", "b", "--max-new-tokens", "3", "--json"])
    assert [json.loads(line)["prompt"] for line in result.output.splitlines()] == ["a", "b"]
    result = runner.invoke(app, ["perplexity", "--model", str(run), "--data", str(text_file)])
    assert result.exit_code == 0 and "perplexity" in result.output
    # a language model is not a classifier, and a classifier does not generate
    result = runner.invoke(app, ["predict", str(run), "text"])
    assert result.exit_code == 1 and "seqlab generate" in result.output


def test_generate_errors_are_one_line(tmp_path, text_file):
    result = runner.invoke(app, ["generate", "--model", str(tmp_path), "hello"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    result = runner.invoke(app, ["generate", "--model", "smollm2-135m"])
    assert result.exit_code == 1 and "give a prompt" in result.output


def test_pretrained_causal_lm_fine_tunes_into_a_transformers_folder(tmp_path, tiny_llama):
    """Transfer learning for generation: `--arch hf` fine-tunes a causal LM; the run folder is
    also a plain transformers folder."""
    from transformers import AutoModelForCausalLM

    data = tmp_path / "cats.txt"
    data.write_text("the cat sat on the mat\n" * 200, encoding="utf-8")
    cfg = lm_config(
        tmp_path, data, "model.arch=hf", f"model.model={tiny_llama}", "train.lr=0.01", "train.epochs=2", "train.precision=32-true"
    )
    run = api.train(cfg, progress="off")
    metrics = json.loads((run / "metrics.json").read_text())
    before = api.load_generator(str(tiny_llama)).perplexity("the cat sat on the mat\n" * 20)["loss"]
    assert metrics["valid"]["loss"] < before  # it learnt the file
    reloaded = AutoModelForCausalLM.from_pretrained(run)  # transformers reads the run folder as it is
    assert reloaded.config.num_hidden_layers == 2
    pipe = api.load_generator(run)
    assert pipe.generate("the cat", max_new_tokens=3)[0].split() == ["sat", "on", "the"]


def test_gpt2_weights_run_in_seqlabs_own_gpt(tmp_path):
    """A GPT-2 folder (tiny, random) generates the same greedy text in transformers and in
    seqlab's GPT; a Llama folder is refused by the seqlab engine."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.train_from_iterator([TEXT], trainers.WordLevelTrainer(special_tokens=["[UNK]", "<|endoftext|>"]))
    folder = tmp_path / "gpt2"
    PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", eos_token="<|endoftext|>").save_pretrained(folder)
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=backend.get_vocab_size(), n_layer=2, n_head=2, n_embd=32, n_positions=64, eos_token_id=1, bos_token_id=1
    )
    GPT2LMHeadModel(config).save_pretrained(folder)
    hf, own = api.load_generator(folder), api.load_generator(folder, engine="seqlab")
    assert type(own.model).__name__ == "GPT"
    prompts = ["the cat sat", "the dog"]
    assert hf.generate(prompts, max_new_tokens=10) == own.generate(prompts, max_new_tokens=10)
    with pytest.raises(SeqlabError, match="engine"):
        api.load_generator(folder, engine="tpu")


def test_seqlab_engine_refuses_other_architectures():
    from transformers import GPTNeoConfig, GPTNeoForCausalLM

    from seqlab.tasks.lm.pipeline import _as_seqlab_gpt

    other = GPTNeoForCausalLM(
        GPTNeoConfig(
            vocab_size=50,
            hidden_size=16,
            num_layers=1,
            num_heads=2,
            attention_types=[[["global"], 1]],
            max_position_embeddings=32,
        )
    )
    with pytest.raises(SeqlabError, match="GPT-2 and Llama weights"):
        _as_seqlab_gpt(other, "tiny-neo")


def test_batched_generation_equals_one_prompt_at_a_time(tmp_path, text_file, tiny_llama):
    """Left-padded batches with per-row stops give every prompt its own greedy text, on a trained
    char GPT (seqlab's engine) and a tiny transformers Llama with eos; --input/--batch-size/--output
    write one JSON line per prompt."""
    run = api.train(lm_config(tmp_path, text_file, "train.lr=0.01", "name=b"), progress="off")
    prompts = ["the cat", "a", "the dog ran to the", "mat 3", "park.", "on the m", "t"]
    for pipe, settings in (
        (api.load_generator(run), {"max_new_tokens": 12, "stop": ["the"]}),
        (api.load_generator(tiny_llama), {"max_new_tokens": 10}),
    ):
        alone = [pipe.generate(p, **settings)[0] for p in prompts]
        for size in (1, 3, 16):
            assert pipe.generate(prompts, batch_size=size, **settings) == alone, size
        if "stop" in settings:  # rows did end at different steps
            assert len({len(text) for text in alone}) > 1 and all("the" not in text for text in alone), alone
    prompts_file = tmp_path / "prompts.txt"
    prompts_file.write_text("\n".join(prompts) + "\n", encoding="utf-8")
    out = tmp_path / "out" / "generated.jsonl"
    result = runner.invoke(
        app,
        [
            "generate",
            "--model",
            str(run),
            "--input",
            str(prompts_file),
            "--batch-size",
            "3",
            "--max-new-tokens",
            "6",
            "--output",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    expected = api.load_generator(run).generate(prompts, max_new_tokens=6)
    assert [(line["prompt"], line["generated"]) for line in lines] == list(zip(prompts, expected))
    result = runner.invoke(app, ["generate", "--model", str(run), "a", "--batch-size", "0"])
    assert result.exit_code == 1 and "--batch-size" in result.output


# --------------------------------------------------------------------------- WikiText-2 (issue 18 §4)


def test_recurrent_evaluation_carries_the_state_and_scores_every_token_once():
    from seqlab.models.rnn import RNNLanguageModel
    from seqlab.tasks.lm.inference import recurrent_nats

    torch.manual_seed(0)
    model = RNNLanguageModel(11, "lstm", 6, 8, dropout=0.0).eval()
    ids = torch.randint(0, 11, (50,))
    with torch.no_grad():
        whole = torch.nn.functional.cross_entropy(model(ids[None, :-1]).logits[0], ids[1:], reduction="sum")
        nats, tokens = recurrent_nats(model, ids, block=7, streams=1)  # one row: the state crosses every window
        assert tokens == 49 and nats == pytest.approx(float(whole), rel=1e-5)
        assert recurrent_nats(model, ids, block=7, streams=3)[1] == 49  # three rows and a tail: still each token once
        scores = lm.evaluate(model, ids, characters=100, block=7, batch_size=1)
    assert scores["tokens"] == 49 and scores["loss"] == pytest.approx(float(whole) / 49, rel=1e-5)


@pytest.fixture
def wikitext(tmp_path, monkeypatch):
    """The WikiText-2 excerpt served as all three splits of a fake pinned archive."""
    from test_benchmark_data import WIKITEXT, pytorch_example_tokens, wikitext_archive

    from seqlab.data import benchmarks

    monkeypatch.setenv("SEQLAB_HOME", str(tmp_path / "home"))
    wikitext_archive(monkeypatch, tmp_path / "home")
    tokens = pytorch_example_tokens(WIKITEXT)
    monkeypatch.setattr(benchmarks, "WIKITEXT2_VOCAB", len(set(tokens)))
    return tokens


def test_wikitext2_word_level_keeps_the_released_vocabulary_and_splits(tmp_path, wikitext):
    cfg = lm_config(
        tmp_path,
        "wikitext-2",
        "tokenizer.level=word",
        "model.arch=lstm",
        "model.tie_weights=true",
        "model.embed_dim=16",
        "name=wt2",
    )
    splits = lm.split_text(cfg)
    assert (splits.sources["valid"], splits.sources["test"]) == ("wikitext-2:valid", "wikitext-2:test")
    tokenizer = lm.learn_tokenizer(cfg, splits.train)
    assert tokenizer.get_vocab_size() == len(set(wikitext))  # the corpus's own types; nothing added
    ids = lm.Codec(tokenizer).encode_stream(splits.train)
    assert [tokenizer.id_to_token(i) for i in ids.tolist()] == wikitext  # as PyTorch's word_language_model reads it
    assert "<unk>" in wikitext and tokenizer.token_to_id("<unk>") is not None
    run = api.train(cfg, progress="off")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["tokens"] == len(wikitext) - 1
    result = runner.invoke(app, ["perplexity", str(run), "--data", "wikitext-2", "--split", "test"])
    assert result.exit_code == 0, result.output
    assert f"perplexity {metrics['test']['perplexity']:.2f}" in result.output and "wikitext-2:test" in result.output
    result = runner.invoke(app, ["evaluate", str(run), "--data", "wikitext-2:test", "--json"])
    assert json.loads(result.output)["perplexity"] == pytest.approx(metrics["test"]["perplexity"])
    result = runner.invoke(app, ["perplexity", str(run), "--data", "wikitext-2", "--split", "dev"])
    assert result.exit_code == 1 and "wikitext-2 has no split 'dev'" in result.output
