"""Counterfactual quality (issue 13): IM1 / IIM1 / IM2 against hand-computed values, the prototype-guided
search on tiny models with known answers, and the journal autoencoder's layout."""
from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from torch import Tensor, nn

from architectures import list_models
from architectures.autoencoder import ConvAutoencoder
from suite.journal.cfproto import (
    CFProtoOptions, class_prototypes, is_counterfactual, nearest_prototypes, polynomial_decay, prediction_loss,
    prototype_counterfactuals, search_gradient, shrink, update_c,
)
from suite.journal.interpretability import iim1, im1, im2, interpretability_scores


# ----------------------------------------------------------------------------------------------------------
# stubs


def scaled(factor: float):
    return lambda x: factor * x


def constant(value: float):
    return lambda x: torch.full_like(x, value)


def as_images(*rows: list[float]) -> Tensor:
    """Rows of 2 pixels as images [B, 1, 1, 2]."""
    return torch.tensor(rows, dtype=torch.float32).view(len(rows), 1, 1, 2)


class Linear(nn.Module):
    """logits = scale * W x on the two pixels of a [B, 1, 1, 2] image."""

    def __init__(self, weight: list[list[float]], bias: list[float] | None = None, scale: float = 5.0):
        super().__init__()
        self.register_buffer("weight", torch.tensor(weight) * scale)
        self.register_buffer("bias", torch.tensor(bias if bias is not None else [0.0] * len(weight)))

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(1) @ self.weight.T + self.bias


# classes: 0 wins when x0 is the largest, 1 when x1 is, 2 when both are negative enough
THREE_CLASSES = [[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]
LATENTS = torch.tensor([[0.8, 0.0], [0.9, 0.1], [0.0, 0.8], [0.2, 0.9], [-0.5, -0.5], [-0.6, -0.4]])
LABELS = torch.tensor([0, 0, 1, 1, 2, 2])
def FLAT(x: Tensor) -> Tensor:
    """Identity encoder: the latent space is the pixel space."""
    return x.flatten(1)


TEST_OPTIONS = CFProtoOptions(theta=1.0, c_steps=2, max_iterations=60, feature_range=(-1.0, 1.0))


# ----------------------------------------------------------------------------------------------------------
# IM1 / IIM1 / IM2
#
# x_a = (1, 2), x_b = (3, -1): squared L2 5 and 10, L1 3 and 4.
# AE_0 = 0.5 x -> errors 1.25, 2.5;  AE_1 = 1 -> errors 1, 8;  AE_2 = 0 -> errors 5, 10.
# Input a: original class 0, counterfactual class 1;  input b: original 1, counterfactual 2.

CLASS_AES = [scaled(0.5), constant(1.0), scaled(0.0)]
FULL_AE = constant(0.5)
X_CF = as_images([1.0, 2.0], [3.0, -1.0])
ORIG = torch.tensor([0, 1])
CF = torch.tensor([1, 2])


def test_im1_and_iim1_match_hand_computed_squared_ratios():
    torch.testing.assert_close(im1(X_CF, CF, ORIG, CLASS_AES), torch.tensor([1 / 1.25, 10 / 8]))
    torch.testing.assert_close(iim1(X_CF, CF, ORIG, CLASS_AES), torch.tensor([1.25 / 1, 8 / 10]))


def test_im2_uses_the_counterfactual_class_autoencoder_and_l1_denominator():
    # a: ||AE_1(a) - 0.5||^2 = 2 * 0.25 = 0.5 over ||a||_1 = 3;  b: ||AE_2(b) - 0.5||^2 = 0.5 over 4
    torch.testing.assert_close(im2(X_CF, CF, CLASS_AES, FULL_AE), torch.tensor([0.5 / 3, 0.5 / 4]))


def test_epsilon_is_added_to_every_denominator():
    torch.testing.assert_close(im1(X_CF, CF, ORIG, CLASS_AES, eps=1.0), torch.tensor([1 / 2.25, 10 / 9]))
    torch.testing.assert_close(iim1(X_CF, CF, ORIG, CLASS_AES, eps=1.0), torch.tensor([1.25 / 2, 8 / 11]))
    torch.testing.assert_close(im2(X_CF, CF, CLASS_AES, FULL_AE, eps=1.0), torch.tensor([0.5 / 4, 0.5 / 5]))


def test_interpretability_scores_bundle_the_three_hand_computed_values():
    scores = interpretability_scores(X_CF, CF, ORIG, CLASS_AES, FULL_AE)
    assert sorted(scores) == ["iim1", "im1", "im2"]
    torch.testing.assert_close(scores["im1"], torch.tensor([0.8, 1.25]))
    torch.testing.assert_close(scores["iim1"], torch.tensor([1.25, 0.8]))
    torch.testing.assert_close(scores["im2"], torch.tensor([0.5 / 3, 0.5 / 4]))


def test_scores_are_per_input_not_of_the_batch_stack():
    alone = interpretability_scores(X_CF[:1], CF[:1], ORIG[:1], CLASS_AES, FULL_AE)
    other = as_images([1.0, 2.0], [-7.0, 0.5])
    together = interpretability_scores(other, CF, ORIG, CLASS_AES, FULL_AE)
    for name in ("im1", "iim1", "im2"):
        assert together[name].shape == (2,)
        torch.testing.assert_close(together[name][:1], alone[name])


def test_failed_searches_and_same_class_pairs_are_refused():
    with_nan = X_CF.clone()
    with_nan[1] = math.nan
    with pytest.raises(ValueError, match="not finite"):
        im1(with_nan, CF, ORIG, CLASS_AES)
    with pytest.raises(ValueError, match="not finite"):
        im2(with_nan, CF, CLASS_AES, FULL_AE)
    with pytest.raises(ValueError, match="original class"):
        iim1(X_CF, torch.tensor([1, 1]), ORIG, CLASS_AES)


# ----------------------------------------------------------------------------------------------------------
# the pieces of the search


def test_prediction_loss_and_validity_with_kappa():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.3, 0.6, 0.1], [0.45, 0.5, 0.05]])
    orig = torch.tensor([0, 0, 0])
    torch.testing.assert_close(prediction_loss(probs, orig, kappa=0.0), torch.tensor([0.5, 0.0, 0.0]))
    torch.testing.assert_close(prediction_loss(probs, orig, kappa=0.2), torch.tensor([0.5, -0.2, -0.05]))
    assert is_counterfactual(probs, orig, kappa=0.0).tolist() == [False, True, True]
    assert is_counterfactual(probs, orig, kappa=0.2).tolist() == [False, True, False]


