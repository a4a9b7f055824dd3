"""What every benchmark shares: the hardware it ran on, in words, and synthetic CIFAR10-format data.

Real SVHN / CIFAR10 / CINIC10 cannot be downloaded on the machines these benchmarks were written on,
so timings use a synthetic dataset in CIFAR10's exact on-disk format (same sizes, same reader, same
transforms): speed depends on shapes, not on pixel values.
"""
from __future__ import annotations

import os
import pickle
import platform
from pathlib import Path

import numpy as np
import torch


def hardware(device: torch.device) -> str:
    """e.g. 'NVIDIA H200 (cuda:0)' or 'AMD EPYC, 2 cores, 2 torch threads (cpu)'."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} ({device})"
    model = platform.processor() or "cpu"
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{model}, {cores} cores, {torch.get_num_threads()} torch threads (cpu)"


def environment_line(device: torch.device) -> str:
    return f"device: {hardware(device)}; torch {torch.__version__}; python {platform.python_version()}"


def write_synthetic_cifar10(root: Path, train: int = 50000, test: int = 10000, seed: int = 0) -> Path:
    """`root/cifar-10-batches-py/` with CIFAR10's five training batches and its test batch."""
    folder = Path(root) / "cifar-10-batches-py"
    if (folder / "test_batch").is_file():
        return Path(root)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    per_batch = train // 5
    for name, count in [(f"data_batch_{i}", per_batch) for i in range(1, 6)] + [("test_batch", test)]:
        labels = rng.integers(0, 10, size=count)
        data = rng.integers(0, 256, size=(count, 3 * 32 * 32), dtype=np.uint8)
        data[:, :1024] = (labels[:, None] * 25).astype(np.uint8)  # a class-dependent red plane
        with open(folder / name, "wb") as handle:
            pickle.dump({"batch_label": name, "labels": labels.tolist(), "data": data}, handle)
    return Path(root)
