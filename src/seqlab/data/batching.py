"""Batches: padding and masks are made here and nowhere else.

`pad_batch` turns variable-length id lists into (B, T) ids and a (B, T) boolean mask (True =
real token). `BucketBatchSampler` groups sentences of similar length, so batches carry little
padding: the same epoch of data in fewer padded positions.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, cast

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

if TYPE_CHECKING:
    from torch.utils.data.dataloader import _BaseDataLoaderIter

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

    Two things for training (`seqlab.trainer.fit` switches them on through `training_loader`):
    - `shard`: under DDP every process builds the same global batches (same seed, same order)
      and takes its own slice `batch[rank::world]`, so the global batch and the number of steps
      per epoch are those of one process. (Lightning only injects a `DistributedSampler` into
      plain samplers, not into a batch sampler like this one.)
    - `state_dict`/`load_state_dict`: the epoch and how many batches of it were handed out, so
      a run resumed from a mid-epoch checkpoint continues with the next unseen batch.

    With `max_tokens` (translation's `train.batch_tokens`) a batch holds as many sequences as fit
    `max_tokens` padded positions (sequences × the longest `lengths` in it) instead of
    `batch_size`, as fairseq's `--max-tokens` does: the whole data set is sorted by length once
    (ties in a seeded random order) and cut into batches, and every epoch shuffles the order of
    those batches, so their number is the same in every epoch.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        shuffle: bool = True,
        bucket: bool = True,
        seed: int = 0,
        pool_batches: int = 50,
        shard: bool = False,
        max_tokens: int | None = None,
    ):
        self.lengths = lengths
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.bucket = bucket
        self.seed = seed
        self.pool_size = batch_size * pool_batches
        self.shard = shard
        self.max_tokens = max_tokens
        self._by_tokens: list[list[int]] | None = None
        self.epoch = 0  # the epoch the next __iter__ starts
        self._position: tuple[int, int] | None = None  # (epoch, batches handed out) while iterating
        self._skip = 0  # batches of the next epoch already seen before a resume

    def __len__(self) -> int:
        if self.max_tokens:
            return len(self._token_batches())
        return (len(self.lengths) + self.batch_size - 1) // self.batch_size

    def _token_batches(self) -> list[list[int]]:
        """The `max_tokens` batches (made once): by length if bucketing, else in a seeded random order."""
        if self._by_tokens is None:
            order = list(range(len(self.lengths)))
            random.Random(f"tokens:{self.seed}").shuffle(order)  # ties (and bucket=False) in random order
            if self.bucket:
                order.sort(key=self.lengths.__getitem__)
            assert self.max_tokens is not None  # only called with max_tokens
            batch: list[int]
            self._by_tokens, batch, longest = [], [], 0
            for i in order:
                wider = max(longest, self.lengths[i])
                if batch and (len(batch) + 1) * wider > self.max_tokens:
                    self._by_tokens.append(batch)
                    batch, wider = [], self.lengths[i]
                batch.append(i)
                longest = wider
            if batch:
                self._by_tokens.append(batch)
        return self._by_tokens

    def batches(self, epoch: int) -> list[list[int]]:
        """Epoch `epoch`'s global batches: a new order every epoch, reproducible from the seed."""
        rng = random.Random(self.seed + epoch)
        if self.max_tokens:
            batches = [list(batch) for batch in self._token_batches()]
            if self.shuffle:
                rng.shuffle(batches)
            return batches
        order = list(range(len(self.lengths)))
        if self.shuffle:
            rng.shuffle(order)
        if self.bucket:
            pools = [order[i : i + self.pool_size] for i in range(0, len(order), self.pool_size)]
            order = [i for pool in pools for i in sorted(pool, key=self.lengths.__getitem__)]
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        if self.shuffle:
            rng.shuffle(batches)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        epoch, skip = self.epoch, self._skip
        self.epoch, self._skip = epoch + 1, 0
        rank, world = _process_slot() if self.shard else (0, 1)
        for count, batch in enumerate(self.batches(epoch)[skip:], start=skip + 1):
            self._position = (epoch, count)
            # A batch smaller than the world (a short last batch) gives the processes left
            # without an example its last one again: every process must take every step.
            yield batch[rank::world] or batch[-1:]
        self._position = None

    def state_dict(self) -> dict[str, int]:
        """{"epoch", "batches"}: where the next batch comes from (batches = already handed out)."""
        if self._position is None:
            return {"epoch": self.epoch, "batches": self._skip}
        epoch, count = self._position
        return {"epoch": epoch + 1, "batches": 0} if count >= len(self) else {"epoch": epoch, "batches": count}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self._skip, self._position = int(state["epoch"]), int(state["batches"]), None


