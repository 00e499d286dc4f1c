"""`seqlab.decoding`: the logit processors against hand-computed distributions, the algorithms on
toy bigram LMs, and equality with Hugging Face `generate` on tiny random GPT-2 and Llama models
(nothing downloaded)."""

import pytest
import torch

from seqlab.decoding import (
    GenerationConfig,
    HFCausalLM,
    SeqlabGPT,
    SeqlabRNN,
    apply_repetition_penalty,
    apply_temperature,
    ban_repeated_ngrams,
    beam_search,
    generate,
    left_pad,
    stream,
    top_k_filter,
    top_p_filter,
)
from seqlab.errors import SeqlabError

INF = float("-inf")


class TableLM:
    """A bigram LM: the next-token distribution depends only on the last token."""

    context_length = None

    def __init__(self, probs):
        self.logits = torch.tensor(probs, dtype=torch.float32).log()  # (V, V)

    def prefill(self, input_ids, attention_mask):
        return self.logits[input_ids[:, -1]], None

    def step(self, tokens, state):
        return self.logits[tokens], None

    def reorder(self, state, index):
        return state


class Recompute:
    """An IncrementalLM without a cache: every step runs the whole sequence again."""

    context_length = None

    def __init__(self, logits_of):
        self.logits_of = logits_of  # (ids (B, T), bool mask (B, T)) → logits (B, T, V)

    def prefill(self, input_ids, attention_mask):
        return self.logits_of(input_ids, attention_mask)[:, -1].float(), (input_ids, attention_mask)

    def step(self, tokens, state):
        ids = torch.cat([state[0], tokens[:, None]], dim=1)
        mask = torch.cat([state[1], torch.ones_like(tokens[:, None], dtype=torch.bool)], dim=1)
        return self.logits_of(ids, mask)[:, -1].float(), (ids, mask)

    def reorder(self, state, index):
        return state[0][index], state[1][index]


def cycle(pieces, p=0.9):
    """A bigram table where token i is followed by i + 1 (mod V) with probability p."""
    V = len(pieces)
    table = [[(1 - p) / (V - 1)] * V for _ in range(V)]
    for i in range(V):
        table[i][(i + 1) % V] = p
    return table


PIECES = ["a", "b", "cd", "e", "fg", "h"]


def decode(ids):
    return "".join(PIECES[i] for i in ids)


# --- logit processors ---------------------------------------------------------------------------


def test_top_k_keeps_the_k_largest_and_ties():
    logits = torch.tensor([[1.0, 3.0, 2.0, 0.0], [1.0, 2.0, 2.0, 0.0]])
    assert top_k_filter(logits, 2).tolist() == [[INF, 3.0, 2.0, INF], [INF, 2.0, 2.0, INF]]
    assert torch.equal(top_k_filter(logits, 10), logits)


@pytest.mark.parametrize(
    "p, kept",
    [(0.01, [0]), (0.45, [0]), (0.6, [0, 1]), (0.85, [0, 1, 2]), (1.0, [0, 1, 2, 3])],
)
def test_top_p_keeps_the_token_that_crosses_p(p, kept):
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    filtered = top_p_filter(probs.log(), p).softmax(-1)[0]
    expected = torch.zeros(4)
    expected[kept] = probs[0, kept] / probs[0, kept].sum()
    torch.testing.assert_close(filtered, expected)


def test_temperature_sharpens_and_flattens():
    probs = torch.tensor([[0.5, 0.3, 0.2]])
    for t in (0.5, 2.0):
        expected = probs ** (1 / t) / (probs ** (1 / t)).sum()
        torch.testing.assert_close(apply_temperature(probs.log(), t).softmax(-1), expected)


def test_repetition_penalty_divides_positive_and_multiplies_negative():
    logits = torch.tensor([[2.0, -1.0, 0.5, 3.0]])
    expected = [[1.0, -2.0, 0.5, 3.0]]
    assert apply_repetition_penalty(logits, torch.tensor([[0, 1, 1]]), 2.0).tolist() == expected
    seen = torch.tensor([[True, True, False, False]])
    assert apply_repetition_penalty(logits, seen, 2.0).tolist() == expected


