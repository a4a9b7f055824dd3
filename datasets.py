"""Datasets of the suite: registry, transforms, the original two-step split, loaders, memory draws.

Registered: SVHN and CIFAR10 (downloaded when missing), CINIC10 (placed by hand) and DIGITS
(scikit-learn's handwritten digits, shipped inside the package: the offline quick start).
"""
from __future__ import annotations

import functools
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, random_split
from torchvision import transforms

from suite import formats
from suite.errors import DatasetError
from suite.seeding import seed_worker, seeded_generator

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
DIGIT_CLASSES = tuple(str(d) for d in range(10))
Opener = Callable[[Path, bool, bool], Dataset]  # (dataset_dir, train, download) -> uint8 images


@dataclass(frozen=True)
class DatasetSpec:
    """What the protocol needs to know about a dataset (REFERENCE.md 3.1-3.3)."""

    name: str
    classes: tuple[str, ...]
    mean: tuple[float, float, float]  # the CNN scripts' normalisation
    std: tuple[float, float, float]
    vit_mean: tuple[float, float, float]  # the ViT scripts' normalisation
    vit_std: tuple[float, float, float]
    validation_size: int  # held out first, never used for training
    flip: bool  # RandomHorizontalFlip in the training transform
    drop_last: bool  # of the training loader
    shuffle_test: bool
    autoaugment_policy: transforms.AutoAugmentPolicy
    open: Opener = field(repr=False)
    layout: str = ""  # shown when files are missing

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def normalization(self, kind: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
        return (self.vit_mean, self.vit_std) if kind == "vit" else (self.mean, self.std)


# ---- openers --------------------------------------------------------------------------------
def _download_failed(name: str, expected: str, error: Exception) -> DatasetError:
    return DatasetError(f"{name} files not found ({expected}) and the download failed: {error}")


def _open_svhn(root: Path, train: bool, download: bool) -> Dataset:
    from torchvision.datasets import SVHN

    url, filename, md5 = SVHN.split_list["train" if train else "test"]
    path = root / filename
    if not path.is_file():
        if not download:
            raise DatasetError(f"SVHN file '{path}' not found and download is off")
        _download_atomically(url, path, md5, "SVHN", str(path))
    return formats.read_svhn(path)


def _open_cifar10(root: Path, train: bool, download: bool) -> Dataset:
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
                raise _download_failed("CIFAR10", expected, error) from None
            shutil.rmtree(root / formats.CIFAR10_FOLDER, ignore_errors=True)
            os.replace(Path(scratch) / formats.CIFAR10_FOLDER, root / formats.CIFAR10_FOLDER)
    return formats.read_cifar10(root, train)


def _download_atomically(url: str, path: Path, md5: str, name: str, expected: str) -> None:
    """Download next to `path`, check it, then rename: a killed download leaves no partial file."""
    from torchvision.datasets.utils import download_url

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    try:
        download_url(url, str(path.parent), filename=partial.name, md5=md5)
    except (OSError, RuntimeError) as error:
        partial.unlink(missing_ok=True)
        raise _download_failed(name, expected, error) from None
    os.replace(partial, path)


def _open_cinic10(root: Path, train: bool, download: bool) -> Dataset:
    folder = root / "CINIC10" / ("train" if train else "test")
    if not folder.is_dir():
        raise DatasetError(
            f"CINIC10 is not downloaded automatically: place it as {root}/CINIC10/{{train,valid,test}}/<class>/*.png"
        )
    return formats.ImageFolderImages(folder)


def _open_digits(root: Path, train: bool, download: bool) -> Dataset:
    return formats.read_digits(train)


IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CINIC_MEAN, CINIC_STD = (0.47889522, 0.47227842, 0.43047404), (0.24205776, 0.23828046, 0.25874835)
DIGITS_MEAN, DIGITS_STD = (0.30586, 0.30586, 0.30586), (0.32297, 0.32297, 0.32297)  # of the 1,297 train images

_REGISTRY: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec("SVHN", DIGIT_CLASSES, IMAGENET_MEAN, IMAGENET_STD,
                    (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970),
                    validation_size=6000, flip=False, drop_last=True, shuffle_test=False,
                    autoaugment_policy=transforms.AutoAugmentPolicy.SVHN, open=_open_svhn),
        DatasetSpec("CIFAR10", CIFAR10_CLASSES, (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010),
                    (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616),
                    validation_size=6000, flip=True, drop_last=True, shuffle_test=False,
                    autoaugment_policy=transforms.AutoAugmentPolicy.CIFAR10, open=_open_cifar10),
        DatasetSpec("CINIC10", CIFAR10_CLASSES, CINIC_MEAN, CINIC_STD, CINIC_MEAN, CINIC_STD,
                    validation_size=10, flip=True, drop_last=False, shuffle_test=True,
                    autoaugment_policy=transforms.AutoAugmentPolicy.CIFAR10, open=_open_cinic10),
        DatasetSpec("DIGITS", DIGIT_CLASSES, DIGITS_MEAN, DIGITS_STD, DIGITS_MEAN, DIGITS_STD,
                    validation_size=100, flip=False, drop_last=True, shuffle_test=False,
                    autoaugment_policy=transforms.AutoAugmentPolicy.SVHN, open=_open_digits),
    )
}


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


