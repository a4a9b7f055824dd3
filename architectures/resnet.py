"""ResNet18 and ResNet34 for 32x32 inputs (kuangliu/pytorch-cifar), with the explicit He fan-out init of the original.

The journal registers ResNet34 under its own name; it differs from ResNet18 only in the number of
BasicBlocks per stage, so both are one class.
"""
from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from .base import MemoryWrapNet, register_model


class BasicBlock(nn.Module):
    """Two 3x3 conv+BN; 1x1 conv+BN shortcut when the shape changes."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


def he_fan_out_init(model: nn.Module) -> None:
    """The original's init: conv weights ~ N(0, sqrt(2 / (k*k*out))), BN weight 1 and bias 0.

    Linear layers (the std head and the Memory Wrap MLP) keep PyTorch's defaults.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
            nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


class ResNet(MemoryWrapNet):
    """3x3 stem without max-pool, four stages of BasicBlocks, 4x4 average pool: 512 features."""

    def __init__(self, modality: str, num_classes: int, blocks_per_stage: tuple[int, int, int, int]):
        super().__init__(modality, num_classes)
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        in_planes = 64
        for index, (planes, num_blocks) in enumerate(zip((64, 128, 256, 512), blocks_per_stage), start=1):
            stride = 1 if index == 1 else 2
            setattr(self, f"layer{index}", self._make_layer(in_planes, planes, stride, num_blocks))
            in_planes = planes
        self.feature_dim = 512
        self.build_head()
        # After the head, as in the original: the init pass walks every module, head included.
        he_fan_out_init(self)

    @staticmethod
    def _make_layer(in_planes: int, planes: int, stride: int, num_blocks: int) -> nn.Sequential:
        """The stage's first block changes stride and width; the others keep them."""
        rest = [BasicBlock(planes, planes, 1) for _ in range(num_blocks - 1)]
        return nn.Sequential(BasicBlock(in_planes, planes, stride), *rest)

    def forward_encoder(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return F.avg_pool2d(out, 4).flatten(1)


@register_model("resnet18", display_name="ResNet18")
def resnet18(modality: str, num_classes: int) -> MemoryWrapNet:
    return ResNet(modality, num_classes, blocks_per_stage=(2, 2, 2, 2))


@register_model("resnet34", display_name="ResNet34")
def resnet34(modality: str, num_classes: int) -> MemoryWrapNet:
    return ResNet(modality, num_classes, blocks_per_stage=(3, 4, 6, 3))
