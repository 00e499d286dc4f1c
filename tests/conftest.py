"""What every test starts from, and shared fixtures (small labelled files written on the fly).

Every test runs offline (the Hugging Face hub flags are set before anything imports
transformers, so a hub id fails fast instead of waiting on the network), with the same seeds
(Python, NumPy, torch) and the same number of torch threads (2, this machine's cores: timings
and reductions do not depend on where the suite runs).

Markers (pyproject.toml; all run by `make test` unless deselected):
- `network`: fetches a real pinned asset from the package registry (real-asset checks; CI runs them).
- `browser`: drives Debian's Chromium through Playwright (skipped with the reason when it is missing).
- `compile`: calls torch.compile (minutes of compilation; the long ones are also `slow`).
- `docs`: builds the documentation site.
- `slow`: long experiments, opt-in: `pytest -m slow`.
A quick offline run: `pytest -m "not network and not browser and not docs"`.
"""

from __future__ import annotations

import csv
import os
import random
from pathlib import Path

import pytest

for _flag in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_flag, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
TORCH_THREADS = 2


@pytest.fixture(autouse=True)
def _same_start() -> None:
    """The same seeds and thread count for every test."""
    import numpy as np
    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    torch.set_num_threads(TORCH_THREADS)


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


LLAMA_SENTENCES = ["the capital of france is paris", "the cat sat on the mat", "a dog ran in the park"]


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory):
    """A random 2-layer Llama and a word-level tokenizer with eos but no pad token."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-llama")
    backend = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.train_from_iterator(LLAMA_SENTENCES, trainers.WordLevelTrainer(special_tokens=["[UNK]", "<s>", "</s>", "[PAD]"]))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", bos_token="<s>", eos_token="</s>")
    assert tokenizer.pad_token is None
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=backend.get_vocab_size(),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=64,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=None,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder
