"""DIGITS: scikit-learn's 1,797 handwritten digits upscaled to 32x32 RGB: the offline quick start."""
from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from . import formats
from .registry import DatasetSpec, register_dataset

DIGITS_MEAN, DIGITS_STD = (0.30586, 0.30586, 0.30586), (0.32297, 0.32297, 0.32297)  # of the 1,297 train images


def open_digits(root: Path, train: bool, download: bool) -> Dataset:
    return formats.read_digits(train)


DIGITS_SPEC = register_dataset(DatasetSpec(
    "DIGITS", tuple(str(d) for d in range(10)), DIGITS_MEAN, DIGITS_STD, validation_size=100, flip=False,
    drop_last=True, shuffle_test=False, autoaugment_policy="SVHN", sizes=(1297, 500), open=open_digits,
    default_section={"num_epochs": 20, "opt_milestones": [12, 16], "mem_examples": 100, "lr_schedule": "multistep"}))