def test_shrinkage_thresholding_undoes_small_moves_and_shortens_large_ones():
    x0 = torch.zeros(5)
    z = torch.tensor([0.3, 0.05, -0.2, 0.95, -1.5])
    expected = torch.tensor([0.2, 0.0, -0.1, 0.8, -1.0])  # 0.95 - 0.1 capped at 0.8; -1.5 + 0.1 floored at -1
    torch.testing.assert_close(shrink(z, x0, beta=0.1, low=-1.0, high=0.8), expected)


def test_learning_rate_decays_polynomially_to_zero():
    assert polynomial_decay(0.1, 0, 100) == pytest.approx(0.1)
    assert polynomial_decay(0.1, 75, 100) == pytest.approx(0.05)
    assert polynomial_decay(0.1, 100, 100) == 0.0


def test_bisection_moves_c_up_after_failure_and_down_after_success():
    c = torch.tensor([1.0, 1.0, 0.5, 0.75])
    lower = torch.tensor([0.0, 0.0, 0.0, 0.5])
    upper = torch.tensor([1e10, 1e10, 1.0, 1.0])
    success = torch.tensor([True, False, False, True])
    c, lower, upper = update_c(c, lower, upper, success)
    torch.testing.assert_close(c, torch.tensor([0.5, 10.0, 0.75, 0.625]))
    torch.testing.assert_close(lower, torch.tensor([0.0, 1.0, 0.5, 0.5]))
    torch.testing.assert_close(upper, torch.tensor([1.0, 1e10, 1.0, 0.75]))


# ----------------------------------------------------------------------------------------------------------
# prototypes
#
# Latent space (2-d). Input 0 at (0, 0), predicted class 0; input 1 at (5, 0), predicted class 1.
# class 0: (0, 0.1);  class 1: (-4, 0), (4, 0);  class 2: (0, 3) twice;  class 3: no latents.

