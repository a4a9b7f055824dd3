"""The original suite's `datasets` module name, kept for code written against it.

The dataset code lives in the package: the registry and readers in `suite.datasets`, a run's
resident data (split, transforms, batches, memory draws) in `suite.data`.
"""
from __future__ import annotations

from suite.data import (  # noqa: F401 - the original's module name, for its users
    BatchTransform, MemorySampler, ResidentImages, RunData, batch_transform, build_run_data, split_indices,
    undo_normalization,
)
from suite.datasets import DatasetSpec, get_spec, list_datasets, open_images, register_dataset  # noqa: F401
