import torch

from seqlab.models.attention import MultiHeadAttention, scaled_dot_product_attention


def test_rows_sum_to_one_and_padded_keys_get_zero_weight():
    torch.manual_seed(0)
    attention = MultiHeadAttention(d_model=16, num_heads=4).eval()
    x = torch.randn(2, 5, 16)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    _, weights = attention(x, key_padding_mask=mask, need_weights=True)
    assert weights.shape == (2, 4, 5, 5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, 5))
    assert torch.all(weights[1, :, :, 3:] == 0)


def test_fused_and_readable_paths_agree():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 4, 8) for _ in range(3))
    mask = torch.tensor([[True, True, True, True], [True, True, False, False]])[:, None, None, :]
    fused, none = scaled_dot_product_attention(q, k, v, mask)
    manual, weights = scaled_dot_product_attention(q, k, v, mask, need_weights=True)
    assert none is None and weights is not None
    torch.testing.assert_close(fused, manual, atol=1e-5, rtol=1e-5)


def test_causal_mask_hides_the_future():
    attention = MultiHeadAttention(d_model=8, num_heads=2).eval()
    causal = torch.tril(torch.ones(4, 4, dtype=torch.bool))
    _, weights = attention(torch.randn(1, 4, 8), attn_mask=causal, need_weights=True)
    assert torch.all(weights[..., ~causal] == 0)
