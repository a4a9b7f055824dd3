"""The journal's encoders (Wide ResNet, ResNet34, ShuffleNetV2 1x): known answers measured on the journal code.

Parameter counts are the journal's measured ones for 10 classes; the Wide ResNet checks pin what
sets the journal's copy apart from a textbook WRN (stride on the second conv, BN-free shortcut,
tail BN momentum 0.9, zero Linear biases, tail dropout only where the journal put it).
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from architectures import base as registry, get_model, model_display_name, shufflenet, wide_resnet
from architectures.base import LinearHead

MODALITIES = ("std", "memory", "encoder_memory")
# (std, memory, encoder_memory) trainable parameters at 10 classes, and the pooled feature size
EXPECTED_COUNTS = {
    "wrn28_10": ((36_479_194, 37_306_074, 39_777_754), 640, "WRN-28-10"),
    "wrn28_2": ((1_467_610, 1_501_914, 1_603_034), 128, "WRN-28-2"),
    "resnet34": ((21_282_122, 21_812_554, 23_396_682), 512, "ResNet34"),
    "shufflenet_1x": ((1_263_854, 3_373_294, 9_687_278), 1024, "ShuffleNetV2 1x"),
}
CHEAPEST = "wrn28_2"
DROPOUT = 0.3


def build_on_meta(name: str, num_classes: int, modality: str) -> nn.Module:
    """Shapes without memory or init cost: WRN-28-10 alone is 40M parameters."""
    with torch.device("meta"):
        return get_model(name, num_classes, modality)


def eval_blocks_train_tail(model: nn.Module) -> None:
    """Train mode with the residual stages frozen to eval: only the tail's dropout can be random."""
    model.train()
    for stage in (model.layer1, model.layer2, model.layer3):
        stage.eval()


@pytest.mark.parametrize("name", EXPECTED_COUNTS)
def test_parameter_counts_match_the_journal(name: str) -> None:
    counts, feature_dim, shown = EXPECTED_COUNTS[name]
    for modality, expected in zip(MODALITIES, counts):
        model = build_on_meta(name, 10, modality)
        assert sum(p.numel() for p in model.parameters() if p.requires_grad) == expected, modality
        assert model.feature_dim == feature_dim
    assert model_display_name(name) == shown


@pytest.mark.parametrize("name", EXPECTED_COUNTS)
def test_num_classes_is_honoured(name: str) -> None:
    assert build_on_meta(name, 7, "std").linear.out_features == 7
    for modality in ("memory", "encoder_memory"):
        assert build_on_meta(name, 7, modality).mw.fc.fc2.out_features == 7


@pytest.mark.parametrize("modality", MODALITIES)
def test_wrn_tail_dropout_follows_the_journal_per_modality(modality: str) -> None:
    torch.manual_seed(0)
    model = get_model(CHEAPEST, 10, modality)
    x = torch.randn(4, 3, 32, 32)
    dropped = modality != "encoder_memory"
    with torch.no_grad():
        model.eval()
        torch.testing.assert_close(model.forward_encoder(x), model.forward_encoder(x), rtol=0, atol=0)
        eval_blocks_train_tail(model)
        first, second = model.forward_encoder(x), model.forward_encoder(x)
        assert torch.equal(first, second) is not dropped
        zeros = (first == 0).float().mean().item()
        if dropped:
            assert 0.2 < zeros < 0.4  # p = 0.3 on the 128 pooled features
            kept = (first != 0) & (second != 0)
            torch.testing.assert_close(first[kept], second[kept])  # only the mask differs
        else:
            assert zeros == 0.0


def test_wrn_memory_encodings_are_dropped_in_training() -> None:
    torch.manual_seed(0)
    model = get_model(CHEAPEST, 10, "memory")
    eval_blocks_train_tail(model)
    captured: list[tuple] = []
    model.mw.register_forward_pre_hook(lambda module, args: captured.append(args))
    with torch.no_grad():
        model(torch.randn(2, 3, 32, 32), torch.randn(20, 3, 32, 32))
    encoded_memory = captured[0][1]
    assert encoded_memory.shape == (20, 128)
    assert 0.2 < (encoded_memory == 0).float().mean().item() < 0.4


