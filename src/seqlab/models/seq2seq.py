"""RNN encoder-decoders for translation (Sutskever et al., 2014; Cho et al., 2014), with and
without attention (Bahdanau et al., 2015; Luong et al., 2015).

    source → embedding → (bi)LSTM/GRU encoder → outputs H (B, S, hidden), final states
    final states → the decoder's first state (all that plain seq2seq knows of the source)
    each target step t:  y_{t-1} → embedding → RNN → s_t → [attention over H] → h̃_t → logits

The attention kinds (modules from `seqlab.models.attention`; each returns its weights):

    bahdanau       additive score with the previous state s_{t-1}; the context c_t joins the
                   RNN input [E y_{t-1}; c_t]; h̃_t = tanh(W [c_t; s_t])
    luong-dot      dot score s_tᵀ h_j after the RNN step; h̃_t = tanh(W [c_t; s_t]), fed into
                   the next step's input (input feeding)
    luong-general  the same with the score s_tᵀ W h_j
    dot            the course's model: dot-product attention on top of the decoder's outputs,
                   h̃_t = tanh(W [c_t; s_t]), no input feeding
    (none)         plain seq2seq: h̃_t = s_t

A bidirectional encoder gives each direction hidden_dim / 2 units, so its outputs and its final
states (both directions side by side) have the decoder's size (as OpenNMT does): no bridge.
The encoder packs its sequences, so a sentence encodes the same alone or in a padded batch.
Teacher forcing feeds the true previous token; with `sampling_prob` > 0 each row is fed the
model's own previous prediction with that probability (scheduled sampling, Bengio et al., 2015).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqlab.models.attention import AdditiveAttention, MultiplicativeAttention
from seqlab.models.outputs import Seq2SeqOutput
from seqlab.models.rnn import CELLS, State, reorder_state

ATTENTIONS = ("bahdanau", "luong-dot", "luong-general", "dot")


class RNNEncoder(nn.Module):
    """Embedding → (bi)directional RNN over packed sequences."""

    def __init__(
        self,
        vocab_size: int,
        cell: str,
        embed_dim: int,
        hidden_dim: int,
        num_layers: int,
        bidirectional: bool,
        dropout: float,
        pad_id: int = 0,
    ):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.directions = 2 if bidirectional else 1
        self.rnn = CELLS[cell](
            embed_dim,
            hidden_dim // self.directions,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, input_ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, State]:
        """input_ids, mask: (B, S) → (outputs (B, S, hidden_dim), zero at padding; final state,
        (layers, B, hidden_dim) per part, both directions side by side)."""
        lengths = mask.sum(dim=1).clamp_min(1)
        embedded = self.dropout(self.embedding(input_ids))  # (B, S, E)
        packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
        packed_out, state = self.rnn(packed)
        outputs, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=input_ids.size(1))
        if isinstance(state, tuple):
            return outputs, cast(State, tuple(self._join_directions(part) for part in state))  # (h, c)
        return outputs, self._join_directions(state)

    def _join_directions(self, state: torch.Tensor) -> torch.Tensor:
        """(layers · dirs, B, h) → (layers, B, dirs · h): each layer's forward and backward final
        states side by side."""
        layers_dirs, batch, size = state.shape
        state = state.view(layers_dirs // self.directions, self.directions, batch, size)
        return state.transpose(1, 2).reshape(layers_dirs // self.directions, batch, self.directions * size).contiguous()


@dataclass
class DecoderState:
    """What the decoder carries from one step to the next (batch first except `hidden`).

    hidden: the RNN state, (layers, B, H) per part.
    feed: (B, H) the previous attentional state h̃_{t-1} (input feeding), else None.
    memory: (B, S, H) encoder outputs; keys: their projection for the score (once per source).
    mask: (B, S) True = real source token.
    sentence: (B,) the source sentence of each row.
    """

    hidden: State
    feed: torch.Tensor | None
    memory: torch.Tensor
    keys: torch.Tensor | None
    mask: torch.Tensor
    sentence: torch.Tensor

    def reorder(self, index: torch.Tensor) -> DecoderState:
        """Keep batch rows `index` ((B',) long), in that order (beam search). Rows of one sentence
        share its memory: when every row keeps its sentence, the memory is not copied."""
        pick = lambda t: None if t is None else t.index_select(0, index)  # noqa: E731
        sentence = self.sentence.index_select(0, index)
        hidden, feed = reorder_state(self.hidden, index), pick(self.feed)
        if torch.equal(sentence, self.sentence):
            return DecoderState(hidden, feed, self.memory, self.keys, self.mask, sentence)
        return DecoderState(
            hidden, feed, cast(torch.Tensor, pick(self.memory)), pick(self.keys), cast(torch.Tensor, pick(self.mask)), sentence
        )


class RNNDecoder(nn.Module):
    """One target token per step, optionally attending over the encoder outputs (see the module
    docstring for the kinds)."""

    def __init__(
        self,
        vocab_size: int,
        cell: str,
        embed_dim: int,
        hidden_dim: int,
        num_layers: int,
        attention: str | None,
        dropout: float,
        tie_embeddings: bool = False,
        pad_id: int = 0,
    ):
        super().__init__()
        if attention is not None and attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS} or None, not {attention!r}")
        self.kind = attention
        self.input_feeding = attention in ("luong-dot", "luong-general")
        extra_input = hidden_dim if attention == "bahdanau" or self.input_feeding else 0  # c_t or h̃_{t-1}
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.rnn = CELLS[cell](
            embed_dim + extra_input,
            hidden_dim,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        if attention == "bahdanau":
            self.attention: AdditiveAttention | MultiplicativeAttention | None = AdditiveAttention(
                hidden_dim, hidden_dim, hidden_dim
            )
        elif attention is not None:
            self.attention = MultiplicativeAttention(hidden_dim, hidden_dim, "general" if attention == "luong-general" else "dot")
        else:
            self.attention = None
        self.combine = nn.Linear(2 * hidden_dim, hidden_dim, bias=False) if attention else None  # h̃ = tanh(W [c; s])
        self.dropout = nn.Dropout(dropout)
        # Tied: the logits are computed from the embedding matrix itself (one stored tensor).
        self.projection = nn.Linear(hidden_dim, embed_dim) if tie_embeddings and hidden_dim != embed_dim else None
        self.output = None if tie_embeddings else nn.Linear(hidden_dim, vocab_size)
        self.output_bias = nn.Parameter(torch.zeros(vocab_size)) if tie_embeddings else None

    def start(self, memory: torch.Tensor, mask: torch.Tensor, hidden: State) -> DecoderState:
        """The state before the first target token: the encoder's final state, keys projected once."""
        keys = self.attention.project_keys(memory) if self.attention is not None else None
        feed = memory.new_zeros(memory.size(0), memory.size(2)) if self.input_feeding else None
        return DecoderState(hidden, feed, memory, keys, mask, torch.arange(memory.size(0), device=memory.device))

    def logits(self, attentional: torch.Tensor) -> torch.Tensor:
        """(…, H) h̃ → (…, V)."""
        x = self.dropout(attentional)
        if self.output is not None:
            return self.output(x)
        if self.projection is not None:
            x = self.projection(x)
        return F.linear(x, self.embedding.weight, self.output_bias)

    def step(self, tokens: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, DecoderState, torch.Tensor | None]:
        """tokens: (B,) the previous target tokens → (h̃ (B, H), new state, weights (B, S) or None)."""
        inputs = self.dropout(self.embedding(tokens))[:, None, :]  # (B, 1, E)
        weights = context = None
        if self.kind == "bahdanau":  # attend with the previous state, before the RNN step
            top = state.hidden[0][-1] if isinstance(state.hidden, tuple) else state.hidden[-1]  # (B, H)
            assert self.attention is not None  # set with kind "bahdanau"
            context, weights = self.attention(top[:, None, :], state.memory, state.mask, state.keys)  # (B, 1, H), (B, 1, S)
            inputs = torch.cat([inputs, context], dim=-1)
        elif self.input_feeding:
            assert state.feed is not None  # start() sets it when input feeding
            inputs = torch.cat([inputs, state.feed[:, None, :]], dim=-1)
        output, hidden = self._recur(inputs[:, 0], state.hidden)
        output = output[:, None]  # (B, 1, H)
        if self.attention is not None and self.kind != "bahdanau":  # attend with the new state
            context, weights = self.attention(output, state.memory, state.mask, state.keys)
        attentional = (
            output if context is None else torch.tanh(cast(nn.Linear, self.combine)(torch.cat([context, output], dim=-1)))
        )
        attentional = attentional[:, 0]  # (B, H)
        state = replace(state, hidden=hidden, feed=attentional if self.input_feeding else None)
        return attentional, state, None if weights is None else weights[:, 0]

    def _recur(self, inputs: torch.Tensor, hidden: State) -> tuple[torch.Tensor, State]:
        """One time step of the stacked RNN, cell by cell with `self.rnn`'s own weights: for a
        single step the fused RNN kernel costs several times more than these few matrix
        products. inputs: (B, In) → (top layer's output (B, H), new state)."""
        cells = {"LSTM": torch.lstm_cell, "GRU": torch.gru_cell, "RNN": torch.rnn_tanh_cell}
        cell = cast(Callable[..., Any], cells[type(self.rnn).__name__])  # torch's stubs type these as bare `function`
        lstm = isinstance(hidden, tuple)
        states = []
        x = inputs
        for layer in range(self.rnn.num_layers):
            weights = [getattr(self.rnn, f"{name}_l{layer}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            previous = (hidden[0][layer], hidden[1][layer]) if lstm else hidden[layer]
            new = cell(x, previous, *weights)
            states.append(new)
            x = new[0] if lstm else new
            if layer + 1 < self.rnn.num_layers:
                x = F.dropout(x, self.rnn.dropout, self.training)  # as nn.LSTM: between layers
        if lstm:
            return x, (torch.stack([h for h, _ in states]), torch.stack([c for _, c in states]))
        return x, torch.stack(states)

    def forward(
        self, targets_in: torch.Tensor, state: DecoderState, sampling_prob: float = 0.0
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Teacher forcing over a whole target: targets_in (B, T) = [BOS] y_1 … y_{T-1}
        → (logits (B, T, V), weights (B, T, S) or None).

        With `sampling_prob` > 0 each row's input at step t > 0 is, with that probability, the
        model's own best guess at step t - 1 instead of the true token.
        """
        if sampling_prob == 0.0 and self.kind in (None, "dot"):
            # Nothing feeds back into the recurrence: run it over the whole target in one call.
            inputs = self.dropout(self.embedding(targets_in))  # (B, T, E)
            outputs, _ = self.rnn(inputs, state.hidden)  # (B, T, H)
            if self.attention is None:
                return self.logits(outputs), None
            context, weights = self.attention(outputs, state.memory, state.mask, state.keys)  # (B, T, H), (B, T, S)
            return self.logits(torch.tanh(cast(nn.Linear, self.combine)(torch.cat([context, outputs], dim=-1)))), weights
        logits: list[torch.Tensor] = []
        weights = []
        tokens = targets_in[:, 0]
        for t in range(targets_in.size(1)):
            if t > 0:
                tokens = targets_in[:, t]
                if sampling_prob > 0.0:
                    guess = logits[-1].detach().argmax(-1)
                    use_guess = torch.rand(tokens.shape, device=tokens.device) < sampling_prob
                    tokens = torch.where(use_guess, guess, tokens)
            attentional, state, w = self.step(tokens, state)
            logits.append(self.logits(attentional))  # (B, V)
            weights.append(w)
        stacked = torch.stack(weights, dim=1) if self.attention is not None else None  # (B, T, S)
        return torch.stack(logits, dim=1), stacked


class RNNSeq2Seq(nn.Module):
    """An RNN encoder-decoder, with or without attention.

    Args:
        source_vocab, target_vocab: token ids on each side.
        cell: "lstm", "gru" or "rnn" (encoder and decoder alike, so states pass straight over).
        embed_dim, hidden_dim, num_layers: sizes; hidden_dim is the decoder's state and the
            encoder's output (hidden_dim / 2 per direction when bidirectional).
        bidirectional: the encoder reads the source both ways.
        attention: None (plain seq2seq) or one of `ATTENTIONS`.
        dropout: on embeddings, between layers and before the output layer.
        tie_embeddings: the output layer reuses the target embedding (Press & Wolf, 2017).
        pad_id: the padding id of both vocabularies.
    """

    def __init__(
        self,
        source_vocab: int,
        target_vocab: int,
        cell: str = "lstm",
        embed_dim: int = 128,
        hidden_dim: int = 256,
        num_layers: int = 1,
        bidirectional: bool = True,
        attention: str | None = "bahdanau",
        dropout: float = 0.2,
        tie_embeddings: bool = False,
        pad_id: int = 0,
    ):
        super().__init__()
        if bidirectional and hidden_dim % 2:
            raise ValueError(f"hidden_dim={hidden_dim} must be even for a bidirectional encoder")
        self.encoder = RNNEncoder(source_vocab, cell, embed_dim, hidden_dim, num_layers, bidirectional, dropout, pad_id)
        self.decoder = RNNDecoder(
            target_vocab, cell, embed_dim, hidden_dim, num_layers, attention, dropout, tie_embeddings, pad_id
        )
        for embedding in (self.encoder.embedding, self.decoder.embedding):
            nn.init.uniform_(embedding.weight, -0.1, 0.1)
            with torch.no_grad():
                embedding.weight[pad_id].zero_()

    def encode(self, source_ids: torch.Tensor, source_mask: torch.Tensor) -> DecoderState:
        """(B, S) source ids and mask → the decoder's state before its first token."""
        memory, hidden = self.encoder(source_ids, source_mask)
        return self.decoder.start(memory, source_mask, hidden)

    def step(
        self, tokens: torch.Tensor, state: DecoderState, need_weights: bool = False
    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor | None]:
        """One decoding step: (B,) previous tokens → (next-token logits (B, V), state, weights
        (B, S) over the source, or None without attention)."""
        attentional, state, weights = self.decoder.step(tokens, state)
        return self.decoder.logits(attentional), state, weights

    @staticmethod
    def reorder_state(state: DecoderState, index: torch.Tensor) -> DecoderState:
        return state.reorder(index)

    def forward(
        self,
        source_ids: torch.Tensor,
        source_mask: torch.Tensor,
        targets_in: torch.Tensor,
        need_weights: bool = False,
        sampling_prob: float = 0.0,
    ) -> Seq2SeqOutput:
        """Teacher-forced scores: source (B, S) ids and mask, targets_in (B, T) = [BOS] y_1 …
        → `Seq2SeqOutput(logits (B, T, V), alignments (B, T, S) when asked for)`."""
        logits, weights = self.decoder(targets_in, self.encode(source_ids, source_mask), sampling_prob)
        return Seq2SeqOutput(logits, weights if need_weights else None)
