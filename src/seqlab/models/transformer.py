"""A Transformer encoder written from scratch (Vaswani et al., 2017), used as a classifier, and
the encoder-decoder built on it for translation.

token embedding · √d + positional encoding → N × [pre-norm self-attention, pre-norm feed-forward]
→ final LayerNorm → pooling ([CLS], mean or max) → dropout → linear.

`TransformerSeq2Seq` (at the end) adds a decoder: N × [pre-norm causal self-attention, pre-norm
cross-attention over the encoder's states, pre-norm feed-forward], decoded one token at a time
with cached keys and values.

Pre-norm blocks (Xiong et al., 2020) train stably without a learning-rate warm-up, which
matters for small data. Attention comes from `seqlab.models.attention` and can return its
weights for every layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from seqlab.models.attention import MultiHeadAttention, causal_mask
from seqlab.models.outputs import ClassifierOutput, Seq2SeqOutput, masked_pool


class SinusoidalPositions(nn.Module):
    """PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(…): fixed, no parameters,
    defined for any length."""

    table: torch.Tensor  # a buffer

    def __init__(self, d_model: int, max_len: int = 512):
        super().__init__()
        self.register_buffer("table", self._table(d_model, max_len), persistent=False)

    @staticmethod
    def _table(d_model: int, length: int) -> torch.Tensor:
        position = torch.arange(length, dtype=torch.float32)[:, None]  # (L, 1)
        rate = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
        table = torch.zeros(length, d_model)
        table[:, 0::2] = torch.sin(position * rate)
        table[:, 1::2] = torch.cos(position * rate[: d_model // 2])
        return table  # (L, d_model)

    def forward(self, length: int) -> torch.Tensor:
        """→ (length, d_model)."""
        if length > self.table.size(0):  # sinusoids extend to any length
            self.table = self._table(self.table.size(1), length).to(self.table.device)
        return self.table[:length]

    def at(self, position_ids: torch.Tensor) -> torch.Tensor:
        """Vectors by position id: (B, T) long → (B, T, d_model). For rows that do not start at
        position 0 (a decoder's KV cache, left padding)."""
        self(int(position_ids.max()) + 1 if position_ids.numel() else 0)  # extend the table if needed
        return self.table[position_ids]


class LearnedPositions(nn.Module):
    """One trained vector per position, as in BERT and GPT-2; limited to `max_len`."""

    def __init__(self, d_model: int, max_len: int = 512):
        super().__init__()
        self.embedding = nn.Embedding(max_len, d_model)
        nn.init.normal_(self.embedding.weight, std=0.02)

    def forward(self, length: int) -> torch.Tensor:
        """→ (length, d_model)."""
        if length > self.embedding.num_embeddings:
            raise ValueError(f"sequence of {length} positions exceeds max_len={self.embedding.num_embeddings}")
        return self.embedding.weight[:length]

    def at(self, position_ids: torch.Tensor) -> torch.Tensor:
        """Vectors by position id: (B, T) long → (B, T, d_model). For rows that do not start at
        position 0 (a decoder's KV cache, left padding)."""
        # the check reads a value back from the tensor, which would break a compiled graph in two
        checked = not torch.compiler.is_compiling()
        if checked and position_ids.numel() and int(position_ids.max()) >= self.embedding.num_embeddings:
            raise ValueError(
                f"position {int(position_ids.max())} exceeds max_len={self.embedding.num_embeddings} "
                "(learned positions cover 0..max_len-1)"
            )
        return self.embedding(position_ids)


class NoPositions(nn.Module):
    """No position information at all (zeros): a bidirectional encoder then sees a bag of
    words, so it cannot tell word order (the `positions` experiment's control)."""

    zero: torch.Tensor  # a buffer

    def __init__(self, d_model: int, max_len: int = 512):
        super().__init__()
        self.register_buffer("zero", torch.zeros(1, d_model), persistent=False)  # follows .to(device)

    def forward(self, length: int) -> torch.Tensor:
        """→ (length, d_model) zeros."""
        return self.zero.expand(length, -1)

    def at(self, position_ids: torch.Tensor) -> torch.Tensor:
        """(B, T) long → (B, T, d_model) zeros."""
        return self.zero.expand(*position_ids.shape, -1)


POSITIONS: dict[str, type[SinusoidalPositions | LearnedPositions | NoPositions]] = {
    "sinusoidal": SinusoidalPositions,
    "learned": LearnedPositions,
    "none": NoPositions,
}


class EncoderLayer(nn.Module):
    """x + SelfAttention(LN(x)), then x + FFN(LN(x))."""

    def __init__(self, d_model: int, num_heads: int, ff_dim: int, dropout: float):
        super().__init__()
        self.attn_norm = nn.LayerNorm(d_model)
        self.attention = MultiHeadAttention(d_model, num_heads, dropout=dropout)
        self.ff_norm = nn.LayerNorm(d_model)
        self.feed_forward = nn.Sequential(nn.Linear(d_model, ff_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff_dim, d_model))
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        padding_mask: torch.Tensor,
        need_weights: bool = False,
        attn_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: (B, T, d_model); padding_mask: (B, T), True = real; attn_mask: (T, T), True = may
        attend (a causal mask), or None → (x, weights (B, H, T, T) | None)."""
        attended, weights = self.attention(
            self.attn_norm(x), key_padding_mask=padding_mask, attn_mask=attn_mask, need_weights=need_weights
        )
        x = x + self.dropout(attended)
        x = x + self.dropout(self.feed_forward(self.ff_norm(x)))
        return x, weights


class TransformerEncoder(nn.Module):
    """Token + position (+ segment) embeddings and a stack of encoder layers → contextual states
    (B, T, d). `num_segments` > 0 adds BERT's token-type embeddings (segment A/B of a pair);
    0, the default, has none, so models without segments keep their parameters. `causal`: each
    position attends only to itself and earlier ones (a left-to-right model with exactly the
    same parameters, for comparisons with the bidirectional default)."""

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 128,
        num_heads: int = 4,
        num_layers: int = 2,
        ff_dim: int = 256,
        dropout: float = 0.1,
        positional: str = "sinusoidal",
        max_len: int = 512,
        pad_id: int = 0,
        num_segments: int = 0,
        causal: bool = False,
    ):
        super().__init__()
        self.d_model = d_model
        self.causal = causal
        self.embedding = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        # std d^-1/2, so that after the √d scale in `forward` tokens and positions are both ~unit size
        nn.init.normal_(self.embedding.weight, std=d_model**-0.5)
        with torch.no_grad():
            self.embedding.weight[pad_id].zero_()
        self.positions = POSITIONS[positional](d_model, max_len)
        self.segments = nn.Embedding(num_segments, d_model) if num_segments else None
        if self.segments is not None:
            nn.init.normal_(self.segments.weight, std=0.02)  # BERT's initialiser
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(EncoderLayer(d_model, num_heads, ff_dim, dropout) for _ in range(num_layers))
        self.final_norm = nn.LayerNorm(d_model)

    def forward(
        self,
        embedded: torch.Tensor,
        padding_mask: torch.Tensor,
        need_weights: bool = False,
        token_type_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        """embedded: (B, T, d) token vectors (already embedded, so callers may prepend [CLS]);
        padding_mask: (B, T); token_type_ids: (B, T) segment ids, default all 0 (used only with
        segments) → (states (B, T, d), per-layer weights or None)."""
        x = embedded * math.sqrt(self.d_model) + self.positions(embedded.size(1))
        if self.segments is not None:
            if token_type_ids is None:
                x = x + self.segments.weight[0]  # one segment: every token is in segment A
            else:
                x = x + self.segments(token_type_ids)
        x = self.dropout(x)
        length = embedded.size(1)
        attn_mask = causal_mask(length, length, embedded.device) if self.causal else None  # (T, T)
        attentions: list[torch.Tensor] | None = [] if need_weights else None
        for layer in self.layers:
            x, weights = layer(x, padding_mask, need_weights, attn_mask)
            if need_weights:
                assert attentions is not None
                attentions.append(weights)
        return self.final_norm(x), attentions


class TransformerClassifier(nn.Module):
    """A Transformer encoder with a pooling head.

    Args:
        vocab_size, num_outputs: token ids and classes (1 for a sigmoid head).
        d_model, num_heads, num_layers, ff_dim, dropout, positional, max_len: encoder sizes.
        pooling: "cls" (a learned [CLS] vector prepended to every sentence), "mean" or "max".
        pad_id: the padding token id.
        num_segments: segment embeddings in the encoder (2 for an encoder pretrained as BERT).
        prepend_cls: False when the vocabulary itself puts a [CLS] token first (a WordPiece
            vocabulary pretrained here): "cls" pooling then reads that token's state.
    """

    def __init__(
        self,
        vocab_size: int,
        num_outputs: int,
        d_model: int = 128,
        num_heads: int = 4,
        num_layers: int = 2,
        ff_dim: int = 256,
        dropout: float = 0.1,
        positional: str = "sinusoidal",
        max_len: int = 512,
        pooling: str = "mean",
        pad_id: int = 0,
        num_segments: int = 0,
        prepend_cls: bool = True,
    ):
        super().__init__()
        self.pooling = pooling
        self.prepend_cls = prepend_cls and pooling == "cls"
        self.encoder = TransformerEncoder(
            vocab_size, d_model, num_heads, num_layers, ff_dim, dropout, positional, max_len + 1, pad_id, num_segments
        )
        if self.prepend_cls:
            self.cls = nn.Parameter(torch.randn(d_model) * 0.02)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(d_model, num_outputs)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, need_weights: bool = False) -> ClassifierOutput:
        """input_ids, attention_mask: (B, T) → logits (B, C), and per-layer attention weights
        (B, H, T', T') when asked (T' = T + 1 with a prepended [CLS], the [CLS] row first)."""
        embedded = self.encoder.embedding(input_ids)  # (B, T, d)
        mask = attention_mask
        if self.prepend_cls:
            cls = self.cls.expand(input_ids.size(0), 1, -1)
            embedded = torch.cat([cls, embedded], dim=1)  # (B, T+1, d)
            mask = torch.cat([mask.new_ones(mask.size(0), 1), mask], dim=1)
        states, attentions = self.encoder(embedded, mask, need_weights)
        features = states[:, 0] if self.pooling == "cls" else masked_pool(states, mask, self.pooling)
        return ClassifierOutput(self.head(self.dropout(features)), attentions)


# ---------------------------------------------------------------------------------------------
# The encoder-decoder (task translate): the encoder above, and a decoder whose layers add
# cross-attention over the encoder's states to causal self-attention.


class DecoderLayer(nn.Module):
    """x + CausalSelfAttention(LN(x)), x + CrossAttention(LN(x), memory), then x + FFN(LN(x))."""

    def __init__(self, d_model: int, num_heads: int, ff_dim: int, dropout: float):
        super().__init__()
        self.self_norm = nn.LayerNorm(d_model)
        self.self_attention = MultiHeadAttention(d_model, num_heads, dropout=dropout)
        self.cross_norm = nn.LayerNorm(d_model)
        self.cross_attention = MultiHeadAttention(d_model, num_heads, dropout=dropout)
        self.ff_norm = nn.LayerNorm(d_model)
        self.feed_forward = nn.Sequential(nn.Linear(d_model, ff_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff_dim, d_model))
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        self_mask: torch.Tensor | None,
        memory: torch.Tensor,
        memory_mask: torch.Tensor,
        past: tuple[torch.Tensor, torch.Tensor] | None = None,
        cross: tuple[torch.Tensor, torch.Tensor] | None = None,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None, tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        """x: (B, T, d); self_mask: (T, T_past + T) causal mask, or None for one new token after a
        cache; memory: (B, S, d) encoder states; memory_mask: (B, S), True = real; past: cached
        self-attention (keys, values); cross: the memory's projected (keys, values) from the first
        step, so they are projected once per sentence
        → (x, cross-attention weights (B, H, T, S) or None, self (keys, values), cross (keys, values))."""
        attended, _, present = self.self_attention(self.self_norm(x), attn_mask=self_mask, past_key_value=past, use_cache=True)
        x = x + self.dropout(attended)
        attended, weights, cross = self.cross_attention(  # the memory's keys and values: projected at the first step
            self.cross_norm(x),
            memory,
            key_padding_mask=memory_mask,
            need_weights=need_weights,
            use_cache=True,
            static_key_value=cross,
        )
        x = x + self.dropout(attended)
        x = x + self.dropout(self.feed_forward(self.ff_norm(x)))
        return x, weights, present, cross


@dataclass
class TransformerDecoderState:
    """Per row: the encoder states and mask, and per layer the cached self-attention and
    cross-attention (keys, values), each (B, H, length or S, head_dim); `length` tokens decoded
    so far; `sentence` (B,) the source sentence of each row."""

    memory: torch.Tensor  # (B, S, d)
    mask: torch.Tensor  # (B, S)
    sentence: torch.Tensor  # (B,)
    past: list[tuple[torch.Tensor, torch.Tensor]] | None = None
    cross: list[tuple[torch.Tensor, torch.Tensor]] | None = None
    length: int = 0

    def reorder(self, index: torch.Tensor) -> TransformerDecoderState:
        """Keep batch rows `index` ((B',) long), in that order (beam search). Rows of one
        sentence share its memory, so when every row keeps its sentence (beams reordered within
        their prompt) only the self-attention cache is copied."""
        pick = lambda kv: None if kv is None else [(k.index_select(0, index), v.index_select(0, index)) for k, v in kv]  # noqa: E731
        sentence = self.sentence.index_select(0, index)
        if torch.equal(sentence, self.sentence):
            return TransformerDecoderState(self.memory, self.mask, sentence, pick(self.past), self.cross, self.length)
        return TransformerDecoderState(
            self.memory.index_select(0, index),
            self.mask.index_select(0, index),
            sentence,
            pick(self.past),
            pick(self.cross),
            self.length,
        )


class TransformerSeq2Seq(nn.Module):
    """A Transformer encoder-decoder (Vaswani et al., 2017), pre-norm like the encoder above.

        source → TransformerEncoder → memory (B, S, d)
        [BOS] y_1 … → embedding · √d + positions → N × DecoderLayer(memory) → LN → · Eᵀ → logits

    Args:
        source_vocab, target_vocab: token ids on each side.
        d_model, num_heads, num_layers, ff_dim, dropout, positional, max_len: sizes; the
            decoder has as many layers as the encoder.
        pad_id: the padding id of both vocabularies.
        tie_embeddings: the output layer is the target embedding (Press & Wolf, 2017).
        share_embeddings: source and target use the encoder's embedding (one shared
            vocabulary; then source_vocab == target_vocab).
    """

    def __init__(
        self,
        source_vocab: int,
        target_vocab: int,
        d_model: int = 128,
        num_heads: int = 4,
        num_layers: int = 2,
        ff_dim: int = 256,
        dropout: float = 0.1,
        positional: str = "sinusoidal",
        max_len: int = 512,
        pad_id: int = 0,
        tie_embeddings: bool = True,
        share_embeddings: bool = False,
    ):
        super().__init__()
        if share_embeddings and source_vocab != target_vocab:
            raise ValueError(f"shared embeddings need one vocabulary (got {source_vocab} and {target_vocab} ids)")
        self.d_model = d_model
        self.encoder = TransformerEncoder(
            source_vocab, d_model, num_heads, num_layers, ff_dim, dropout, positional, max_len, pad_id
        )
        # A shared embedding is the encoder's own module, not registered twice (one stored tensor).
        self.target_embedding = None if share_embeddings else nn.Embedding(target_vocab, d_model, padding_idx=pad_id)
        if self.target_embedding is not None:
            nn.init.normal_(self.target_embedding.weight, std=d_model**-0.5)  # as the encoder's
            with torch.no_grad():
                self.target_embedding.weight[pad_id].zero_()
        self.positions = POSITIONS[positional](d_model, max_len)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(DecoderLayer(d_model, num_heads, ff_dim, dropout) for _ in range(num_layers))
        self.final_norm = nn.LayerNorm(d_model)
        self.output = None if tie_embeddings else nn.Linear(d_model, target_vocab, bias=False)

    @property
    def embedding(self) -> nn.Embedding:
        """The target embedding (the encoder's when shared)."""
        return self.encoder.embedding if self.target_embedding is None else self.target_embedding

    def encode(self, source_ids: torch.Tensor, source_mask: torch.Tensor) -> TransformerDecoderState:
        """(B, S) source ids and mask → the decoder's state before its first token."""
        memory, _ = self.encoder(self.encoder.embedding(source_ids), source_mask)  # (B, S, d)
        return TransformerDecoderState(memory, source_mask, torch.arange(source_ids.size(0), device=source_ids.device))

    def _decode(
        self, x: torch.Tensor, state: TransformerDecoderState, self_mask: torch.Tensor | None, need_weights: bool
    ) -> tuple[torch.Tensor, list[torch.Tensor] | None, TransformerDecoderState]:
        """Embedded target positions (B, T, d) through every layer → (logits (B, T, V), per-layer
        cross-attention weights or None, the state with this step's keys and values cached)."""
        x = self.dropout(x)
        weights, past, cross = [], [], []
        for i, layer in enumerate(self.layers):
            x, w, present, kv = layer(
                x,
                self_mask,
                state.memory,
                state.mask,
                state.past[i] if state.past else None,
                state.cross[i] if state.cross else None,
                need_weights,
            )
            weights.append(w)
            past.append(present)
            cross.append(kv)
        output = self.final_norm(x)
        logits = F.linear(output, self.embedding.weight) if self.output is None else self.output(output)  # (B, T, V)
        state = TransformerDecoderState(state.memory, state.mask, state.sentence, past, cross, state.length + x.size(1))
        return logits, weights if need_weights else None, state

    def _embed(self, tokens: torch.Tensor, start: int) -> torch.Tensor:
        """(B, T) target ids at positions start … start + T - 1 → (B, T, d)."""
        positions = torch.arange(start, start + tokens.size(1), device=tokens.device).expand(tokens.size(0), -1)
        return self.embedding(tokens) * math.sqrt(self.d_model) + self.positions.at(positions)

    def step(
        self, tokens: torch.Tensor, state: TransformerDecoderState, need_weights: bool = False
    ) -> tuple[torch.Tensor, TransformerDecoderState, torch.Tensor | None]:
        """One decoding step: (B,) previous tokens → (next-token logits (B, V), state, the last
        layer's cross-attention averaged over heads (B, S) when asked for)."""
        # one new query after the cache sees every cached position: no causal mask needed
        logits, weights, state = self._decode(self._embed(tokens[:, None], state.length), state, None, need_weights)
        return logits[:, -1], state, weights[-1].mean(dim=1)[:, -1] if weights else None

    @staticmethod
    def reorder_state(state: TransformerDecoderState, index: torch.Tensor) -> TransformerDecoderState:
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
        → `Seq2SeqOutput(logits (B, T, V), alignments (B, T, S), cross_attentions per layer)`,
        the weights only when asked for. `sampling_prob` must be 0 (see the config)."""
        if sampling_prob:
            raise ValueError("scheduled sampling is for RNN decoders; a Transformer decoder reads the whole target at once")
        T = targets_in.size(1)
        state = self.encode(source_ids, source_mask)
        logits, weights, _ = self._decode(self._embed(targets_in, 0), state, causal_mask(T, T, targets_in.device), need_weights)
        if not need_weights:
            return Seq2SeqOutput(logits)
        assert weights is not None
        return Seq2SeqOutput(logits, weights[-1].mean(dim=1), weights)
