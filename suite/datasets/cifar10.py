"""CIFAR10: the python batches in `cifar-10-batches-py/`, downloaded and extracted when missing.

The pickles go through a restricted unpickler: a crafted file in the dataset folder cannot run code.
"""
from __future__ import annotations

import os
import pickle
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..cli import DatasetError
from .registry import DatasetSpec, TensorImages, download_failed, register_dataset

CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_FILES = ("test_batch",)

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _Refused(pickle.UnpicklingError):
    pass


class _RestrictedUnpickler(pickle.Unpickler):
    """Allows only the numpy array reconstruction that CIFAR batches need."""

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise _Refused(f"refusing to load '{module}.{name}'")


def load_cifar_batch(path: Path) -> tuple[np.ndarray, list[int]]:
    """One CIFAR batch file: (uint8 data [N, 3072], labels)."""
    try:
        with open(path, "rb") as handle:
            batch = _RestrictedUnpickler(handle, encoding="latin1").load()
    except _Refused as error:
        raise DatasetError(f"{path} is not a CIFAR batch ({error})") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as error:
        raise DatasetError(f"{path} is truncated or corrupted ({error})") from None
    if not isinstance(batch, dict) or "data" not in batch or "labels" not in batch:
        raise DatasetError(f"{path} is not a CIFAR-10 batch (no 'data' and 'labels')")
    data = np.asarray(batch["data"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(batch["labels"]) != len(data):
        raise DatasetError(f"{path} holds data of unexpected shape {data.shape} / type {data.dtype}")
    return data, list(batch["labels"])


def read_cifar10(root: Path, train: bool) -> TensorImages:
    folder = Path(root) / CIFAR10_FOLDER
    names = CIFAR10_TRAIN_FILES if train else CIFAR10_TEST_FILES
    data, labels = [], []
    for name in names:
        batch_data, batch_labels = load_cifar_batch(folder / name)
        data.append(batch_data)
        labels.extend(batch_labels)
    images = torch.from_numpy(np.concatenate(data).reshape(-1, 3, 32, 32))
    return TensorImages(images, torch.tensor(labels))


def cifar10_files(root: Path, train: bool) -> list[Path]:
    names = CIFAR10_TRAIN_FILES if train else CIFAR10_TEST_FILES
    return [Path(root) / CIFAR10_FOLDER / name for name in names]


def open_cifar10(root: Path, train: bool, download: bool) -> Dataset:
    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import download_and_extract_archive

    files = cifar10_files(root, train)
    if not all(f.is_file() for f in files):
        expected = f"{root / CIFAR10_FOLDER}/{{data_batch_1..5,test_batch}}"
        if not download:
            raise DatasetError(f"CIFAR10 files not found ({expected}) and download is off")
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=root, prefix=".download-") as scratch:
            try:
                download_and_extract_archive(CIFAR10.url, scratch, filename=CIFAR10.filename, md5=CIFAR10.tgz_md5)
            except (OSError, RuntimeError) as error:
                raise download_failed("CIFAR10", expected, error) from None
            shutil.rmtree(root / CIFAR10_FOLDER, ignore_errors=True)
            os.replace(Path(scratch) / CIFAR10_FOLDER, root / CIFAR10_FOLDER)
    return read_cifar10(root, train)


CIFAR10_SPEC = register_dataset(DatasetSpec(
    "CIFAR10", CIFAR10_CLASSES, (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010), validation_size=6000,
    flip=True, drop_last=True, shuffle_test=False, autoaugment_policy="CIFAR10", sizes=(50000, 10000),
    open=open_cifar10,
    default_section={"num_epochs": 300, "opt_milestones": [150, 225], "mem_examples": 100,
                     "lr_schedule": "multistep"},
    vit_mean=(0.4914, 0.4822, 0.4465), vit_std=(0.2470, 0.2435, 0.2616)))
