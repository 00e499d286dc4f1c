"""Batches: padding and masks are made here and nowhere else.

`pad_batch` turns variable-length id lists into (B, T) ids and a (B, T) boolean mask (True =
real token). `BucketBatchSampler` groups sentences of similar length, so batches carry little
padding: the same epoch of data in fewer padded positions.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from seqlab.data.tokenize import PAD_ID


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int = PAD_ID) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id lists to the longest one.

    Returns:
        input_ids (B, T) long, attention_mask (B, T) bool (True = real token).
    """
    longest = max(len(seq) for seq in sequences)
    input_ids = torch.full((len(sequences), longest), pad_id, dtype=torch.long)
    for row, seq in enumerate(sequences):
        input_ids[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
    positions = torch.arange(longest)[None, :]
    lengths = torch.tensor([len(seq) for seq in sequences])[:, None]
    return input_ids, positions < lengths


class LabelledSequences(Dataset):
    """(token ids, label index) pairs; label -1 where labels are unknown (prediction)."""

    def __init__(self, ids: Sequence[Sequence[int]], labels: Sequence[int] | None = None):
        self.ids = ids
        self.labels = labels if labels is not None else [-1] * len(ids)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[Sequence[int], int]:
        return self.ids[index], self.labels[index]


def collate(batch: list[tuple[Sequence[int], int]]) -> dict[str, torch.Tensor]:
    """→ {"input_ids": (B, T), "attention_mask": (B, T), "labels": (B,)}."""
    input_ids, attention_mask = pad_batch([ids for ids, _ in batch])
    labels = torch.tensor([label for _, label in batch], dtype=torch.long)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of similar-length sequences, in random order.

    Indices are shuffled, cut into pools of `pool_batches` batches, each pool sorted by length
    and cut into batches; the batches are then shuffled. With `bucket=False` it is plain random
    batching (the baseline the benchmark compares against); with `shuffle=False` batches keep
    dataset order (for prediction, where outputs must line up with inputs).
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        shuffle: bool = True,
        bucket: bool = True,
        seed: int = 0,
        pool_batches: int = 50,
    ):
        self.lengths = lengths
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.bucket = bucket
        self.seed = seed
        self.pool_size = batch_size * pool_batches
        self.epoch = 0

    def __len__(self) -> int:
        return (len(self.lengths) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        rng = random.Random(self.seed + self.epoch)
        self.epoch += 1  # a new order every epoch, reproducible from the seed
        order = list(range(len(self.lengths)))
        if self.shuffle:
            rng.shuffle(order)
        if self.bucket:
            pools = [order[i : i + self.pool_size] for i in range(0, len(order), self.pool_size)]
            order = [i for pool in pools for i in sorted(pool, key=self.lengths.__getitem__)]
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        if self.shuffle:
            rng.shuffle(batches)
        yield from batches


def make_loader(
    ids: Sequence[Sequence[int]],
    labels: Sequence[int] | None,
    batch_size: int,
    shuffle: bool = False,
    bucket: bool = True,
    seed: int = 0,
) -> DataLoader:
    """A DataLoader of padded batches (see `collate`)."""
    sampler = BucketBatchSampler([len(x) for x in ids], batch_size, shuffle, bucket, seed)
    return DataLoader(LabelledSequences(ids, labels), batch_sampler=sampler, collate_fn=collate)