def test_no_repeat_ngram_bans_the_completing_token():
    logits = torch.zeros(4, 5)
    seqs = [[1, 2, 3, 1, 2], [1, 2, 3, 1, 2], [1, 2, 3, 1, 2], [1]]
    banned = [
        (ban_repeated_ngrams(logits[i : i + 1], [s], n)[0] == INF).nonzero().flatten().tolist()
        for i, (s, n) in enumerate(zip(seqs, [3, 2, 1, 3]))
    ]
    assert banned == [[3], [3], [1, 2, 3], []]


# --- the algorithms on toy LMs -----------------------------------------------------------------


def test_greedy_stops_at_eos_per_row_and_includes_it():
    lm = TableLM(cycle(PIECES))
    ids, mask = left_pad([[0], [4, 2]])
    out = generate(lm, ids, mask, GenerationConfig(max_new_tokens=6, eos_token_id=3, pad_token_id=5))
    assert out == [[1, 2, 3], [3]]
    config = GenerationConfig(max_new_tokens=6, eos_token_id=3, pad_token_id=5)
    columns = torch.stack(list(stream(lm, ids, mask, config)), 1)
    assert columns.tolist() == [[1, 2, 3], [3, 5, 5]]  # a finished row is fed the pad id


def test_beam_search_finds_the_best_sequence_greedy_misses():
    # From 0, token 1 is likelier than 2, but after 2 the end (4) is almost certain.
    table = [
        [0.001, 0.55, 0.447, 0.001, 0.001],
        [0.05, 0.1, 0.1, 0.4, 0.35],
        [0.025, 0.025, 0.025, 0.025, 0.9],
        [0.1, 0.1, 0.1, 0.1, 0.6],
        [0.2, 0.2, 0.2, 0.2, 0.2],
    ]
    lm, (ids, mask) = TableLM(table), left_pad([[0]])
    assert generate(lm, ids, mask, GenerationConfig(max_new_tokens=5, eos_token_id=4)) == [[1, 3, 4]]
    best = beam_search(lm, ids, mask, GenerationConfig(max_new_tokens=5, eos_token_id=4, num_beams=2))
    assert best == [[2, 4]]  # 0.447·0.9 = 0.40 > 0.55·0.35 = 0.19 > 0.55·0.4·0.6 = 0.13
    # A large length penalty favours the longer hypothesis: log(0.13)/3³ > log(0.40)/2³.
    config = GenerationConfig(max_new_tokens=5, eos_token_id=4, num_beams=2, length_penalty=3.0)
    longer = generate(lm, ids, mask, config)
    assert longer == [[1, 3, 4]]


def test_sampling_is_reproducible_with_a_seed_and_leaves_global_rng_alone():
    lm = TableLM([[1 / 8] * 8] * 8)
    ids, mask = left_pad([[0], [1]])
    config = GenerationConfig(max_new_tokens=20, do_sample=True, seed=1)
    before = torch.get_rng_state()
    first = generate(lm, ids, mask, config)
    assert torch.equal(torch.get_rng_state(), before)
    assert generate(lm, ids, mask, config) == first
    assert generate(lm, ids, mask, config.model_copy(update={"seed": 2})) != first
    assert [t.tolist() for t in stream(lm, ids, mask, config)] == [list(c) for c in zip(*first)]


