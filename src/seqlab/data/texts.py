"""The one check of texts given to a pipeline (classify, tag, translate, augment, generate)."""

from __future__ import annotations

from collections.abc import Sequence

from seqlab.errors import SeqlabError


def check_texts(texts: str | Sequence[str], verb: str, *, max_chars: int | None = None, allow_blank: bool = False) -> list[str]:
    """`texts` as a list, or one clear error for input no model can take.

    The same rules for every task: a single string is one text; an empty list, an item that is
    not a string and a text over `max_chars` characters are errors; a blank text is one too,
    unless the task has a natural answer for it (`allow_blank`: no entities in an empty text).

    Args:
        texts: one text or a sequence of texts.
        verb: what the caller does with them, for the message ("classify", "translate").
        max_chars: the longest text accepted (a run's `data.max_chars`); None: no limit.
    """
    items = [texts] if isinstance(texts, str) else list(texts)
    if not items:
        raise SeqlabError(f"nothing to {verb}: give at least one text")
    for number, text in enumerate(items, 1):
        if not isinstance(text, str):
            raise SeqlabError(f"input {number} is {type(text).__name__}, not text")
        if not allow_blank and not text.strip():
            raise SeqlabError(f"input {number} is empty; give some text to {verb}")
        if max_chars is not None and len(text) > max_chars:
            raise SeqlabError(f"input {number} is {len(text):,} characters, over the limit of {max_chars:,} (data.max_chars)")
    return items
