"""Attribution methods for the heat-map figures, registered by name (captum does the work).

A method attributes one logit (`target`) of `forward(input, memory)` to the input AND to every
memory image it was given. Adding a method is one new file in this package with a function
decorated by `@register_attribution(name, title)`: every module here is imported with the registry,
so `generate_heatmaps.py --method=NAME` picks it, and its `title` labels the heat maps.
"""
from __future__ import annotations

import importlib as _importlib
import inspect
import pkgutil as _pkgutil
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
    uses_baseline: bool = True  # False: --baseline does not apply (and does not name its figures)

    @property
    def options(self) -> dict[str, object]:
        """The method's own options and their defaults (its keyword-only parameters)."""
        return {name: p.default for name, p in inspect.signature(self.attribute).parameters.items()
                if p.kind is inspect.Parameter.KEYWORD_ONLY}


_METHODS: dict[str, AttributionMethod] = {}
DEFAULT_METHOD = "integrated_gradients"


def register_attribution(name: str, title: str, uses_baseline: bool = True) -> Callable[[Attribute], Attribute]:
    def decorate(function: Attribute) -> Attribute:
        if name in _METHODS:
            raise ValueError(f"attribution method '{name}' is registered twice")
        _METHODS[name] = AttributionMethod(name, title, function, uses_baseline)
        return function

    return decorate


def list_methods() -> list[str]:
    return sorted(_METHODS)


def get_method(name: str) -> AttributionMethod:
    if name not in _METHODS:
        raise ValueError(f"unknown attribution method '{name}'; valid methods: {', '.join(list_methods())}")
    return _METHODS[name]


for _module in _pkgutil.iter_modules(__path__):  # the built-in methods and any file added here
    _importlib.import_module(f"{__name__}.{_module.name}")
