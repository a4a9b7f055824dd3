"""Prototypical Networks head (modality `protonet`), the journal's second memory-based baseline.

Each class is represented by the mean embedding of its samples in the support (the memory set
drawn at the current step) and an input is scored by its cosine similarity to each prototype, at
temperature 1. The journal takes log_softmax of the negative cosine *distance*; that is the
log_softmax of the cosine itself (a softmax ignores a constant shift), so returning the cosines as
logits makes the suite's cross-entropy equal to the journal's loss.

One deliberate departure: the journal averages over zero samples when a class is missing from the
support, which makes that prototype NaN and poisons the whole batch. Here such a class gets the
logit -inf instead: it takes no probability mass and argmax never picks it, and the other classes
are scored as usual. The cross-entropy of a query whose *own* class is absent is then +inf, so the
training loss must leave those queries out; they are exactly the queries whose target logit is
-inf (`torch.isneginf(logits.gather(1, y[:, None]))`). Label smoothing would also meet the -inf
logits and must not be combined with this head.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .matching import labels_one_hot, pairwise_cosine
from .base import register_head


def class_prototypes(support: Tensor, labels: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
    """Mean support embedding per class [C, d] and the class counts [C].

    An absent class gets the zero vector (sum over nothing, divided by 1), never NaN. (The cosine
    ignores a prototype's length, so mean and sum score alike; the mean is kept for inspection.)
    """
    one_hot = labels_one_hot(labels, num_classes, support.dtype)  # [m, C]
    counts = one_hot.sum(dim=0)
    prototypes = (one_hot.t() @ support) / counts.clamp(min=1).unsqueeze(1)
    return prototypes, counts


@register_head("protonet")
class ProtoNetHead(nn.Module):
    """Cosine similarity to per-class mean embeddings; no parameters.

    Called as `head(features [B, d], memory_features [m, d], return_weights, memory_labels [m])`;
    returns logits [B, C] (-inf for classes absent from the support) and, with `return_weights`,
    weights [B, m] (see `support_weights`).
    """

    attribute = "mw"
    uses_memory = True
    uses_memory_labels = True
    display_name = "ProtoNet"
    excludes_classes = True  # a class absent from a support draw gets logit -inf

    def __init__(self, feature_dim: int, num_classes: int):
        super().__init__()
        self.feature_dim = feature_dim
        self.num_classes = num_classes

    def forward(self, features: Tensor, memory_features: Tensor, return_weights: bool = False,
                memory_labels: Tensor | None = None) -> Tensor | tuple[Tensor, Tensor]:
        if memory_labels is None:
            raise ValueError("the protonet head needs the labels of its memory set")
        # In float32, autocast off (it would run the matmuls in float16 even on float32 inputs): in
        # float16 the norm epsilon underflows and an absent class's zero prototype divides 0 by 0.
        with torch.autocast(features.device.type, enabled=False):
            prototypes, counts = class_prototypes(memory_features.float(), memory_labels, self.num_classes)
            cosines = pairwise_cosine(features.float(), prototypes)
        present = counts > 0
        logits = torch.where(present, cosines, torch.full_like(cosines, float("-inf")))
        if not return_weights:
            return logits
        return logits, support_weights(logits, memory_labels, counts)


def support_weights(logits: Tensor, labels: Tensor, counts: Tensor) -> Tensor:
    """[B, m]: each support sample gets its class's probability divided by its class's count.

    ProtoNet has no attention over single samples, yet the suite's explanations and majority vote
    ask which memories drove a decision. A class's prototype is the plain mean of its samples, so
    each contributed equally to it, and the class weighed in the decision with its softmax
    probability: sharing that probability equally among the class's samples answers the question
    while keeping rows summing to 1 (every class with probability > 0 has at least one sample).
    """
    probabilities = torch.softmax(logits, dim=1)  # absent classes: exactly 0
    per_sample = probabilities[:, labels] / counts[labels].clamp(min=1)
    return per_sample
