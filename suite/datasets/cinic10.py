"""CINIC10: never downloaded; placed by hand as `CINIC10/{train,valid,test}/<class>/*.png`."""
from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from ..errors import DatasetError
from . import formats
from .cifar10 import CIFAR10_CLASSES
from .registry import DatasetSpec, register_dataset

CINIC_MEAN, CINIC_STD = (0.47889522, 0.47227842, 0.43047404), (0.24205776, 0.23828046, 0.25874835)


def open_cinic10(root: Path, train: bool, download: bool) -> Dataset:
    folder = root / "CINIC10" / ("train" if train else "test")
    if not folder.is_dir():
        raise DatasetError(
            f"CINIC10 is not downloaded automatically: place it as {root}/CINIC10/{{train,valid,test}}/<class>/*.png"
        )
    return formats.ImageFolderImages(folder)


# The original's CINIC10 loaders differ from the others: no drop_last, a shuffled test loader,
# 10 images held out, cosine annealing.
CINIC10_SPEC = register_dataset(DatasetSpec(
    "CINIC10", CIFAR10_CLASSES, CINIC_MEAN, CINIC_STD, validation_size=10, flip=True, drop_last=False,
    shuffle_test=True, autoaugment_policy="CIFAR10", sizes=(90000, 90000), open=open_cinic10,
    default_section={"num_epochs": 300, "opt_milestones": [150, 225], "mem_examples": 100, "lr_schedule": "cosine"}))