@pytest.mark.parametrize(
    "settings, support",
    [
        (dict(top_k=3), [0, 1, 2]),
        (dict(top_p=0.5), [0, 1]),
        (dict(top_p=0.6), [0, 1, 2]),
        (dict(top_k=3, temperature=0.5), [0, 1, 2]),
        (dict(top_k=4, top_p=0.6, temperature=2.0), [0, 1, 2]),
    ],
)
def test_samples_stay_inside_the_filtered_support(settings, support):
    probs = torch.tensor([0.3, 0.25, 0.2, 0.15, 0.07, 0.03])
    lm = TableLM([probs.tolist()] * 6)
    ids, mask = left_pad([[5]] * 2000)
    config = GenerationConfig(max_new_tokens=3, do_sample=True, seed=0, **settings)
    draws = torch.tensor(generate(lm, ids, mask, config))
    counts = torch.bincount(draws.flatten(), minlength=6).float()
    assert set(draws.unique().tolist()) == set(support)
    expected = torch.zeros(6)
    expected[support] = probs[support] ** (1 / settings.get("temperature", 1.0))
    torch.testing.assert_close(counts / counts.sum(), expected / expected.sum(), atol=0.025, rtol=0)


def test_repetition_penalty_and_no_repeat_ngram_change_greedy_choices():
    lm = TableLM([[0.1, 0.5, 0.4], [0.1, 0.5, 0.4], [0.1, 0.5, 0.4]])
    ids, mask = left_pad([[0]])
    assert generate(lm, ids, mask, GenerationConfig(max_new_tokens=3)) == [[1, 1, 1]]
    # log 0.5 · 1.5 < log 0.4 once 1 has been seen; then both are seen and 1 wins again.
    assert generate(lm, ids, mask, GenerationConfig(max_new_tokens=3, repetition_penalty=1.5)) == [[1, 2, 1]]
    assert generate(lm, ids, mask, GenerationConfig(max_new_tokens=4, no_repeat_ngram_size=2)) == [[1, 1, 2, 1]]


def test_stop_strings_end_a_row_and_are_trimmed():
    lm = TableLM(cycle(PIECES))
    ids, mask = left_pad([[0], [3]])
    config = GenerationConfig(max_new_tokens=10, stop=["de", "zz"])
    # Row 0 spells "b|cd|e": "de" begins inside "cd", so that token goes too.
    # Row 1 spells "fg|h|a|b|cd|e": kept up to "fghab".
    assert generate(lm, ids, mask, config, decode=decode) == [[1], [4, 5, 0, 1]]
    assert generate(lm, ids, mask, config.model_copy(update={"stop": ["ha"]}), decode=decode) == [[1, 2, 3, 4], [4]]
    beams = GenerationConfig(max_new_tokens=5, num_beams=2, stop=["de"])
    assert generate(lm, ids[:1], mask[:1], beams, decode=decode) == [[1]]
    for row in range(2):
        streamed = [int(t) for t in stream(lm, ids[row : row + 1], mask[row : row + 1], config, decode=decode)]
        assert streamed == generate(lm, ids[row : row + 1], mask[row : row + 1], config, decode=decode)[0]


def test_stream_holds_back_a_possible_stop_string():
    class Counting(TableLM):
        calls = 0

        def step(self, tokens, state):
            self.calls += 1
            return super().step(tokens, state)

    lm, (ids, mask) = Counting(cycle(PIECES)), left_pad([[0]])
    tokens = stream(lm, ids, mask, GenerationConfig(max_new_tokens=8, stop=["bcdx"]), decode=decode)
    seen = [(int(token), lm.calls) for token in tokens]
    # "b" and "b|cd" could still become "bcdx": they wait until "e" (the third token, after two
    # steps) rules it out. "b|cd" at the end waits again and comes out when decoding ends.
    assert seen == [(1, 2), (2, 2), (3, 2), (4, 3), (5, 4), (0, 5), (1, 7), (2, 7)]


# --- Hugging Face models -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hf_models():
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    # A wide init gives varied tokens; the default makes a random tiny model repeat one token.
    gpt2 = GPT2LMHeadModel(
        GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=100, n_positions=64, initializer_range=0.3)
    ).eval()
    llama = LlamaForCausalLM(
        LlamaConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            vocab_size=100,
            initializer_range=0.3,
        )
    ).eval()
    return {"gpt2": gpt2, "llama": llama}


