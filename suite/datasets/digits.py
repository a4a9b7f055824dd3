"""DIGITS: scikit-learn's 1,797 handwritten digits upscaled to 32x32 RGB: the offline quick start."""
from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from .registry import DatasetSpec, TensorImages, register_dataset

DIGITS_MEAN, DIGITS_STD = (0.30586, 0.30586, 0.30586), (0.32297, 0.32297, 0.32297)  # of the 1,297 train images


DIGITS_TEST_SIZE = 500  # the last 500 of the 1,797 images form the test set


def read_digits(train: bool) -> TensorImages:
    """The 8x8 UCI handwritten digits from scikit-learn, upscaled to 32x32 RGB (bilinear)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = torch.from_numpy(digits.images).float().unsqueeze(1) * (255.0 / 16.0)  # 0..16 -> 0..255
    upscaled = torch.nn.functional.interpolate(pixels, size=(32, 32), mode="bilinear", align_corners=False)
    images = upscaled.round().clamp(0, 255).to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
    labels = torch.from_numpy(digits.target)
    cut = len(images) - DIGITS_TEST_SIZE
    part = slice(0, cut) if train else slice(cut, None)
    return TensorImages(images[part].clone(), labels[part].clone())


def open_digits(root: Path, train: bool, download: bool) -> Dataset:
    return read_digits(train)


DIGITS_SPEC = register_dataset(DatasetSpec(
    "DIGITS", tuple(str(d) for d in range(10)), DIGITS_MEAN, DIGITS_STD, validation_size=100, flip=False,
    drop_last=True, shuffle_test=False, autoaugment_policy="SVHN", sizes=(1297, 500), open=open_digits,
    default_section={"num_epochs": 20, "opt_milestones": [12, 16], "mem_examples": 100, "lr_schedule": "multistep"}))
