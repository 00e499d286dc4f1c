"""Sequence taggers: a score for every tag of every word (task tag, e.g. named entities).

Three encoders share one contract:

- `BiLSTMTagger`: word embeddings [+ a character encoding of each word + a casing embedding]
  → dropout → BiLSTM (packed, so padding never changes an output) → dropout → linear (Huang et
  al., 2015; Lample et al., 2016 add the CRF). The character encoder is a CNN with max-pooling
  (`CharCNN`, Ma & Hovy, 2016) or a BiLSTM whose final states are kept (`CharLSTM`, Lample et
  al., 2016); the casing class ("Paris": initial upper, "IBM": all upper, "1996": numeric, ...)
  is the small learned feature of Reimers & Gurevych (2017).
- `TransformerTagger`: the from-scratch `TransformerEncoder` (attention from
  `seqlab.models.attention`) → linear at every word.
- `HFTokenTagger`: a pretrained `transformers` encoder over sub-words; each word is read at its
  first sub-token (Devlin et al., 2019, §5.3), so the tags stay one per word.

`forward(input_ids, attention_mask, word_index, need_weights=False)` takes token ids (B, T), the
token mask (B, T) and, for every word, the position of its first token (B, W) (for word-level
vocabularies simply 0..W-1), and returns `TaggerOutput(logits (B, W, K), attentions)`. Any of them
may carry a `CRF` (`.crf`, else None) that the task uses for the loss and for decoding. A
`BiLSTMTagger` with character or casing features (`.word_features` True) also takes
`char_ids` (B, T, C) and `casing_ids` (B, T), made from the words as written by the task.
"""

from __future__ import annotations

from typing import Any, NamedTuple, cast

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


# Characters are read by code point: 0 pads, 1..256 are U+0000..U+00FF (CoNLL-2003 is ASCII),
# and any other code point shares one of 256 further ids (cp mod 256), so no character
# vocabulary has to be learned or saved with a run.
CHAR_VOCAB = 1 + 256 + 256
# Casing classes of Reimers & Gurevych (2017): 0 pads.
CASINGS = (
    "[PAD]",
    "numeric",
    "mainly_numeric",
    "all_lower",
    "all_upper",
    "initial_upper",
    "mixed_case",
    "contains_digit",
    "other",
)


def char_ids(word: str, max_chars: int) -> list[int]:
    """The character ids of a word's first `max_chars` characters (see `CHAR_VOCAB`)."""
    return [1 + cp if cp < 256 else 257 + cp % 256 for cp in map(ord, word[:max_chars])] or [1]


def casing_id(word: str) -> int:
    """The casing class of a word, an index into `CASINGS`."""
    digits = sum(c.isdigit() for c in word)
    if word.isdigit():
        return 1
    if digits / max(len(word), 1) > 0.5:
        return 2
    if word.islower():
        return 3
    if word.isupper():
        return 4
    if word[:1].isupper():
        return 5
    if digits:
        return 7
    return 6 if any(c.isalpha() for c in word) else 8  # "iPhone"; "--", "(", "$"


