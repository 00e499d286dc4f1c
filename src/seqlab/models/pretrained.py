"""A pretrained Transformer encoder (any `transformers` AutoModel, e.g. MiniLM/BERT) with a
classification head: transfer learning by fine-tuning.

encoder → pooling (mean over real tokens, or [CLS]) → dropout → linear.
Loading weights is `seqlab.hub`'s job; this module only wires the network.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import nn

from seqlab.models.outputs import ClassifierOutput, masked_pool


class HFEncoderClassifier(nn.Module):
    """Args:
    encoder: a `transformers` encoder (`AutoModel`), already loaded.
    num_outputs: classes (1 for a sigmoid head).
    pooling: "mean" (what sentence-transformers models such as MiniLM were trained with) or
        "cls" (the first token, as BERT's classifier).
    dropout: before the head.
    """

    def __init__(self, encoder: nn.Module, num_outputs: int, pooling: str = "mean", dropout: float = 0.1):
        super().__init__()
        # a transformers PreTrainedModel: .config and .set_attn_implementation are not on nn.Module
        self.encoder: Any = encoder
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(cast(Any, encoder).config.hidden_size, num_outputs)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, need_weights: bool = False) -> ClassifierOutput:
        """input_ids, attention_mask: (B, T) → logits (B, C); per-layer (B, H, T, T) weights on request."""
        if need_weights:
            return self._forward_with_weights(input_ids, attention_mask)
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask.long(), return_dict=True)
        return self._classify(out.last_hidden_state, attention_mask, None)

    def _forward_with_weights(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> ClassifierOutput:
        """The fused attention kernel (SDPA, the fast default) never materialises the weights,
        so transformers returns none with it: run this call with eager attention."""
        fused = getattr(self.encoder.config, "_attn_implementation", "eager")
        if fused != "eager":
            self.encoder.set_attn_implementation("eager")
        try:
            out = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask.long(), output_attentions=True, return_dict=True
            )
        finally:
            if fused != "eager":
                self.encoder.set_attn_implementation(fused)
        return self._classify(out.last_hidden_state, attention_mask, list(out.attentions))

    def _classify(self, states: torch.Tensor, attention_mask: torch.Tensor, attentions: list | None) -> ClassifierOutput:
        """states (B, T, hidden) → pooled features → logits (B, C)."""
        features = states[:, 0] if self.pooling == "cls" else masked_pool(states, attention_mask, "mean")
        return ClassifierOutput(self.head(self.dropout(features)), attentions)

    def freeze_encoder(self) -> None:
        """Feature extraction: only the head learns."""
        self.encoder.requires_grad_(False)

    def parameter_groups(self, lr: float, layer_decay: float, weight_decay: float) -> list[dict]:
        """Layer-wise learning-rate decay (Howard & Ruder 2018; Clark et al. 2020): the head gets
        `lr`, the top encoder layer lr·decay, each layer below another ·decay, embeddings last.
        Lower layers hold general features that fine-tuning should disturb least."""
        layers = self._layers()
        depth = len(layers)
        groups = [{"params": list(self.head.parameters()), "lr": lr}]
        assigned = {id(p) for p in self.head.parameters()}
        for index, layer in enumerate(layers):
            params = [p for p in layer.parameters() if p.requires_grad]
            groups.append({"params": params, "lr": lr * layer_decay ** (depth - index)})
            assigned.update(id(p) for p in params)
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in assigned]  # embeddings, pooler
        groups.append({"params": rest, "lr": lr * layer_decay ** (depth + 1)})
        for group in groups:
            group["weight_decay"] = weight_decay
        return [g for g in groups if g["params"]]

    def _layers(self) -> list[nn.Module]:
        for path in ("encoder.layer", "layers", "transformer.layer", "layer"):
            node: Any = self.encoder
            for part in path.split("."):
                node = getattr(node, part, None)
                if node is None:
                    break
            if isinstance(node, nn.ModuleList):
                return list(node)
        return []
