"""Wide ResNet for 32x32 inputs, as the journal version builds it (its copy of hiyouga/AMP-Regularizer).

Departures from Zagoruyko & Komodakis' WRN are kept on purpose, because they are what the journal
trained: the stride sits on the second conv of a block, the projection shortcut has no BN, the stem
has no BN/ReLU, and the final BN has PyTorch momentum 0.9 (running stats follow the last batch).

Module names follow the journal file (`conv1`, `layerN.i.residual.j`, `layerN.i.shortcut`,
`classifier.j`), so its encoder weights load under the same keys; only the std linear layer, which
the journal kept as `classifier.5`, is the suite's `linear`.
"""
from __future__ import annotations

from torch import Tensor, nn

from .base import MemoryWrapNet, register_model

DROPOUT = 0.3  # the journal's default for both WRN sizes
NO_TAIL_DROPOUT = frozenset({"encoder_memory"})  # the journal's only head fed undropped features


class WideBlock(nn.Module):
    """Pre-activation block: BN-ReLU-conv(stride 1)-dropout-BN-ReLU-conv(stride s), plus a shortcut.

    The shortcut is a bias-free 1x1 conv on the block's raw input (not its BN-ReLU output) when the
    shape changes, else the identity. Nothing follows the sum: the next block's BN-ReLU starts it.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, dropout: float):
        super().__init__()
        self.residual = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=False),
            nn.Dropout(dropout),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False),
        )
        self.shortcut: nn.Module = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.residual(x) + self.shortcut(x)


def kaiming_fan_out_init(model: nn.Module) -> None:
    """The journal's init, over every module including the head (so it runs after `build_head`).

    Conv weights: Kaiming-normal, fan_out, ReLU gain. BN: weight 1, bias 0. Every Linear keeps its
    default weight but gets a zero bias, which zeroes the Memory Wrap MLP biases too.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)


class WideResNet(MemoryWrapNet):
    """WRN-depth-k: a 16-channel stem, three stages of (depth-4)/6 blocks, BN-ReLU-8x8 pool: 64k features.

    The 0.3 feature dropout of the tail belongs to the encoder, so in training the memory encodings
    are dropped as well. The journal left it out only for full Memory Wrap (`encoder_memory`); every
    other head, including heads added later on "the std encoder", keeps it.
    """

    def __init__(self, modality: str, num_classes: int, depth: int, widen_factor: int, dropout: float = DROPOUT):
        super().__init__(modality, num_classes)
        if (depth - 4) % 6 != 0 or depth < 10:
            raise ValueError(f"Wide ResNet depth must be 6n+4 with n >= 1, got {depth}")
        blocks_per_stage = (depth - 4) // 6
        widths = (16 * widen_factor, 32 * widen_factor, 64 * widen_factor)
        self.conv1 = nn.Conv2d(3, 16, kernel_size=3, stride=1, padding=1, bias=False)
        in_channels = 16
        for index, (width, stride) in enumerate(zip(widths, (1, 2, 2)), start=1):
            strides = [stride] + [1] * (blocks_per_stage - 1)
            blocks = []
            for block_stride in strides:
                blocks.append(WideBlock(in_channels, width, block_stride, dropout))
                in_channels = width
            setattr(self, f"layer{index}", nn.Sequential(*blocks))
        tail: list[nn.Module] = [
            nn.BatchNorm2d(in_channels, momentum=0.9), nn.ReLU(inplace=True), nn.AvgPool2d(8), nn.Flatten(),
        ]
        if modality not in NO_TAIL_DROPOUT:
            tail.append(nn.Dropout(dropout))
        self.classifier = nn.Sequential(*tail)
        self.feature_dim = in_channels
        self.build_head()
        kaiming_fan_out_init(self)

    def forward_encoder(self, x: Tensor) -> Tensor:
        out = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        return self.classifier(out)


@register_model("wrn28_10", display_name="WRN-28-10")
def wrn28_10(modality: str, num_classes: int, dropout: float = DROPOUT) -> MemoryWrapNet:
    return WideResNet(modality, num_classes, depth=28, widen_factor=10, dropout=dropout)


@register_model("wrn28_2", display_name="WRN-28-2")
def wrn28_2(modality: str, num_classes: int, dropout: float = DROPOUT) -> MemoryWrapNet:
    return WideResNet(modality, num_classes, depth=28, widen_factor=2, dropout=dropout)