PROTO_LATENTS = torch.tensor([[0.0, 0.1], [-4.0, 0.0], [4.0, 0.0], [0.0, 3.0], [0.0, 3.0]])
PROTO_LABELS = torch.tensor([0, 1, 1, 2, 2])
QUERY = torch.tensor([[0.0, 0.0], [5.0, 0.0]])
NOT_OWN = torch.tensor([[False, True, True, True], [True, False, True, True]])


def test_class_prototypes_are_class_means_and_nan_for_empty_classes():
    protos = class_prototypes(PROTO_LATENTS, PROTO_LABELS, num_classes=4)
    torch.testing.assert_close(protos[:3], torch.tensor([[0.0, 0.1], [0.0, 0.0], [0.0, 3.0]]))
    assert torch.isnan(protos[3]).all()


def test_each_input_gets_the_nearest_prototype_of_another_class():
    protos, classes = nearest_prototypes(QUERY, PROTO_LATENTS, PROTO_LABELS, NOT_OWN, k=None)
    # input 0: class 1 mean (0, 0) at distance 0 beats class 2 at 3; input 1: class 0 (5.001) beats class 2 (5.83)
    assert classes.tolist() == [1, 0]
    torch.testing.assert_close(protos, torch.tensor([[0.0, 0.0], [0.0, 0.1]]))


def test_k_nearest_prototypes_rank_classes_by_distance_to_the_mean():
    protos, classes = nearest_prototypes(QUERY, PROTO_LATENTS, PROTO_LABELS, NOT_OWN, k=1)
    # k=1, input 0: class 1's nearest latent is 4 away, class 2's is 3 away -> class 2
    assert classes.tolist() == [2, 0]
    torch.testing.assert_close(protos[0], torch.tensor([0.0, 3.0]))
    protos, classes = nearest_prototypes(QUERY, PROTO_LATENTS, PROTO_LABELS, NOT_OWN, k=2)
    # k=2: the mean of class 1's two latents is (0, 0), distance 0 (the mean of their distances, 4, would lose)
    assert classes[0].item() == 1
    torch.testing.assert_close(protos[0], torch.tensor([0.0, 0.0]))


def test_a_fixed_target_chooses_that_class_and_an_empty_class_is_an_error():
    only_two = torch.tensor([[False, False, True, False], [False, False, True, False]])
    protos, classes = nearest_prototypes(QUERY, PROTO_LATENTS, PROTO_LABELS, only_two)
    assert classes.tolist() == [2, 2]
    torch.testing.assert_close(protos, torch.tensor([[0.0, 3.0], [0.0, 3.0]]))
    only_three = torch.tensor([[False, False, False, True], [False, True, False, False]])
    with pytest.raises(ValueError, match=r"inputs \[0\]"):
        nearest_prototypes(QUERY, PROTO_LATENTS, PROTO_LABELS, only_three)


# ----------------------------------------------------------------------------------------------------------
# the search


def _assert_consistent(result, model, options: CFProtoOptions) -> None:
    """Found rows are finite, in range and predicted as reported; failed rows are NaN and -1."""
    found = result.found
    cfs = result.counterfactual
    assert torch.isfinite(cfs[found]).all() and torch.isnan(cfs[~found]).all()
    low, high = options.feature_range
    assert bool(((cfs[found] >= low) & (cfs[found] <= high)).all())
    if found.any():
        assert torch.equal(model(cfs[found]).argmax(dim=1), result.cf_class[found])
        assert bool((result.cf_class[found] != result.orig_class[found]).all())
    assert bool((result.cf_class[~found] == -1).all())


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]


@pytest.mark.parametrize("device", DEVICES)
def test_search_finds_a_counterfactual_within_the_feature_range(device: str):
    model = Linear(THREE_CLASSES).to(device)
    x = as_images([0.6, 0.2]).to(device)
    result = prototype_counterfactuals(model, x, encoder=FLAT, latents=LATENTS, labels=LABELS, options=TEST_OPTIONS)
    assert result.counterfactual.device.type == device
    assert result.found.tolist() == [True] and result.n_failed == 0
    assert result.orig_class.tolist() == [0]
    assert result.target_class.tolist() == [1]  # class 1's prototype (0.1, 0.85) is the nearest other one
    _assert_consistent(result, model, TEST_OPTIONS)
    assert result.iterations == 2 * 60


