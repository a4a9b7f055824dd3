"""ShuffleNetV2 (kuangliu/pytorch-cifar) at net_size 0.5, the conference suite's size, and 1, the journal's.

The sizes differ only in their stage widths, so one class takes the size; 0.5 keeps the parameter
names and shapes of the original checkpoints.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import MemoryWrapNet, register_model

# net_size -> output channels of the three stages (kuangliu's table, the sizes the suites select)
STAGE_CHANNELS = {0.5: (48, 96, 192), 1.0: (116, 232, 464)}
STAGE_BLOCKS = (3, 7, 3)  # BasicBlocks after each stage's DownBlock, at every size
HEAD_CHANNELS = 1024  # the 1x1 conv before pooling, at both sizes


def channel_shuffle(x: Tensor, groups: int = 2) -> Tensor:
    """(N, g, C/g, H, W) -> swap the two channel axes -> (N, C, H, W)."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class BasicBlock(nn.Module):
    """Split channels in half; the second half goes 1x1 -> depthwise 3x3 -> 1x1; concat, shuffle."""

    def __init__(self, in_channels: int):
        super().__init__()
        channels = in_channels // 2
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, stride=1, padding=1, groups=channels, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = nn.Conv2d(channels, channels, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels)

    def forward(self, x: Tensor) -> Tensor:
        kept, processed = x.chunk(2, dim=1)
        out = F.relu(self.bn1(self.conv1(processed)))
        out = self.bn2(self.conv2(out))
        out = F.relu(self.bn3(self.conv3(out)))
        return channel_shuffle(torch.cat([kept, out], dim=1))


class DownBlock(nn.Module):
    """Two stride-2 branches of out/2 channels each (left: dw -> 1x1; right: 1x1 -> dw -> 1x1)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        mid = out_channels // 2
        self.conv1 = nn.Conv2d(
            in_channels, in_channels, kernel_size=3, stride=2, padding=1, groups=in_channels, bias=False
        )
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv2 = nn.Conv2d(in_channels, mid, kernel_size=1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(in_channels, mid, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv4 = nn.Conv2d(mid, mid, kernel_size=3, stride=2, padding=1, groups=mid, bias=False)
        self.bn4 = nn.BatchNorm2d(mid)
        self.conv5 = nn.Conv2d(mid, mid, kernel_size=1, bias=False)
        self.bn5 = nn.BatchNorm2d(mid)

    def forward(self, x: Tensor) -> Tensor:
        left = self.bn1(self.conv1(x))
        left = F.relu(self.bn2(self.conv2(left)))
        right = F.relu(self.bn3(self.conv3(x)))
        right = self.bn4(self.conv4(right))
        right = F.relu(self.bn5(self.conv5(right)))
        return channel_shuffle(torch.cat([left, right], dim=1))


class ShuffleNetV2(MemoryWrapNet):
    """3x3 stem (no max-pool), three shuffle stages, 1x1 conv to 1024, 4x4 average pool: 1024 features."""

    def __init__(self, modality: str, num_classes: int, net_size: float = 0.5):
        super().__init__(modality, num_classes)
        if net_size not in STAGE_CHANNELS:
            raise ValueError(f"unknown ShuffleNetV2 net_size {net_size}; valid sizes: {sorted(STAGE_CHANNELS)}")
        self.conv1 = nn.Conv2d(3, 24, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(24)
        in_channels = 24
        for index, (channels, num_blocks) in enumerate(zip(STAGE_CHANNELS[net_size], STAGE_BLOCKS), start=1):
            blocks = [DownBlock(in_channels, channels)] + [BasicBlock(channels) for _ in range(num_blocks)]
            setattr(self, f"layer{index}", nn.Sequential(*blocks))
            in_channels = channels
        self.conv2 = nn.Conv2d(in_channels, HEAD_CHANNELS, kernel_size=1, stride=1, padding=0, bias=False)
        self.bn2 = nn.BatchNorm2d(HEAD_CHANNELS)
        self.feature_dim = HEAD_CHANNELS
        self.build_head()

    def forward_encoder(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.relu(self.bn2(self.conv2(out)))
        return F.avg_pool2d(out, 4).flatten(1)


@register_model("shufflenet", display_name="ShuffleNetV2")
def shufflenet(modality: str, num_classes: int) -> MemoryWrapNet:
    return ShuffleNetV2(modality, num_classes, net_size=0.5)


@register_model("shufflenet_1x", display_name="ShuffleNetV2 1x")
def shufflenet_1x(modality: str, num_classes: int) -> MemoryWrapNet:
    return ShuffleNetV2(modality, num_classes, net_size=1.0)
