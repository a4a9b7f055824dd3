"""Majority-vote baselines of the journal: does the memory a model attends to predict as well as it?

For each input, the memory samples with a positive attention weight vote, one vote each
regardless of the weight: MVO with the class the model predicts for the sample, MVY with the
sample's true label. The journal used `torch.mode` on the CPU, which settles a tie on the smallest
class; `argmax` over counts does the same (it returns the first maximum), and counting with one
scatter keeps the whole batch in one tensor operation.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

NO_VOTE = -1  # an input with no positive weight has no majority; it is never counted as correct


def vote_counts(weights: Tensor, memory_classes: Tensor, num_classes: int) -> Tensor:
    """[B, C] int64: how many memory samples of each class have a positive weight, per input."""
    voters = (weights > 0).long()  # [B, m]
    index = memory_classes.to(weights.device).long().unsqueeze(0).expand_as(voters)
    counts = torch.zeros(weights.shape[0], num_classes, dtype=torch.long, device=weights.device)
    return counts.scatter_add_(1, index, voters)


def majority_class(weights: Tensor, memory_classes: Tensor, num_classes: int) -> Tensor:
    """[B]: the most frequent class among the positively weighted samples, ties to the smallest."""
    counts = vote_counts(weights, memory_classes, num_classes)
    winners = counts.argmax(dim=1)  # first maximum: the smallest class index
    return torch.where(counts.sum(dim=1) > 0, winners, torch.full_like(winners, NO_VOTE))


def majority_votes(weights: Tensor, memory_predictions: Tensor, memory_labels: Tensor,
                   num_classes: int) -> tuple[Tensor, Tensor]:
    """(MVO [B], MVY [B]) from attention weights [B, m] and the memory's predictions and labels [m]."""
    return (majority_class(weights, memory_predictions, num_classes),
            majority_class(weights, memory_labels, num_classes))


@dataclass
class MajorityVoteTally:
    """Correct counts of the model, MVO and MVY over the inputs seen; accuracies in percent."""

    total: int = 0
    model_correct: int = 0
    mvo_correct: int = 0
    mvy_correct: int = 0

    def update(self, labels: Tensor, model_predictions: Tensor, mvo: Tensor, mvy: Tensor) -> None:
        labels = labels.to(mvo.device)
        self.total += labels.numel()
        self.model_correct += int((model_predictions.to(mvo.device) == labels).sum())
        self.mvo_correct += int((mvo == labels).sum())
        self.mvy_correct += int((mvy == labels).sum())

    @staticmethod
    def _percent(correct: int, total: int) -> float:
        return 100.0 * correct / total if total else float("nan")

    @property
    def model_accuracy(self) -> float:
        return self._percent(self.model_correct, self.total)

    @property
    def mvo_accuracy(self) -> float:
        return self._percent(self.mvo_correct, self.total)

    @property
    def mvy_accuracy(self) -> float:
        return self._percent(self.mvy_correct, self.total)
