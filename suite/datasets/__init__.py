"""Datasets of the suite: each module of this package registers one (SVHN, CIFAR10, CINIC10, DIGITS).

Every module is imported here, so adding a dataset is adding one file that calls `register_dataset`.
"""
import importlib as _importlib
import pkgutil as _pkgutil

from .registry import (
    DatasetSpec, TensorImages, gather_images, get_spec, list_datasets, open_images, register_dataset,
)

for _module in _pkgutil.iter_modules(__path__):
    _importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["DatasetSpec", "TensorImages", "gather_images", "get_spec", "list_datasets", "open_images",
           "register_dataset"]