def _process_slot() -> tuple[int, int]:
    """(rank, world size) of this process in the DDP group; (0, 1) outside one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class ResumableLoader(DataLoader):
    """A DataLoader over a `BucketBatchSampler` whose place in the data is saved with a
    checkpoint: Lightning stores `state_dict()` and hands it back through `load_state_dict`.

    Creating a DataLoader iterator draws a seed from the global torch RNG; this one puts the RNG
    back, so a run resumed mid-epoch (which creates one more iterator) sees the same dropout
    masks as a run never stopped. (A dedicated `torch.Generator` would do it too, but cannot be
    sent to `ddp_spawn` processes.) The seed only matters to worker processes, which seqlab's
    in-memory data does not use.
    """

    def __iter__(self) -> _BaseDataLoaderIter:
        state = torch.get_rng_state()
        try:
            return super().__iter__()
        finally:
            torch.set_rng_state(state)

    def state_dict(self) -> dict[str, int]:
        return cast(BucketBatchSampler, self.batch_sampler).state_dict()

    def load_state_dict(self, state: dict[str, int]) -> None:
        cast(BucketBatchSampler, self.batch_sampler).load_state_dict(state)


class ShareOfBatch:
    """A collate function whose batch is random as a whole (masked-LM masking: one draw for the
    global batch), made to shard after collating: under DDP every process collates the whole
    global batch (same examples, same random draws) and keeps its rows `[rank::world]` of
    every tensor, so the processes' rows are exactly one process's batch. A collate function
    asks for this with the attribute `collates_whole_batch = True`. (It reads the process's
    rank when called, so it must run in the training process: loader workers, which seqlab's
    in-memory loaders do not use, are outside the process group.)"""

    collates_whole_batch = True

    def __init__(self, collate: Any):
        self.collate = collate

    def __call__(self, examples: list[Any]) -> dict[str, Any]:
        batch = self.collate(examples)
        rank, world = _process_slot()
        if world == 1:
            return batch
        rows = len(examples)
        take = slice(rank, None, world) if rank < rows else slice(rows - 1, rows)  # (as BucketBatchSampler does)
        return {
            key: value[take] if isinstance(value, torch.Tensor) and value.dim() and len(value) == rows else value
            for key, value in batch.items()
        }


def training_loader(loader: DataLoader) -> DataLoader:
    """`loader` made ready for training by `seqlab.trainer.fit`: resumable (see `ResumableLoader`)
    and sharded across DDP processes: the sampler hands each process its slice of every batch,
    or, for a collate function with `collates_whole_batch`, each process collates the whole
    batch and keeps its rows (`ShareOfBatch`). Loaders not built on `BucketBatchSampler` are
    returned as they are (Lightning shards those itself)."""
    sampler = loader.batch_sampler
    if not isinstance(sampler, BucketBatchSampler):
        return loader
    collate = loader.collate_fn
    whole = getattr(collate, "collates_whole_batch", False)
    if whole and not isinstance(collate, ShareOfBatch):
        collate = ShareOfBatch(collate)
    sampler.shard = not whole
    return ResumableLoader(loader.dataset, batch_sampler=sampler, collate_fn=collate, num_workers=loader.num_workers)


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
