"""Task translate: pair readers and generated tasks, the encoder-decoders and their attention,
decoding through `seqlab.decoding`, metrics, run folders, the CLI and the comparison."""

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from seqlab import api, decoding
from seqlab.cli.main import app
from seqlab.config import build_config
from seqlab.data import parallel
from seqlab.data.parallel import Pair
from seqlab.data.tokenize import train_tokenizer
from seqlab.errors import SeqlabError
from seqlab.models.attention import AdditiveAttention, MultiplicativeAttention
from seqlab.models.seq2seq import RNNSeq2Seq
from seqlab.models.transformer import TransformerSeq2Seq
from seqlab.tasks.translate import metrics as translate_eval
from seqlab.tasks.translate import recipe as translate

runner = CliRunner()

MODELS = {
    "seq2seq": lambda: RNNSeq2Seq(20, 15, "lstm", 8, 16, attention=None),
    "bahdanau": lambda: RNNSeq2Seq(20, 15, "lstm", 8, 16, attention="bahdanau"),
    "luong-dot": lambda: RNNSeq2Seq(20, 15, "gru", 8, 16, attention="luong-dot"),
    "luong-general": lambda: RNNSeq2Seq(20, 15, "lstm", 8, 16, num_layers=2, attention="luong-general", tie_embeddings=True),
    "dot": lambda: RNNSeq2Seq(20, 15, "lstm", 8, 16, bidirectional=False, attention="dot"),
    "transformer": lambda: TransformerSeq2Seq(20, 15, 16, 2, 2, 32),
    "transformer-shared": lambda: TransformerSeq2Seq(20, 20, 16, 2, 1, 32, positional="learned", share_embeddings=True),
}


def padded_batch():
    torch.manual_seed(0)
    source = torch.randint(4, 15, (3, 7))
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[1, 5:] = mask[2, 2:] = False
    return source.masked_fill(~mask, 0), mask, torch.randint(4, 15, (3, 6))


# --------------------------------------------------------------------------- models and attention


@pytest.mark.parametrize("name", MODELS)
def test_attention_rows_sum_to_one_and_padding_gets_zero(name):
    torch.manual_seed(0)
    model = MODELS[name]().eval()
    source, mask, targets = padded_batch()
    out = model(source, mask, targets, need_weights=True)
    assert out.logits.shape == (3, 6, 15 if name != "transformer-shared" else 20)
    if name == "seq2seq":
        assert out.alignments is None  # the fixed-size context: nothing to attend to
        return
    assert torch.allclose(out.alignments.sum(-1), torch.ones(3, 6), atol=1e-5)
    assert out.alignments[1, :, 5:].abs().max() == 0 and out.alignments[2, :, 2:].abs().max() == 0


@pytest.mark.parametrize("name", MODELS)
def test_step_by_step_equals_teacher_forcing_and_padding_changes_nothing(name):
    torch.manual_seed(0)
    model = MODELS[name]().eval()
    source, mask, targets = padded_batch()
    with torch.no_grad():
        whole = model(source, mask, targets, need_weights=True)
        state, steps, weights = model.encode(source, mask), [], []
        for t in range(targets.size(1)):
            logits, state, w = model.step(targets[:, t], state, need_weights=True)
            steps.append(logits)
            weights.append(w)
        alone = model(source[2:3, :2], mask[2:3, :2], targets[2:3]).logits
    assert torch.allclose(whole.logits, torch.stack(steps, 1), atol=1e-5)  # KV caches / recurrent state
    if whole.alignments is not None:
        assert torch.allclose(whole.alignments, torch.stack(weights, 1), atol=1e-5)
    assert torch.allclose(alone, whole.logits[2:3], atol=1e-5)  # a sentence alone = in a padded batch


