"""Models are plain `nn.Module`s: no loss, no I/O. `build_classifier` maps a config to one."""

from __future__ import annotations

from torch import nn


def count_parameters(model: nn.Module) -> int:
    """Every parameter of `model`, trainable or frozen."""
    return sum(p.numel() for p in model.parameters())


def build_classifier(model_cfg, vocab_size: int, num_labels: int, pad_id: int = 0) -> nn.Module:
    """Instantiate the classifier a `ModelConfig` describes.

    Args:
        model_cfg: an RNN/CNN/Transformer model config (`seqlab.config`).
        vocab_size: tokenizer vocabulary size.
        num_labels: number of classes; a sigmoid head has one output.
        pad_id: padding token id.
    """
    from seqlab.models.cnn import KimCNN
    from seqlab.models.rnn import RNNClassifier
    from seqlab.models.transformer import TransformerClassifier

    outputs = 1 if model_cfg.head == "sigmoid" else num_labels
    if model_cfg.arch == "cnn":
        return KimCNN(
            vocab_size,
            outputs,
            model_cfg.embed_dim,
            tuple(model_cfg.filter_sizes),
            model_cfg.num_filters,
            model_cfg.dropout,
            pad_id,
        )
    if model_cfg.arch == "transformer":
        return TransformerClassifier(
            vocab_size,
            outputs,
            model_cfg.d_model,
            model_cfg.num_heads,
            model_cfg.num_layers,
            model_cfg.ff_dim,
            model_cfg.dropout,
            model_cfg.positional,
            512,
            model_cfg.pooling,
            pad_id,
            # an encoder pretrained here (model.init) reads "[CLS] text [SEP]" from its own vocabulary
            num_segments=model_cfg.num_segments,
            prepend_cls=not model_cfg.init,
        )
    return RNNClassifier(
        vocab_size,
        outputs,
        model_cfg.cell,
        model_cfg.embed_dim,
        model_cfg.hidden_dim,
        model_cfg.num_layers,
        model_cfg.bidirectional,
        model_cfg.pooling,
        model_cfg.dropout,
        pad_id,
    )
