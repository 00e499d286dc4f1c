"""Recurrent classifiers: Elman RNN, LSTM (Hochreiter & Schmidhuber, 1997) and GRU (Cho et al., 2014).

Embedding → (bi)directional recurrent layers → pooling → dropout → linear.
Sequences are packed before the recurrence, so padding never changes an output.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqlab.models.outputs import ClassifierOutput, init_embeddings, masked_pool

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class RNNClassifier(nn.Module):
    """A recurrent text classifier.

    Args:
        vocab_size: number of token ids.
        num_outputs: classes (1 for a sigmoid head on a binary task).
        cell: "rnn", "lstm" or "gru".
        embed_dim, hidden_dim, num_layers: sizes.
        bidirectional: read the sentence both ways and concatenate.
        pooling: "last" (final hidden state of each direction), "max" or "mean" over time.
        dropout: on embeddings, between layers and before the head.
        pad_id: the padding token id (its embedding stays zero).
    """

    def __init__(
        self,
        vocab_size: int,
        num_outputs: int,
        cell: str = "lstm",
        embed_dim: int = 128,
        hidden_dim: int = 128,
        num_layers: int = 1,
        bidirectional: bool = False,
        pooling: str = "last",
        dropout: float = 0.5,
        pad_id: int = 0,
    ):
        super().__init__()
        self.pooling = pooling
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        init_embeddings(self.embedding)
        self.rnn = CELLS[cell](
            embed_dim,
            hidden_dim,
            num_layers=num_layers,
            bidirectional=bidirectional,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_dim * (2 if bidirectional else 1), num_outputs)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, need_weights: bool = False
    ) -> ClassifierOutput:
        """input_ids, attention_mask: (B, T) → logits (B, C). `need_weights` is accepted for a
        uniform interface; a recurrent model has no attention to return."""
        lengths = attention_mask.sum(dim=1).clamp_min(1)
        embedded = self.dropout(self.embedding(input_ids))  # (B, T, E)
        packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
        packed_out, hidden = self.rnn(packed)
        if self.pooling == "last":
            hidden = hidden[0] if isinstance(hidden, tuple) else hidden  # LSTM: (h, c)
            directions = 2 if self.rnn.bidirectional else 1
            features = torch.cat(list(hidden[-directions:]), dim=-1)  # (B, H·dirs)
        else:
            states, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=input_ids.size(1))
            features = masked_pool(states, attention_mask, self.pooling)  # (B, H·dirs)
        return ClassifierOutput(self.head(self.dropout(features)))