def test_wrn_heads_added_later_keep_the_std_tail_dropout(monkeypatch: pytest.MonkeyPatch) -> None:
    class ProbeHead(LinearHead):
        """A stand-in for a later head built on "the std encoder without its linear layer"."""

    monkeypatch.setitem(registry._HEADS, "probe", ProbeHead)
    tails = {modality: get_model(CHEAPEST, 10, modality).classifier for modality in (*MODALITIES, "probe")}
    with_dropout = {m for m, tail in tails.items() if any(isinstance(layer, nn.Dropout) for layer in tail)}
    assert with_dropout == {"std", "memory", "probe"}
    assert all(layer.p == DROPOUT for m in with_dropout for layer in tails[m] if isinstance(layer, nn.Dropout))


def randomise_batchnorm_stats(module: nn.Module) -> None:
    for bn in (m for m in module.modules() if isinstance(m, nn.BatchNorm2d)):
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.normal_()


def test_wide_block_known_answer() -> None:
    """Dropout between the convs, stride on the second conv, 1x1 BN-free shortcut on the raw input."""
    torch.manual_seed(0)
    block = wide_resnet.WideBlock(16, 32, stride=2, dropout=DROPOUT)
    randomise_batchnorm_stats(block)
    block.train()
    for bn in (m for m in block.modules() if isinstance(m, nn.BatchNorm2d)):
        bn.eval()  # running stats, so the hand computation needs no batch statistics
    assert isinstance(block.shortcut, nn.Conv2d) and block.shortcut.bias is None
    assert not any(isinstance(m, nn.BatchNorm2d) for m in block.shortcut.modules())
    bn1, conv1, bn2, conv2 = (block.residual[i] for i in (0, 2, 4, 6))
    x = torch.randn(2, 16, 16, 16)

    def batch_norm(bn: nn.BatchNorm2d, h: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(h, bn.running_mean, bn.running_var, bn.weight, bn.bias, training=False, eps=bn.eps)

    with torch.no_grad():
        torch.manual_seed(1)
        out = block(x)
        torch.manual_seed(1)
        h = F.conv2d(F.relu(batch_norm(bn1, x)), conv1.weight, stride=1, padding=1)
        h = F.dropout(h, DROPOUT, training=True)
        h = F.conv2d(F.relu(batch_norm(bn2, h)), conv2.weight, stride=2, padding=1)
        expected = h + F.conv2d(x, block.shortcut.weight, stride=2)
    assert out.shape == (2, 32, 8, 8)
    torch.testing.assert_close(out, expected)
    assert (out < 0).any()  # nothing follows the sum

    identity = wide_resnet.WideBlock(32, 32, stride=1, dropout=DROPOUT).eval()
    y = torch.randn(2, 32, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(identity(y), identity.residual(y) + y, rtol=0, atol=0)


def test_wrn_layout_stem_and_stage_shapes() -> None:
    torch.manual_seed(0)
    model = get_model(CHEAPEST, 10, "std").eval()
    assert [len(stage) for stage in (model.layer1, model.layer2, model.layer3)] == [4, 4, 4]
    shapes: list[tuple] = []
    for stage in (model.conv1, model.layer1, model.layer2, model.layer3):
        stage.register_forward_hook(lambda module, args, output: shapes.append(tuple(output.shape)))
    first_block_inputs: list[torch.Tensor] = []
    model.layer1.register_forward_pre_hook(lambda module, args: first_block_inputs.append(args[0].clone()))
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        features = model.forward_encoder(x)
        stem = F.conv2d(x, model.conv1.weight, padding=1)
    assert shapes == [(1, 16, 32, 32), (1, 32, 32, 32), (1, 64, 16, 16), (1, 128, 8, 8)]
    # No BN or ReLU after the stem: the first block sees the raw convolution, negatives included.
    torch.testing.assert_close(first_block_inputs[0], stem, rtol=0, atol=0)
    assert (stem < 0).any()
    assert features.shape == (1, 128)
    tail = [nn.BatchNorm2d, nn.ReLU, nn.AvgPool2d, nn.Flatten, nn.Dropout]
    assert [type(layer) for layer in model.classifier] == tail


@pytest.mark.parametrize("modality", MODALITIES)
def test_wrn_init_includes_the_head(modality: str) -> None:
    torch.manual_seed(0)
    model = get_model(CHEAPEST, 10, modality)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert linears == ([model.linear] if modality == "std" else [model.mw.fc.fc1, model.mw.fc.fc2])
    for linear in linears:
        assert torch.count_nonzero(linear.bias) == 0
        bound = 1.0 / math.sqrt(linear.in_features)  # the weights keep PyTorch's default uniform init
        assert 0.9 * bound < linear.weight.abs().max().item() <= bound
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1 + 2 * 12 + 3  # stem, two per block, one projection per stage
    for conv in convs:
        fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
        expected = math.sqrt(2.0 / fan_out)
        tolerance = 0.1 if conv.weight.numel() < 10_000 else 0.03
        assert conv.weight.std().item() == pytest.approx(expected, rel=tolerance)
        fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
        if abs(fan_in - fan_out) > 0.5 * fan_out:  # where fan_in would give a clearly different std
            assert conv.weight.std().item() != pytest.approx(math.sqrt(2.0 / fan_in), rel=tolerance)
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)


def test_wrn_tail_batchnorm_momentum_is_0_9() -> None:
    torch.manual_seed(0)
    model = get_model(CHEAPEST, 10, "std").train()
    tail_bn = model.classifier[0]
    assert tail_bn.momentum == 0.9
    assert all(bn.momentum == 0.1 for bn in model.modules() if isinstance(bn, nn.BatchNorm2d) and bn is not tail_bn)
    seen: list[torch.Tensor] = []
    tail_bn.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    with torch.no_grad():
        model.forward_encoder(torch.randn(4, 3, 32, 32))
    batch = seen[0]
    # running = 0.1 * old + 0.9 * batch, from mean 0 and variance 1 (unbiased batch variance)
    torch.testing.assert_close(tail_bn.running_mean, 0.9 * batch.mean(dim=(0, 2, 3)))
    torch.testing.assert_close(tail_bn.running_var, 0.1 + 0.9 * batch.var(dim=(0, 2, 3), unbiased=True))


def test_wrn_forward_backward_tiny_batch() -> None:
    torch.manual_seed(0)
    model = get_model(CHEAPEST, 7, "encoder_memory").train()
    logits, weights = model(torch.randn(2, 3, 32, 32), torch.randn(3, 3, 32, 32), return_weights=True)
    assert logits.shape == (2, 7) and weights.shape == (2, 3)
    logits.square().sum().backward()
    for parameter in (model.conv1.weight, model.mw.fc.fc1.weight, model.mw.fc.fc1.bias):
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0
    std = get_model(CHEAPEST, 7, "std").eval()
    with torch.no_grad():
        assert std(torch.randn(1, 3, 32, 32)).shape == (1, 7)


def test_wrn_rejects_a_depth_that_is_not_6n_plus_4() -> None:
    with pytest.raises(ValueError, match="6n\\+4"):
        wide_resnet.WideResNet("std", 10, depth=27, widen_factor=2)


def test_resnet34_layout_and_init() -> None:
    torch.manual_seed(0)
    model = get_model("resnet34", 10, "encoder_memory")
    assert [len(getattr(model, f"layer{i}")) for i in range(1, 5)] == [3, 4, 6, 3]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1 + 2 * 16 + 3
    for conv in convs:
        expected = math.sqrt(2.0 / (conv.kernel_size[0] * conv.kernel_size[1] * conv.out_channels))
        tolerance = 0.1 if conv.weight.numel() < 10_000 else 0.02
        assert conv.weight.std().item() == pytest.approx(expected, rel=tolerance)
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)
    # As for ResNet18, the Memory Wrap MLP keeps PyTorch's default Linear init (bias included).
    assert torch.count_nonzero(model.mw.fc.fc1.bias) > 0


def test_shufflenet_sizes() -> None:
    widths = {}
    for name in ("shufflenet", "shufflenet_1x"):
        model = build_on_meta(name, 10, "std")
        widths[name] = [getattr(model, f"layer{i}")[-1].conv3.out_channels * 2 for i in (1, 2, 3)]
        assert [len(getattr(model, f"layer{i}")) for i in (1, 2, 3)] == [4, 8, 4]  # DownBlock + (3, 7, 3)
        assert model.conv2.out_channels == 1024
    assert widths == {"shufflenet": [48, 96, 192], "shufflenet_1x": [116, 232, 464]}
    with pytest.raises(ValueError, match="net_size"):
        shufflenet.ShuffleNetV2("std", 10, net_size=1.5)
