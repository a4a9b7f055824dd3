"""The original two-step split of a training set into (training subset, validation hold-out), and
the training batches per epoch of a subset."""
from __future__ import annotations

import math

import torch
from torch.utils.data import random_split

from .errors import DatasetError


def split_indices(n: int, train_examples: int, validation_size: int, seed: int) -> tuple[list[int], list[int]]:
    """(train, validation) indices exactly as the original `split_dataset`: a first split with a fresh
    generator seeded by `seed` holds out the validation images, a second one (same seed, fresh
    generator) keeps `train_examples` of the rest. Verified against tests/data/reference_splits.json."""
    if validation_size >= n:
        raise DatasetError(f"the dataset has {n} images, not more than its validation split of {validation_size}")
    rest, validation = random_split(range(n), [n - validation_size, validation_size],
                                    generator=torch.Generator().manual_seed(seed))
    kept = min(len(rest), train_examples)
    train, _ = random_split(rest, [kept, len(rest) - kept], generator=torch.Generator().manual_seed(seed))
    return [rest.indices[i] for i in train.indices], list(validation.indices)


def steps_per_epoch(n: int, batch_size: int, drop_last: bool) -> int:
    """Training batches per epoch of `n` images, as the original loader's `len`: the training loop and
    the device-hour estimates (suite/estimate.py) both use this, so they cannot count differently."""
    return n // batch_size if drop_last else math.ceil(n / batch_size)
