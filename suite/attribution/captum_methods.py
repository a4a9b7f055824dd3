"""The built-in attribution methods: captum's Integrated Gradients (the original's), Saliency and
GradientSHAP, registered under the names `generate_heatmaps.py --method` takes."""
from __future__ import annotations

import torch
from torch import Tensor

from . import Forward, register_attribution


@register_attribution("integrated_gradients", title="Integrated Gradients")
def integrated_gradients(forward: Forward, inputs: tuple[Tensor, Tensor], baselines: tuple[Tensor, Tensor],
                         target: int, *, n_steps: int = 40, internal_batch_size: int = 2) -> tuple[Tensor, Tensor]:
    """captum's Integrated Gradients (Gauss-Legendre), the original's method and parameters.

    With `internal_batch_size` k, captum evaluates k interpolation levels per forward pass: the
    memory of that pass is the k scaled copies of the memory concatenated, so each input attends over
    a memory mixing k levels. The original used k = 2; k = 1 is textbook IG (one level per pass,
    attributions then sum to F(input) - F(baseline) up to the quadrature error).
    """
    from captum.attr import IntegratedGradients

    if n_steps < 1 or internal_batch_size < 1:
        raise ValueError("n_steps and internal_batch_size must be at least 1")
    return IntegratedGradients(forward).attribute(inputs, baselines=baselines, target=int(target), n_steps=n_steps,
                                                  internal_batch_size=internal_batch_size)


@register_attribution("saliency", title="Saliency", uses_baseline=False)
def saliency(forward: Forward, inputs: tuple[Tensor, Tensor], baselines: tuple[Tensor, Tensor],
             target: int) -> tuple[Tensor, Tensor]:
    """captum's Saliency: the absolute gradient of the logit (Simonyan et al.); needs no baseline."""
    from captum.attr import Saliency

    return Saliency(forward).attribute(inputs, target=int(target))


@register_attribution("gradient_shap", title="GradientSHAP")
def gradient_shap(forward: Forward, inputs: tuple[Tensor, Tensor], baselines: tuple[Tensor, Tensor],
                  target: int, *, n_samples: int = 20, stdevs: float = 0.0) -> tuple[Tensor, Tensor]:
    """captum's GradientShap with the chosen baseline: expected gradients times (input - baseline)
    at `n_samples` random points between them, input and memory moved together.

    captum draws one point per sample along dimension 0 of every input, so the input [1, ...] and a
    memory [r, ...] would disagree; the memory goes in as one sample [1, r, ...] and each sampled
    point is classified with its own scaled memory. captum draws from numpy's and torch's global
    RNGs, which the caller seeds.
    """
    from captum.attr import GradientShap

    def per_sample(x: Tensor, memories: Tensor) -> Tensor:
        return torch.cat([forward(x[i:i + 1], memories[i]) for i in range(x.shape[0])])

    x, memory = inputs
    input_attr, memory_attr = GradientShap(per_sample).attribute(
        (x, memory.unsqueeze(0)), baselines=(baselines[0], baselines[1].unsqueeze(0)), target=int(target),
        n_samples=n_samples, stdevs=stdevs)
    return input_attr, memory_attr.squeeze(0)
