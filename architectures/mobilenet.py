"""MobileNetV2, CIFAR variant (kuangliu/pytorch-cifar): stride 1 in stage 2 and in the stem."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .base import MemoryWrapNet, register_model

# (expansion, out_planes, num_blocks, first stride)
CONFIG = (
    (1, 16, 1, 1),
    (6, 24, 2, 1),  # stride 2 in the ImageNet model
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


class Block(nn.Module):
    """Expand (1x1) -> depthwise 3x3 -> project (1x1), plain ReLU.

    Unlike canonical MobileNetV2, a stride-1 block whose width changes gets a 1x1 conv+BN
    projection shortcut; stride-2 blocks have no residual.
    """

    def __init__(self, in_planes: int, out_planes: int, expansion: int, stride: int):
        super().__init__()
        self.stride = stride
        planes = expansion * in_planes
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=1, stride=1, padding=0, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, groups=planes, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, kernel_size=1, stride=1, padding=0, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.shortcut = nn.Sequential()
        if stride == 1 and in_planes != out_planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=1, padding=0, bias=False),
                nn.BatchNorm2d(out_planes),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return out + self.shortcut(x) if self.stride == 1 else out


class MobileNetV2(MemoryWrapNet):
    """Stem, 17 inverted-residual blocks, 1x1 conv to 1280, 4x4 average pool: 1280 features."""

    def __init__(self, modality: str, num_classes: int):
        super().__init__(modality, num_classes)
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.layers = self._make_layers(in_planes=32)
        self.conv2 = nn.Conv2d(320, 1280, kernel_size=1, stride=1, padding=0, bias=False)
        self.bn2 = nn.BatchNorm2d(1280)
        self.feature_dim = 1280
        self.build_head()

    @staticmethod
    def _make_layers(in_planes: int) -> nn.Sequential:
        layers = []
        for expansion, out_planes, num_blocks, stride in CONFIG:
            for block_stride in [stride] + [1] * (num_blocks - 1):
                layers.append(Block(in_planes, out_planes, expansion, block_stride))
                in_planes = out_planes
        return nn.Sequential(*layers)

    def forward_encoder(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layers(out)
        out = F.relu(self.bn2(self.conv2(out)))
        return F.avg_pool2d(out, 4).flatten(1)


@register_model("mobilenet", display_name="MobileNetV2")
def mobilenet(modality: str, num_classes: int) -> MemoryWrapNet:
    return MobileNetV2(modality, num_classes)
