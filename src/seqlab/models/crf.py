"""A linear-chain conditional random field over tag sequences (Lafferty et al., 2001), the output
layer of the BiLSTM-CRF tagger (Huang et al., 2015; Lample et al., 2016).

The score of tags y_1..y_n for per-word emission scores E is

    s(y) = start[y_1] + Σ_t E[t, y_t] + Σ_t transitions[y_{t-1}, y_t] + end[y_n]

and p(y | x) = exp s(y) / Z with Z = Σ_y' exp s(y'). `log_likelihood` computes log p with the
forward algorithm (log Z in O(n·K²)); `viterbi` finds argmax_y s(y). Both are checked against
brute-force enumeration of every path in the tests.

Transitions a tag scheme forbids (O → I-PER in BIO, B-PER → B-LOC in IOBES, ...) can be passed as
masks: they get a score of -10,000, so neither training nor decoding ever takes them and every
decoded sequence is well-formed.
"""

from __future__ import annotations

import torch
from torch import nn

FORBIDDEN = -10_000.0  # not -inf: a row of only forbidden moves must not turn logsumexp into NaN


class CRF(nn.Module):
    """Args:
    num_tags: K.
    allowed: optional (K, K) bool, [i, j] True when tag j may follow tag i.
    allowed_start, allowed_end: optional (K,) bool, tags that may open / close a sequence.
    """

    allowed: torch.Tensor  # buffers registered in __init__
    allowed_start: torch.Tensor
    allowed_end: torch.Tensor

    def __init__(
        self,
        num_tags: int,
        allowed: torch.Tensor | None = None,
        allowed_start: torch.Tensor | None = None,
        allowed_end: torch.Tensor | None = None,
    ):
        super().__init__()
        self.num_tags = num_tags
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags).uniform_(-0.1, 0.1))  # [from, to]
        self.start = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))
        self.end = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))
        ones = torch.ones(num_tags, dtype=torch.bool)
        # Derived from the tag names, so rebuilt with the model rather than saved with the weights.
        self.register_buffer("allowed", allowed if allowed is not None else ones[:, None] & ones, persistent=False)
        self.register_buffer("allowed_start", allowed_start if allowed_start is not None else ones, persistent=False)
        self.register_buffer("allowed_end", allowed_end if allowed_end is not None else ones, persistent=False)

    def _scores(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(transitions (K, K), start (K,), end (K,)) with the forbidden moves masked."""
        return (
            self.transitions.masked_fill(~self.allowed, FORBIDDEN),
            self.start.masked_fill(~self.allowed_start, FORBIDDEN),
            self.end.masked_fill(~self.allowed_end, FORBIDDEN),
        )

    def score(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """s(y) of the given paths.

        Args:
            emissions: (B, T, K) per-word tag scores.
            tags: (B, T) tag ids (anything at padded positions).
            mask: (B, T) bool, True = real word; every sequence has at least its first word.

        Returns:
            (B,) path scores.
        """
        transitions, start, end = self._scores()
        emissions = emissions.float()
        real = mask.to(emissions.dtype)
        tags = tags.masked_fill(~mask, 0)
        emitted = emissions.gather(2, tags[..., None]).squeeze(-1)  # (B, T)
        total = start[tags[:, 0]] + (emitted * real).sum(1)
        total = total + (transitions[tags[:, :-1], tags[:, 1:]] * real[:, 1:]).sum(1)  # (B, T-1) moves
        last = tags.gather(1, (mask.sum(1) - 1)[:, None]).squeeze(1)  # (B,)
        return total + end[last]

    def log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """log Z for every sequence, by the forward algorithm: (B, T, K), (B, T) → (B,)."""
        transitions, start, end = self._scores()
        emissions = emissions.float()
        alpha = start + emissions[:, 0]  # (B, K): log-sum of every path ending in each tag
        for t in range(1, emissions.size(1)):
            step = torch.logsumexp(alpha[:, :, None] + transitions[None], dim=1) + emissions[:, t]  # (B, K)
            alpha = torch.where(mask[:, t, None], step, alpha)  # a finished sequence keeps its alpha
        return torch.logsumexp(alpha + end, dim=1)

    def log_likelihood(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """log p(tags | emissions) per sequence, (B,); the task's loss is its negative mean."""
        return self.score(emissions, tags, mask) - self.log_partition(emissions, mask)

    @torch.no_grad()
    def viterbi(self, emissions: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
        """The best path of each sequence, as many tag ids as it has real words."""
        transitions, start, end = self._scores()
        emissions = emissions.float()
        best = start + emissions[:, 0]  # (B, K): best score of a path ending in each tag
        history = []  # per step (B, K): the best previous tag
        for t in range(1, emissions.size(1)):
            candidates = best[:, :, None] + transitions[None]  # (B, K_prev, K)
            scores, previous = candidates.max(dim=1)
            best = torch.where(mask[:, t, None], scores + emissions[:, t], best)
            history.append(previous)
        last = (best + end).argmax(dim=1).tolist()
        lengths = mask.sum(1).tolist()
        paths = []
        for row, (tag, length) in enumerate(zip(last, lengths)):
            path = [tag]
            for t in range(length - 1, 0, -1):
                path.append(int(history[t - 1][row, path[-1]]))
            paths.append(path[::-1])
        return paths
