"""The one evaluation routine behind train.py, eval.py, eval_dir.py and the grid.

Protocol (REFERENCE.md 4.2, 4.3): accuracy = 100 * correct / |test set|; "loss" = the sum over test
batches of the batch-mean cross-entropy (the original's figure); memory models draw a fresh memory
per test batch from the run's training subset, so their accuracy is the mean of several passes.
Memory draws come from a generator seeded by the run alone: the same checkpoint gives the same
numbers whether evaluated right after training or later.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader

from datasets import MemorySampler, RunData
from .progress import track
from .seeding import derive_seed


@dataclass(frozen=True)
class PassResult:
    loss: float
    accuracy: float


@dataclass(frozen=True)
class Evaluation:
    accuracy: float  # mean over passes
    loss: float  # of the last pass, as the original reported
    pass_accuracies: tuple[float, ...]


@torch.no_grad()
def eval_std(model: nn.Module, loader: DataLoader, device: torch.device) -> PassResult:
    return _evaluation_pass(model, loader, None, device)


@torch.no_grad()
def eval_memory(model: nn.Module, loader: DataLoader, memory: MemorySampler, device: torch.device) -> PassResult:
    return _evaluation_pass(model, loader, memory, device)


def _evaluation_pass(model: nn.Module, loader: DataLoader, memory: MemorySampler | None,
                     device: torch.device) -> PassResult:
    model.eval()
    criterion = nn.CrossEntropyLoss()
    loss_sum, correct = 0.0, 0
    for inputs, targets in track(loader, "evaluating"):
        inputs, targets = inputs.to(device), targets.to(device)
        logits = model(inputs) if memory is None else model(inputs, memory.draw().to(device))
        loss_sum += criterion(logits, targets).item()
        correct += (logits.argmax(dim=1) == targets).sum().item()
    return PassResult(loss_sum, 100.0 * correct / len(loader.dataset))


def evaluate(model: nn.Module, data: RunData, seed: int, passes: int, device: torch.device) -> Evaluation:
    """Std models: one pass. Memory models: `passes` passes, each with fresh memory draws."""
    if not getattr(model, "uses_memory", False):
        result = eval_std(model, data.test_loader, device)
        return Evaluation(result.accuracy, result.loss, (result.accuracy,))
    memory = data.evaluation_memory(seed)
    # Memory images carry the training transform (random flips): seed the global RNG it uses
    # without disturbing the caller's random state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "evaluation_transforms"))
        results = [eval_memory(model, data.test_loader, memory, device) for _ in range(passes)]
    accuracies = tuple(r.accuracy for r in results)
    return Evaluation(sum(accuracies) / len(accuracies), results[-1].loss, accuracies)
