"""Sequence taggers: a score for every tag of every word (task tag, e.g. named entities).

Three encoders share one contract:

- `BiLSTMTagger`: word embeddings → BiLSTM (packed, so padding never changes an output) →
  dropout → linear (Huang et al., 2015; Lample et al., 2016 add the CRF).
- `TransformerTagger`: the from-scratch `TransformerEncoder` (attention from
  `seqlab.models.attention`) → linear at every word.
- `HFTokenTagger`: a pretrained `transformers` encoder over sub-words; each word is read at its
  first sub-token (Devlin et al., 2019, §5.3), so the tags stay one per word.

`forward(input_ids, attention_mask, word_index, need_weights=False)` takes token ids (B, T), the
token mask (B, T) and, for every word, the position of its first token (B, W) (for word-level
vocabularies simply 0..W-1), and returns `TaggerOutput(logits (B, W, K), attentions)`. Any of them
may carry a `CRF` (`.crf`, else None) that the task uses for the loss and for decoding.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqlab.models.crf import CRF
from seqlab.models.outputs import init_embeddings
from seqlab.models.transformer import TransformerEncoder


class TaggerOutput(NamedTuple):
    """logits: (B, W, K) tag scores per word (a CRF's emissions); attentions: one (B, H, T, T)
    tensor per layer when asked for and the model has attention, else None."""

    logits: torch.Tensor
    attentions: list[torch.Tensor] | None = None


def gather_words(states: torch.Tensor, word_index: torch.Tensor) -> torch.Tensor:
    """States at each word's first token: (B, T, D), (B, W) → (B, W, D)."""
    return states.gather(1, word_index[..., None].expand(-1, -1, states.size(-1)))


class BiLSTMTagger(nn.Module):
    """Args:
        vocab_size, num_tags: word ids and tags (K).
        embed_dim, hidden_dim, num_layers: sizes (hidden_dim per direction).
        dropout: on the embeddings, between layers and before the output layer.
        pad_id: the padding word id (its embedding stays zero).
        crf: the CRF output layer, or None for a softmax tagger.
    """

    def __init__(self, vocab_size: int, num_tags: int, embed_dim: int = 128, hidden_dim: int = 128, num_layers: int = 1,
                 dropout: float = 0.5, pad_id: int = 0, crf: CRF | None = None):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        init_embeddings(self.embedding)
        self.lstm = nn.LSTM(embed_dim, hidden_dim, num_layers=num_layers, bidirectional=True, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(2 * hidden_dim, num_tags)
        self.crf = crf

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, word_index: torch.Tensor,
                need_weights: bool = False) -> TaggerOutput:
        lengths = attention_mask.sum(1).cpu()
        embedded = self.dropout(self.embedding(input_ids))  # (B, T, E)
        packed = pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False)
        states, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=input_ids.size(1))  # (B, T, 2H)
        return TaggerOutput(self.head(self.dropout(gather_words(states, word_index))))


class TransformerTagger(nn.Module):
    """The from-scratch Transformer encoder with a linear layer at every word.

    Args:
        vocab_size, num_tags: word ids and tags (K).
        d_model, num_heads, num_layers, ff_dim, dropout, positional, max_len: encoder sizes.
        pad_id: the padding word id.
        crf: an optional CRF output layer.
        causal: every word sees only itself and the words before it (a left-to-right tagger of
            the same size, for the `bidirectional` experiment).
    """

    def __init__(self, vocab_size: int, num_tags: int, d_model: int = 128, num_heads: int = 4, num_layers: int = 2,
                 ff_dim: int = 256, dropout: float = 0.1, positional: str = "sinusoidal", max_len: int = 512,
                 pad_id: int = 0, crf: CRF | None = None, causal: bool = False):
        super().__init__()
        self.encoder = TransformerEncoder(vocab_size, d_model, num_heads, num_layers, ff_dim, dropout, positional, max_len, pad_id,
                                          causal=causal)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(d_model, num_tags)
        self.crf = crf

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, word_index: torch.Tensor,
                need_weights: bool = False) -> TaggerOutput:
        states, attentions = self.encoder(self.encoder.embedding(input_ids), attention_mask, need_weights)  # (B, T, d)
        return TaggerOutput(self.head(self.dropout(gather_words(states, word_index))), attentions)


class HFTokenTagger(nn.Module):
    """A pretrained `transformers` encoder (e.g. MiniLM) for token classification; each word's
    tag is predicted from its first sub-token.

    Args:
        encoder: a loaded `AutoModel`.
        num_tags: K.
        dropout: before the output layer.
        crf: an optional CRF output layer.
    """

    def __init__(self, encoder: nn.Module, num_tags: int, dropout: float = 0.1, crf: CRF | None = None):
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, num_tags)
        self.crf = crf

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, word_index: torch.Tensor,
                need_weights: bool = False) -> TaggerOutput:
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask.long(), output_attentions=need_weights,
                           return_dict=True)
        logits = self.head(self.dropout(gather_words(out.last_hidden_state, word_index)))  # (B, W, K)
        return TaggerOutput(logits, list(out.attentions) if need_weights else None)

    def freeze_encoder(self) -> None:
        """Only the output layer (and CRF) learn."""
        self.encoder.requires_grad_(False)