def test_search_with_a_fixed_target_ends_in_that_class():
    model = Linear(THREE_CLASSES)
    x = as_images([0.6, 0.2])
    result = prototype_counterfactuals(model, x, encoder=FLAT, latents=LATENTS, labels=LABELS,
                                       target=torch.tensor([2]), options=TEST_OPTIONS)
    assert result.found.tolist() == [True]
    assert result.cf_class.tolist() == [2] and result.target_class.tolist() == [2]
    _assert_consistent(result, model, TEST_OPTIONS)


def test_prediction_term_alone_finds_a_counterfactual():
    """theta = 0: only c * L_pred can pull the input across the boundary (the journal's optimiser lacked it)."""
    model = Linear(THREE_CLASSES)
    options = CFProtoOptions(theta=0.0, c_init=10.0, c_steps=1, max_iterations=60, feature_range=(-1.0, 1.0))
    result = prototype_counterfactuals(model, as_images([0.6, 0.2]), options=options)
    assert result.found.tolist() == [True] and result.target_class.tolist() == [-1]
    _assert_consistent(result, model, options)
    torch.testing.assert_close(result.c_final, torch.tensor([5.0]))  # success at c = 10 -> bisected to 5


def test_a_model_with_one_class_everywhere_reports_a_failed_search():
    model = Linear([[0.0, 0.0]] * 3, bias=[2.0, 0.0, 0.0])
    x = as_images([0.6, 0.2], [-0.3, 0.9])
    options = CFProtoOptions(theta=1.0, c_steps=2, max_iterations=20, feature_range=(-1.0, 1.0))
    result = prototype_counterfactuals(model, x, encoder=FLAT, latents=LATENTS, labels=LABELS, options=options)
    assert result.found.tolist() == [False, False] and result.n_failed == 2 and result.n_found == 0
    assert torch.isnan(result.counterfactual).all()
    assert result.cf_class.tolist() == [-1, -1]
    assert torch.isinf(result.distance).all() and torch.isnan(result.c_found).all()
    torch.testing.assert_close(result.c_final, torch.tensor([100.0, 100.0]))  # 1 -> 10 -> 100


def test_searches_are_independent_per_input():
    """Input 0 can reach its target (1), input 1 cannot (class 2 never wins): one found, one failed, and
    input 0's counterfactual is the one it gets alone."""
    model = Linear(THREE_CLASSES, bias=[0.0, 0.0, -100.0])
    options = CFProtoOptions(theta=1.0, c_steps=1, max_iterations=60, feature_range=(-1.0, 1.0))
    x = as_images([0.6, 0.2], [0.7, -0.1])
    both = prototype_counterfactuals(model, x, encoder=FLAT, latents=LATENTS, labels=LABELS,
                                     target=torch.tensor([1, 2]), options=options)
    alone = prototype_counterfactuals(model, x[:1], encoder=FLAT, latents=LATENTS, labels=LABELS,
                                      target=torch.tensor([1]), options=options)
    assert both.found.tolist() == [True, False]
    _assert_consistent(both, model, options)
    torch.testing.assert_close(both.counterfactual[:1], alone.counterfactual)
    torch.testing.assert_close(both.c_final, torch.tensor([0.5, 10.0]))  # down after success, up after failure


def test_search_runs_with_the_journal_autoencoder_as_encoder_and_ae_term():
    torch.manual_seed(0)
    ae = ConvAutoencoder(channels=3).eval()
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 3)).eval()
    x = torch.randn(3, 3, 4, 4)
    train = torch.randn(12, 3, 4, 4)
    with torch.no_grad():
        latents, labels = ae.encode(train), model(train).argmax(dim=1)
    options = CFProtoOptions(gamma=1.0, c_init=10.0, c_steps=1, max_iterations=20, feature_range=(-3.0, 3.0))
    result = prototype_counterfactuals(model, x, encoder=ae.encode, latents=latents, labels=labels,
                                       autoencoder=ae, options=options)
    assert result.counterfactual.shape == x.shape
    _assert_consistent(result, model, options)


