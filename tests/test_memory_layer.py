"""Memory Wrap layers against recorded memorywrap 1.0.6 outputs, plus their invariants."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from architectures import EncoderMemoryWrapLayer, MemoryWrapLayer

CASES = np.load(Path(__file__).parent / "data" / "memory_layer_cases.npz")
CASE_NAMES = sorted({key.split("/")[0] for key in CASES.files})
LAYERS = {"full": EncoderMemoryWrapLayer, "base": MemoryWrapLayer}


def case_tensor(key: str) -> torch.Tensor:
    return torch.from_numpy(CASES[key])


def recorded_layer(case: str, variant: str) -> torch.nn.Module:
    """The layer of `variant` with the MLP weights recorded for `case`."""
    prefix = f"{case}/{variant}."
    state = {key.removeprefix(prefix): case_tensor(key) for key in CASES.files if key.startswith(prefix + "fc.")}
    encoder_dim = CASES[f"{case}/E"].shape[1]
    num_classes = CASES[f"{case}/{variant}.logits"].shape[1]
    layer = LAYERS[variant](encoder_dim, num_classes)
    layer.load_state_dict(state, strict=True)
    return layer


def test_cases_are_all_present() -> None:
    assert CASE_NAMES == ["large_magnitude", "random", "relu_features", "single_memory", "ties_and_zeros"]
    for case in CASE_NAMES:
        for variant in LAYERS:
            assert {f"{case}/{variant}.logits", f"{case}/{variant}.weights"} <= set(CASES.files)


@pytest.mark.parametrize("variant", sorted(LAYERS))
@pytest.mark.parametrize("case", CASE_NAMES)
def test_reproduces_memorywrap_106(case: str, variant: str) -> None:
    layer = recorded_layer(case, variant)
    with torch.no_grad():
        logits, weights = layer(case_tensor(f"{case}/E"), case_tensor(f"{case}/M"), return_weights=True)
    expected_logits = case_tensor(f"{case}/{variant}.logits")
    expected_weights = case_tensor(f"{case}/{variant}.weights")
    torch.testing.assert_close(weights, expected_weights, rtol=0, atol=1e-6)
    if case == "large_magnitude":
        torch.testing.assert_close(logits, expected_logits, rtol=1e-4, atol=0)
    else:
        torch.testing.assert_close(logits, expected_logits, rtol=0, atol=1e-6)
    without_weights = layer(case_tensor(f"{case}/E"), case_tensor(f"{case}/M"))
    torch.testing.assert_close(without_weights, logits, rtol=0, atol=0)


@pytest.mark.parametrize("variant", sorted(LAYERS))
@pytest.mark.parametrize("case", CASE_NAMES)
def test_weights_are_a_sparse_distribution(case: str, variant: str) -> None:
    layer = recorded_layer(case, variant)
    _, weights = layer(case_tensor(f"{case}/E"), case_tensor(f"{case}/M"), return_weights=True)
    assert torch.all(weights >= 0)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(weights.shape[0]))


def test_sparsemax_produces_exact_zeros() -> None:
    _, weights = recorded_layer("relu_features", "full")(
        case_tensor("relu_features/E"), case_tensor("relu_features/M"), return_weights=True
    )
    assert torch.count_nonzero(weights == 0) > 0


def test_mlp_sizes() -> None:
    full, base = EncoderMemoryWrapLayer(32, 5), MemoryWrapLayer(32, 5)
    assert (full.fc.fc1.in_features, full.fc.fc1.out_features, full.fc.fc2.out_features) == (64, 128, 5)
    assert (base.fc.fc1.in_features, base.fc.fc1.out_features, base.fc.fc2.out_features) == (32, 64, 5)


def mlp_input(layer: torch.nn.Module, encoder_output: torch.Tensor, memory: torch.Tensor) -> tuple:
    """What `layer` feeds its MLP, and the attention weights it used."""
    seen: list[torch.Tensor] = []
    handle = layer.fc.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    _, weights = layer(encoder_output, memory, return_weights=True)
    handle.remove()
    return seen[0], weights


def test_mlp_input_is_encoder_output_then_memory_vector() -> None:
    torch.manual_seed(0)
    encoder_output, memory = torch.randn(4, 16), torch.randn(6, 16)
    full_input, weights = mlp_input(EncoderMemoryWrapLayer(16, 3), encoder_output, memory)
    # The memory vector is the weighted sum of the un-normalised memory encodings.
    torch.testing.assert_close(full_input, torch.cat([encoder_output, weights @ memory], dim=1))
    base_input, weights = mlp_input(MemoryWrapLayer(16, 3), encoder_output, memory)
    torch.testing.assert_close(base_input, weights @ memory)


def test_baseline_sees_encoder_output_only_through_attention() -> None:
    torch.manual_seed(0)
    encoder_output, memory = torch.randn(4, 16), torch.randn(6, 16)
    base, full = MemoryWrapLayer(16, 3), EncoderMemoryWrapLayer(16, 3)
    with torch.no_grad():
        # Positive rescaling leaves the cosine similarities, hence the weights, unchanged:
        # the baseline's logits must not move, the full layer's must.
        torch.testing.assert_close(base(3.0 * encoder_output, memory), base(encoder_output, memory))
        assert not torch.allclose(full(3.0 * encoder_output, memory), full(encoder_output, memory))
        # A different direction changes the attention, so the baseline does depend on the encoder output.
        _, weights = base(encoder_output, memory, return_weights=True)
        _, flipped_weights = base(-encoder_output, memory, return_weights=True)
        assert not torch.allclose(weights, flipped_weights)
        assert not torch.allclose(base(-encoder_output, memory), base(encoder_output, memory))


@pytest.mark.parametrize("layer_class", [MemoryWrapLayer, EncoderMemoryWrapLayer])
def test_all_zero_vectors_stay_finite(layer_class: type) -> None:
    layer = layer_class(8, 4)
    logits, weights = layer(torch.zeros(3, 8), torch.zeros(5, 8), return_weights=True)
    assert torch.isfinite(logits).all() and torch.isfinite(weights).all()
    torch.testing.assert_close(weights, torch.full((3, 5), 0.2))  # all similarities 0: uniform attention
    logits.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in layer.parameters())


def test_non_finite_encodings_reach_the_logits_without_an_index_error():
    """Diverged encodings must not crash sparsemax (a device-side assert on CUDA): the NaN flows to the
    logits, so the loss is NaN and training stops at the end of the epoch, without a host sync per step."""
    from architectures.memory import content_weights

    encodings = torch.ones(2, 4)
    encodings[1, 0] = float("nan")
    weights = content_weights(encodings, torch.ones(3, 4))
    assert torch.isfinite(weights).all() and torch.allclose(weights[0], torch.full((3,), 1 / 3))
    logits = EncoderMemoryWrapLayer(4, 2)(encodings, torch.ones(3, 4))
    assert torch.isfinite(logits[0]).all() and torch.isnan(logits[1]).all()
