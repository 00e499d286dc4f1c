"""Shared fixtures: small labelled files written on the fly, and quiet logs."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

POSITIVE = ["great", "good", "love", "wonderful", "fun", "superb"]
NEGATIVE = ["bad", "awful", "hate", "boring", "dull", "poor"]
FILLER = ["the", "movie", "was", "a", "plot", "film", "really", "quite"]


def sentiment_rows(count: int, seed: int = 0) -> list[tuple[str, str]]:
    """Synthetic but learnable sentences: the label is carried by the sentiment words."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        positive = rng.random() < 0.5
        words = rng.choices(POSITIVE if positive else NEGATIVE, k=2) + rng.choices(FILLER, k=rng.randint(1, 6))
        rng.shuffle(words)
        rows.append((" ".join(words), "pos" if positive else "neg"))
    return rows


def write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


@pytest.fixture
def sentiment_csv(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "sentiment.csv", sentiment_rows(200))
