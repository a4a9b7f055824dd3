"""densenet_cifar (kuangliu/pytorch-cifar): DenseNet-BC with growth 12, blocks (6, 12, 24, 16)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import MemoryWrapNet, register_model

GROWTH_RATE = 12
DENSE_BLOCKS = (6, 12, 24, 16)
REDUCTION = 0.5


class Bottleneck(nn.Module):
    """BN-ReLU-1x1 conv (4k) -> BN-ReLU-3x3 conv (k); output is [new features, input] (new first)."""

    def __init__(self, in_planes: int, growth_rate: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, 4 * growth_rate, kernel_size=1, bias=False)
        self.bn2 = nn.BatchNorm2d(4 * growth_rate)
        self.conv2 = nn.Conv2d(4 * growth_rate, growth_rate, kernel_size=3, padding=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return torch.cat([out, x], dim=1)


class Transition(nn.Module):
    """BN-ReLU-1x1 conv, then 2x2 average pool."""

    def __init__(self, in_planes: int, out_planes: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(in_planes)
        self.conv = nn.Conv2d(in_planes, out_planes, kernel_size=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(self.conv(F.relu(self.bn(x))), 2)


class DenseNetCifar(MemoryWrapNet):
    """3x3 stem conv, four dense blocks with three transitions, BN-ReLU, 4x4 average pool: 384 features."""

    def __init__(self, modality: str, num_classes: int):
        super().__init__(modality, num_classes)
        planes = 2 * GROWTH_RATE
        self.conv1 = nn.Conv2d(3, planes, kernel_size=3, padding=1, bias=False)
        for index, num_blocks in enumerate(DENSE_BLOCKS, start=1):
            setattr(self, f"dense{index}", self._make_dense_layers(planes, num_blocks))
            planes += num_blocks * GROWTH_RATE
            if index < len(DENSE_BLOCKS):
                out_planes = int(math.floor(planes * REDUCTION))
                setattr(self, f"trans{index}", Transition(planes, out_planes))
                planes = out_planes
        self.bn = nn.BatchNorm2d(planes)
        self.feature_dim = planes
        self.build_head()

    @staticmethod
    def _make_dense_layers(in_planes: int, num_blocks: int) -> nn.Sequential:
        return nn.Sequential(*(Bottleneck(in_planes + i * GROWTH_RATE, GROWTH_RATE) for i in range(num_blocks)))

    def forward_encoder(self, x: Tensor) -> Tensor:
        out = self.conv1(x)
        out = self.trans1(self.dense1(out))
        out = self.trans2(self.dense2(out))
        out = self.trans3(self.dense3(out))
        out = self.dense4(out)
        return F.avg_pool2d(F.relu(self.bn(out)), 4).flatten(1)


@register_model("densenet", display_name="DenseNet")
def densenet(modality: str, num_classes: int) -> MemoryWrapNet:
    return DenseNetCifar(modality, num_classes)