def hf_new_tokens(model, ids, mask, **settings):
    settings.setdefault("eos_token_id", None)
    out = model.generate(input_ids=ids, attention_mask=mask.long(), pad_token_id=0, **settings)
    return out[:, ids.size(1) :].tolist()


def same_as_hf(ours, theirs, fill=(0,)):
    """Our rows end at eos; HF pads the shorter ones (beam search pads with eos when pad is 0)."""
    return all(t[: len(o)] == o and set(t[len(o) :]) <= set(fill) for o, t in zip(ours, theirs))


@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_greedy_equals_hf_generate_on_a_left_padded_batch(hf_models, name):
    model = hf_models[name]
    ids, mask = left_pad([[5, 6, 7, 8, 9, 10], [11, 12]])
    theirs = hf_new_tokens(model, ids, mask, max_new_tokens=15, do_sample=False)
    assert generate(HFCausalLM(model), ids, mask, GenerationConfig(max_new_tokens=15)) == theirs
    eos = theirs[1][4]  # ends row 1 early
    theirs = hf_new_tokens(model, ids, mask, max_new_tokens=15, do_sample=False, eos_token_id=eos)
    ours = generate(model, ids, mask, GenerationConfig(max_new_tokens=15, eos_token_id=eos, pad_token_id=0))
    assert same_as_hf(ours, theirs) and ours[1][-1] == eos


def test_beam_search_equals_hf(hf_models):
    model = hf_models["gpt2"]
    ids, mask = left_pad([[5, 6, 7, 8, 9, 10], [11, 12]])
    eos = generate(model, ids, mask, GenerationConfig(max_new_tokens=6))[0][3]
    for settings in (dict(num_beams=3), dict(num_beams=4, eos_token_id=eos, length_penalty=0.5)):
        theirs = hf_new_tokens(model, ids, mask, max_new_tokens=8, early_stopping=True, **settings)
        ours = generate(model, ids, mask, GenerationConfig(max_new_tokens=8, pad_token_id=0, **settings))
        assert same_as_hf(ours, theirs, fill=(0, eos))


def test_stream_yields_what_generate_returns(hf_models):
    model = hf_models["llama"]
    ids, mask = left_pad([[5, 6, 7, 8], [11, 12]])
    first = generate(model, ids, mask, GenerationConfig(max_new_tokens=10))
    for settings in (dict(eos_token_id=first[1][3], pad_token_id=0), dict(do_sample=True, seed=3, top_k=20)):
        config = GenerationConfig(max_new_tokens=10, **settings)
        columns = torch.stack(list(stream(model, ids, mask, config)), dim=1).tolist()
        assert same_as_hf(generate(model, ids, mask, config), columns)


# --- seqlab's own GPT and RNN ---------------------------------------------------------------------


def test_seqlab_gpt_cache_equals_recomputing_and_batch_equals_one_by_one():
    from seqlab.models.gpt import GPT

    torch.manual_seed(0)
    gpt = GPT(vocab_size=50, d_model=32, num_heads=2, num_layers=2, ff_dim=64, max_len=64, dropout=0.0).eval()
    with torch.no_grad():
        for p in gpt.parameters():
            p.normal_(std=0.3)
    recompute = Recompute(lambda ids, mask: gpt(ids, attention_mask=mask).logits)
    prompts = [[5, 6, 7, 8, 9], [11, 12]]
    ids, mask = left_pad(prompts)
    for config in (GenerationConfig(max_new_tokens=10), GenerationConfig(max_new_tokens=6, num_beams=3)):
        cached = generate(SeqlabGPT(gpt), ids, mask, config)
        assert cached == generate(recompute, ids, mask, config)
        assert cached == [generate(gpt, *left_pad([p]), config)[0] for p in prompts]


