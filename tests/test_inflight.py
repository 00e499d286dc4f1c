"""`seqlab.inflight`: rows that join and leave a running batch decode as they do alone, whatever
their settings, on seqlab's GPT and Llama (in-flight) and a transformers Llama (static batches);
the KV cache merge; text pieces held back for stop strings."""

import pytest
import torch

from seqlab.decoding import GenerationConfig, HFCausalLM, generate, left_pad
from seqlab.inflight import InflightBatch, Row, StaticBatch, batch_for, run

PROMPTS = [[5, 6, 7, 8, 9], [11, 12], [3], [4, 4, 4, 4, 4, 4, 4, 4, 4], [7, 1], [2, 3, 4]]
SETTINGS = [
    {"max_new_tokens": 10},
    {"max_new_tokens": 8, "do_sample": True, "seed": 3, "top_k": 5},
    {"max_new_tokens": 12, "repetition_penalty": 1.5},
    {"max_new_tokens": 9, "no_repeat_ngram_size": 2},
    {"max_new_tokens": 7, "do_sample": True, "seed": 1, "top_p": 0.8, "temperature": 0.7},
    {"max_new_tokens": 11, "stop": ["c"]},
]


def letters(ids):
    return "".join(chr(97 + i % 26) for i in ids)


@pytest.fixture(scope="module")
def models():
    """seqlab's GPT, a transformers Llama, seqlab's Llama with its weights and seqlab's GRU LM;
    random weights scaled up so the distributions are peaked (greedy ties would make equality luck)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from seqlab.models.gpt import GPT
    from seqlab.models.llama import Llama
    from seqlab.models.rnn import RNNLanguageModel

    torch.manual_seed(0)
    rnn = RNNLanguageModel(40, cell="gru", embed_dim=16, hidden_dim=24, num_layers=2, dropout=0.0).eval()
    gpt = GPT(vocab_size=50, d_model=32, num_heads=2, num_layers=2, ff_dim=64, max_len=128, dropout=0.0).eval()
    hf = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=60,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=128,
        )
    ).eval()
    with torch.no_grad():
        for p in gpt.parameters():
            p.normal_(std=0.3)
        for p in hf.parameters():
            p.mul_(8)
        rnn.decoder.weight.mul_(20)
    return {"gpt": gpt, "hf-llama": hf, "llama": Llama.from_llama(hf), "rnn": rnn}


@pytest.mark.parametrize("name", ["gpt", "llama", "hf-llama", "rnn"])
@pytest.mark.parametrize("max_active", [1, 3, 6])
def test_rows_decode_as_they_do_alone(models, name, max_active):
    model = models[name]
    alone = [generate(model, *left_pad([p]), GenerationConfig(**s), decode=letters)[0] for p, s in zip(PROMPTS, SETTINGS)]
    rows = [Row(p, GenerationConfig(**s), letters) for p, s in zip(PROMPTS, SETTINGS)]
    batch = batch_for(model)
    assert isinstance(batch, StaticBatch if name in ("hf-llama", "rnn") else InflightBatch)
    run(batch, rows, max_active)
    assert [row.tokens for row in rows] == [[t for t in a if t not in row.eos] for a, row in zip(alone, rows)]
    assert all(row.done for row in rows) and batch.rows == []


def test_rows_join_a_running_batch_and_the_cache_forgets_what_no_row_needs(models):
    gpt = models["gpt"]
    batch = InflightBatch(gpt)
    joined_while_running, lengths = [], []
    add = batch.add

    def spy(rows):
        joined_while_running.append(len(batch.rows))
        return add(rows)

    batch.add = spy
    long = Row([1] * 20, GenerationConfig(max_new_tokens=5), letters)  # makes every row's cache 20+ long
    short = [Row([2, 3 + i], GenerationConfig(max_new_tokens=8), letters) for i in range(8)]
    rows = [short[0], long, *short[1:]]
    waiting = list(rows)
    with torch.inference_mode():
        from seqlab.inflight import tick

        while waiting or batch.rows:
            free = 3 - sum(r.live for r in batch.rows)
            joining, waiting = waiting[:free], waiting[free:]
            tick(batch, joining)
            if batch.rows:
                lengths.append(batch.running.cache.length)
    assert max(joined_while_running) > 0  # rows joined a batch that was decoding
    alone = [generate(gpt, *left_pad([r.prompt]), r.config)[0] for r in rows]
    assert [r.tokens for r in rows] == alone
    assert max(lengths) > 20 and lengths[-1] <= 2 + 8  # once the long row left, its positions went too


def test_kv_cache_merge_right_aligns_rows_and_drop_front_forgets_positions():
    from seqlab.models.gpt import KVCache

    a = KVCache([(torch.ones(1, 2, 3, 4), torch.ones(1, 2, 3, 4) * 2)])
    b = KVCache([(torch.full((2, 2, 5, 4), 3.0), torch.full((2, 2, 5, 4), 4.0))])
    merged = KVCache.merged([a, b])
    keys, values = merged.layers[0]
    assert merged.length == 5 and keys.shape == (3, 2, 5, 4)
    assert keys[0, :, :2].abs().sum() == 0 and (keys[0, :, 2:] == 1).all() and (values[0, :, 2:] == 2).all()
    assert (keys[1:] == 3).all() and (values[1:] == 4).all()
    merged.drop_front(2)
    keys, _ = merged.layers[0]
    assert merged.length == 3 and (keys[0] == 1).all()
    merged.update(0, torch.zeros(3, 2, 1, 4), torch.zeros(3, 2, 1, 4))  # still writable after the views
    merged.advance(1)
    assert merged.layers[0][0].shape == (3, 2, 4, 4)


def test_pieces_add_up_to_the_text_and_a_possible_stop_string_is_held_back():
    pieces, done = [], []
    row = Row([0], GenerationConfig(max_new_tokens=10, stop=["cde"]), letters, pieces.append, done.append)
    for token in (0, 1, 2, 3):  # a b c d: "cd" may start "cde", so it waits
        row.accept(token)
    assert "".join(pieces) == "ab" and not row.done
    row.accept(5)  # f: "cdf" is no stop string after all
    assert "".join(pieces) == "abcdf"
    row.accept(2), row.accept(3), row.accept(4)  # c d e: stop, trimmed
    assert row.done and done == ["abcdf"] and "".join(pieces) == "abcdf"

    pieces, done = [], []
    row = Row([0], GenerationConfig(max_new_tokens=3, eos_token_id=9), letters, pieces.append, done.append)
    row.accept(1), row.accept(9)  # eos: done, not shown
    assert row.done and done == ["b"] and pieces == ["b"] and row.tokens == [1]

    cancelled = Row([0], GenerationConfig(max_new_tokens=3), letters, pieces.append, done.append)
    cancelled.cancelled = True
    cancelled.accept(1)
    assert pieces == ["b"] and not cancelled.live  # a cancelled row says nothing more


def test_static_batch_admits_rows_only_when_empty(models):
    batch = StaticBatch(HFCausalLM(models["hf-llama"]))
    assert batch.admits()
    rows = [Row(p, GenerationConfig(max_new_tokens=3), letters) for p in PROMPTS[:2]]
    with torch.inference_mode():
        from seqlab.inflight import choose

        choose(rows, batch.add(rows))
    assert not batch.admits()
    with pytest.raises(RuntimeError, match="empty"):
        batch.add(rows)
