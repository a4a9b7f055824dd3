"""CINIC10: never downloaded; placed by hand as `CINIC10/{train,valid,test}/<class>/*.png`."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..cli import DatasetError
from .cifar10 import CIFAR10_CLASSES
from .registry import DatasetSpec, register_dataset

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

CINIC_MEAN, CINIC_STD = (0.47889522, 0.47227842, 0.43047404), (0.24205776, 0.23828046, 0.25874835)


class ImageFolderImages(Dataset):
    """`<root>/<class>/*.png` read lazily, classes in alphabetical order (as torchvision's ImageFolder)."""

    def __init__(self, root: Path):
        root = Path(root)
        if not root.is_dir():
            raise DatasetError(f"image folder '{root}' not found")
        self.classes = sorted(p.name for p in root.iterdir() if p.is_dir())
        self.samples = [
            (path, label)
            for label, name in enumerate(self.classes)
            for path in sorted((root / name).iterdir())
            if path.suffix.lower() in IMAGE_SUFFIXES
        ]
        if not self.samples:
            raise DatasetError(f"image folder '{root}' holds no images")
        self.labels = torch.tensor([label for _, label in self.samples])
        self._pixels: Tensor | None = None  # [N, 3, H, W], filled as images are first gathered
        self._decoded = torch.zeros(len(self.samples), dtype=torch.bool)

    def __len__(self) -> int:
        return len(self.samples)

    def gather(self, indices: list[int]) -> tuple[Tensor, Tensor]:
        """(uint8 images, labels) of `indices`. Each image is decoded once per process, the first time
        it is gathered (with a thread pool: PIL releases the GIL while decoding), and kept: every run
        of a grid worker or of eval_dir.py gathers the whole CINIC10 test set (90,000 PNG files)."""
        from concurrent.futures import ThreadPoolExecutor

        where = torch.as_tensor(indices, dtype=torch.long)
        missing = [i for i in dict.fromkeys(indices) if not self._decoded[i]]
        if missing:
            with ThreadPoolExecutor(max_workers=8) as pool:
                images = list(pool.map(lambda i: self[i][0], missing))
            if self._pixels is None:
                self._pixels = torch.empty((len(self), *images[0].shape), dtype=torch.uint8)
            self._pixels[torch.as_tensor(missing)] = torch.stack(images)
            self._decoded[missing] = True
        if self._pixels is None:  # no index asked
            return torch.empty(0, 3, 32, 32, dtype=torch.uint8), torch.empty(0, dtype=torch.long)
        return self._pixels[where], self.labels[where]

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        from PIL import Image, UnidentifiedImageError

        path, label = self.samples[index]
        try:
            with Image.open(path) as image:
                pixels = np.array(image.convert("RGB"))  # as torchvision's ImageFolder loader
        except (OSError, UnidentifiedImageError) as error:
            raise DatasetError(f"cannot decode image {path} ({error})") from None
        return torch.from_numpy(pixels).permute(2, 0, 1).contiguous(), label


def open_cinic10(root: Path, train: bool, download: bool) -> Dataset:
    folder = root / "CINIC10" / ("train" if train else "test")
    if not folder.is_dir():
        raise DatasetError(
            f"CINIC10 is not downloaded automatically: place it as {root}/CINIC10/{{train,valid,test}}/<class>/*.png"
        )
    return ImageFolderImages(folder)


# The original's CINIC10 loaders differ from the others: no drop_last, a shuffled test loader,
# 10 images held out, cosine annealing.
CINIC10_SPEC = register_dataset(DatasetSpec(
    "CINIC10", CIFAR10_CLASSES, CINIC_MEAN, CINIC_STD, validation_size=10, flip=True, drop_last=False,
    shuffle_test=True, autoaugment_policy="CIFAR10", sizes=(90000, 90000), open=open_cinic10,
    default_section={"num_epochs": 300, "opt_milestones": [150, 225], "mem_examples": 100, "lr_schedule": "cosine"}))