def test_seqlab_gpt_from_gpt2_decodes_like_hf(hf_models):
    from seqlab.models.gpt import GPT

    gpt = GPT.from_gpt2(hf_models["gpt2"])
    ids, mask = left_pad([[5, 6, 7, 8, 9, 10], [11, 12]])
    theirs = hf_new_tokens(hf_models["gpt2"], ids, mask, max_new_tokens=10, do_sample=False)
    assert generate(gpt, ids, mask, GenerationConfig(max_new_tokens=10)) == theirs


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_seqlab_rnn_left_padded_batch_equals_one_by_one(cell):
    from seqlab.models.rnn import RNNLanguageModel

    torch.manual_seed(0)
    rnn = RNNLanguageModel(40, cell=cell, embed_dim=16, hidden_dim=24, num_layers=2, dropout=0.0).eval()
    with torch.no_grad():
        rnn.decoder.weight.mul_(20)
    prompts = [[5, 6, 7, 8, 9], [11, 12], [3]]
    ids, mask = left_pad(prompts)
    recompute = Recompute(lambda ids, mask: rnn(ids).logits)  # one unpadded row at a time
    for config in (GenerationConfig(max_new_tokens=10), GenerationConfig(max_new_tokens=6, num_beams=3)):
        batched = generate(SeqlabRNN(rnn), ids, mask, config)
        assert batched == [generate(rnn, *left_pad([p]), config)[0] for p in prompts]
        assert batched == [generate(recompute, *left_pad([p]), config)[0] for p in prompts]


# --- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings, named",
    [
        (dict(do_sample=True, temperature=-1), "temperature"),
        (dict(temperature=0.7), "temperature"),
        (dict(do_sample=True, top_p=0.0), "top_p"),
        (dict(do_sample=True, top_p=1.5), "top_p"),
        (dict(top_p=0.9), "top_p"),
        (dict(top_k=-1), "top_k"),
        (dict(top_k=5), "top_k"),
        (dict(num_beams=0), "num_beams"),
        (dict(num_beams=2, do_sample=True), "num_beams"),
        (dict(length_penalty=2.0), "length_penalty"),
        (dict(max_new_tokens=0), "max_new_tokens"),
        (dict(max_new_tokens="many"), "max_new_tokens"),
        (dict(repetition_penalty=0.0), "repetition_penalty"),
        (dict(no_repeat_ngram_size=-1), "no_repeat_ngram_size"),
        (dict(stop=[""]), "stop"),
        (dict(eos_token_id=-1), "eos_token_id"),
        (dict(beams=2), "beams"),
    ],
)
def test_invalid_settings_are_one_line_errors(settings, named):
    with pytest.raises(SeqlabError, match=named) as err:
        GenerationConfig.create(**settings)
    assert "\n" not in str(err.value) and str(err.value).startswith("generation: ")


def test_invalid_calls_are_one_line_errors(hf_models):
    lm, gpt2 = TableLM(cycle(PIECES)), HFCausalLM(hf_models["gpt2"])
    ids, mask = left_pad([[0, 1], [2]])
    cases = [
        (lambda: stream(lm, ids, mask, GenerationConfig(num_beams=2)), "num_beams"),
        (lambda: generate(lm, ids, mask, GenerationConfig(stop=["x"])), "decode"),
        (lambda: stream(lm, ids, mask, GenerationConfig(stop=["x"]), decode=decode), "one prompt"),
        (lambda: generate(lm, ids, mask.flip(1)), "left-padded"),
        (lambda: generate(gpt2, ids, mask, GenerationConfig(max_new_tokens=63)), "max_new_tokens must be <= 62"),
        (lambda: generate(object(), ids, mask), "cannot decode"),
        (lambda: generate(lm, ids, mask, GenerationConfig().model_copy(update={"top_p": 5.0})), "top_p"),
    ]
    for call, named in cases:
        with pytest.raises(SeqlabError, match=named) as err:
            call()
        assert "\n" not in str(err.value)
    model = hf_models["gpt2"].train()
    try:
        with pytest.raises(SeqlabError, match="eval"):
            generate(model, ids, mask)
    finally:
        model.eval()
