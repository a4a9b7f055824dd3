"""Attribution methods for the heat-map figures, registered by name (captum does the work).

A method attributes one logit (`target`) of `forward(input, memory)` to the input AND to every
memory image it was given. Adding a method is one registered function here (or in any imported
module): `generate_heatmaps.py --method=NAME` picks it, and its `title` labels the heat maps.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable

from torch import Tensor

Forward = Callable[[Tensor, Tensor], Tensor]
Attribute = Callable[..., tuple[Tensor, Tensor]]  # (forward, inputs, baselines, target, **options)


@dataclass(frozen=True)
class AttributionMethod:
    name: str
    title: str  # shown above each heat map
    attribute: Attribute

    @property
    def options(self) -> dict[str, object]:
        """The method's own options and their defaults (its keyword-only parameters)."""
        return {name: p.default for name, p in inspect.signature(self.attribute).parameters.items()
                if p.kind is inspect.Parameter.KEYWORD_ONLY}


_METHODS: dict[str, AttributionMethod] = {}
DEFAULT_METHOD = "integrated_gradients"


def register_attribution(name: str, title: str) -> Callable[[Attribute], Attribute]:
    def decorate(function: Attribute) -> Attribute:
        if name in _METHODS:
            raise ValueError(f"attribution method '{name}' is registered twice")
        _METHODS[name] = AttributionMethod(name, title, function)
        return function

    return decorate


def list_methods() -> list[str]:
    return sorted(_METHODS)


def get_method(name: str) -> AttributionMethod:
    if name not in _METHODS:
        raise ValueError(f"unknown attribution method '{name}'; valid methods: {', '.join(list_methods())}")
    return _METHODS[name]


@register_attribution("integrated_gradients", title="Saliency")  # the original figures' title
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


@register_attribution("saliency", title="Gradient")
def saliency(forward: Forward, inputs: tuple[Tensor, Tensor], baselines: tuple[Tensor, Tensor],
             target: int) -> tuple[Tensor, Tensor]:
    """captum's Saliency: the absolute gradient of the logit (Simonyan et al.); needs no baseline."""
    from captum.attr import Saliency

    return Saliency(forward).attribute(inputs, target=int(target))


@register_attribution("gradient_shap", title="GradientSHAP")
def gradient_shap(forward: Forward, inputs: tuple[Tensor, Tensor], baselines: tuple[Tensor, Tensor],
                  target: int, *, n_samples: int = 20, stdevs: float = 0.0) -> tuple[Tensor, Tensor]:
    """captum's GradientShap with the chosen baseline: expected gradients times (input - baseline)
    at random points between them. Random draws come from the global RNG, which the caller seeds."""
    from captum.attr import GradientShap

    return GradientShap(forward).attribute(inputs, baselines=baselines, target=int(target), n_samples=n_samples,
                                           stdevs=stdevs)
