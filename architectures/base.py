"""The one model shape every encoder shares, and the two registries that name encoders and heads.

An encoder subclass of `MemoryWrapNet` builds its layers, implements `forward_encoder` and calls
`build_head()` last, so that parameter names (and the order of random draws at init) match the
original suite: `linear` for std models, `mw` for memory heads. Encoders register a factory with
`@register_model(name)` (timm's `create_model` style); heads, what follows the encoder, register
their class with `@register_head(modality)`. Every module of this package is imported when the
package is (see `__init__`), so a new encoder or head is one new file.

The forward pass is split in two public halves, `forward_encoder` and `classify`, so that code
which encodes an input once and reuses it (evaluation, explanations) runs exactly the layers that
`forward` runs.
"""
from __future__ import annotations

from typing import Callable, Protocol

from torch import Tensor, nn


# ---- registries ---------------------------------------------------------------------------------
class ModelFactory(Protocol):
    def __call__(self, modality: str, num_classes: int, **options) -> MemoryWrapNet: ...


_MODELS: dict[str, ModelFactory] = {}
_DISPLAY_NAMES: dict[str, str] = {}
_HEADS: dict[str, type[nn.Module]] = {}
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


def model_display_name(model: str) -> str:
    return _DISPLAY_NAMES.get(model, model)


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


def get_model(model_name: str, num_classes: int = 10, modality: str = "std", **options) -> MemoryWrapNet:
    """Build `model_name` with the head of `modality`; `options` are encoder-specific (ViT)."""
    if model_name not in _MODELS:
        raise ValueError(f"unknown model '{model_name}'; valid models: {', '.join(list_models())}")
    get_head_class(modality)
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer of at least 2, got {num_classes!r}")
    return _MODELS[model_name](modality=modality, num_classes=num_classes, **options)


def get_model_factory(model_name: str) -> ModelFactory:
    """The registered factory of an encoder (its signature names the encoder's options)."""
    if model_name not in _MODELS:
        raise ValueError(f"unknown model '{model_name}'; valid models: {', '.join(list_models())}")
    return _MODELS[model_name]


# ---- the model --------------------------------------------------------------------------------
def check_modality(modality: str) -> str:
    get_head_class(modality)
    return modality


@register_head("std")
class LinearHead(nn.Linear):
    """The std classifier: one linear layer on the pooled features (state_dict prefix `linear`)."""

    attribute = "linear"
    uses_memory = False
    uses_memory_labels = False
    display_name = "Std"


class MemoryWrapNet(nn.Module):
    """Base class: `forward(x)` for std models, `forward(x, memory, return_weights)` for memory models."""

    feature_dim: int

    def __init__(self, modality: str, num_classes: int):
        super().__init__()
        self.modality = check_modality(modality)
        self.num_classes = num_classes
        self.head_class = get_head_class(modality)

    @property
    def uses_memory(self) -> bool:
        return self.head_class.uses_memory

    @property
    def uses_memory_labels(self) -> bool:
        return self.head_class.uses_memory_labels

    def forward_encoder(self, x: Tensor) -> Tensor:
        """Pooled, flattened features: the vector a std model feeds to its classifier."""
        raise NotImplementedError

    def build_head(self) -> None:
        """Attach the modality's head; call at the end of the subclass's `__init__`."""
        setattr(self, self.head_class.attribute, self.head_class(self.feature_dim, self.num_classes))

    def classify(self, features: Tensor, memory_features: Tensor | None = None, memory_labels: Tensor | None = None,
                 return_weights: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """The head on already-encoded inputs (and memory): what `forward` does after the encoder."""
        head = getattr(self, self.head_class.attribute)
        if not self.uses_memory:
            if memory_features is not None:
                raise ValueError("a std model takes no memory set")
            return head(features)
        if memory_features is None:
            raise ValueError(f"a '{self.modality}' model needs a memory set")
        if not self.uses_memory_labels:
            return head(features, memory_features, return_weights=return_weights)
        if memory_labels is None:
            raise ValueError(f"a '{self.modality}' model needs the labels of its memory set")
        return head(features, memory_features, return_weights=return_weights, memory_labels=memory_labels)

    def forward(self, x: Tensor, memory: Tensor | None = None, return_weights: bool = False,
                memory_labels: Tensor | None = None) -> Tensor | tuple[Tensor, Tensor]:
        features = self.forward_encoder(x)
        if memory is not None and not self.uses_memory:
            raise ValueError("a std model takes no memory set")
        # Inputs and memory go through the encoder in two separate passes, as in the original:
        # in train mode BatchNorm sees separate batch statistics for each.
        memory_features = None if memory is None else self.forward_encoder(memory)
        return self.classify(features, memory_features, memory_labels, return_weights)
