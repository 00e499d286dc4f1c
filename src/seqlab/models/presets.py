"""Named model sizes, as data. `tiny` is for tests, `small` the default, `base` for real runs.

The CNN's `base` is Kim (2014)'s CNN-rand: 300-d embeddings, widths 3/4/5 × 100 maps.
"""

from __future__ import annotations

PRESETS: dict[str, dict[str, dict]] = {
    "rnn": {
        "tiny": {"embed_dim": 16, "hidden_dim": 16, "num_layers": 1},
        "small": {"embed_dim": 128, "hidden_dim": 128, "num_layers": 1},
        "base": {"embed_dim": 300, "hidden_dim": 256, "num_layers": 2},
    },
    "cnn": {
        "tiny": {"embed_dim": 16, "filter_sizes": [3, 4, 5], "num_filters": 8},
        "small": {"embed_dim": 128, "filter_sizes": [3, 4, 5], "num_filters": 100},
        "base": {"embed_dim": 300, "filter_sizes": [3, 4, 5], "num_filters": 100},
    },
    "transformer": {
        "tiny": {"d_model": 16, "num_heads": 2, "num_layers": 1, "ff_dim": 32},
        "small": {"d_model": 128, "num_heads": 4, "num_layers": 2, "ff_dim": 256},
        "base": {"d_model": 256, "num_heads": 8, "num_layers": 4, "ff_dim": 1024},
    },
    # GPT (decoder-only LM). `small` is nanoGPT's CPU "baby GPT" shape; `base` is GPT-2 small's width.
    "gpt": {
        "tiny": {"d_model": 16, "num_heads": 2, "num_layers": 1, "ff_dim": 64},
        "small": {"d_model": 128, "num_heads": 4, "num_layers": 4, "ff_dim": 512},
        "base": {"d_model": 768, "num_heads": 12, "num_layers": 12, "ff_dim": 3072},
    },
    # RNN encoder-decoders (task translate): hidden_dim is the decoder's, and the encoder's
    # output (both directions together). `base` is sized for Tatoeba on a 2-core CPU: about
    # 45 minutes of training (docs/benchmarks.md, "Translation on Tatoeba").
    "seq2seq": {
        "tiny": {"embed_dim": 16, "hidden_dim": 32, "num_layers": 1},
        "small": {"embed_dim": 128, "hidden_dim": 256, "num_layers": 1},
        "base": {"embed_dim": 256, "hidden_dim": 512, "num_layers": 1},
    },
    # The Transformer encoder-decoder (task translate): `tiny` and `small` as the encoder's;
    # `base` is a Transformer-base shape scaled down for Tatoeba on a 2-core CPU (3 + 3 layers).
    "transformer-seq2seq": {
        "tiny": {"d_model": 16, "num_heads": 2, "num_layers": 1, "ff_dim": 32},
        "small": {"d_model": 128, "num_heads": 4, "num_layers": 2, "ff_dim": 256},
        "base": {"d_model": 256, "num_heads": 4, "num_layers": 3, "ff_dim": 1024},
    },
}


DROPOUT = {"rnn": 0.5, "cnn": 0.5, "transformer": 0.1, "gpt": 0.1, "seq2seq": 0.2, "transformer-seq2seq": 0.1}
for _family, _sizes in PRESETS.items():
    for _preset in _sizes.values():
        _preset.setdefault("dropout", DROPOUT[_family])


def family_of(arch: str) -> str:
    """'bilstm' → 'rnn', 'cnn' → 'cnn', 'transformer' → 'transformer', 'gpt' → 'gpt',
    'seq2seq-attn' → 'seq2seq', 'transformer-seq2seq' → 'transformer-seq2seq'."""
    families = {
        "cnn": "cnn",
        "transformer": "transformer",
        "gpt": "gpt",
        "hf": "hf",
        "seq2seq": "seq2seq",
        "seq2seq-attn": "seq2seq",
        "transformer-seq2seq": "transformer-seq2seq",
    }
    return families.get(arch, "rnn")