class CharCNN(nn.Module):
    """Each word from its characters: embeddings → dropout → convolution → max over positions
    (Ma & Hovy, 2016: 30-d characters, 30 filters of width 3).

    Args:
        char_dim: character embedding size.
        filters: output size (feature maps).
        width: convolution window in characters.
        dropout: on the character embeddings (Ma & Hovy put it there).
    """

    def __init__(self, char_dim: int = 30, filters: int = 30, width: int = 3, dropout: float = 0.5):
        super().__init__()
        self.embedding = nn.Embedding(CHAR_VOCAB, char_dim, padding_idx=0)
        init_embeddings(self.embedding, (3 / char_dim) ** 0.5)  # Ma & Hovy's U(-sqrt(3/d), +sqrt(3/d))
        self.dropout = nn.Dropout(dropout)
        self.conv = nn.Conv1d(char_dim, filters, width, padding=width // 2)
        self.output_dim = filters

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        """chars (N, C) ids, 0-padded, each word at least one character → (N, filters)."""
        embedded = self.dropout(self.embedding(chars)).transpose(1, 2)  # (N, E, C)
        maps = self.conv(embedded)[..., : chars.size(1)]  # (N, F, C); an even width adds one position
        return maps.masked_fill((chars == 0)[:, None, :], float("-inf")).amax(dim=2)  # padding never wins


class CharLSTM(nn.Module):
    """Each word from its characters: embeddings → BiLSTM → the final state of each direction,
    concatenated (Lample et al., 2016: 25-d characters, 25 units per direction).

    Args:
        char_dim: character embedding size.
        hidden: units per direction (the output is 2 × hidden).
        dropout: on the character embeddings.
    """

    def __init__(self, char_dim: int = 25, hidden: int = 25, dropout: float = 0.5):
        super().__init__()
        self.embedding = nn.Embedding(CHAR_VOCAB, char_dim, padding_idx=0)
        init_embeddings(self.embedding, (3 / char_dim) ** 0.5)
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(char_dim, hidden, batch_first=True, bidirectional=True)
        self.output_dim = 2 * hidden

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        """chars (N, C) ids, 0-padded, each word at least one character → (N, 2 × hidden)."""
        lengths = (chars != 0).sum(1).clamp_min(1).cpu()
        packed = pack_padded_sequence(self.dropout(self.embedding(chars)), lengths, batch_first=True, enforce_sorted=False)
        _, (hidden, _) = self.lstm(packed)  # (2, N, H): the forward state after the last character, the backward after the first
        return torch.cat([hidden[0], hidden[1]], dim=-1)


class BiLSTMTagger(nn.Module):
    """Args:
    vocab_size, num_tags: word ids and tags (K).
    embed_dim, hidden_dim, num_layers: sizes (hidden_dim per direction).
    dropout: on the word representations, between layers and before the output layer.
    pad_id: the padding word id (its embedding stays zero).
    crf: the CRF output layer, or None for a softmax tagger.
    char_features: "cnn" (`CharCNN`), "lstm" (`CharLSTM`) or "none".
    char_dim, char_hidden, char_width: the character encoder's sizes (char_hidden: CNN
        filters, or LSTM units per direction; char_width: the CNN's window).
    casing_dim: size of the casing-class embedding (0: none).
    max_word_chars: characters read per word (the task encodes at most this many).
    """

    def __init__(
        self,
        vocab_size: int,
        num_tags: int,
        embed_dim: int = 128,
        hidden_dim: int = 128,
        num_layers: int = 1,
        dropout: float = 0.5,
        pad_id: int = 0,
        crf: CRF | None = None,
        char_features: str = "none",
        char_dim: int = 30,
        char_hidden: int = 30,
        char_width: int = 3,
        casing_dim: int = 0,
        max_word_chars: int = 30,
    ):
        super().__init__()
        self.max_word_chars = max_word_chars
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        init_embeddings(self.embedding)
        if char_features == "cnn":
            self.chars: CharCNN | CharLSTM | None = CharCNN(char_dim, char_hidden, char_width, dropout)
        elif char_features == "lstm":
            self.chars = CharLSTM(char_dim, char_hidden, dropout)
        elif char_features == "none":
            self.chars = None
        else:
            raise ValueError(f"char_features must be cnn, lstm or none, not {char_features!r}")
        self.casing = nn.Embedding(len(CASINGS), casing_dim, padding_idx=0) if casing_dim else None
        width = embed_dim + (self.chars.output_dim if self.chars is not None else 0) + casing_dim
        self.lstm = nn.LSTM(
            width,
            hidden_dim,
            num_layers=num_layers,
            bidirectional=True,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(2 * hidden_dim, num_tags)
        self.crf = crf

    @property
    def word_features(self) -> bool:
        """Whether `forward` needs `char_ids` and `casing_ids`."""
        return self.chars is not None or self.casing is not None

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        word_index: torch.Tensor,
        need_weights: bool = False,
        char_ids: torch.Tensor | None = None,
        casing_ids: torch.Tensor | None = None,
    ) -> TaggerOutput:
        """char_ids: (B, T, C) character ids of each token (0-padded); casing_ids: (B, T)."""
        lengths = attention_mask.sum(1).cpu()
        parts = [self.embedding(input_ids)]  # (B, T, E)
        if self.chars is not None:
            if char_ids is None:
                raise ValueError("this tagger reads characters: pass char_ids (B, T, C)")
            real = attention_mask.bool()
            chars = torch.zeros(*input_ids.shape, self.chars.output_dim, device=input_ids.device)  # (B, T, F)
            chars[real] = self.chars(char_ids[real])  # only real words are encoded: (N, C) → (N, F)
            parts.append(chars)
        if self.casing is not None:
            if casing_ids is None:
                raise ValueError("this tagger reads casing classes: pass casing_ids (B, T)")
            parts.append(self.casing(casing_ids))  # (B, T, casing_dim)
        embedded = self.dropout(torch.cat(parts, dim=-1))  # (B, T, E + F + casing_dim)
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

    def __init__(
        self,
        vocab_size: int,
        num_tags: int,
        d_model: int = 128,
        num_heads: int = 4,
        num_layers: int = 2,
        ff_dim: int = 256,
        dropout: float = 0.1,
        positional: str = "sinusoidal",
        max_len: int = 512,
        pad_id: int = 0,
        crf: CRF | None = None,
        causal: bool = False,
    ):
        super().__init__()
        self.encoder = TransformerEncoder(
            vocab_size, d_model, num_heads, num_layers, ff_dim, dropout, positional, max_len, pad_id, causal=causal
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(d_model, num_tags)
        self.crf = crf

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, word_index: torch.Tensor, need_weights: bool = False
    ) -> TaggerOutput:
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
        self.head = nn.Linear(cast(Any, encoder).config.hidden_size, num_tags)  # a transformers model's config
        self.crf = crf

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, word_index: torch.Tensor, need_weights: bool = False
    ) -> TaggerOutput:
        out = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask.long(), output_attentions=need_weights, return_dict=True
        )
        logits = self.head(self.dropout(gather_words(out.last_hidden_state, word_index)))  # (B, W, K)
        return TaggerOutput(logits, list(out.attentions) if need_weights else None)

    def freeze_encoder(self) -> None:
        """Only the output layer (and CRF) learn."""
        self.encoder.requires_grad_(False)
