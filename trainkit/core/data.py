"""Data plumbing: a resumable, shardable batch sampler, the dry run's loader, and the
``DataBundle`` a recipe's ``data`` node builds.

The sampler owns the data order: epoch ``e`` visits a permutation drawn from
``seed + e`` (independent of any global RNG), each process takes every
``world``-th element of it, and ``set_epoch(e, start_batch=k)`` skips the first
``k`` batches, so a run resumed mid-epoch sees exactly the batches the
uninterrupted run would have seen.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset


class EpochBatchSampler(torch.utils.data.Sampler):
    """Yields lists of dataset indices, one list per batch.

    Training (``shuffle=True``): every rank gets ``len(dataset) // world`` indices
    of the epoch's permutation (the tail is dropped so all ranks take the same
    number of steps). Evaluation (``shuffle=False``): rank ``r`` takes
    ``indices[r::world]``, nothing dropped.
    """

    def __init__(self, num_samples: int, batch_size: int, *, shuffle: bool = True,
                 drop_last: bool = False, seed: int = 0, rank: int = 0, world: int = 1):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if num_samples < 1:
            raise ValueError("the dataset is empty")
        self.num_samples, self.batch_size = num_samples, batch_size
        self.shuffle, self.drop_last, self.seed = shuffle, drop_last, seed
        self.rank, self.world = rank, world
        self.epoch, self.start_batch = 0, 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def _indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.num_samples, generator=g).tolist()
            per_rank = self.num_samples // self.world
            return order[self.rank::self.world][:per_rank]
        return list(range(self.num_samples))[self.rank::self.world]

    def __len__(self) -> int:
        n = self.num_samples // self.world if self.shuffle else len(range(self.rank, self.num_samples, self.world))
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        idx = self._indices()
        for b in range(self.start_batch, len(self)):
            yield idx[b * self.batch_size:(b + 1) * self.batch_size]


class CountingLoader:
    """``n`` empty batches per epoch: the loader of a dry run (schedule preview)."""

    def __init__(self, n: int):
        if n < 1:
            raise ValueError(f"iters_per_epoch must be >= 1, got {n}")
        self.n, self.start = n, 0
        self.batch_sampler = self

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.start = start_batch

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        return iter([None] * (self.n - self.start))


def make_loader(dataset: Dataset, batch_size: int, *, shuffle: bool, drop_last: bool = False,
                seed: int = 0, rank: int = 0, world: int = 1, num_workers: int = 0,
                collate_fn: Callable | None = None) -> DataLoader:
    sampler = EpochBatchSampler(len(dataset), batch_size, shuffle=shuffle, drop_last=drop_last,
                                seed=seed, rank=rank, world=world)
    # A private generator: creating an iterator must not draw from the global RNG.
    return DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers,
                      collate_fn=collate_fn, generator=torch.Generator().manual_seed(seed),
                      persistent_workers=False)


@dataclass
class DataBundle:
    """What a recipe's ``data`` node builds: datasets plus how to batch them."""

    train: Dataset
    val: Dataset | None = None
    collate_fn: Callable | None = None


def to_device(batch: Any, device: torch.device) -> Any:
    if device.type == "cpu":
        return batch
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch
