"""The accuracies the original repository states for MobileNetV2 (README; docs/protocol.md, Reference numbers).

Mean test accuracy in % over 15 runs; no standard deviations were given. "Std" is the plain
classifier (`std`), "Memory Wrap" the encoder + memory head (`encoder_memory`); the only-memory
baseline has no stated numbers. Size 100000 stands for the whole training split ("full").
"""
from __future__ import annotations

SIZES = (1000, 2000, 5000, 100000)
_TABLE = {
    ("SVHN", "std"): (42.71, 70.87, 85.52, 95.95),
    ("SVHN", "encoder_memory"): (66.93, 81.44, 88.68, 95.63),
    ("CIFAR10", "std"): (38.57, 50.36, 72.77, 88.78),
    ("CIFAR10", "encoder_memory"): (43.87, 57.12, 75.33, 88.49),
    ("CINIC10", "std"): (29.61, 36.40, 50.41, 78.85),
    ("CINIC10", "encoder_memory"): (32.34, 39.48, 52.18, 78.88),
}
MODEL = "mobilenet"
PAPER_MEAN: dict[tuple[str, str, str, int], float] = {
    (dataset, MODEL, modality, size): value
    for (dataset, modality), values in _TABLE.items()
    for size, value in zip(SIZES, values)
}


def paper_accuracy(dataset: str, model: str, modality: str, train_examples: int) -> float | None:
    """The stated mean accuracy of a cell, or None where the original states none."""
    return PAPER_MEAN.get((dataset, model, modality, train_examples))
