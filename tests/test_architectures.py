"""Encoders: exact checkpoint layout of the original suite, forward/backward, and the kept numerical quirks."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from architectures import MODALITIES, densenet, efficientnet, get_model, list_models, mobilenet, shufflenet
from architectures.vit import MultiHeadSelfAttention

FIXTURE = json.loads((Path(__file__).parent / "data" / "reference_state_dicts.json").read_text())
# The fixture's own entries: encoders added later have no "original" to compare with.
FIXTURE_PAIRS = [tuple(key.split("/")) for key in FIXTURE]
# Every registered encoder with every registered head: shape, training and init checks.
PAIRS = [(name, modality) for name in list_models() for modality in MODALITIES]
PAPER_FEATURE_DIMS = {  # docs/protocol.md, encoders: the pooled feature size of each original encoder
    "resnet18": 512, "mobilenet": 1280, "efficientnet": 320, "shufflenet": 1024,
    "densenet": 384, "googlenet": 1024, "vit": 384,
}
NUM_CLASSES = 7  # not 10, so a hard-coded 10 would show
TINY_VIT = dict(patches=4, depth=2, hidden=16, heads=4, mlp_hidden=24)


def first_encoder_layer(model: nn.Module) -> nn.Module:
    return next(m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))


def state_dict_layout(model: nn.Module) -> list[list]:
    return [
        [key, list(value.shape), str(value.dtype).removeprefix("torch.")] for key, value in model.state_dict().items()
    ]


def test_every_fixture_entry_is_registered() -> None:
    assert {name for name, _ in FIXTURE_PAIRS} == set(PAPER_FEATURE_DIMS) <= set(list_models())
    assert {modality for _, modality in FIXTURE_PAIRS} <= set(MODALITIES)
    assert len(FIXTURE_PAIRS) == 21


@pytest.mark.parametrize("name,modality", FIXTURE_PAIRS)
def test_state_dict_layout_matches_original(name: str, modality: str) -> None:
    model = get_model(name, 10, modality)
    reference = FIXTURE[f"{name}/{modality}"]
    assert state_dict_layout(model) == reference["state_dict"]
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == reference["parameters"]
    assert model.feature_dim == PAPER_FEATURE_DIMS[name]

    dtypes = {"float32": torch.float32, "int64": torch.int64}
    zeros = {key: torch.zeros(shape, dtype=dtypes[dtype]) for key, shape, dtype in reference["state_dict"]}
    model.load_state_dict(zeros, strict=True)
    assert all(torch.count_nonzero(value) == 0 for value in model.state_dict().values())


@pytest.mark.parametrize("name,modality", PAIRS)
def test_forward_backward(name: str, modality: str) -> None:
    torch.manual_seed(0)
    model = get_model(name, NUM_CLASSES, modality).train()
    inputs, memory = torch.randn(2, 3, 32, 32), torch.randn(3, 3, 32, 32)
    batch_sizes: list[int] = []
    stem = first_encoder_layer(model)
    stem.register_forward_hook(lambda module, args, output: batch_sizes.append(args[0].shape[0]))
    head = getattr(model, model.head_class.attribute) if model.uses_memory or name != "vit" else model.fc
    head_inputs: list[torch.Tensor] = []
    head.register_forward_pre_hook(lambda module, args: head_inputs.append(args[0]))

    if modality == "std":
        logits = model(inputs)
        assert batch_sizes == [2]
    else:
        labels = torch.tensor([0, 1, 2]) if model.uses_memory_labels else None
        logits, weights = model(inputs, memory, return_weights=True, memory_labels=labels)
        assert batch_sizes == [2, 3]  # inputs and memory: two separate encoder passes, inputs first
        assert weights.shape == (2, 3)
        assert torch.all(weights >= 0)
        torch.testing.assert_close(weights.sum(dim=1), torch.ones(2))
    assert head_inputs[0].shape == (2, model.feature_dim)
    assert logits.shape == (2, NUM_CLASSES)
    # Every class that can be predicted has a finite logit; a head may exclude a class it cannot
    # predict in this step with -inf (ProtoNet: classes 3..6 are absent from the memory labels).
    assert torch.isfinite(logits[:, :3]).all() and (torch.isfinite(logits) | torch.isneginf(logits)).all()

    logits[torch.isfinite(logits)].square().sum().backward()
    assert stem.weight.grad is not None
    assert stem.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", [name for name in PAPER_FEATURE_DIMS if name != "vit"])
def test_memory_models_update_batchnorm_twice_per_forward(name: str) -> None:
    model = get_model(name, NUM_CLASSES, "encoder_memory").train()
    with torch.no_grad():
        model(torch.randn(2, 3, 32, 32), torch.randn(3, 3, 32, 32))
    counts = {key: value.item() for key, value in model.state_dict().items() if key.endswith("num_batches_tracked")}
    # EfficientNet's block 0 builds an expand conv+BN that its forward skips (expansion 1).
    unused = {"layers.0.bn1.num_batches_tracked"} if name == "efficientnet" else set()
    assert counts and all(count == (0 if key in unused else 2) for key, count in counts.items())


def test_resnet_explicit_init() -> None:
    torch.manual_seed(0)
    model = get_model("resnet18", NUM_CLASSES, "encoder_memory")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 20
    for conv in convs:
        expected = math.sqrt(2.0 / (conv.kernel_size[0] * conv.kernel_size[1] * conv.out_channels))
        tolerance = 0.1 if conv.weight.numel() < 10_000 else 0.02
        assert conv.weight.std().item() == pytest.approx(expected, rel=tolerance)
        assert abs(conv.weight.mean().item()) < 0.1 * expected
        # PyTorch's default (Kaiming-uniform, a=sqrt(5)) would give std 1/sqrt(3 * fan_in): clearly different.
        default_std = 1.0 / math.sqrt(3 * conv.weight[0].numel())
        assert abs(expected - default_std) > 0.2 * expected
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)
    # The Memory Wrap MLP keeps the default uniform init, bounded by 1/sqrt(fan_in).
    for linear in (model.mw.fc.fc1, model.mw.fc.fc2):
        bound = 1.0 / math.sqrt(linear.in_features)
        assert linear.weight.abs().max().item() <= bound
        assert linear.weight.abs().max().item() > 0.9 * bound


def test_efficientnet_dropout_only_in_training() -> None:
    torch.manual_seed(0)
    model = get_model("efficientnet", NUM_CLASSES, "std")
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        model.eval()
        torch.testing.assert_close(model(x), model(x), rtol=0, atol=0)
        assert torch.count_nonzero(model.forward_encoder(x) == 0) == 0
        model.train()
        first, second = model.forward_encoder(x), model.forward_encoder(x)
    assert not torch.equal(first, second)
    dropped = (first == 0).float().mean().item()
    assert 0.1 < dropped < 0.3  # p = 0.2
    kept = (first != 0) & (second != 0)
    torch.testing.assert_close(first[kept], second[kept])  # only the dropout mask differs


def test_efficientnet_dropout_also_hits_memory_encodings() -> None:
    torch.manual_seed(0)
    model = get_model("efficientnet", NUM_CLASSES, "encoder_memory").train()
    captured: list[tuple] = []
    model.mw.register_forward_pre_hook(lambda module, args: captured.append(args))
    with torch.no_grad():
        model(torch.randn(2, 3, 32, 32), torch.randn(20, 3, 32, 32))
    encoded_memory = captured[0][1]
    assert encoded_memory.shape == (20, 320)
    assert 0.1 < (encoded_memory == 0).float().mean().item() < 0.3


def test_densenet_concatenates_new_features_first() -> None:
    block = densenet.Bottleneck(20, 12).eval()
    x = torch.randn(2, 20, 8, 8)
    out = block(x)
    assert out.shape == (2, 32, 8, 8)
    torch.testing.assert_close(out[:, 12:], x, rtol=0, atol=0)
    new = block.conv2(torch.relu(block.bn2(block.conv1(torch.relu(block.bn1(x))))))
    torch.testing.assert_close(out[:, :12], new)


def test_shufflenet_block_passes_first_half_and_interleaves() -> None:
    block = shufflenet.BasicBlock(8).eval()
    x = torch.randn(2, 8, 4, 4)
    out = block(x)
    # [kept (4 ch), processed (4 ch)] shuffled with 2 groups: kept channels land on even positions.
    torch.testing.assert_close(out[:, 0::2], x[:, :4], rtol=0, atol=0)
    assert not torch.allclose(out[:, 1::2], x[:, 4:])
    shuffled = shufflenet.channel_shuffle(torch.arange(6.0).view(1, 6, 1, 1)).flatten()
    assert shuffled.tolist() == [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]


def mobilenet_main_path(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = torch.relu(block.bn1(block.conv1(x)))
    out = torch.relu(block.bn2(block.conv2(out)))
    return block.bn3(block.conv3(out))


def test_mobilenet_residuals() -> None:
    x = torch.randn(2, 16, 8, 8)
    projected = mobilenet.Block(16, 24, expansion=6, stride=1).eval()
    assert isinstance(projected.shortcut[0], nn.Conv2d)  # stride 1, width change: 1x1 conv+BN projection
    torch.testing.assert_close(projected(x), mobilenet_main_path(projected, x) + projected.shortcut(x))
    strided = mobilenet.Block(16, 16, expansion=6, stride=2).eval()
    torch.testing.assert_close(strided(x), mobilenet_main_path(strided, x))  # stride 2: no residual at all


def test_efficientnet_block0_builds_but_skips_its_expand_conv() -> None:
    torch.manual_seed(0)
    model = get_model("efficientnet", NUM_CLASSES, "std").eval()
    block = model.layers[0]
    assert sum(p.numel() for p in (*block.conv1.parameters(), *block.bn1.parameters())) == 1088
    x = torch.randn(2, 32, 8, 8)
    before = block(x)
    with torch.no_grad():
        block.conv1.weight.normal_()
    torch.testing.assert_close(block(x), before, rtol=0, atol=0)
    torch.testing.assert_close(efficientnet.swish(x), x * torch.sigmoid(x))


@pytest.mark.parametrize("modality", MODALITIES)
def test_vit_mean_pooling(modality: str) -> None:
    model = get_model("vit", NUM_CLASSES, modality, pooling="mean", **TINY_VIT)
    keys = model.state_dict().keys()
    assert "cls_token" not in keys
    assert model.pos_emb.shape == (1, 16, 16)
    x, memory = torch.randn(2, 3, 32, 32), torch.randn(3, 3, 32, 32)
    labels = torch.tensor([0, 1, 2]) if model.uses_memory_labels else None
    logits = model(x) if modality == "std" else model(x, memory, memory_labels=labels)
    assert logits.shape == (2, NUM_CLASSES)
    # Mean pooling is the average of the last block's tokens, no CLS token prepended.
    tokens = model.enc(model.emb(model.to_tokens(x)) + model.pos_emb)
    torch.testing.assert_close(model.forward_encoder(x), tokens.mean(dim=1))


def test_vit_memory_features_skip_the_final_layernorm() -> None:
    model = get_model("vit", NUM_CLASSES, "encoder_memory", **TINY_VIT).eval()
    assert len(model.fc) == 1 and isinstance(model.fc[0], nn.LayerNorm)
    x = torch.randn(2, 3, 32, 32)
    tokens = torch.cat([model.cls_token.expand(2, -1, -1), model.emb(model.to_tokens(x))], dim=1)
    expected = model.enc(tokens + model.pos_emb)[:, 0]
    torch.testing.assert_close(model.forward_encoder(x), expected)
    assert not torch.allclose(model.fc(expected), expected, atol=1e-3)  # i.e. the LayerNorm would change it


def test_vit_std_head_is_layernorm_then_linear() -> None:
    model = get_model("vit", NUM_CLASSES, "std", **TINY_VIT).eval()
    x = torch.randn(2, 3, 32, 32)
    features = model.forward_encoder(x)
    torch.testing.assert_close(model(x), model.fc[1](model.fc[0](features)))


def test_vit_patch_flattening_order() -> None:
    model = get_model("vit", NUM_CLASSES, "std", **TINY_VIT)  # 4 patches per side: 8x8 pixel patches
    x = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).view(2, 3, 32, 32)
    tokens = model.to_tokens(x)
    assert tokens.shape == (2, 16, 8 * 8 * 3)
    for batch, token, row, col, channel in [(0, 0, 0, 0, 0), (0, 1, 0, 1, 2), (1, 4, 1, 0, 1), (1, 15, 7, 5, 2)]:
        patch_row, patch_col = divmod(token, 4)
        value = x[batch, channel, 8 * patch_row + row, 8 * patch_col + col]
        # Each token is (row, col, channel) flattened, channel fastest.
        assert tokens[batch, token, (row * 8 + col) * 3 + channel] == value


def test_vit_attention_scales_by_full_hidden_size() -> None:
    torch.manual_seed(0)
    feats, heads, tokens = 8, 2, 5
    msa = MultiHeadSelfAttention(feats, heads)
    x = torch.randn(3, tokens, feats)

    def by_hand(scale: float) -> torch.Tensor:
        q, k, v = (layer(x) for layer in (msa.q, msa.k, msa.v))
        outputs = []
        for head in range(heads):
            cols = slice(head * feats // heads, (head + 1) * feats // heads)
            scores = torch.softmax(q[..., cols] @ k[..., cols].transpose(1, 2) / scale, dim=-1)
            outputs.append(scores @ v[..., cols])
        return msa.o(torch.cat(outputs, dim=-1))

    with torch.no_grad():
        output = msa(x)
        torch.testing.assert_close(output, by_hand(math.sqrt(feats)))
        assert not torch.allclose(output, by_hand(math.sqrt(feats // heads)), atol=1e-4)


@pytest.mark.parametrize(
    "options,message",
    [
        (dict(hidden=30, heads=4), "divisible by the number of heads"),
        (dict(patches=5), "not divisible by the patches"),
        (dict(image_size=30), "not divisible by the patches"),
        (dict(pooling="max"), "valid poolings: cls, mean"),
    ],
)
def test_vit_rejects_bad_options(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        get_model("vit", NUM_CLASSES, "std", **options)


def test_get_model_rejects_unknown_names() -> None:
    with pytest.raises(ValueError) as error:
        get_model("resnet50", NUM_CLASSES, "std")
    assert all(name in str(error.value) for name in list_models())
    with pytest.raises(ValueError) as error:
        get_model("resnet18", NUM_CLASSES, "memory_wrap")
    assert all(modality in str(error.value) for modality in MODALITIES)