def test_search_refuses_a_target_equal_to_the_prediction_and_missing_encoders():
    model = Linear(THREE_CLASSES)
    with pytest.raises(ValueError, match="own prediction"):
        prototype_counterfactuals(model, as_images([0.6, 0.2]), target=torch.tensor([0]),
                                  options=CFProtoOptions(theta=0.0))
    with pytest.raises(ValueError, match="encoder"):
        prototype_counterfactuals(model, as_images([0.6, 0.2]))
    with pytest.raises(ValueError, match="c_steps"):
        CFProtoOptions(c_steps=0)


def test_options_default_to_the_journal_settings():
    options = CFProtoOptions()
    assert (options.kappa, options.beta, options.gamma, options.theta) == (0.0, 0.1, 0.0, 100.0)
    assert (options.c_init, options.c_steps, options.max_iterations) == (1.0, 2, 1000)
    assert (options.learning_rate, options.clip, options.k) == (0.1, 1000.0, None)
    assert not options.l1_in_gradient  # the published method; the journal code's variant is opt-in


def test_the_gradient_step_leaves_the_l1_term_to_shrinkage_unless_asked():
    """Published: the gradient is of c * L_pred + L2 (+ the prototype term) alone; with l1_in_gradient
    (the journal code) beta * sign(y - x0) is added, 0 where y = x0."""
    model = Linear(THREE_CLASSES)
    x0 = as_images([0.5, 0.1], [0.2, 0.7])
    y = as_images([0.9, 0.1], [-0.3, 1.0])  # moved up, unmoved, moved down, moved up
    orig, c = model(x0).argmax(dim=1), torch.tensor([2.0, 3.0])
    published = search_gradient(y, x0, c, model, orig, TEST_OPTIONS, torch.zeros(2, 2), FLAT)
    y_ = y.detach().requires_grad_(True)
    by_hand = (c * prediction_loss(torch.softmax(model(y_), dim=1), orig, 0.0) + ((y_ - x0) ** 2).flatten(1).sum(1)
               + 1.0 * (y_.flatten(1) ** 2).sum(1))  # theta 1, prototypes at 0
    (expected,) = torch.autograd.grad(by_hand.sum(), y_)
    assert torch.allclose(published, expected)
    journal = search_gradient(y, x0, c, model, orig, replace(TEST_OPTIONS, l1_in_gradient=True), torch.zeros(2, 2),
                              FLAT)
    sign = torch.tensor([1.0, 0.0, -1.0, 1.0]).view(2, 1, 1, 2)
    assert torch.allclose(journal - published, TEST_OPTIONS.beta * sign)


# ----------------------------------------------------------------------------------------------------------
# the journal autoencoder


def test_autoencoder_layout_and_parameter_counts():
    ae = ConvAutoencoder()
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    assert (count(ae.encoder), count(ae.decoder), count(ae)) == (2913, 2915, 5828)
    x = torch.randn(2, 3, 32, 32)
    assert ae.encode(x).shape == (2, 1, 16, 16)
    assert ae.decode(ae.encode(x)).shape == ae(x).shape == x.shape
    assert not any("autoencoder" in name for name in list_models())


def test_k_nearest_prototypes_average_the_k_nearest_latents_of_the_class():
    """Class 1 has latents 1, 2 and 10 away from the query: k=2 averages the two nearest, k=1 takes the
    nearest, k above the class size takes them all."""
    latents = torch.tensor([[1.0, 0.0], [0.0, 2.0], [10.0, 0.0]])
    labels, query, only_one = torch.tensor([1, 1, 1]), torch.zeros(1, 2), torch.tensor([[False, True]])
    for k, expected in ((1, [1.0, 0.0]), (2, [0.5, 1.0]), (5, [11.0 / 3, 2.0 / 3])):
        protos, classes = nearest_prototypes(query, latents, labels, only_one, k=k)
        assert classes.tolist() == [1]
        torch.testing.assert_close(protos[0], torch.tensor(expected))
