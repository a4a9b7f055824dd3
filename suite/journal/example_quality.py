"""Explanation-by-example quality (the journal's section on example representativeness).

For each test input x with prediction p and a memory M whose samples the model predicts as q[j]
(each classified with an auxiliary memory A), a method ranks M's samples and the explanation is the
first ranked sample with q[j] = p. Methods (a registry, `RANKERS`):

- memory_wrap: descending memory weight (the sample Memory Wrap itself weighs most among those of
  the predicted class; ties and zero weights keep the lower memory index first);
- chp: ascending Euclidean distance between contributions, W[p] * h(x) for the input and
  W[q[j]] * h(M_j) for a memory sample (W: the MLP's last-layer weights, h: its hidden activation);
- knn: ascending Euclidean distance between the hidden activations h(x) and h(M_j) (the journal's KNN*);
- random: a uniformly random order, i.e. a uniform choice among the samples of the predicted class.

Scores of the chosen example e (lower is better), with l(.) the logits:
- prediction non-representativeness = cross-entropy of l(e) (M_e classified with A) against p;
- input non-representativeness = mean over classes of |l(e)_c - l(x)_c| (raw logits).

An input whose memory holds no sample of its predicted class has no candidate for any method: it is
counted (`no_candidate`) and left out of every mean (the journal silently took a sample of another
class instead, and stopped the whole program when no input of a batch had a candidate).
Means are over scored inputs (the journal averaged per-batch means, which weighs a short last batch
like a full one). Draws are seeded by the run: the same checkpoint always gives the same numbers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data import MemorySampler, RunData, generator
from ..evaluation import encode_test_set
from ..explain import MemoryBatch, memory_batches

NO_EXAMPLE = -1

Ranker = Callable[[MemoryBatch, torch.Generator], Tensor]  # -> [B, m] memory indices, best first


@dataclass(frozen=True)
class RankingMethod:
    name: str
    label: str  # what tables call it
    rank: Ranker


RANKERS: dict[str, RankingMethod] = {}


def register_ranker(name: str, label: str) -> Callable[[Ranker], Ranker]:
    def decorate(rank: Ranker) -> Ranker:
        if name in RANKERS:
            raise ValueError(f"ranking method '{name}' is registered twice")
        RANKERS[name] = RankingMethod(name, label, rank)
        return rank

    return decorate


def rank_by_distance(queries: Tensor, memory: Tensor) -> Tensor:
    """[B, m] memory indices by ascending Euclidean distance; equal distances keep the lower index.
    (The direct formula, not the matrix-product shortcut, so that equal rows give exactly 0.)"""
    distances = torch.cdist(queries.float(), memory.float(), compute_mode="donot_use_mm_for_euclid_dist")
    return torch.sort(distances, dim=1, stable=True).indices


def contributions(hidden: Tensor, classes: Tensor, output_weight: Tensor) -> Tensor:
    """W[class] * hidden, row by row: each hidden unit's share of the logit of that row's class."""
    return output_weight[classes] * hidden


@register_ranker("memory_wrap", "Memory Wrap")
def rank_by_weight(batch: MemoryBatch, _: torch.Generator) -> Tensor:
    return torch.sort(batch.weights, dim=1, descending=True, stable=True).indices


@register_ranker("chp", "CHP")
def rank_by_contribution(batch: MemoryBatch, _: torch.Generator) -> Tensor:
    queries = contributions(batch.hidden, batch.predictions, batch.output_weight)
    memory = contributions(batch.memory_hidden, batch.memory_predictions, batch.output_weight)
    return rank_by_distance(queries, memory)


@register_ranker("knn", "KNN*")
def rank_by_features(batch: MemoryBatch, _: torch.Generator) -> Tensor:
    return rank_by_distance(batch.hidden, batch.memory_hidden)


@register_ranker("random", "Random")
def rank_randomly(batch: MemoryBatch, random: torch.Generator) -> Tensor:
    rows, size = batch.weights.shape
    return torch.rand(rows, size, generator=random, device=batch.weights.device).argsort(dim=1)


def first_candidate(order: Tensor, memory_predictions: Tensor, predictions: Tensor) -> Tensor:
    """[B]: the first memory index in each row of `order` whose prediction equals the row's, or -1."""
    matches = memory_predictions[order] == predictions.unsqueeze(1)  # [B, m], in ranked order
    position = matches.to(torch.uint8).argmax(dim=1)  # the first True (argmax returns the first maximum)
    chosen = order.gather(1, position.unsqueeze(1)).squeeze(1)
    return torch.where(matches.any(dim=1), chosen, torch.full_like(chosen, NO_EXAMPLE))


def prediction_non_representativeness(example_logits: Tensor, predictions: Tensor) -> Tensor:
    """[B]: -log softmax(l(e))[p], how little the example's own output supports the prediction."""
    return F.cross_entropy(example_logits.float(), predictions, reduction="none")


def input_non_representativeness(example_logits: Tensor, logits: Tensor) -> Tensor:
    """[B]: mean absolute difference between the example's and the input's logits."""
    return (example_logits.float() - logits.float()).abs().mean(dim=1)


