"""EfficientNet-B0, CIFAR variant (kuangliu/pytorch-cifar): no 1280 head conv, dropout 0.2 on the features."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import MemoryWrapNet, register_model

# (expansion, out_channels, num_blocks, kernel_size, first stride)
CONFIG = (
    (1, 16, 1, 3, 1),
    (6, 24, 2, 3, 2),
    (6, 40, 2, 5, 2),
    (6, 80, 3, 3, 2),
    (6, 112, 3, 5, 1),
    (6, 192, 4, 5, 2),
    (6, 320, 1, 3, 1),
)
SE_RATIO = 0.25
DROPOUT_RATE = 0.2
# The original configures drop_connect_rate=0.2 but its block counter is never incremented, so every
# block gets rate 0: there is no drop-connect, and none is implemented here.


def swish(x: Tensor) -> Tensor:
    return x * torch.sigmoid(x)


class SqueezeExcitation(nn.Module):
    """Global average pool -> 1x1 conv down -> swish -> 1x1 conv up -> sigmoid gate."""

    def __init__(self, in_channels: int, se_channels: int):
        super().__init__()
        self.se1 = nn.Conv2d(in_channels, se_channels, kernel_size=1, bias=True)
        self.se2 = nn.Conv2d(se_channels, in_channels, kernel_size=1, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        gate = swish(self.se1(F.adaptive_avg_pool2d(x, 1)))
        return x * torch.sigmoid(self.se2(gate))


class Block(nn.Module):
    """Expand (1x1) -> depthwise kxk -> squeeze-excitation -> project (1x1); skip when shapes match.

    The expand conv+BN is constructed even when expansion is 1 (and then skipped in forward), so the
    parameter names and counts match the original checkpoints.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, expansion: int):
        super().__init__()
        self.expansion = expansion
        channels = expansion * in_channels
        self.conv1 = nn.Conv2d(in_channels, channels, kernel_size=1, stride=1, padding=0, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(
            channels, channels, kernel_size=kernel_size, stride=stride,
            padding=(1 if kernel_size == 3 else 2), groups=channels, bias=False,
        )
        self.bn2 = nn.BatchNorm2d(channels)
        self.se = SqueezeExcitation(channels, int(in_channels * SE_RATIO))
        self.conv3 = nn.Conv2d(channels, out_channels, kernel_size=1, stride=1, padding=0, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.has_skip = stride == 1 and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        out = x if self.expansion == 1 else swish(self.bn1(self.conv1(x)))
        out = swish(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(self.se(out)))
        return out + x if self.has_skip else out


class EfficientNetB0(MemoryWrapNet):
    """Swish stem, 16 MBConv blocks with SE, adaptive average pool, dropout: 320 features.

    The dropout sits inside `forward_encoder`, so in training the memory models drop features of
    the memory encodings too, exactly as the original did.
    """

    def __init__(self, modality: str, num_classes: int):
        super().__init__(modality, num_classes)
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.layers = self._make_layers(in_channels=32)
        self.feature_dim = 320
        self.build_head()

    @staticmethod
    def _make_layers(in_channels: int) -> nn.Sequential:
        layers = []
        for expansion, out_channels, num_blocks, kernel_size, stride in CONFIG:
            for block_stride in [stride] + [1] * (num_blocks - 1):
                layers.append(Block(in_channels, out_channels, kernel_size, block_stride, expansion))
                in_channels = out_channels
        return nn.Sequential(*layers)

    def forward_encoder(self, x: Tensor) -> Tensor:
        out = swish(self.bn1(self.conv1(x)))
        out = F.adaptive_avg_pool2d(self.layers(out), 1).flatten(1)
        return F.dropout(out, p=DROPOUT_RATE, training=self.training)


@register_model("efficientnet", display_name="EfficientNetB0")
def efficientnet(modality: str, num_classes: int) -> MemoryWrapNet:
    return EfficientNetB0(modality, num_classes)
