"""Interpretability scores of counterfactuals, one score per counterfactual (Van Looveren & Klaise, 2019).

For a counterfactual x' of an input whose model prediction was class o, and which the model
predicts as class t != o, with AE_k an autoencoder trained on class k only and AE a model trained
on every class (all norms over the pixels of one image):

    IM1(x')  = ||x' - AE_t(x')||_2^2 / (||x' - AE_o(x')||_2^2 + eps)
    IIM1(x') = ||x' - AE_o(x')||_2^2 / (||x' - AE_t(x')||_2^2 + eps)
    IM2(x')  = ||AE_t(x') - AE(x')||_2^2 / (||x'||_1 + eps)

IM1 is low when the counterfactual is reconstructed better by the autoencoder of its new class than
by that of the original class, i.e. when it looks like its new class. IM2 is low when the new class's
autoencoder agrees with the all-class one, i.e. when the counterfactual lies on the data manifold of
its class; the L1 norm of x' makes it comparable across images. IIM1 is the journal's reciprocal of
IM1 (higher is better); here it uses the same squared norms as IM1, so IIM1 = 1 / IM1 when eps = 0.

How the journal's scoring code differs from these definitions (and from this module):
- it uses plain (not squared) L2 norms in every numerator and denominator, and an L2 norm, not the
  L1 norm, of the counterfactual in IM2's denominator;
- it computes each norm over the stacked counterfactuals of a whole test batch and appends that one
  batch-level value once for every input, so an input's score depends on the other inputs;
- it passes the autoencoder of the original class, not of the counterfactual's class, to IM2;
- failed searches come back as all-zero images and are scored; here non-finite rows are refused.

Every function takes tensors [B, ...] (images [B, C, H, W]) and returns a [B] tensor: row i depends
on input i alone, given autoencoders that treat batch rows independently (eval mode).
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence, Union

import torch
from torch import Tensor

Autoencoder = Callable[[Tensor], Tensor]
ClassAutoencoders = Union[Sequence[Autoencoder], Mapping[int, Autoencoder]]

DEFAULT_EPS = 1e-8  # the journal code's value


def squared_l2(x: Tensor) -> Tensor:
    """Per-row squared L2 norm: [B, ...] -> [B]."""
    return x.flatten(1).pow(2).sum(dim=1)


def l1(x: Tensor) -> Tensor:
    """Per-row L1 norm: [B, ...] -> [B]."""
    return x.flatten(1).abs().sum(dim=1)


def reconstruct_by_class(x: Tensor, classes: Tensor, class_aes: ClassAutoencoders) -> Tensor:
    """Reconstruct row i with the autoencoder of class `classes[i]`.

    Rows are grouped by class so that each autoencoder runs once per call.
    """
    _check_classes(x, classes)
    out = torch.empty_like(x)
    for c in torch.unique(classes).tolist():
        rows = classes == c
        out[rows] = class_aes[c](x[rows]).to(out.dtype)
    return out


def im1(x_cf: Tensor, cf_class: Tensor, orig_class: Tensor, class_aes: ClassAutoencoders,
        eps: float = DEFAULT_EPS) -> Tensor:
    """IM1 per counterfactual: the new class's reconstruction error over the original class's."""
    return _im1_parts(x_cf, cf_class, orig_class, class_aes, eps, inverse=False)


def iim1(x_cf: Tensor, cf_class: Tensor, orig_class: Tensor, class_aes: ClassAutoencoders,
         eps: float = DEFAULT_EPS) -> Tensor:
    """IIM1 per counterfactual: IM1's ratio turned upside down (the journal's inverse IM1)."""
    return _im1_parts(x_cf, cf_class, orig_class, class_aes, eps, inverse=True)


def im2(x_cf: Tensor, cf_class: Tensor, class_aes: ClassAutoencoders, full_ae: Autoencoder,
        eps: float = DEFAULT_EPS) -> Tensor:
    """IM2 per counterfactual, with the autoencoder of the counterfactual's (new) class."""
    _check_finite(x_cf)
    with torch.no_grad():
        by_class = reconstruct_by_class(x_cf, cf_class, class_aes)
        return squared_l2(by_class - full_ae(x_cf)) / (l1(x_cf) + eps)


def interpretability_scores(x_cf: Tensor, cf_class: Tensor, orig_class: Tensor, class_aes: ClassAutoencoders,
                            full_ae: Autoencoder, eps: float = DEFAULT_EPS) -> dict[str, Tensor]:
    """All three scores, {"im1", "iim1", "im2"} -> [B] each."""
    return {
        "im1": im1(x_cf, cf_class, orig_class, class_aes, eps),
        "iim1": iim1(x_cf, cf_class, orig_class, class_aes, eps),
        "im2": im2(x_cf, cf_class, class_aes, full_ae, eps),
    }


def _im1_parts(x_cf: Tensor, cf_class: Tensor, orig_class: Tensor, class_aes: ClassAutoencoders,
               eps: float, inverse: bool) -> Tensor:
    _check_finite(x_cf)
    _check_classes(x_cf, orig_class)
    same = (cf_class == orig_class).nonzero().flatten().tolist()
    if same:
        raise ValueError(f"inputs {same} have a 'counterfactual' of their original class; "
                         "IM1 compares two different classes")
    with torch.no_grad():
        error_new = squared_l2(x_cf - reconstruct_by_class(x_cf, cf_class, class_aes))
        error_orig = squared_l2(x_cf - reconstruct_by_class(x_cf, orig_class, class_aes))
    if inverse:
        return error_orig / (error_new + eps)
    return error_new / (error_orig + eps)


def _check_finite(x_cf: Tensor) -> None:
    """Refuse NaN / inf rows: they stand for failed searches, which are counted, never scored."""
    bad = (~torch.isfinite(x_cf.flatten(1))).any(dim=1).nonzero().flatten().tolist()
    if bad:
        raise ValueError(f"counterfactual rows {bad} are not finite (failed searches?); "
                         "select the found ones before scoring")


def _check_classes(x: Tensor, classes: Tensor) -> None:
    if classes.shape != (x.shape[0],):
        raise ValueError(f"expected one class per input, shape ({x.shape[0]},), got {tuple(classes.shape)}")
