"""One test batch of a memory model with one memory draw M and one auxiliary draw A: what every
journal explanation metric reads (the inputs' logits and weights over M, and M's own predictions).

The journal gets a memory sample's "own" prediction by classifying M with a second memory A (as
explanation_accuracy does); the example-quality baselines also need the MLP's hidden activation
h = ReLU(fc1(.)) of the inputs and of M, and the MLP's output weights, which Memory Wrap heads give
through `forward_with_hidden` / `output_weight` (architectures/memory.py). The journal obtained them
from copied "wrapper" architectures that only ran for MobileNetV2 with full Memory Wrap; here the
model's own head answers, so every encoder works.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

import architectures
from ..cli import UserError


@dataclass(frozen=True)
class MemoryBatch:
    """Row i: test input i; column j: memory sample j of M."""

    logits: Tensor  # [B, C] of the inputs, with memory M
    weights: Tensor  # [B, m] memory weights of the inputs
    memory_features: Tensor  # [m, d] encoder features of M (what a fixed-memory classifier reuses)
    memory_logits: Tensor  # [m, C] of M's samples, each classified with memory A
    hidden: Tensor | None = None  # [B, H] MLP hidden activation of the inputs (with M)
    memory_hidden: Tensor | None = None  # [m, H] of M's samples (with A)
    output_weight: Tensor | None = None  # [C, H] the MLP's last layer

    @property
    def predictions(self) -> Tensor:
        return self.logits.argmax(dim=1)

    @property
    def memory_predictions(self) -> Tensor:
        return self.memory_logits.argmax(dim=1)


def has_hidden_interface(modality: str) -> bool:
    """Whether the head of `modality` exposes its MLP's hidden activation (Memory Wrap heads do)."""
    return hasattr(architectures.get_head_class(modality), "forward_with_hidden")


def require_hidden_interface(modality: str, path: str | Path, task: str) -> None:
    """A Memory Wrap head (sparse weights over the memory, an MLP hidden layer) or a one-line error:
    the journal's example and counterfactual experiments are defined for those alone."""
    if not has_hidden_interface(modality):
        with_hidden = [m for m in architectures.list_modalities() if has_hidden_interface(m)]
        raise UserError(f"checkpoint '{path}' holds a '{modality}' model; {task} needs a Memory Wrap model "
                        f"({', '.join(with_hidden)})")


def memory_head(model: architectures.MemoryWrapNet) -> nn.Module:
    return getattr(model, model.head_class.attribute)


@torch.no_grad()
def memory_batch(model: architectures.MemoryWrapNet, features: Tensor, memory: tuple[Tensor, Tensor],
                 auxiliary: tuple[Tensor, Tensor], with_hidden: bool = False) -> MemoryBatch:
    """Classify encoded inputs `features` [B, d] with memory M, and M's samples with memory A.

    `memory` / `auxiliary` are (images, labels) draws. With `with_hidden` the head's hidden layer is
    returned too (Memory Wrap heads only).
    """
    model.eval()
    (images, labels), (aux_images, aux_labels) = memory, auxiliary
    memory_features = model.forward_encoder(images)
    auxiliary_features = model.forward_encoder(aux_images)
    if not with_hidden:
        logits, weights = model.classify(features, memory_features, labels, return_weights=True)
        memory_logits = model.classify(memory_features, auxiliary_features, aux_labels)
        return MemoryBatch(logits, weights, memory_features, memory_logits)
    head = memory_head(model)
    if not hasattr(head, "forward_with_hidden"):
        raise ValueError(f"the '{model.modality}' head has no hidden-layer interface")
    logits, hidden, weights = head.forward_with_hidden(features, memory_features)
    memory_logits, memory_hidden, _ = head.forward_with_hidden(memory_features, auxiliary_features)
    return MemoryBatch(logits, weights, memory_features, memory_logits, hidden, memory_hidden, head.output_weight)