def test_scheduled_sampling_zero_equals_one_pass_and_changes_inputs_when_on():
    torch.manual_seed(0)
    model = MODELS["dot"]().eval()  # "dot" runs the decoder in one call without sampling
    source, mask, targets = padded_batch()
    state = model.encode(source, mask)
    one_pass, _ = model.decoder(targets, state)
    loop, _ = model.decoder(targets, state, sampling_prob=1e-9)  # the step loop, feeding true tokens
    assert torch.allclose(one_pass, loop, atol=1e-5)
    own, _ = model.decoder(targets, state, sampling_prob=1.0)  # always its own guesses
    assert torch.allclose(own[:, 0], one_pass[:, 0], atol=1e-6) and not torch.allclose(own, one_pass)


def test_attention_modules_return_weights_with_masked_keys_at_zero():
    torch.manual_seed(0)
    query, keys = torch.randn(2, 3, 8), torch.randn(2, 5, 8)
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]])
    for attention in (AdditiveAttention(8, 8, 6), MultiplicativeAttention(8, 8, "dot"), MultiplicativeAttention(8, 8, "general")):
        context, weights = attention(query, keys, mask)
        assert context.shape == (2, 3, 8) and weights.shape == (2, 3, 5)
        assert torch.allclose(weights.sum(-1), torch.ones(2, 3)) and weights[1, :, 2:].abs().max() == 0
        assert torch.allclose(context, weights @ keys)


# --------------------------------------------------------------------------- decoding


def vocabularies():
    pairs = [Pair(" ".join("abcdefghijk"[:n]), " ".join("abcdefghijk"[:n][::-1])) for n in range(1, 12)]
    cfg = build_config({"task": "translate"}, ["tokenizer.level=word"])
    return translate.learn_vocabularies(cfg, pairs)


def random_model(vocab, name="bahdanau"):
    torch.manual_seed(3)
    if name == "transformer":
        return TransformerSeq2Seq(vocab.source.get_vocab_size(), vocab.target.get_vocab_size(), 16, 2, 1, 32).eval()
    return RNNSeq2Seq(vocab.source.get_vocab_size(), vocab.target.get_vocab_size(), "gru", 8, 16, attention=name).eval()


SOURCES = [[4, 5, 6], [7], [5, 8, 9, 10, 4, 6], [6, 6]]


@pytest.mark.parametrize("name", ["bahdanau", "transformer"])
def test_beam_size_one_equals_greedy(name):
    vocab = vocabularies()
    model = random_model(vocab, name)
    ids, mask = torch.nn.utils.rnn.pad_sequence([torch.tensor(s) for s in SOURCES], batch_first=True), None
    mask = ids != 0
    limits = torch.full((len(SOURCES),), 8)
    prompt = torch.full((len(SOURCES), 1), vocab.bos_id)
    config = decoding.GenerationConfig(max_new_tokens=9, eos_token_id=vocab.eos_id, pad_token_id=0)
    greedy = decoding.generate(translate.Seq2SeqLM(model, ids, mask, limits, vocab.eos_id), prompt, None, config)
    beam_one = decoding.beam_search(translate.Seq2SeqLM(model, ids, mask, limits, vocab.eos_id), prompt, None, config)
    assert greedy == beam_one
    # and greedy by hand, one sentence at a time, gives the same tokens
    for row, source in enumerate(SOURCES):
        state = model.encode(torch.tensor([source]), torch.ones(1, len(source), dtype=torch.bool))
        token, by_hand = torch.tensor([vocab.bos_id]), []
        for _ in range(9):
            logits, state, _ = model.step(token, state)
            token = logits.argmax(-1) if len(by_hand) < 8 else torch.tensor([vocab.eos_id])
            by_hand.append(int(token))
            if int(token) == vocab.eos_id:
                break
        assert greedy[row] == by_hand


class ConfidentLM:
    """A fake `IncrementalLM` that is sure of "2 3 4 5 [EOS]" and thinks [EOS] the next best
    token at every step: the shape of a well-trained translation model's beliefs."""

    context_length = None

    def _logits(self, rows: int, produced: int) -> torch.Tensor:
        logits = torch.full((rows, 8), -15.0)
        logits[:, 1] = -10.0  # [EOS]
        logits[:, 2 + produced if produced < 4 else 1] = 10.0
        return logits

    def prefill(self, input_ids, attention_mask):
        return self._logits(input_ids.size(0), 0), 0

    def step(self, tokens, produced):
        return self._logits(tokens.size(0), produced + 1), produced + 1

    def reorder(self, produced, index):
        return produced


