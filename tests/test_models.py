"""Every architecture: shapes, and padding never changes a prediction."""

import pytest
import torch

from seqlab.config import ARCHS, build_config
from seqlab.data.batching import pad_batch
from seqlab.models import build_classifier


def tiny(arch: str, **extra):
    overrides = [f"model.arch={arch}", "model.preset=tiny"] + [f"model.{k}={v}" for k, v in extra.items()]
    cfg = build_config({}, overrides)
    torch.manual_seed(0)
    return build_classifier(cfg.model, vocab_size=30, num_labels=3).eval()


VARIANTS = [(arch, {}) for arch in ARCHS if arch != "hf"] + [
    ("lstm", {"pooling": "last"}),
    ("bigru", {"pooling": "mean"}),
    ("transformer", {"pooling": "cls"}),
    ("transformer", {"positional": "learned", "pooling": "max"}),
    ("cnn", {"filter_sizes": "[2,7]"}),
]


@pytest.mark.parametrize(("arch", "extra"), VARIANTS)
def test_padding_invariance(arch, extra):
    model = tiny(arch, **extra)
    sentence, longer = [5, 6, 7], [8, 9, 10, 11, 12, 13, 14, 15, 16]
    ids, mask = pad_batch([sentence])
    alone = model(ids, mask).logits
    ids, mask = pad_batch([sentence, longer])
    in_batch = model(ids, mask).logits[0:1]
    ids, mask = pad_batch([sentence + [0] * 20])  # explicit extra padding
    mask[:, 3:] = False
    padded = model(ids, mask).logits
    assert alone.shape == (1, 3)
    torch.testing.assert_close(alone, in_batch, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(alone, padded, atol=1e-5, rtol=1e-4)


def test_transformer_returns_attention_per_layer():
    model = tiny("transformer", num_layers=2, pooling="cls")
    ids, mask = pad_batch([[5, 6, 7], [8, 9]])
    out = model(ids, mask, need_weights=True)
    assert len(out.attentions) == 2
    assert out.attentions[0].shape == (2, 2, 4, 4)  # [CLS] + 3 tokens
    torch.testing.assert_close(out.attentions[1].sum(-1), torch.ones(2, 2, 4))
    assert torch.all(out.attentions[0][1, :, :, 3:] == 0)  # the second sentence's padding


def test_sigmoid_head_has_one_output():
    cfg = build_config({}, ["model.arch=cnn", "model.preset=tiny", "model.head=sigmoid"])
    model = build_classifier(cfg.model, vocab_size=30, num_labels=2)
    ids, mask = pad_batch([[3, 4]])
    assert model(ids, mask).logits.shape == (1, 1)


def test_cnn_handles_sentences_shorter_than_its_widest_filter():
    model = tiny("cnn", filter_sizes="[5]")
    ids, mask = pad_batch([[4]])
    assert torch.isfinite(model(ids, mask).logits).all()
