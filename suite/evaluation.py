"""The one evaluation routine behind train.py, eval.py, eval_dir.py, the grid and the tests.

Protocol (docs/protocol.md, evaluation): accuracy = 100 * correct / |test set|; "loss" = the sum over
test batches of the batch-mean cross-entropy (the original's figure); memory models draw a fresh
memory per test batch from the run's training subset, so their accuracy is the mean of several
passes. Memory draws come from a generator seeded by the run alone: the same checkpoint gives the
same numbers whether evaluated right after training or later.

One encoding per test image: in eval mode a test image's encoding is the same in every pass, so
the test set is encoded once (in batches of `batch_size_test`, as a plain evaluation would) and
each pass encodes only its own memory draws. `plain_evaluate` is the straightforward computation
the tests compare against.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .data import MemorySampler, RunData, generator
from .cli import track
from .recipe import CrossEntropy

EVALUATION_MEMORY, TEST_ORDER = "evaluation_memory", "test_order"


@dataclass(frozen=True)
class Evaluation:
    accuracy: float  # mean over passes
    loss: float  # of the last pass, as the original reported
    pass_accuracies: tuple[float, ...]


@torch.no_grad()
def encode_test_set(model, data: RunData) -> Tensor:
    """Encoder features of every test image, in test-set order: [N, d]."""
    model.eval()
    # In test-set order whatever the dataset's test order (CINIC10 shuffles): callers index the result
    # by test-set position. In eval mode an image's encoding does not depend on its batch.
    batches = torch.arange(len(data.test), device=data.device).split(data.batch_size_test)
    chunks = [model.forward_encoder(data.test_inputs(positions)) for positions in track(batches, "encoding the test set")]
    return torch.cat(chunks)


@torch.no_grad()
def memory_pass(model, data: RunData, features: Tensor, sampler: MemorySampler,
                order: torch.Generator | None) -> tuple[float, float]:
    """One pass of a memory model over cached test features: (loss, accuracy)."""
    model.eval()
    criterion = CrossEntropy()
    loss_sum = torch.zeros((), device=data.device)
    correct = torch.zeros((), dtype=torch.long, device=data.device)
    for positions in track(data.test_index_batches(order), "evaluating", total=data.test_batches_count):
        memory, memory_labels = sampler.draw()
        logits = model.classify(features[positions], model.forward_encoder(memory), memory_labels)
        targets = data.test.labels[positions]
        loss_sum += criterion(logits, targets).float()
        correct += (logits.argmax(dim=1) == targets).sum()
    return float(loss_sum), 100.0 * int(correct) / len(data.test)


@torch.no_grad()
def std_pass(model, data: RunData, order: torch.Generator | None) -> tuple[float, float]:
    model.eval()
    criterion = CrossEntropy()
    loss_sum = torch.zeros((), device=data.device)
    correct = torch.zeros((), dtype=torch.long, device=data.device)
    for positions in track(data.test_index_batches(order), "evaluating", total=data.test_batches_count):
        logits = model(data.test_inputs(positions))
        targets = data.test.labels[positions]
        loss_sum += criterion(logits, targets).float()
        correct += (logits.argmax(dim=1) == targets).sum()
    return float(loss_sum), 100.0 * int(correct) / len(data.test)


def evaluate(model, data: RunData, passes: int) -> Evaluation:
    """Std models: one pass. Memory models: `passes` passes, each with fresh memory draws."""
    order = generator(data.seed, TEST_ORDER, data.device) if data.spec.shuffle_test else None
    if not model.uses_memory:
        loss, accuracy = std_pass(model, data, order)
        return Evaluation(accuracy, loss, (accuracy,))
    features = encode_test_set(model, data)
    sampler = data.memory_sampler(EVALUATION_MEMORY)
    results = [memory_pass(model, data, features, sampler, order) for _ in range(passes)]
    accuracies = tuple(accuracy for _, accuracy in results)
    return Evaluation(sum(accuracies) / len(accuracies), results[-1][0], accuracies)


@torch.no_grad()
def plain_evaluate(model, data: RunData, passes: int) -> Evaluation:
    """The same protocol without the cached encodings: every test batch through the whole model."""
    model.eval()
    if not model.uses_memory:
        return evaluate(model, data, passes)
    order = generator(data.seed, TEST_ORDER, data.device) if data.spec.shuffle_test else None
    sampler = data.memory_sampler(EVALUATION_MEMORY)
    criterion = CrossEntropy()
    results = []
    for _ in range(passes):
        loss_sum, correct = 0.0, 0
        for positions in data.test_index_batches(order):
            memory, memory_labels = sampler.draw()
            logits = model(data.test_inputs(positions), memory, memory_labels=memory_labels)
            targets = data.test.labels[positions]
            loss_sum += float(criterion(logits, targets))
            correct += int((logits.argmax(dim=1) == targets).sum())
        results.append((loss_sum, 100.0 * correct / len(data.test)))
    accuracies = tuple(accuracy for _, accuracy in results)
    return Evaluation(sum(accuracies) / len(accuracies), results[-1][0], accuracies)