def test_beam_search_without_early_stopping_finds_the_likely_long_output():
    prompt = torch.tensor([[7]])
    settings = {"max_new_tokens": 8, "num_beams": 3, "eos_token_id": 1, "pad_token_id": 0}
    early = decoding.beam_search(ConfidentLM(), prompt, None, decoding.GenerationConfig(**settings))
    patient = decoding.beam_search(ConfidentLM(), prompt, None, decoding.GenerationConfig(**settings, early_stopping=False))
    assert early == [[2, 3, 1]]  # three unlikely endings filled the hypotheses first
    assert patient == [[2, 3, 4, 5, 1]]
    with pytest.raises(SeqlabError, match="early_stopping=false needs num_beams > 1"):
        decoding.GenerationConfig(early_stopping=False)


@pytest.mark.parametrize("beam", [1, 3])
@pytest.mark.parametrize("name", ["luong-general", "transformer"])
def test_batched_and_single_decoding_agree(beam, name):
    vocab = vocabularies()
    model = random_model(vocab, name)
    settings = translate.DecodeSettings(beam=beam, max_length_ratio=1.5, max_length_offset=2, max_tokens=20)
    batched = translate.translate_ids(model, SOURCES, vocab, settings, batch_size=4)
    single = [translate.translate_ids(model, [s], vocab, settings, batch_size=1)[0] for s in SOURCES]
    assert batched == single
    assert all(len(out) <= settings.limit(len(src)) for out, src in zip(batched, SOURCES))  # the length ratio holds


# --------------------------------------------------------------------------- data


def test_generated_tasks_are_real_language_deterministic_and_disjoint():
    from num2words import num2words

    assert (num2words(97), num2words(97, lang="fr")) == ("ninety-seven", "quatre-vingt-dix-sept")
    first = parallel.generate_splits("numbers-en-fr:300", seed=0, valid_fraction=0.1, test_fraction=0.1)
    assert first == parallel.generate_splits("numbers-en-fr:300", seed=0, valid_fraction=0.1, test_fraction=0.1)
    larger = parallel.generate_splits("numbers-en-fr:600", seed=0, valid_fraction=0.1, test_fraction=0.1)
    assert set(first["test"]) <= set(larger["test"])  # a larger task only adds items
    train_sources = {p.source for p in larger["train"]}
    assert not train_sources & {p.source for p in larger["test"] + larger["valid"]}
    dates = parallel.generate_splits("dates:200", seed=1)
    pairs = [p for split in dates.values() for p in split]
    assert len(pairs) == 200 and all(len(p.target) == 10 and p.target[4] == "-" for p in pairs)
    assert {p.target for p in parallel.generate_splits("dates:200", seed=1, train_limit=0)["test"]} == {
        p.target for p in dates["test"]
    }
    reverse = parallel.generate_splits("reverse:50")["train"][0]
    assert reverse.target == " ".join(reversed(reverse.source.split()))
    with pytest.raises(SeqlabError, match="size after ':'"):
        parallel.parse_generated("dates:lots")


def test_reversible_tokenizer_gives_the_text_back():
    texts = ["quatre-vingt-dix-sept mille", "It's 3.5 km, isn't it?", "lundi 1 mars 2021"]
    for level in ("word", "bpe", "char"):
        tok = train_tokenizer(texts, level, 200, lowercase=False, special_tokens=translate.SPECIAL_TOKENS, reversible=True)
        for text in texts:
            assert tok.decode(tok.encode(text).ids) == text


