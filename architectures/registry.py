"""Two registries, filled where things are defined: encoders by name, heads by modality.

Encoders register a factory with `@register_model(name)` (timm's `create_model` style); heads, what
follows the encoder, register their class with `@register_head(modality)`. Every module of this
package is imported when the package is (see `__init__`), so a new encoder or head is one new file.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Protocol

if TYPE_CHECKING:
    from torch import nn

    from .base import MemoryWrapNet


class ModelFactory(Protocol):
    def __call__(self, modality: str, num_classes: int, **options) -> "MemoryWrapNet": ...


_MODELS: dict[str, ModelFactory] = {}
_DISPLAY_NAMES: dict[str, str] = {}
_HEADS: dict[str, type["nn.Module"]] = {}
PAPER_MODALITIES = ("std", "memory", "encoder_memory")  # the conference paper's three, listed first


def register_model(name: str, display_name: str | None = None) -> Callable[[ModelFactory], ModelFactory]:
    """Register an encoder factory; `display_name` is what tables and figures call it (default: name)."""
    def decorate(factory: ModelFactory) -> ModelFactory:
        if name in _MODELS:
            raise ValueError(f"model '{name}' is registered twice")
        _MODELS[name] = factory
        _DISPLAY_NAMES[name] = display_name or name
        return factory

    return decorate


def display_name(model_name: str) -> str:
    return _DISPLAY_NAMES.get(model_name, model_name)


def modality_display_name(modality: str) -> str:
    head = _HEADS.get(modality)
    return getattr(head, "display_name", modality) if head is not None else modality


def register_head(modality: str) -> Callable[[type], type]:
    """Register a head class for `modality`.

    The class is built as `Head(feature_dim, num_classes)` and declares three class attributes:
    `attribute` (the model attribute it is stored under, hence its state_dict prefix: `linear` or
    `mw` in the original), `uses_memory` and `uses_memory_labels`; optionally `display_name` (what
    tables call the variant) and `excludes_classes` (a step may give a class logit -inf). Memory heads
    are called as `head(features, memory_features, return_weights=..., memory_labels=...)`.
    """
    def decorate(head: type) -> type:
        if modality in _HEADS:
            raise ValueError(f"modality '{modality}' is registered twice")
        for name in ("attribute", "uses_memory", "uses_memory_labels"):
            if not hasattr(head, name):
                raise TypeError(f"head {head.__name__} must declare the class attribute '{name}'")
        _HEADS[modality] = head
        return head

    return decorate


def list_models() -> list[str]:
    return sorted(_MODELS)


def list_modalities() -> list[str]:
    """The paper's three modalities first, then the others alphabetically."""
    return [m for m in PAPER_MODALITIES if m in _HEADS] + sorted(m for m in _HEADS if m not in PAPER_MODALITIES)


def get_head_class(modality: str) -> type:
    if modality not in _HEADS:
        raise ValueError(f"unknown modality '{modality}'; valid modalities: {', '.join(list_modalities())}")
    return _HEADS[modality]


def get_model(model_name: str, num_classes: int = 10, modality: str = "std", **options) -> "MemoryWrapNet":
    """Build `model_name` with the head of `modality`; `options` are encoder-specific (ViT)."""
    if model_name not in _MODELS:
        raise ValueError(f"unknown model '{model_name}'; valid models: {', '.join(list_models())}")
    get_head_class(modality)
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer of at least 2, got {num_classes!r}")
    return _MODELS[model_name](modality=modality, num_classes=num_classes, **options)
