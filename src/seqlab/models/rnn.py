"""Recurrent models: Elman RNN, LSTM (Hochreiter & Schmidhuber, 1997) and GRU (Cho et al., 2014).

`RNNClassifier`: embedding → (bi)directional recurrent layers → pooling → dropout → linear.
`RNNLanguageModel`: embedding → recurrent layers → dropout → linear over the vocabulary, at
every position; its hidden state is the decoding state.
Sequences are packed before the recurrence, so padding never changes an output.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqlab.models.outputs import ClassifierOutput, LMOutput, init_embeddings, masked_pool

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}

# A recurrent state: an LSTM's (h, c), or the h of a GRU/RNN; each (num_layers, B, hidden_dim).
State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


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

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, need_weights: bool = False) -> ClassifierOutput:
        """input_ids, attention_mask: (B, T) → logits (B, C). `need_weights` is accepted for a
        uniform interface; a recurrent model has no attention to return."""
        lengths = attention_mask.sum(dim=1).clamp_min(1)
        embedded = self.dropout(self.embedding(input_ids))  # (B, T, E)
        if not torch.jit.is_tracing() and bool(attention_mask.all()):
            # No padding: packing would change nothing, and on a CPU the packed GRU/Elman path's
            # backward grows with T² (one batch of 32 × 512 tokens: 28 s packed, 1.1 s not).
            # An ONNX export traces the packed path, which serves padded batches too.
            states, hidden = self.rnn(embedded)  # (B, T, H·dirs)
        else:
            packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
            packed_out, hidden = self.rnn(packed)
            states = None
        if self.pooling == "last":
            hidden = hidden[0] if isinstance(hidden, tuple) else hidden  # LSTM: (h, c)
            directions = 2 if self.rnn.bidirectional else 1
            features = torch.cat(list(hidden[-directions:]), dim=-1)  # (B, H·dirs)
        else:
            if states is None:
                states, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=input_ids.size(1))
            features = masked_pool(states, attention_mask, self.pooling)  # (B, H·dirs)
        return ClassifierOutput(self.head(self.dropout(features)))


class RNNLanguageModel(nn.Module):
    """A recurrent language model: each position predicts the next token.

    Args:
        vocab_size: number of token ids.
        cell: "rnn", "lstm" or "gru".
        embed_dim, hidden_dim, num_layers: sizes.
        dropout: on the embeddings, between layers and on the outputs (Zaremba et al., 2014).
        tie_weights: the output layer is the token embedding (Press & Wolf, 2017). When
            hidden_dim != embed_dim, a linear projection hidden_dim → embed_dim comes first.
    """

    def __init__(
        self,
        vocab_size: int,
        cell: str = "lstm",
        embed_dim: int = 128,
        hidden_dim: int = 256,
        num_layers: int = 1,
        dropout: float = 0.2,
        tie_weights: bool = False,
    ):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}, not {cell!r}")
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.rnn = CELLS[cell](
            embed_dim, hidden_dim, num_layers=num_layers, batch_first=True, dropout=dropout if num_layers > 1 else 0.0
        )
        self.dropout = nn.Dropout(dropout)
        # Tying needs the decoder's input to live in the embedding space.
        self.projection = nn.Linear(hidden_dim, embed_dim) if tie_weights and hidden_dim != embed_dim else None
        # Tied: the output layer is the embedding matrix itself plus a bias of its own (no second
        # parameter sharing the storage, which safetensors refuses to save), as GPT's lm_head.
        self.decoder = None if tie_weights else nn.Linear(hidden_dim, vocab_size)
        self.decoder_bias = nn.Parameter(torch.zeros(vocab_size)) if tie_weights else None
        # U(-0.1, 0.1), as the classic word-level LMs (Zaremba et al.; PyTorch's example):
        # small enough that the tied decoder starts near-uniform.
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        if self.decoder is not None:
            nn.init.uniform_(self.decoder.weight, -0.1, 0.1)
            nn.init.zeros_(self.decoder.bias)

    def forward(self, input_ids: torch.Tensor, state: State | None = None, lengths: torch.Tensor | None = None) -> LMOutput:
        """Next-token logits for every input position, continuing from `state`.

        Args:
            input_ids: (B, T) long.
            state: the `cache` of a previous call (an LSTM's (h, c), else h; each
                (num_layers, B, hidden_dim)), or None to start from zeros.
            lengths: (B,) real tokens per row (≥ 1) when rows are padded on the right; the
                returned state is then each row's state after its last real token.

        Returns:
            `LMOutput(logits (B, T, V), cache=the new state, attentions=None)`. Logits at padded
            positions are meaningless.
        """
        embedded = self.dropout(self.embedding(input_ids))  # (B, T, E)
        if lengths is None:
            outputs, state = self.rnn(embedded, state)  # (B, T, H)
        else:
            packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
            packed_out, state = self.rnn(packed, state)  # stops at each row's own length
            outputs, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=input_ids.size(1))
        outputs = self.dropout(outputs)
        if self.projection is not None:
            outputs = self.projection(outputs)  # (B, T, E)
        if self.decoder is None:  # tied
            return LMOutput(F.linear(outputs, self.embedding.weight, self.decoder_bias), state)  # (B, T, V)
        return LMOutput(self.decoder(outputs), state)


def reorder_state(state: State, index: torch.Tensor) -> State:
    """Keep batch rows `index` ((B',) long) of a recurrent state, in that order (beam search).
    The batch is dimension 1 of h and c: (num_layers, B, hidden_dim)."""
    if isinstance(state, tuple):
        return cast(State, tuple(part.index_select(1, index) for part in state))  # (h, c) stays a pair
    return state.index_select(1, index)
