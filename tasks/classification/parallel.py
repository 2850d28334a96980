"""Classification under torchrun: one global sample order split over the ranks, and augmentation that does
not depend on the number of processes.

Conventions (recorded in the run record's ``distributed``): ``batch_size`` is the global batch, each of the
``world`` ranks takes ``batch_size // world``; the learning rate is used as given (no scaling rule); the
epoch's sample order is one permutation (seed, epoch) of which rank r takes every world-th sample from r, so
the ranks' i-th batches together are the single process's i-th batch. ``augment_rng='sample'`` draws each
sample's crop and flip from its own seed (seed, epoch, index); ``'process'`` (the default) from the process's
stream (seeded ``seed + 1000 * rank``), which differs from the single-process run under torchrun.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from tasks.distributed import DistInfo, shard


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The global sample order of ``epoch`` (the single process's RandomSampler order)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 10007 + epoch)).tolist()


class SampleSeeded(Dataset):
    """``base`` whose ``i``-th sample of epoch ``epoch`` is drawn under the torch seed (seed, epoch, i): the
    same augmentation whichever process or loader worker reads it."""

    def __init__(self, base: Dataset, seed: int) -> None:
        self.base, self.seed, self.epoch = base, seed, 0

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(((self.seed * 1_000_003 + self.epoch) * 10_000_019 + i) % (2**63))
            return self.base[i]


def train_loader(train_set: Dataset, batch_size: int, seed: int, epoch: int, info: DistInfo, workers: int):
    """The epoch's training loader of this rank: its share of the global order, batches of
    ``batch_size // world`` (batch_size: the global batch)."""
    if isinstance(train_set, SampleSeeded):
        train_set.epoch = epoch
    order = shard(epoch_order(len(train_set), seed, epoch), info)
    return DataLoader(
        train_set,
        batch_size=per_process_batch(batch_size, info),
        sampler=order,
        num_workers=workers,
        drop_last=len(train_set) > batch_size,
    )


def eval_loader(dataset: Dataset, batch_size: int, workers: int = 0) -> DataLoader:
    """A loader over ``dataset`` in order, with a generator of its own: evaluating (or measuring) draws
    nothing from the global RNG that training's crops and flips use, so how often a run evaluates leaves its
    training bit for bit as it was."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        generator=torch.Generator().manual_seed(0),
    )


def first_batches(dataset: Dataset, batch_size: int, n: int) -> list[Tensor]:
    """The images of the evaluation loader's first ``n`` batches (the efficiency measurement's input), read
    without decoding the rest of the set."""
    return [x for x, _ in itertools.islice(eval_loader(dataset, batch_size), n)]


def per_process_batch(batch_size: int, info: DistInfo) -> int:
    """Each rank's batch of a global ``batch_size``."""
    return max(1, batch_size // info.world)
