"""The language models: GPT (KV cache, left padding, causality, GPT-2 equivalence) and the RNN LM."""

from __future__ import annotations

import pytest
import torch

from seqlab.models.gpt import GPT, KVCache
from seqlab.models.rnn import RNNLanguageModel, reorder_state

VOCAB = 50


def tiny_gpt(positions: str = "learned", **sizes) -> GPT:
    torch.manual_seed(0)
    kwargs = {"d_model": 16, "num_heads": 2, "num_layers": 2, "ff_dim": 32, "max_len": 32, "dropout": 0.0}
    return GPT(VOCAB, positions=positions, **{**kwargs, **sizes}).eval()


def step_by_step(model: GPT, ids: torch.Tensor, prefix: int, mask: torch.Tensor | None = None) -> torch.Tensor:
    """The logits of `ids` fed as a prefix, then one token at a time through the KV cache."""
    masks = (lambda end: None) if mask is None else (lambda end: mask[:, :end])
    out = model(ids[:, :prefix], attention_mask=masks(prefix), use_cache=True)
    logits, cache = [out.logits], out.cache
    for t in range(prefix, ids.size(1)):
        out = model(ids[:, t : t + 1], attention_mask=masks(t + 1), cache=cache)
        assert out.cache is cache and cache.length == t + 1
        logits.append(out.logits)
    return torch.cat(logits, dim=1)


@pytest.mark.parametrize("positions", ["learned", "sinusoidal"])
@torch.no_grad()
def test_kv_cache_gives_the_logits_of_a_full_forward(positions):
    model = tiny_gpt(positions)
    ids = torch.randint(0, VOCAB, (2, 9))
    full = model(ids)
    assert full.logits.shape == (2, 9, VOCAB) and full.cache is None and full.attentions is None
    torch.testing.assert_close(step_by_step(model, ids, prefix=4), full.logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(step_by_step(model, ids, prefix=1), full.logits, atol=1e-5, rtol=1e-5)
    empty = KVCache()  # an empty cache works at the first step as use_cache=True does
    assert model(ids, cache=empty).cache is empty and empty.length == 9


@pytest.mark.parametrize("positions", ["learned", "sinusoidal"])
@torch.no_grad()
def test_a_left_padded_row_gives_the_logits_of_the_row_alone(positions):
    model = tiny_gpt(positions)
    long, short = torch.randint(1, VOCAB, (1, 8)), torch.randint(1, VOCAB, (1, 5))
    ids = torch.cat([long, torch.cat([torch.zeros(1, 3, dtype=torch.long), short], dim=1)])
    mask = ids != 0
    alone = model(short).logits  # (1, 5, V)
    batched = model(ids, attention_mask=mask).logits
    torch.testing.assert_close(batched[1, 3:], alone[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batched[0], model(long).logits[0], atol=1e-5, rtol=1e-5)
    # ... and through the cache, a prefix that is all padding in row 1 included
    torch.testing.assert_close(step_by_step(model, ids, 2, mask)[1, 3:], alone[0], atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_a_future_token_never_changes_earlier_logits():
    model = tiny_gpt()
    ids = torch.randint(0, VOCAB, (1, 6))
    changed = ids.clone()
    changed[0, 4] = (ids[0, 4] + 1) % VOCAB
    before, after = model(ids).logits, model(changed).logits
    torch.testing.assert_close(before[:, :4], after[:, :4])
    assert not torch.allclose(before[:, 4:], after[:, 4:])


@torch.no_grad()
def test_attention_weights_are_causal_distributions():
    model = tiny_gpt()
    ids = torch.randint(0, VOCAB, (2, 5))
    out = model(ids, need_weights=True)
    assert len(out.attentions) == 2
    for weights in out.attentions:
        assert weights.shape == (2, 2, 5, 5)
        torch.testing.assert_close(weights.sum(-1), torch.ones(2, 2, 5))
        assert torch.all(weights.triu(diagonal=1) == 0)
    step = model(ids[:, :1], cache=model(ids[:, :4], use_cache=True).cache, need_weights=True)
    assert step.attentions[0].shape == (2, 2, 1, 5)  # one query, the 4 cached keys and its own


@torch.no_grad()
def test_reordering_the_cache_follows_the_kept_rows():
    model = tiny_gpt()
    ids = torch.randint(0, VOCAB, (2, 6))
    index = torch.tensor([1, 1, 0])  # as beam search keeps beams: a row twice, rows swapped
    cache = model(ids[:, :5], use_cache=True).cache.reorder(index)
    step = model(ids[index, 5:], cache=cache).logits
    torch.testing.assert_close(step, model(ids[index]).logits[:, 5:], atol=1e-5, rtol=1e-5)
    assert cache.crop(3).length == 3


def test_positions_beyond_max_len_and_a_short_mask_are_clear_errors():
    model = tiny_gpt(max_len=8)
    with pytest.raises(ValueError, match="max_len=8"):
        model(torch.zeros(1, 9, dtype=torch.long))
    cache = model(torch.zeros(1, 8, dtype=torch.long), use_cache=True).cache
    with pytest.raises(ValueError, match="max_len=8"):
        model(torch.zeros(1, 1, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="attention_mask"):
        model(torch.zeros(1, 1, dtype=torch.long), attention_mask=torch.ones(1, 1, dtype=torch.bool), cache=cache)
    assert tiny_gpt("sinusoidal", max_len=8)(torch.zeros(1, 12, dtype=torch.long)).logits.shape == (1, 12, VOCAB)


def test_tied_weights_are_stored_once_and_residual_projections_start_smaller():
    tied, untied = tiny_gpt(), tiny_gpt(tie_weights=False)
    assert tied.lm_head is None and not any(key.startswith("lm_head") for key in tied.state_dict())
    assert untied.lm_head.weight.shape == (VOCAB, 16)
    big = tiny_gpt(d_model=32, ff_dim=64, num_layers=2)
    assert big.blocks[0].mlp.proj.weight.std() < big.blocks[0].mlp.fc.weight.std() * 0.75  # 0.02/√4 vs 0.02


# --- GPT-2 equivalence: tiny random GPT-2s from transformers, nothing downloaded -------------


@pytest.fixture(scope="module")
def gpt2():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        n_layer=2, n_head=2, n_embd=32, vocab_size=100, n_positions=64, bos_token_id=0, eos_token_id=0
    )
    return transformers.GPT2LMHeadModel(config).eval()


@torch.no_grad()
def test_gpt2_weights_give_the_logits_of_transformers(gpt2):
    model = GPT.from_gpt2(gpt2)
    ids = torch.randint(1, 100, (2, 10))
    expected = gpt2(ids).logits
    torch.testing.assert_close(model(ids).logits, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(step_by_step(model, ids, prefix=3), expected, atol=1e-5, rtol=1e-5)
    # left padding: transformers needs the position ids that seqlab derives from the mask
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[1, :4] = False
    positions = (mask.long().cumsum(-1) - 1).clamp_min(0)
    expected = gpt2(ids, attention_mask=mask.long(), position_ids=positions).logits
    torch.testing.assert_close(model(ids, attention_mask=mask).logits[mask], expected[mask], atol=1e-5, rtol=1e-5)
    stepped = step_by_step(model, ids, 5, mask)
    torch.testing.assert_close(stepped[mask], expected[mask], atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_gpt2_loads_from_a_saved_folder_and_from_a_state_dict(gpt2, tmp_path):
    gpt2.save_pretrained(tmp_path)
    ids = torch.randint(0, 100, (1, 7))
    expected = gpt2(ids).logits
    for model in (GPT.from_gpt2(tmp_path), GPT.from_gpt2(gpt2.state_dict(), gpt2.config)):
        torch.testing.assert_close(model(ids).logits, expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="GPT2Config"):
        GPT.from_gpt2(gpt2.state_dict())


# --- the RNN language model ------------------------------------------------------------------


def tiny_rnn(cell: str, **sizes) -> RNNLanguageModel:
    torch.manual_seed(0)
    kwargs = {"embed_dim": 8, "hidden_dim": 12, "num_layers": 2, "dropout": 0.0}
    return RNNLanguageModel(VOCAB, cell, **{**kwargs, **sizes}).eval()


def state_parts(state) -> tuple[torch.Tensor, ...]:
    """An LSTM's (h, c), or a GRU's h alone."""
    return state if isinstance(state, tuple) else (state,)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@torch.no_grad()
def test_rnn_lm_packed_rows_end_in_the_state_of_each_row_alone(cell):
    model = tiny_rnn(cell)
    rows = [torch.randint(1, VOCAB, (n,)) for n in (6, 3)]
    ids = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True)
    out = model(ids, lengths=torch.tensor([6, 3]))
    assert out.logits.shape == (2, 6, VOCAB) and out.attentions is None
    for i, row in enumerate(rows):
        alone = model(row[None])
        torch.testing.assert_close(out.logits[i, : len(row)], alone.logits[0], atol=1e-5, rtol=1e-5)
        for batched, single in zip(state_parts(out.cache), state_parts(alone.cache)):
            torch.testing.assert_close(batched[:, i], single[:, 0], atol=1e-5, rtol=1e-5)
    # the state continues a sequence: the last token fed separately gives the same logits
    whole = model(rows[0][None])
    first = model(rows[0][None, :5])
    torch.testing.assert_close(model(rows[0][None, 5:], first.cache).logits, whole.logits[:, 5:], atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_reorder_state_selects_batch_rows_of_lstm_and_gru_states():
    index = torch.tensor([2, 0, 0])
    h, c = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    new_h, new_c = reorder_state((h, c), index)
    torch.testing.assert_close(new_h, h[:, index])
    torch.testing.assert_close(new_c, c[:, index])
    torch.testing.assert_close(reorder_state(h, index), h[:, index])
    model = tiny_rnn("lstm")
    ids = torch.randint(0, VOCAB, (3, 4))
    state = reorder_state(model(ids[:, :3]).cache, index)
    torch.testing.assert_close(model(ids[index, 3:], state).logits, model(ids[index]).logits[:, 3:])


def test_rnn_lm_tied_weights_share_the_embedding():
    model = tiny_rnn("gru", tie_weights=True)  # hidden 12 ≠ embed 8: projected first
    assert model.decoder is None and model.projection is not None  # the output layer is the embedding itself
    assert model(torch.randint(0, VOCAB, (2, 3))).logits.shape == (2, 3, VOCAB)
    with pytest.raises(ValueError, match="cell"):
        RNNLanguageModel(VOCAB, "transformer")
