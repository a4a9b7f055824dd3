"""Memory Wrap layers: sparse content attention over an encoded memory, then an MLP.

Names follow the original paper scripts (not the `memorywrap` pip package, which swaps them):
`MemoryWrapLayer` is the memory-only baseline and `EncoderMemoryWrapLayer` is full Memory Wrap.
Numerics match memorywrap 1.0.6, so that checkpoints and results carry over.
"""
from __future__ import annotations

import torch
from entmax import sparsemax
from torch import Tensor, nn

from .base import register_head

NORM_EPSILON = 1e-6  # added inside the square root, as in memorywrap 1.0.6


class MLP(nn.Module):
    """Two linear layers with an activation between them: in -> 2*in -> classes."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, activation: nn.Module | None = None):
        super().__init__()
        self.fc1 = nn.Linear(input_dim, hidden_dim)
        self.activation = activation if activation is not None else nn.ReLU()
        self.fc2 = nn.Linear(hidden_dim, output_dim)

    def forward(self, x: Tensor, return_hidden: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Logits, or (logits, hidden) with the activation after the first layer."""
        hidden = self.activation(self.fc1(x))
        logits = self.fc2(hidden)
        return (logits, hidden) if return_hidden else logits


def content_weights(encoder_output: Tensor, memory: Tensor) -> Tensor:
    """Sparsemax over the cosine similarities between each input and every memory row: [B, m]."""
    input_norm = torch.sqrt(torch.sum(encoder_output**2, dim=1, keepdim=True) + NORM_EPSILON)
    memory_norm = torch.sqrt(torch.sum(memory**2, dim=1, keepdim=True) + NORM_EPSILON)
    similarity = torch.matmul(encoder_output / input_norm, (memory / memory_norm).t())
    # sparsemax fails with an index error (a device-side assert on CUDA) on NaN rows. Checking here
    # would synchronise with the host at every step; instead non-finite similarities (diverged
    # encodings only) are replaced, the NaN still reaches the logits and the loss, and training
    # stops at the end of the epoch.
    similarity = torch.nan_to_num(similarity, nan=0.0, posinf=1.0, neginf=-1.0)
    return sparsemax(similarity, dim=1)


class _MemoryLayer(nn.Module):
    """Shared attention; subclasses choose what the MLP sees. Stored as `mw`, as in the original."""

    input_multiplier: int
    attribute = "mw"
    uses_memory = True
    uses_memory_labels = False

    def __init__(self, encoder_output_dim: int, output_dim: int, mlp_activation: nn.Module | None = None):
        super().__init__()
        mlp_input = self.input_multiplier * encoder_output_dim
        self.fc = MLP(mlp_input, 2 * mlp_input, output_dim, mlp_activation)

    def classifier_input(self, encoder_output: Tensor, memory_vector: Tensor) -> Tensor:
        raise NotImplementedError

    @property
    def output_weight(self) -> Tensor:
        """W of the MLP's last layer, [C, hidden]: W[c] * hidden is what each unit adds to logit c."""
        return self.fc.fc2.weight

    def forward_with_hidden(self, encoder_output: Tensor, memory_set: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(logits [B, C], hidden [B, hidden], weights [B, m]): `forward` plus the MLP's hidden
        activation, which the journal's example-quality baselines (CHP, KNN*) compare inputs by."""
        weights = content_weights(encoder_output, memory_set)
        memory_vector = torch.matmul(weights, memory_set)  # un-normalised memory encodings
        logits, hidden = self.fc(self.classifier_input(encoder_output, memory_vector), return_hidden=True)
        return logits, hidden, weights

    def forward(
        self, encoder_output: Tensor, memory_set: Tensor, return_weights: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        """memorywrap's signature: (encoder output [B, d], encoded memory [m, d], return_weights)."""
        logits, _, weights = self.forward_with_hidden(encoder_output, memory_set)
        return (logits, weights) if return_weights else logits


@register_head("memory")
class MemoryWrapLayer(_MemoryLayer):
    """Baseline (modality `memory`): the MLP sees only the weighted memory vector (d -> 2d -> C)."""

    input_multiplier = 1
    display_name = "Only Memory"

    def classifier_input(self, encoder_output: Tensor, memory_vector: Tensor) -> Tensor:
        return memory_vector


@register_head("encoder_memory")
class EncoderMemoryWrapLayer(_MemoryLayer):
    """Full Memory Wrap (modality `encoder_memory`): the MLP sees [input encoding, memory vector]."""

    input_multiplier = 2
    display_name = "Memory Wrap"

    def classifier_input(self, encoder_output: Tensor, memory_vector: Tensor) -> Tensor:
        return torch.cat([encoder_output, memory_vector], dim=1)
