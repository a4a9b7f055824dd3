"""The original two-step split of a training set into (training subset, validation hold-out)."""
from __future__ import annotations

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
