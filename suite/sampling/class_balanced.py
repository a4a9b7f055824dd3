"""Class-balanced memories: each draw as close to equal counts per class as the pool allows, without
replacement, every image of a class equally likely.

The counts are fixed per pool by water-filling: every class gets `size // classes`; a class with fewer
images gives them all and its shortfall is shared by the others, again evenly; the r images left
over after an even split go, one each, to r of the classes that still have images, chosen at random
at every draw. Within a class the images are a uniform sample. A class absent from the pool gets
none. The whole draw stays on the pool's device (no host synchronisation): one random key per image
orders each class, its first `quota` images are kept, and the draw is shuffled.
"""
from __future__ import annotations

import torch
from torch import Tensor

from . import register_sampling


@register_sampling("class_balanced")
class ClassBalanced:
    def __init__(self, labels: Tensor, size: int):
        self.labels, self.size, self.device = labels, size, labels.device
        counts = torch.bincount(labels.cpu())
        base, room = water_fill(counts.tolist(), size)
        self.extra = size - sum(base)  # images left to place, one each in distinct classes with room
        self.base = torch.tensor(base, device=self.device)
        self.roomy = torch.tensor([c for c, more in enumerate(room) if more], dtype=torch.long, device=self.device)
        self.first = (counts.cumsum(0) - counts).to(self.device)  # position of each class's first image, by label

    def draw(self, generator: torch.Generator) -> Tensor:
        quota = self.base.clone()
        if self.extra:
            chosen = self.roomy[torch.randperm(len(self.roomy), generator=generator, device=self.device)[: self.extra]]
            quota[chosen] += 1
        keys = torch.rand(len(self.labels), generator=generator, device=self.device)
        order = torch.argsort(self.labels.double() * 2 + keys)  # by class, random within a class
        rank = torch.arange(len(order), device=self.device) - self.first[self.labels[order]]
        kept = order[rank < quota[self.labels[order]]]
        return kept[torch.randperm(len(kept), generator=generator, device=self.device)]


def water_fill(available: list[int], size: int) -> tuple[list[int], list[bool]]:
    """Per class, the images every draw takes (as even as the classes' sizes allow) and whether the
    class can take one more; sum(taken) + (number of leftover images) == size, leftovers < the roomy classes."""
    taken = [0] * len(available)
    open_classes = [i for i, n in enumerate(available) if n > 0]
    left = size
    while open_classes and left >= len(open_classes):
        share = left // len(open_classes)
        for i in open_classes:
            give = min(share, available[i] - taken[i])
            taken[i] += give
            left -= give
        open_classes = [i for i in open_classes if taken[i] < available[i]]
    return taken, [taken[i] < available[i] for i in range(len(available))]
