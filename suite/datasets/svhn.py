"""SVHN: `train_32x32.mat` / `test_32x32.mat`, downloaded with torchvision's checksums when missing."""
from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from ..errors import DatasetError
from . import formats
from .download import download_atomically
from .registry import DatasetSpec, register_dataset

DIGIT_CLASSES = tuple(str(d) for d in range(10))
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def open_svhn(root: Path, train: bool, download: bool) -> Dataset:
    from torchvision.datasets import SVHN

    url, filename, md5 = SVHN.split_list["train" if train else "test"]
    path = root / filename
    if not path.is_file():
        if not download:
            raise DatasetError(f"SVHN file '{path}' not found and download is off")
        download_atomically(url, path, md5, "SVHN", str(path))
    return formats.read_svhn(path)


SVHN_SPEC = register_dataset(DatasetSpec(
    "SVHN", DIGIT_CLASSES, IMAGENET_MEAN, IMAGENET_STD, validation_size=6000, flip=False, drop_last=True,
    shuffle_test=False, autoaugment_policy="SVHN", sizes=(73257, 26032), open=open_svhn,
    default_section={"num_epochs": 40, "opt_milestones": [20, 30], "mem_examples": 100, "lr_schedule": "multistep"},
    vit_mean=(0.4377, 0.4438, 0.4728), vit_std=(0.1980, 0.2010, 0.1970)))
