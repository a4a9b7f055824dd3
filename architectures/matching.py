"""Matching Networks head (modality `matching`), as the journal's baseline script runs it.

The journal compares Memory Wrap with a Matching Network built on the same encoder and trained on
the same data: the "support" is the memory set drawn at every step, not an N-way K-shot episode.
This head keeps the journal code's choices, since those produced its numbers:

- full-context embeddings (FCE) on both sides, one LSTM layer, two unrolling steps;
- the support FCE reads the support as one sequence in its draw order, so the output depends on
  that order (a set function it is not);
- the query FCE feeds the cell the *sum* of its hidden state and the read-out (the paper
  concatenates them);
- attention is a softmax over plain cosine similarities (temperature 1), and the class scores are
  the attention mass per class.

What differs, on purpose: the number of classes is the model's (the journal hard-codes 10), and
nothing is pinned to a GPU.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import register_head

COSINE_EPSILON = 1e-8  # added to each norm, as in the few-shot code the journal ported
PROBABILITY_CLAMP = 1e-6  # the journal clamps y_hat to [1e-6, 1 - 1e-6] before the log
UNROLLING_STEPS = 2


def pairwise_cosine(x: Tensor, y: Tensor, epsilon: float = COSINE_EPSILON) -> Tensor:
    """Cosine similarity of every row of x [n, d] with every row of y [k, d]: [n, k].

    The epsilon goes on the norm (not inside the square root) so that a zero row gives cosine 0
    rather than NaN; that is what lets ProtoNet keep an absent class's zero prototype finite.
    """
    x_unit = x / (x.norm(dim=1, keepdim=True) + epsilon)
    y_unit = y / (y.norm(dim=1, keepdim=True) + epsilon)
    return x_unit @ y_unit.t()


def labels_one_hot(labels: Tensor, num_classes: int, dtype: torch.dtype) -> Tensor:
    """[m] int64 -> [m, C] in `dtype`, by comparison (no host sync, unlike a checked one_hot).

    Labels are trusted: one outside [0, C) gives an all-zero row instead of an error.
    """
    classes = torch.arange(num_classes, device=labels.device)
    return (labels.unsqueeze(1) == classes).to(dtype)


@register_head("matching")
class MatchingHead(nn.Module):
    """Matching Network with full-context embeddings on pooled features.

    Called as `head(features [B, d], memory_features [m, d], return_weights, memory_labels [m])`.
    Returns log(clamp(y_hat)) as logits: cross-entropy on them is -log(p_y / sum_c p_c) with the
    clamped p, which is exactly the journal's loss, so the suite's training loop needs no special
    case. `return_weights` adds the attention alpha [B, m] (rows sum to 1).
    """

    attribute = "mw"
    uses_memory = True
    uses_memory_labels = True
    display_name = "Matching Networks"

    def __init__(self, feature_dim: int, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        # g: the support's context, read in both directions; f: the query's attention LSTM.
        self.g = nn.LSTM(feature_dim, feature_dim, num_layers=1, bidirectional=True)
        self.f = nn.LSTMCell(feature_dim, feature_dim)

    def support_embedding(self, support: Tensor) -> Tensor:
        """g(S) = h_fwd + h_bwd + e_S, the support run as one sequence of length m (batch 1)."""
        outputs, _ = self.g(support.unsqueeze(1))  # zero initial state, on support's device/dtype
        outputs = outputs.squeeze(1)
        hidden = self.g.hidden_size
        return outputs[:, :hidden] + outputs[:, hidden:] + support

    def query_embedding(self, queries: Tensor, support: Tensor) -> Tensor:
        """f(x, g(S)): an LSTMCell that re-reads the support by dot-product attention each step."""
        h_hat = torch.zeros_like(queries)
        cell = torch.zeros_like(queries)
        for _ in range(UNROLLING_STEPS):
            h = h_hat + queries
            attention = torch.softmax(h @ support.t(), dim=1)  # unscaled dot product
            readout = attention @ support
            h_hat, cell = self.f(queries, (h + readout, cell))  # sum, not concatenation
        return h_hat + queries

    def forward(self, features: Tensor, memory_features: Tensor, return_weights: bool = False,
                memory_labels: Tensor | None = None) -> Tensor | tuple[Tensor, Tensor]:
        if memory_labels is None:
            raise ValueError("the matching head needs the labels of its memory set")
        support = self.support_embedding(memory_features)
        queries = self.query_embedding(features, support)
        alpha = torch.softmax(pairwise_cosine(queries, support), dim=1)  # temperature 1
        y_hat = alpha @ labels_one_hot(memory_labels, self.num_classes, alpha.dtype)
        logits = y_hat.clamp(PROBABILITY_CLAMP, 1 - PROBABILITY_CLAMP).log()
        return (logits, alpha) if return_weights else logits