def test_bad_pair_files_name_file_and_line(tmp_path):
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("hello\tbonjour\tCC-BY 2.0 (France) Attribution: tatoeba.org\n\nno tab here\n", encoding="utf-8")
    with pytest.raises(SeqlabError, match=r"pairs.tsv: line 3: no tab"):
        parallel.read_tsv(tsv)
    tsv.write_text("hello\tbonjour\nthanks\t \n", encoding="utf-8")
    with pytest.raises(SeqlabError, match=r"pairs.tsv: line 2: empty target"):
        parallel.read_tsv(tsv)
    tsv.write_text("hello\tbonjour\tattribution\n", encoding="utf-8")
    assert parallel.read_pairs(str(tsv)) == [Pair("hello", "bonjour")]  # Anki/Tatoeba extra columns ignored
    (tmp_path / "c.en").write_text("one\ntwo\nthree\n", encoding="utf-8")
    (tmp_path / "c.fr").write_text("un\ndeux\n", encoding="utf-8")
    with pytest.raises(SeqlabError, match="3 lines but .* has 2"):
        parallel.read_pairs(f"{tmp_path / 'c.en'},{tmp_path / 'c.fr'}")
    (tmp_path / "c.fr").write_text("un\n\ntrois\n", encoding="utf-8")
    with pytest.raises(SeqlabError, match=r"c.fr: line 2: empty sentence"):
        parallel.read_pairs(f"{tmp_path / 'c.en'},{tmp_path / 'c.fr'}")
    (tmp_path / "c.fr").write_text("un\ndeux\ntrois\n", encoding="utf-8")
    assert parallel.read_pairs(f"{tmp_path / 'c.en'},{tmp_path / 'c.fr'}")[2] == Pair("three", "trois")


def test_config_errors_are_one_line():
    for overrides, message in [
        (["model.arch=transformer"], "transformer-seq2seq"),
        (["model.arch=seq2seq", "model.attention=dot"], "use model.arch=seq2seq-attn"),
        (["model.arch=transformer-seq2seq", "translate.scheduled_sampling=0.2"], "scheduled sampling"),
        (["tokenizer.level=wordpiece"], "wordpiece"),
        (["translate.beam=0"], "translate.beam"),
    ]:
        with pytest.raises(SeqlabError, match=message):
            build_config({"task": "translate"}, overrides)
    with pytest.raises(SeqlabError, match="task translate"):
        build_config({}, ["model.arch=seq2seq-attn"])


def test_vocabularies_per_side_or_shared():
    pairs = [Pair("ninety-seven", "quatre-vingt-dix-sept"), Pair("eighty", "quatre-vingts")]
    separate = translate.learn_vocabularies(build_config({"task": "translate"}, ["tokenizer.level=char"]), pairs)
    assert separate.source is not separate.target and separate.source.token_to_id("q") is None
    cfg = build_config(
        {"task": "translate"},
        ["translate.shared_vocab=true", "model.arch=transformer-seq2seq", "model.share_embeddings=true", "model.preset=tiny"],
    )
    shared = translate.learn_vocabularies(cfg, pairs).check()
    assert shared.source is shared.target and (shared.bos_id, shared.eos_id) == (2, 3)
    model = translate.build_model(cfg, shared.source.get_vocab_size(), shared.target.get_vocab_size())
    assert model.embedding is model.encoder.embedding  # one matrix, stored once
    assert not any(name.startswith("target_embedding") for name in model.state_dict())
    with pytest.raises(SeqlabError, match="shared_vocab"):
        build_config({"task": "translate"}, ["model.arch=transformer-seq2seq", "model.share_embeddings=true"])


# --------------------------------------------------------------------------- metrics


def test_bleu_and_chrf_equal_sacrebleu_called_directly():
    import sacrebleu

    hyps = ["the cat sat on the mat", "quatre-vingt-dix-sept", "a dog ran"]
    refs = ["the cat sat on a mat", "quatre-vingt-dix-sept", "the dog ran away"]
    scores = translate_eval.corpus_scores(hyps, refs)
    assert scores["bleu"] == sacrebleu.corpus_bleu(hyps, [refs]).score
    assert scores["chrf"] == sacrebleu.corpus_chrf(hyps, [refs]).score
    assert translate_eval.exact_match(hyps, refs) == pytest.approx(1 / 3)
    assert translate_eval.free_running_accuracy([[5, 6, 7]], [[5, 6]]) == pytest.approx(2 / 4)  # 5 6 [EOS] vs 5 6 7 [EOS]


