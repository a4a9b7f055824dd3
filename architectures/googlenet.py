"""GoogLeNet, CIFAR variant (kuangliu/pytorch-cifar): every conv has a bias, one max-pool module reused."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import MemoryWrapNet, register_model


def conv_bn_relu(in_planes: int, out_planes: int, kernel_size: int) -> list[nn.Module]:
    return [
        nn.Conv2d(in_planes, out_planes, kernel_size=kernel_size, padding=kernel_size // 2),
        nn.BatchNorm2d(out_planes),
        nn.ReLU(True),
    ]


class Inception(nn.Module):
    """Four branches (1x1; 1x1->3x3; 1x1->3x3->3x3 for the "5x5"; maxpool->1x1), concatenated in order."""

    def __init__(
        self, in_planes: int, n1x1: int, n3x3red: int, n3x3: int, n5x5red: int, n5x5: int, pool_planes: int
    ):
        super().__init__()
        self.b1 = nn.Sequential(*conv_bn_relu(in_planes, n1x1, 1))
        self.b2 = nn.Sequential(*conv_bn_relu(in_planes, n3x3red, 1), *conv_bn_relu(n3x3red, n3x3, 3))
        self.b3 = nn.Sequential(
            *conv_bn_relu(in_planes, n5x5red, 1), *conv_bn_relu(n5x5red, n5x5, 3), *conv_bn_relu(n5x5, n5x5, 3)
        )
        self.b4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), *conv_bn_relu(in_planes, pool_planes, 1))

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], dim=1)


class GoogLeNet(MemoryWrapNet):
    """3x3 stem to 192, nine Inception modules with two max-pools, 8x8 average pool: 1024 features."""

    def __init__(self, modality: str, num_classes: int):
        super().__init__(modality, num_classes)
        self.pre_layers = nn.Sequential(*conv_bn_relu(3, 192, 3))
        self.a3 = Inception(192, 64, 96, 128, 16, 32, 32)
        self.b3 = Inception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.a4 = Inception(480, 192, 96, 208, 16, 48, 64)
        self.b4 = Inception(512, 160, 112, 224, 24, 64, 64)
        self.c4 = Inception(512, 128, 128, 256, 24, 64, 64)
        self.d4 = Inception(512, 112, 144, 288, 32, 64, 64)
        self.e4 = Inception(528, 256, 160, 320, 32, 128, 128)
        self.a5 = Inception(832, 256, 160, 320, 32, 128, 128)
        self.b5 = Inception(832, 384, 192, 384, 48, 128, 128)
        self.avgpool = nn.AvgPool2d(8, stride=1)
        self.feature_dim = 1024
        self.build_head()

    def forward_encoder(self, x: Tensor) -> Tensor:
        out = self.b3(self.a3(self.pre_layers(x)))
        out = self.maxpool(out)
        out = self.e4(self.d4(self.c4(self.b4(self.a4(out)))))
        out = self.maxpool(out)
        out = self.b5(self.a5(out))
        return self.avgpool(out).flatten(1)


@register_model("googlenet", display_name="GoogLeNet")
def googlenet(modality: str, num_classes: int) -> MemoryWrapNet:
    return GoogLeNet(modality, num_classes)
