"""Model registry in the spirit of timm's `create_model`: encoders register a factory by name."""
from __future__ import annotations

from typing import Callable, Protocol

from .base import MemoryWrapNet, check_modality


class ModelFactory(Protocol):
    def __call__(self, modality: str, num_classes: int, **options) -> MemoryWrapNet: ...


_REGISTRY: dict[str, ModelFactory] = {}


def register_model(name: str) -> Callable[[ModelFactory], ModelFactory]:
    def decorate(factory: ModelFactory) -> ModelFactory:
        if name in _REGISTRY:
            raise ValueError(f"model '{name}' is registered twice")
        _REGISTRY[name] = factory
        return factory

    return decorate


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def get_model(model_name: str, num_classes: int = 10, modality: str = "std", **options) -> MemoryWrapNet:
    """Build `model_name` with the head of `modality`; `options` are encoder-specific (ViT)."""
    if model_name not in _REGISTRY:
        raise ValueError(f"unknown model '{model_name}'; valid models: {', '.join(list_models())}")
    check_modality(modality)
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer of at least 2, got {num_classes!r}")
    return _REGISTRY[model_name](modality=modality, num_classes=num_classes, **options)
