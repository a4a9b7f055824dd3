"""CIFAR10: the python batches in `cifar-10-batches-py/`, downloaded and extracted when missing."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from torch.utils.data import Dataset

from ..errors import DatasetError
from . import formats
from .download import download_failed
from .registry import DatasetSpec, register_dataset

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def open_cifar10(root: Path, train: bool, download: bool) -> Dataset:
    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import download_and_extract_archive

    files = formats.cifar10_files(root, train)
    if not all(f.is_file() for f in files):
        expected = f"{root / formats.CIFAR10_FOLDER}/{{data_batch_1..5,test_batch}}"
        if not download:
            raise DatasetError(f"CIFAR10 files not found ({expected}) and download is off")
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=root, prefix=".download-") as scratch:
            try:
                download_and_extract_archive(CIFAR10.url, scratch, filename=CIFAR10.filename, md5=CIFAR10.tgz_md5)
            except (OSError, RuntimeError) as error:
                raise download_failed("CIFAR10", expected, error) from None
            shutil.rmtree(root / formats.CIFAR10_FOLDER, ignore_errors=True)
            os.replace(Path(scratch) / formats.CIFAR10_FOLDER, root / formats.CIFAR10_FOLDER)
    return formats.read_cifar10(root, train)


CIFAR10_SPEC = register_dataset(DatasetSpec(
    "CIFAR10", CIFAR10_CLASSES, (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010), validation_size=6000,
    flip=True, drop_last=True, shuffle_test=False, autoaugment_policy="CIFAR10", sizes=(50000, 10000),
    open=open_cifar10,
    default_section={"num_epochs": 300, "opt_milestones": [150, 225], "mem_examples": 100,
                     "lr_schedule": "multistep"},
    vit_mean=(0.4914, 0.4822, 0.4465), vit_std=(0.2470, 0.2435, 0.2616)))
