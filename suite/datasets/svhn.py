"""SVHN: `train_32x32.mat` / `test_32x32.mat`, downloaded with torchvision's checksums when missing."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..cli import DatasetError
from .registry import DatasetSpec, TensorImages, download_atomically, register_dataset

DIGIT_CLASSES = tuple(str(d) for d in range(10))
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def read_svhn(path: Path) -> TensorImages:
    """`train_32x32.mat` / `test_32x32.mat`: X [32, 32, 3, N], y [N, 1] with 10 standing for digit 0."""
    import scipy.io

    try:
        mat = scipy.io.loadmat(str(path), variable_names=["X", "y"])
    except Exception as error:  # scipy's parser fails in many ways on a foreign or truncated file
        raise DatasetError(f"{path} is not a readable SVHN .mat file ({error.__class__.__name__})") from None
    if "X" not in mat or "y" not in mat:
        raise DatasetError(f"{path} lacks the SVHN variables 'X' and 'y'")
    x, y = mat["X"], mat["y"].astype(np.int64).reshape(-1)
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.shape[3] != len(y):
        raise DatasetError(f"{path} holds X of shape {x.shape}, expected (32, 32, 3, N)")
    y[y == 10] = 0
    images = torch.from_numpy(np.ascontiguousarray(np.transpose(x, (3, 2, 0, 1)).astype(np.uint8)))
    return TensorImages(images, torch.from_numpy(y))


def open_svhn(root: Path, train: bool, download: bool) -> Dataset:
    from torchvision.datasets import SVHN

    url, filename, md5 = SVHN.split_list["train" if train else "test"]
    path = root / filename
    if not path.is_file():
        if not download:
            raise DatasetError(f"SVHN file '{path}' not found and download is off")
        download_atomically(url, path, md5, "SVHN", str(path))
    return read_svhn(path)


SVHN_SPEC = register_dataset(DatasetSpec(
    "SVHN", DIGIT_CLASSES, IMAGENET_MEAN, IMAGENET_STD, validation_size=6000, flip=False, drop_last=True,
    shuffle_test=False, autoaugment_policy="SVHN", sizes=(73257, 26032), open=open_svhn,
    default_section={"num_epochs": 40, "opt_milestones": [20, 30], "mem_examples": 100, "lr_schedule": "multistep"},
    vit_mean=(0.4377, 0.4438, 0.4728), vit_std=(0.1980, 0.2010, 0.1970)))
