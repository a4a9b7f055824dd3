"""The dataset registry, and what dataset files share: in-memory images, gathering, safe downloads.

A dataset is one file in this package that calls `register_dataset(DatasetSpec(...))` with an
`open(root, train, download)` that returns uint8 images and labels (`TensorImages`, or any dataset
of (image, label) items); its class names define `num_classes`, and `default_section` gives the
training config section used when a config has none for it, so a new dataset needs no edit elsewhere.
Files are read as they are (no checksum demanded, no network unless `download`).
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..cli import DatasetError

Opener = Callable[[Path, bool, bool], Dataset]  # (dataset_dir, train, download) -> uint8 images + labels


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset's protocol (docs/protocol.md, data): normalisation, hold-out, augmentation, loaders."""

    name: str
    classes: tuple[str, ...]
    mean: tuple[float, float, float]  # the CNN scripts' normalisation
    std: tuple[float, float, float]
    validation_size: int  # held out first, never used for training
    flip: bool  # random horizontal flips (p = 0.5) in the training transform
    drop_last: bool  # of the training batches
    shuffle_test: bool  # the original shuffled CINIC10's test loader
    autoaugment_policy: str  # torchvision AutoAugmentPolicy name used by the ViT recipe
    open: Opener = field(repr=False)
    default_section: dict[str, Any] = field(default_factory=dict)  # num_epochs, opt_milestones, ...
    vit_mean: tuple[float, float, float] | None = None  # the ViT scripts' normalisation (default: mean)
    vit_std: tuple[float, float, float] | None = None
    sizes: tuple[int, int] | None = None  # nominal (training split, test set) images, for time estimates only

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def normalization(self, kind: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
        if kind == "vit":
            return self.vit_mean or self.mean, self.vit_std or self.std
        return self.mean, self.std


_REGISTRY: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"dataset '{spec.name}' is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def list_datasets() -> list[str]:
    return list(_REGISTRY)


def get_spec(name: str) -> DatasetSpec:
    if name not in _REGISTRY:
        raise DatasetError(f"unknown dataset '{name}'; valid datasets: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


@functools.lru_cache(maxsize=8)
def open_images(name: str, dataset_dir: str, train: bool, download: bool = True) -> Dataset:
    """The raw (uint8, untransformed) train or test images; cached, since every run re-reads them."""
    return get_spec(name).open(Path(dataset_dir), train, download)


# ---- images in memory, and gathering a subset ----------------------------------------------------
class TensorImages(Dataset):
    """Images held in memory as one uint8 tensor [N, 3, H, W]."""

    def __init__(self, images: Tensor, labels: Tensor):
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise DatasetError(f"expected uint8 images [N, 3, H, W], got {images.dtype} {tuple(images.shape)}")
        if len(images) != len(labels):
            raise DatasetError(f"{len(images)} images but {len(labels)} labels")
        self.images = images
        self.labels = labels.long()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.images[index], int(self.labels[index])

    def gather(self, indices: list[int]) -> tuple[Tensor, Tensor]:
        where = torch.as_tensor(indices, dtype=torch.long)
        return self.images[where], self.labels[where]


def gather_images(dataset: Dataset, indices: list[int] | range) -> tuple[Tensor, Tensor]:
    """(uint8 images [n, 3, H, W], int64 labels [n]) of `indices`, as one tensor each: through the
    dataset's own `gather(indices)` when it has one (in-memory images at once; CINIC10's folders decode
    each image once per process), else item by item."""
    indices = list(indices)
    if hasattr(dataset, "gather"):
        return dataset.gather(indices)
    items = [dataset[i] for i in indices]
    if not items:
        return torch.empty(0, 3, 32, 32, dtype=torch.uint8), torch.empty(0, dtype=torch.long)
    return torch.stack([torch.as_tensor(image) for image, _ in items]), torch.tensor([label for _, label in items])


# ---- downloads that leave nothing half-written ------------------------------------------------------
def download_failed(name: str, expected: str, error: Exception) -> DatasetError:
    return DatasetError(f"{name} files not found ({expected}) and the download failed: {error}")


def download_atomically(url: str, path: Path, md5: str, name: str, expected: str) -> None:
    """Download next to `path`, check its md5, then rename: a killed download leaves no partial file."""
    from torchvision.datasets.utils import download_url

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    try:
        download_url(url, str(path.parent), filename=partial.name, md5=md5)
    except (OSError, RuntimeError) as error:
        partial.unlink(missing_ok=True)
        raise download_failed(name, expected, error) from None
    os.replace(partial, path)
