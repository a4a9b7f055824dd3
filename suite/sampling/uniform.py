"""The original's draw: a uniform sample without replacement (the first `size` of a random permutation)."""
from __future__ import annotations

import torch
from torch import Tensor

from . import register_sampling


@register_sampling("uniform")
class Uniform:
    def __init__(self, labels: Tensor, size: int):
        self.count, self.size, self.device = len(labels), size, labels.device

    def draw(self, generator: torch.Generator) -> Tensor:
        return torch.randperm(self.count, generator=generator, device=self.device)[: self.size]
