"""The one model shape every encoder shares: an encoder, then the head of its modality.

An encoder subclass builds its layers, implements `forward_encoder` and calls `build_head()` last,
so that parameter names (and the order of random draws at init) match the original suite:
`linear` for std models, `mw` for memory heads.

The forward pass is split in two public halves, `forward_encoder` and `classify`, so that code
which encodes an input once and reuses it (evaluation, explanations) runs exactly the layers that
`forward` runs.
"""
from __future__ import annotations

from torch import Tensor, nn

from .registry import get_head_class, register_head


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
