"""How a memory is drawn from its pool: strategies by name (config key `memory_sampling`).

A strategy is a class registered with `@register_sampling(name)`, built once per pool as
`Strategy(labels, size)` (the pool's labels on its device, the memory size) and asked for one draw
at a time: `draw(generator)` -> positions in the pool, without repetition, made only from
`generator` (so that draws are seeded by their stream, repeat, and resume). Every module of this
package is imported here, so a new strategy is one new file.
"""
from __future__ import annotations

import importlib as _importlib
import pkgutil as _pkgutil
from typing import Callable, Protocol

import torch
from torch import Tensor

DEFAULT = "uniform"  # the original's draw


class Strategy(Protocol):
    def __init__(self, labels: Tensor, size: int) -> None: ...

    def draw(self, generator: torch.Generator) -> Tensor: ...


_STRATEGIES: dict[str, type[Strategy]] = {}


def register_sampling(name: str) -> Callable[[type], type]:
    def decorate(strategy: type) -> type:
        if name in _STRATEGIES:
            raise ValueError(f"memory sampling '{name}' is registered twice")
        _STRATEGIES[name] = strategy
        return strategy

    return decorate


def list_samplings() -> list[str]:
    return sorted(_STRATEGIES)


def get_sampling(name: str) -> type[Strategy]:
    if name not in _STRATEGIES:
        raise ValueError(f"unknown memory sampling '{name}'; valid: {', '.join(list_samplings())}")
    return _STRATEGIES[name]


for _module in _pkgutil.iter_modules(__path__):
    _importlib.import_module(f"{__name__}.{_module.name}")
