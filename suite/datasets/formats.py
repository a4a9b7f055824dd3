"""Readers for the official on-disk dataset formats, yielding uint8 CHW images and integer labels.

Files are read directly (no checksum demanded, no network), so a copy placed by hand or by an
earlier torchvision download is used as it is. CIFAR pickles go through a restricted unpickler:
a crafted file in the dataset folder cannot run code.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..errors import DatasetError

CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_FILES = ("test_batch",)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


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


# ---- CIFAR-10 python batches -------------------------------------------------------------------
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


# ---- SVHN .mat files ---------------------------------------------------------------------------
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


# ---- CINIC-10 image folders --------------------------------------------------------------------
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


def gather_images(dataset: Dataset, indices: list[int] | range) -> tuple[Tensor, Tensor]:
    """(uint8 images [n, 3, H, W], int64 labels [n]) of `indices`, as one tensor each.

    In-memory datasets are indexed at once; image folders (CINIC10) decode each image once per
    process (`ImageFolderImages.gather`, kept by `open_images`' cache); any other dataset is read
    item by item.
    """
    indices = list(indices)
    if isinstance(dataset, TensorImages):
        where = torch.as_tensor(indices, dtype=torch.long)
        return dataset.images[where], dataset.labels[where]
    if isinstance(dataset, ImageFolderImages):
        return dataset.gather(indices)
    items = [dataset[i] for i in indices]
    if not items:
        return torch.empty(0, 3, 32, 32, dtype=torch.uint8), torch.empty(0, dtype=torch.long)
    return torch.stack([torch.as_tensor(image) for image, _ in items]), torch.tensor([label for _, label in items])


# ---- scikit-learn digits (ships with the package, no download) ----------------------------------
DIGITS_TEST_SIZE = 500  # the last 500 of the 1,797 images form the test set


def read_digits(train: bool) -> TensorImages:
    """The 8x8 UCI handwritten digits from scikit-learn, upscaled to 32x32 RGB (bilinear)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = torch.from_numpy(digits.images).float().unsqueeze(1) * (255.0 / 16.0)  # 0..16 -> 0..255
    upscaled = torch.nn.functional.interpolate(pixels, size=(32, 32), mode="bilinear", align_corners=False)
    images = upscaled.round().clamp(0, 255).to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
    labels = torch.from_numpy(digits.target)
    cut = len(images) - DIGITS_TEST_SIZE
    part = slice(0, cut) if train else slice(cut, None)
    return TensorImages(images[part].clone(), labels[part].clone())