# --------------------------------------------------------------------------- training, runs, CLI


def translate_config(tmp_path, *extra):
    return build_config(
        {"task": "translate"},
        [
            "data.train=reverse:80",
            "data.valid_fraction=0.1",
            "data.test_fraction=0.1",
            "tokenizer.level=word",
            "model.preset=tiny",
            "model.dropout=0",
            "train.batch_size=16",
            "train.lr=0.01",
            "train.patience=null",
            "translate.beam=2",
            f"output_dir={tmp_path / 'runs'}",
            *extra,
        ],
    )


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("translate")
    return api.train(translate_config(tmp, "train.epochs=3", "model.hidden_dim=32", "name=rev"), progress="off")


def test_tiny_attention_model_overfits_reverse(tmp_path):
    data = tmp_path / "reverse.tsv"
    pairs = [" ".join(w) for w in ("abc", "bca", "cab", "dab", "bd", "adc", "cdb", "ba", "dcba", "abcd", "db", "acd")]
    data.write_text("".join(f"{s}\t{' '.join(reversed(s.split()))}\n" for s in pairs), encoding="utf-8")
    cfg = build_config(
        {"task": "translate"},
        [
            f"data.train={data}",
            "data.valid_fraction=0",
            "data.test_fraction=0",
            "tokenizer.level=word",
            "model.preset=tiny",
            "model.hidden_dim=48",
            "model.dropout=0",
            "train.batch_size=4",
            "train.lr=0.02",
            "train.epochs=40",
            "train.patience=null",
            f"output_dir={tmp_path}",
            "name=overfit",
        ],
    )
    pipe = api.load_translator(api.train(cfg, progress="off"))
    sources = [s for s in pairs]
    outputs = pipe.translate(sources, beam=1)
    assert sum(o == " ".join(reversed(s.split())) for o, s in zip(outputs, sources)) >= len(pairs) - 1


def test_run_folder_reloads_with_the_same_translations(trained_run):
    for name in ("config.yaml", "tokenizer.json", "target_tokenizer.json", "model.safetensors", "metrics.json", "manifest.json"):
        assert (trained_run / name).is_file(), name
    metrics = json.loads((trained_run / "metrics.json").read_text())
    test = metrics["test"]
    assert {
        "bleu",
        "chrf",
        "exact_match",
        "teacher_forced_accuracy",
        "free_running_accuracy",
        "attention_entropy",
        "by_length",
    } <= set(test)
    assert test["beam"] == 2 and metrics["valid"]["beam"] == 1
    pipe = api.load_translator(trained_run)
    sources = [p.source for p in parallel.generate_splits("reverse:80", 0, 0.1, 0.1)["test"]]
    outputs = pipe.translate(sources, beam=2)
    hypotheses_at_training = [s["output"] for s in test["samples"]]
    assert outputs[: len(hypotheses_at_training)] == hypotheses_at_training  # reload = right after training
    items = pipe.translate("a b c", return_attention=True, beam=1)
    (item,) = items
    assert len(item["attention"]) == len(item["target_tokens"]) and len(item["attention"][0]) == len(item["source_tokens"])
    assert all(abs(sum(row) - 1) < 1e-5 for row in item["attention"])


def test_bad_input_unknown_tokens_long_sources_and_beam_zero(trained_run, caplog):
    pipe = api.load_translator(trained_run)
    with pytest.raises(SeqlabError, match="input 2 is empty"):
        pipe.translate(["a b", "  "])
    with pytest.raises(SeqlabError, match="beam must be at least 1"):
        pipe.translate("a b", beam=0)
    pipe.translate(["a b ü ß", "a b"], beam=1)
    assert pipe.unknown == 2  # mapped to [UNK] and counted
    long = " ".join("ab" * 100)
    with caplog.at_level("WARNING", logger="seqlab"):
        pipe.translate(long, beam=1)
    assert pipe.truncated == 1 and "cut to fit" in caplog.text


