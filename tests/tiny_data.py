"""Tiny datasets written in the official on-disk formats, so the real readers are exercised offline.

Images are class-dependent patterns plus noise, so that a model can learn something in one epoch.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def patterned_images(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [N, 32, 32, 3] images whose colour and stripe layout depend on the label; labels [N]."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 10
    rng.shuffle(labels)
    images = rng.integers(0, 60, size=(count, 32, 32, 3)).astype(np.int32)
    for i, label in enumerate(labels):
        images[i, (label * 3) % 32: (label * 3) % 32 + 6, :, label % 3] += 180
        images[i, :, (label * 5) % 32: (label * 5) % 32 + 4, (label + 1) % 3] += 120
    return np.clip(images, 0, 255).astype(np.uint8), labels.astype(np.int64)


def write_cifar10(root: Path, per_batch: int = 40, test: int = 50) -> Path:
    """`root/cifar-10-batches-py/{data_batch_1..5,test_batch}` as CIFAR's python pickles."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for seed, name in enumerate(names):
        images, labels = patterned_images(test if name == "test_batch" else per_batch, seed)
        batch = {"batch_label": name, "labels": labels.tolist(),
                 "data": images.transpose(0, 3, 1, 2).reshape(len(images), -1),
                 "filenames": [f"{name}_{i}.png" for i in range(len(images))]}
        with open(folder / name, "wb") as handle:
            pickle.dump(batch, handle)
    return folder


def write_svhn(root: Path, train: int = 200, test: int = 50) -> None:
    """`root/{train,test}_32x32.mat`: X [32, 32, 3, N], y [N, 1] with label 10 for digit 0."""
    import scipy.io

    Path(root).mkdir(parents=True, exist_ok=True)
    for seed, (split, count) in enumerate([("train", train), ("test", test)]):
        images, labels = patterned_images(count, 10 + seed)
        y = np.where(labels == 0, 10, labels).reshape(-1, 1).astype(np.uint8)
        scipy.io.savemat(Path(root) / f"{split}_32x32.mat", {"X": images.transpose(1, 2, 3, 0), "y": y})


def write_cinic10(root: Path, per_class: int = 3) -> None:
    """`root/CINIC10/{train,valid,test}/<class>/*.png`."""
    from PIL import Image

    for seed, split in enumerate(["train", "valid", "test"]):
        images, labels = patterned_images(per_class * 10, 20 + seed)
        for i, (image, label) in enumerate(zip(images, labels)):
            folder = Path(root) / "CINIC10" / split / CIFAR_CLASSES[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"img_{i}.png")
