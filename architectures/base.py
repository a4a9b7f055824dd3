"""The one model shape every encoder shares: encoder, then a head chosen by modality.

An encoder subclass builds its layers, implements `forward_encoder` and calls `build_head()` last,
so that parameter names (and the order of random draws at init) match the original suite:
`linear` for std models, `mw` for the two memory models.
"""
from __future__ import annotations

from torch import Tensor, nn

from .memory import EncoderMemoryWrapLayer, MemoryWrapLayer

MODALITIES = ("std", "memory", "encoder_memory")
MEMORY_LAYERS: dict[str, type[nn.Module]] = {
    "memory": MemoryWrapLayer,
    "encoder_memory": EncoderMemoryWrapLayer,
}


def check_modality(modality: str) -> str:
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality '{modality}'; valid modalities: {', '.join(MODALITIES)}")
    return modality


class MemoryWrapNet(nn.Module):
    """Base class: `forward(x)` for std models, `forward(x, memory, return_weights)` for memory models."""

    feature_dim: int

    def __init__(self, modality: str, num_classes: int):
        super().__init__()
        self.modality = check_modality(modality)
        self.num_classes = num_classes

    @property
    def uses_memory(self) -> bool:
        return self.modality != "std"

    def forward_encoder(self, x: Tensor) -> Tensor:
        """Pooled, flattened features: the vector a std model feeds to its classifier."""
        raise NotImplementedError

    def build_head(self) -> None:
        """Attach the modality's head; call at the end of the subclass's `__init__`."""
        if self.uses_memory:
            self.mw = MEMORY_LAYERS[self.modality](self.feature_dim, self.num_classes)
        else:
            self.linear = nn.Linear(self.feature_dim, self.num_classes)

    def classify(self, features: Tensor) -> Tensor:
        """Std head; encoders whose original head differs (ViT) override this with `build_head`."""
        return self.linear(features)

    def forward(
        self, x: Tensor, memory: Tensor | None = None, return_weights: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        features = self.forward_encoder(x)
        if not self.uses_memory:
            if memory is not None:
                raise ValueError("a std model takes no memory set")
            return self.classify(features)
        if memory is None:
            raise ValueError(f"a '{self.modality}' model needs a memory set")
        # Inputs and memory go through the encoder in two separate passes, as in the original:
        # in train mode BatchNorm sees separate batch statistics for each.
        return self.mw(features, self.forward_encoder(memory), return_weights)