def test_cli_translate_evaluate_and_alignments(trained_run, tmp_path):
    html, png = tmp_path / "align.html", tmp_path / "align.png"
    result = runner.invoke(app, ["translate", str(trained_run), "a b c", "d e", "--beam", "2", "--attention", str(html)])
    assert result.exit_code == 0, result.output
    assert "a b c →" in result.output
    page = html.read_text(encoding="utf-8")
    assert page.count("<table>") == 2 and "http" not in page.split("<body>")[1]  # self-contained
    result = runner.invoke(app, ["translate", str(trained_run), "a b c", "--attention", str(png)])
    assert result.exit_code == 0 and png.stat().st_size > 1000
    text = tmp_path / "in.txt"
    text.write_text("a b\nc d e\n", encoding="utf-8")
    result = runner.invoke(app, ["translate", str(trained_run), "--input", str(text), "--json", "--beam", "1"])
    assert [json.loads(line)["source"] for line in result.output.splitlines()] == ["a b", "c d e"]
    result = runner.invoke(app, ["translate", str(trained_run), "a b", "--beam", "0"])
    assert result.exit_code == 1 and "beam must be at least 1" in result.output
    result = runner.invoke(app, ["evaluate", str(trained_run), "--data", "reverse:80", "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    assert metrics["examples"] == json.loads((trained_run / "metrics.json").read_text())["test"]["examples"]


def test_compare_translate_writes_table_and_chart(tmp_path):
    rows, folder = api.compare_translation(
        {"data": {"train": "reverse:60", "valid_fraction": 0.1, "test_fraction": 0.2}},
        ["seq2seq", "luong"],
        ["tokenizer.level=word", "model.preset=tiny", "train.epochs=1", "translate.beam=2"],
        tmp_path / "cmp",
        budget_minutes=2,
    )
    assert [r["arch"] for r in rows] == ["seq2seq", "luong"]
    assert rows[0]["attention_entropy"] is None and rows[1]["attention_entropy"] is not None
    assert all(r["batched_single_agreement"] == 1.0 for r in rows)
    assert all(
        r["budget_minutes"] == 2 and r["train_target_tokens_per_second"] > 0 and "nrefs:1" in r["bleu_signature"] for r in rows
    )
    table = (folder / "table.md").read_text()
    assert "exact match" in table and "by source length" in table
    assert (folder / "comparison.png").is_file() and (folder / "results.json").is_file()


def test_resume_finishes_an_unfinished_run(trained_run, tmp_path):
    import shutil

    copy = tmp_path / "rev-copy"
    shutil.copytree(trained_run, copy)
    (copy / "model.safetensors").unlink()  # as if it stopped after its last checkpoint
    with pytest.raises(SeqlabError, match="did not finish"):
        api.load_translator(copy)
    assert api.train(None, resume=copy, progress="off") == copy
    assert api.load_translator(copy).translate("a b c", beam=1) == api.load_translator(trained_run).translate("a b c", beam=1)


# --------------------------------------------------------------------------- issue 17: beam vs greedy, n-best, batches, vocabularies


class GreedyTrapLM:
    """A fake `IncrementalLM` whose likeliest first token (2, p=0.5) leads nowhere sure: after
    it every token is equally likely for three steps; the second (3, p=0.4) is followed by
    [EOS] with certainty. Greedy takes 2; a beam of 2 finds 3 [EOS]."""

    context_length = None

    def _logits(self, rows: torch.Tensor, produced: int) -> torch.Tensor:
        logits = torch.full((rows.size(0), 8), -30.0)
        for row, first in enumerate(rows.tolist()):
            if produced == 0:
                logits[row, 2], logits[row, 3], logits[row, 4] = math.log(0.5), math.log(0.4), math.log(0.1)
            elif first == 3 or produced >= 4:
                logits[row, 1] = 0.0  # [EOS]
            else:
                logits[row, 4:8] = math.log(0.25)
        return logits

    def prefill(self, input_ids, attention_mask):
        first = torch.zeros(input_ids.size(0), dtype=torch.long)
        return self._logits(first, 0), (first, 0)

    def step(self, tokens, state):
        first, produced = state
        first = tokens if produced == 0 else first
        return self._logits(first, produced + 1), (first, produced + 1)

    def reorder(self, state, index):
        return state[0].index_select(0, index), state[1]


def test_beam_search_beats_greedy_on_a_toy_model_and_returns_an_n_best_list():
    prompt = torch.tensor([[7], [7]])
    greedy = decoding.generate(GreedyTrapLM(), prompt, None, decoding.GenerationConfig(max_new_tokens=8, eos_token_id=1))
    assert greedy[0][0] == 2 and len(greedy[0]) == 5  # 2, three coin flips, [EOS]: p = 0.5 · 0.25³
    config = decoding.GenerationConfig(
        max_new_tokens=8, num_beams=3, eos_token_id=1, pad_token_id=0, early_stopping=False, length_penalty=0.0
    )
    assert decoding.beam_search(GreedyTrapLM(), prompt, None, config) == [[3, 1], [3, 1]]  # p = 0.4
    (hypotheses, _) = decoding.beam_hypotheses(GreedyTrapLM(), prompt, None, config, n_best=3)
    scores = [score for score, _ in hypotheses]
    assert hypotheses[0] == (pytest.approx(math.log(0.4)), [3, 1]) and scores == sorted(scores, reverse=True)
    assert len(hypotheses) == 3


@pytest.mark.parametrize("name", ["seq2seq", "bahdanau", "luong-general", "transformer"])
def test_n_best_lists_are_sorted_and_their_best_is_the_beam_translation(name):
    vocab = vocabularies()
    model = random_model(vocab, None if name == "seq2seq" else name)
    settings = translate.DecodeSettings(beam=4, max_length_ratio=1.5, max_length_offset=2, max_tokens=20)
    found = translate.translate_nbest(model, SOURCES, vocab, settings, n_best=3)
    assert [hyps[0][1] for hyps in found] == translate.translate_ids(model, SOURCES, vocab, settings)
    for hyps in found:
        assert len(hyps) == 3 and [s for s, _ in hyps] == sorted((s for s, _ in hyps), reverse=True)
    with pytest.raises(SeqlabError, match="n_best must be between 1 and the beam size 4"):
        translate.translate_nbest(model, SOURCES, vocab, settings, n_best=5)


def test_token_budget_batches_cover_every_pair_once_within_the_budget():
    import random

    rng = random.Random(0)
    sources = [[5] * rng.randint(1, 30) for _ in range(500)]
    targets = [[6] * rng.randint(1, 30) for _ in range(500)]
    loader = translate.make_loader(translate.EncodedPairs(sources, targets), 64, shuffle=True, max_tokens=400)
    sampler = loader.batch_sampler
    epochs = [sampler.batches(0), sampler.batches(1)]
    assert len(epochs[0]) == len(epochs[1]) == len(sampler) and epochs[0] != epochs[1]  # same batches, new order
    assert sorted(i for batch in epochs[0] for i in batch) == list(range(500))
    for batch in loader:
        padded = batch["source_ids"].size(0) * max(batch["source_ids"].size(1), batch["labels"].size(1))
        assert padded <= 400 or batch["source_ids"].size(0) == 1


def test_bpe_vocabularies_learn_on_training_pairs_and_never_fail_on_unknown_characters():
    pairs = parallel.read_pairs("tests/fixtures/tatoeba-en-fr-300.tsv")
    joint = translate.learn_vocabularies(
        build_config({"task": "translate"}, ["translate.shared_vocab=true", "tokenizer.vocab_size=400"]), pairs
    )
    assert joint.source is joint.target and joint.source.get_vocab_size() <= 400
    separate = translate.learn_vocabularies(
        build_config({"task": "translate"}, ["tokenizer.vocab_size=300", "translate.target_vocab_size=200"]), pairs
    )
    assert separate.source.get_vocab_size() <= 300 and separate.target.get_vocab_size() <= 200
    text = "I ❤️ 東京 😀 — naïve café"
    encoded = translate.encode_sources(separate.source, [text, "🙂"], 64)
    assert encoded.unknown >= 3 and all(encoded.ids)  # read as [UNK], counted; never empty
    decoded = translate.decode_target(separate.target, encoded.ids[0])  # decoding any ids is safe
    assert isinstance(decoded, str)
    ids = translate.encode_targets(separate.target, ["Dégage\u202f!", "Dégage !"], 64)
    assert ids[0] == ids[1]  # NFKC: Tatoeba's narrow no-break space before "!" is a plain space
    with pytest.raises(SeqlabError, match="target_vocab_size is for separate vocabularies"):
        build_config({"task": "translate"}, ["translate.shared_vocab=true", "translate.target_vocab_size=100"])


def test_config_knobs_of_real_scale_training():
    cfg = build_config(
        {"task": "translate"}, ["train.batch_tokens=4096", "train.lr_schedule=inverse_sqrt", "train.warmup_steps=400"]
    )
    assert cfg.train.monitor == "val_bleu" and cfg.translate.val_bleu_sentences == 500 and cfg.train.schedule_clock
    with pytest.raises(SeqlabError, match="train.warmup_steps"):
        build_config({"task": "translate"}, ["train.lr_schedule=inverse_sqrt"])
    with pytest.raises(SeqlabError, match="batch_tokens is implemented for task translate"):
        build_config({"task": "classify"}, ["train.batch_tokens=100"])
    with pytest.raises(SeqlabError, match="val_bleu is translation's metric"):
        build_config({"task": "classify"}, ["train.monitor=val_bleu"])
    with pytest.raises(SeqlabError, match="val_bleu_sentences"):
        build_config({"task": "translate"}, ["translate.val_bleu_sentences=0"])
    # which directions a dataset has is the task's check (the config layer reads no data): before any folder exists
    from seqlab.tasks.translate.recipe import load_splits

    with pytest.raises(SeqlabError, match="source-target"):
        build_config({"task": "translate"}, ["data.train=tatoeba-en-fr", "data.direction=english"])
    with pytest.raises(SeqlabError, match="unknown direction 'de-en'"):
        load_splits(build_config({"task": "translate"}, ["data.train=tatoeba-en-fr", "data.direction=de-en"]))
    with pytest.raises(SeqlabError, match="tatoeba-fr-en already means fr-en"):
        load_splits(build_config({"task": "translate"}, ["data.train=tatoeba-fr-en", "data.direction=en-fr"]))
    with pytest.raises(SeqlabError, match="first column is the source"):
        load_splits(
            build_config({"task": "translate"}, ["data.train=tests/fixtures/tatoeba-en-fr-300.tsv", "data.direction=fr-en"])
        )
    assert build_config({"task": "translate"}, ["data.train=tatoeba-en-fr", "data.direction=fr-en"]).data.direction == "fr-en"
    base = build_config({"task": "translate"}, ["model.arch=transformer-seq2seq", "model.preset=base"]).model
    assert (base.d_model, base.num_layers, base.ff_dim) == (256, 3, 1024)
    assert build_config({"task": "classify"}, ["model.arch=transformer", "model.preset=base"]).model.d_model == 256  # unchanged
    from seqlab.tasks.translate.compare import ENTRIES, parse_budget

    assert parse_budget("45m") == 45 and parse_budget("2h") == 120 and parse_budget("90s") == 1.5 and parse_budget("30") == 30
    with pytest.raises(SeqlabError, match="--budget"):
        parse_budget("soon")
    assert ENTRIES["luong"] == ["model.arch=seq2seq-attn", "model.attention=luong-general"]