# ---- transforms -----------------------------------------------------------------------------
def image_transform(spec: DatasetSpec, train: bool, normalization: str = "paper",
                    autoaugment: bool = False) -> transforms.Compose:
    """uint8 CHW -> normalised float. Training adds the dataset's flip and, on request, AutoAugment."""
    steps: list[Callable] = []
    if train and spec.flip:
        steps.append(transforms.RandomHorizontalFlip())
    if train and autoaugment:
        steps.append(transforms.AutoAugment(spec.autoaugment_policy))
    mean, std = spec.normalization(normalization)
    steps += [transforms.ConvertImageDtype(torch.float32), transforms.Normalize(mean, std)]
    return transforms.Compose(steps)


def undo_normalization(images: Tensor, spec: DatasetSpec, normalization: str = "paper") -> Tensor:
    """Back to [0, 1] pixel space (clipped), for figures."""
    mean, std = (torch.tensor(v, dtype=images.dtype, device=images.device).view(-1, 1, 1)
                 for v in spec.normalization(normalization))
    return (images * std + mean).clamp(0.0, 1.0)


class TransformedSubset(Dataset):
    """`images[indices]` with a transform; `indices` kept so a run's subset can be recorded."""

    def __init__(self, images: Dataset, indices: list[int], transform: Callable[[Tensor], Tensor]):
        self.images, self.indices, self.transform = images, list(indices), transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        image, label = self.images[self.indices[index]]
        return self.transform(image), label


# ---- the original two-step split --------------------------------------------------------------
def split_indices(n: int, train_examples: int, validation_size: int, seed: int) -> tuple[list[int], list[int]]:
    """(train, validation) indices exactly as the original `split_dataset` (two fresh generators)."""
    if validation_size >= n:
        raise DatasetError(f"the dataset has {n} images, not more than its validation split of {validation_size}")
    rest, validation = random_split(range(n), [n - validation_size, validation_size],
                                    generator=torch.Generator().manual_seed(seed))
    kept = min(len(rest), train_examples)
    train, _ = random_split(rest, [kept, len(rest) - kept], generator=torch.Generator().manual_seed(seed))
    return [rest.indices[i] for i in train.indices], list(validation.indices)


# ---- memory draws ---------------------------------------------------------------------------
class MemorySampler:
    """A fresh uniform draw of `size` training images (without replacement) at every call.

    Uses its own seeded generator, so draws are reproducible and resumable; the training transform
    still applies (the original's memory images were augmented too).
    """

    def __init__(self, dataset: Dataset, size: int, generator: torch.Generator):
        if size > len(dataset):
            raise DatasetError(f"mem_examples ({size}) is larger than the training subset ({len(dataset)} images)")
        self.dataset, self.size, self.generator = dataset, size, generator

    def draw(self) -> Tensor:
        indices = torch.randperm(len(self.dataset), generator=self.generator)[: self.size]
        return torch.stack([self.dataset[int(i)][0] for i in indices])

    def draw_with_labels(self) -> tuple[Tensor, Tensor]:
        indices = torch.randperm(len(self.dataset), generator=self.generator)[: self.size]
        items = [self.dataset[int(i)] for i in indices]
        return torch.stack([image for image, _ in items]), torch.tensor([label for _, label in items])

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


# ---- everything one run needs -------------------------------------------------------------------
@dataclass
class RunData:
    spec: DatasetSpec
    train_set: TransformedSubset
    test_set: TransformedSubset
    train_loader: DataLoader
    test_loader: DataLoader
    memory: MemorySampler | None  # None for std models

    def evaluation_memory(self, seed: int) -> MemorySampler:
        """An independent sampler for test-time memories, seeded by the run only (not by training)."""
        return MemorySampler(self.train_set, self.memory.size, seeded_generator(seed, "evaluation_memory"))


def build_run_data(config: dict, seed: int, uses_memory: bool, pin_memory: bool = False,
                   train_examples: int | None = None) -> RunData:
    """Split, loaders and memory sampler of run `seed`, from a validated training config."""
    spec = get_spec(config["dataset_name"])
    section = config[spec.name]
    train_examples = config["train_examples"] if train_examples is None else train_examples
    root, download = config["dataset_dir"], config["download"]
    train_images = open_images(spec.name, root, True, download)
    test_images = open_images(spec.name, root, False, download)
    validation_size = section.get("validation_size")
    validation_size = spec.validation_size if validation_size is None else validation_size
    train_indices, _ = split_indices(len(train_images), train_examples, validation_size, seed)
    train_transform = image_transform(spec, True, config["normalization"], config["autoaugment"])
    test_transform = image_transform(spec, False, config["normalization"])
    train_set = TransformedSubset(train_images, train_indices, train_transform)
    test_set = TransformedSubset(test_images, range(len(test_images)), test_transform)
    workers = config["num_workers"]
    common = dict(num_workers=workers, pin_memory=pin_memory, worker_init_fn=seed_worker if workers else None,
                  persistent_workers=False)
    train_loader = DataLoader(train_set, batch_size=min(config["batch_size_train"], len(train_set)), shuffle=True,
                              drop_last=spec.drop_last, generator=seeded_generator(seed, "train_loader"), **common)
    test_loader = DataLoader(test_set, batch_size=config["batch_size_test"], shuffle=spec.shuffle_test,
                             generator=seeded_generator(seed, "test_loader"), **common)
    memory = None
    if uses_memory:
        memory = MemorySampler(train_set, section["mem_examples"], seeded_generator(seed, "train_memory"))
    return RunData(spec, train_set, test_set, train_loader, test_loader, memory)