@dataclass(frozen=True)
class BatchChoice:
    """One method's examples for a batch: memory indices (-1: no candidate) and the scores of the chosen."""

    examples: Tensor  # [B]
    prediction_nr: Tensor  # [B], NaN where no candidate
    input_nr: Tensor  # [B]


def choose_and_score(batch: MemoryBatch, method: str, random: torch.Generator) -> BatchChoice:
    """The examples of one method and their two scores; rows without a candidate are NaN."""
    examples = first_candidate(RANKERS[method].rank(batch, random), batch.memory_predictions, batch.predictions)
    found = examples != NO_EXAMPLE
    chosen_logits = batch.memory_logits[examples.clamp(min=0)]
    nan = torch.full(examples.shape, float("nan"), device=examples.device)
    return BatchChoice(examples,
                       torch.where(found, prediction_non_representativeness(chosen_logits, batch.predictions), nan),
                       torch.where(found, input_non_representativeness(chosen_logits, batch.logits), nan))


# ---- accumulation over a run ----------------------------------------------------------------------
@dataclass
class MethodTally:
    scored: int = 0
    prediction_nr_sum: float = 0.0
    input_nr_sum: float = 0.0
    same_as_memory_wrap: int = 0  # scored inputs whose example is Memory Wrap's own choice

    def add(self, choice: BatchChoice, memory_wrap_examples: Tensor) -> None:
        found = choice.examples != NO_EXAMPLE
        self.scored += int(found.sum())
        self.prediction_nr_sum += float(choice.prediction_nr[found].double().sum())
        self.input_nr_sum += float(choice.input_nr[found].double().sum())
        self.same_as_memory_wrap += int((found & (choice.examples == memory_wrap_examples)).sum())

    def as_dict(self) -> dict:
        mean = (lambda total: total / self.scored if self.scored else None)  # noqa: E731
        return {"scored": self.scored, "prediction_non_representativeness": mean(self.prediction_nr_sum),
                "input_non_representativeness": mean(self.input_nr_sum),
                "same_as_memory_wrap": mean(float(self.same_as_memory_wrap))}


@dataclass
class ExampleQuality:
    """One run, all passes pooled: per method the mean scores over the inputs that had a candidate."""

    inputs: int = 0  # test inputs seen, over all passes
    no_candidate: int = 0  # of which the memory held no sample of the predicted class
    zero_weight_examples: int = 0  # Memory Wrap's example had weight 0 (no same-class sample was used)
    methods: dict[str, MethodTally] = field(default_factory=lambda: {name: MethodTally() for name in RANKERS})

    def add_batch(self, batch: MemoryBatch, random: torch.Generator) -> dict[str, BatchChoice]:
        choices = {name: choose_and_score(batch, name, random) for name in self.methods}
        memory_wrap = choices["memory_wrap"].examples
        found = memory_wrap != NO_EXAMPLE
        for name, choice in choices.items():
            if not torch.equal(choice.examples != NO_EXAMPLE, found):  # the candidates are the same set
                raise AssertionError(f"method '{name}' found candidates where Memory Wrap did not")
            self.methods[name].add(choice, memory_wrap)
        rows = torch.arange(len(memory_wrap), device=memory_wrap.device)
        chosen_weight = batch.weights[rows, memory_wrap.clamp(min=0)]
        self.inputs += len(memory_wrap)
        self.no_candidate += int((~found).sum())
        self.zero_weight_examples += int((found & (chosen_weight <= 0)).sum())
        return choices

    def mean(self, method: str, score: str) -> float | None:
        return self.methods[method].as_dict()[score]

    def as_dict(self) -> dict:
        return {"inputs": self.inputs, "no_candidate": self.no_candidate,
                "zero_weight_examples": self.zero_weight_examples,
                "methods": {name: tally.as_dict() for name, tally in self.methods.items()}}


SCORES = ("prediction_non_representativeness", "input_non_representativeness")
MEMORY_STREAM, RANDOM_STREAM, ORDER_STREAM = "example_quality_memory", "example_quality_random", "example_quality_order"


@torch.no_grad()
def example_quality_pass(model, data: RunData, features: Tensor, sampler: MemorySampler, random: torch.Generator,
                         order: torch.Generator | None, result: ExampleQuality, description: str) -> None:
    """One pass over the test set: per test batch one memory M and one auxiliary memory A (in that order)."""
    for _, _, batch in memory_batches(model, data, features, sampler, order=order, with_hidden=True,
                                      description=description):
        result.add_batch(batch, random)


def example_quality_run(restored, passes: int = 1) -> ExampleQuality:
    """All four methods on one restored Memory Wrap run, `passes` passes with seeded draws."""
    data, model = restored.data, restored.model
    sampler = data.memory_sampler(MEMORY_STREAM)
    random = generator(restored.seed, RANDOM_STREAM, data.device)
    order = generator(restored.seed, ORDER_STREAM, data.device) if data.spec.shuffle_test else None
    features = encode_test_set(model, data)
    result = ExampleQuality()
    for index in range(passes):
        example_quality_pass(model, data, features, sampler, random, order, result, f"examples {index + 1}/{passes}")
    return result
