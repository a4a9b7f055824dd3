"""The dataset registry: what the protocol needs to know about a dataset, registered where it is defined.

A dataset is one file in this package that calls `register_dataset(DatasetSpec(...))`; its class
names define `num_classes`, and `default_section` gives the training config section used when a
config has none for it, so a new dataset needs no edit elsewhere.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from torch.utils.data import Dataset

from ..errors import DatasetError

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
