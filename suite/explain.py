"""Explanations of memory models: explanation accuracy, top example / counterfactual, Integrated Gradients.

Terms (docs/protocol.md, explanations). For an input x with prediction p and a memory set M:
- each memory sample j gets its own prediction q[j], made by the model with an auxiliary memory A;
- j* = the memory sample with the highest weight (first index on ties, as torch.argmax);
- the input is an *explanation-by-example* case when q[j*] = p and a *counterfactual* case otherwise;
- explanation accuracy = share of inputs whose top memory sample is an example (q[j*] = p);
- counterfactual / example accuracy = the model's accuracy on the inputs of each group.

Random draws come from generators seeded by the run (never from the global RNG), so the numbers of a
checkpoint are the same at every call.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch import Tensor, nn

import architectures
from .attribution import DEFAULT_METHOD, get_method
from .data import WHOLE_SPLIT, MemorySampler, ResidentImages, RunData, generator, training_subset, derive_seed
from .datasets import DatasetSpec
from .evaluation import encode_test_set
from .cli import UserError, track
from .restore import ORIGINAL_SPLIT_SEED
from .stats import mean_defined

MEMORY_POOLS = ("subset", "full")
ORIGINAL_MEMORY_SIZE = 100  # explanation_accuracy.py hard-coded its memory batch
BASELINES = ("ones", "white", "black")


# ---- explanation accuracy: pure counting --------------------------------------------------------
@dataclass(frozen=True)
class ExplanationCounts:
    total: int = 0
    explained: int = 0  # inputs whose top memory sample is predicted as the input (an example)
    counterfactual_total: int = 0
    counterfactual_correct: int = 0
    example_total: int = 0
    example_correct: int = 0

    def __add__(self, other: "ExplanationCounts") -> "ExplanationCounts":
        return ExplanationCounts(*(a + b for a, b in zip(self.as_tuple(), other.as_tuple())))

    def as_tuple(self) -> tuple[int, ...]:
        return (self.total, self.explained, self.counterfactual_total, self.counterfactual_correct,
                self.example_total, self.example_correct)

    @property
    def explanation_accuracy(self) -> float:
        return 100.0 * self.explained / self.total if self.total else float("nan")

    @property
    def counterfactual_accuracy(self) -> float | None:
        """None when no input had a counterfactual as its top memory sample."""
        return 100.0 * self.counterfactual_correct / self.counterfactual_total if self.counterfactual_total else None

    @property
    def example_accuracy(self) -> float | None:
        return 100.0 * self.example_correct / self.example_total if self.example_total else None

    def as_dict(self) -> dict:
        return {"total": self.total, "explained": self.explained,
                "counterfactual_total": self.counterfactual_total,
                "counterfactual_correct": self.counterfactual_correct, "example_total": self.example_total,
                "example_correct": self.example_correct, "explanation_accuracy": self.explanation_accuracy,
                "counterfactual_accuracy": self.counterfactual_accuracy, "example_accuracy": self.example_accuracy}


def count_explanations(predictions: Tensor, weights: Tensor, memory_predictions: Tensor,
                       labels: Tensor) -> ExplanationCounts:
    """Counts for one batch that shares one memory set.

    predictions [B] (the model's classes for the inputs), weights [B, m] (memory weights),
    memory_predictions [m] (the model's classes for the memory samples), labels [B].
    """
    if weights.ndim != 2 or weights.shape[0] != predictions.shape[0] or weights.shape[1] != memory_predictions.shape[0]:
        raise ValueError(f"shapes do not fit: predictions {tuple(predictions.shape)}, weights {tuple(weights.shape)}, "
                         f"memory predictions {tuple(memory_predictions.shape)}")
    top = weights.argmax(dim=1)
    explained = memory_predictions[top] == predictions
    correct = predictions == labels
    counterfactual = ~explained
    return ExplanationCounts(
        total=int(predictions.numel()), explained=int(explained.sum()),
        counterfactual_total=int(counterfactual.sum()), counterfactual_correct=int((counterfactual & correct).sum()),
        example_total=int(explained.sum()), example_correct=int((explained & correct).sum()))


def format_value(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


@dataclass
class ModelExplanation:
    """One checkpoint: counts of every pass and the per-model metrics (means over passes)."""

    passes: list[ExplanationCounts] = field(default_factory=list)

    @property
    def explanation_accuracy(self) -> float:
        return sum(p.explanation_accuracy for p in self.passes) / len(self.passes)

    @property
    def counterfactual_accuracy(self) -> float | None:
        """Mean over the passes that had counterfactual cases (None if none had)."""
        return mean_defined([p.counterfactual_accuracy for p in self.passes])

    @property
    def example_accuracy(self) -> float | None:
        return mean_defined([p.example_accuracy for p in self.passes])

    def as_dict(self) -> dict:
        return {"explanation_accuracy": self.explanation_accuracy,
                "counterfactual_accuracy": self.counterfactual_accuracy, "example_accuracy": self.example_accuracy,
                "passes": [p.as_dict() for p in self.passes]}


# ---- one test batch with a memory M and an auxiliary memory A ---------------------------------
# The journal gets a memory sample's "own" prediction by classifying M with a second memory A (as
# explanation_accuracy does); the example-quality baselines also need the MLP's hidden activation
# h = ReLU(fc1(.)) of the inputs and of M, and the MLP's output weights, which Memory Wrap heads give
# through `forward_with_hidden` / `output_weight` (architectures/memory.py), so every encoder works.
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


def memory_batches(model: architectures.MemoryWrapNet, data: RunData, features: Tensor, memory: MemorySampler,
                   auxiliary: MemorySampler | None = None, order: torch.Generator | None = None, limit: int = 0,
                   with_hidden: bool = False, description: str = "memory batches", log_every: int = 0
                   ) -> Iterator[tuple[Tensor, tuple[Tensor, Tensor], MemoryBatch]]:
    """The draw every explanation experiment makes, per test batch (in the evaluation's order, the first
    `limit` inputs; 0: all): a memory M from `memory`, then an auxiliary memory A from `auxiliary`
    (`memory` itself when None); the inputs classified with M and M's samples with A. Yields
    (test positions, M as (images, labels), MemoryBatch); a progress line every `log_every` batches."""
    auxiliary = auxiliary or memory
    limit = len(data.test) if limit == 0 else min(limit, len(data.test))
    batches = math.ceil(limit / data.batch_size_test)
    done = 0
    for positions in track(itertools.islice(data.test_index_batches(order), batches), description, total=batches,
                           log_every=log_every):
        positions = positions[: limit - done]
        drawn = memory.draw()
        yield positions, drawn, memory_batch(model, features[positions], drawn, auxiliary.draw(), with_hidden)
        done += len(positions)


# ---- explanation accuracy on a model -------------------------------------------------------------
def memory_pool(restored, pool: str) -> tuple[ResidentImages, int]:
    """(images to draw memories from, memory size).

    subset: the run's own training subset, `mem_examples` per draw (what the model was trained with).
    full: the original's choice, 100 memories from the whole training split (all but the split-seed-42
    validation images), whatever the run's subset was.
    """
    if pool == "subset":
        return restored.data.train, restored.settings.mem_examples
    if pool == "full":
        whole = training_subset(restored.settings.config, ORIGINAL_SPLIT_SEED, restored.device, WHOLE_SPLIT)
        return whole, ORIGINAL_MEMORY_SIZE
    raise ValueError(f"unknown memory pool '{pool}'; valid pools: {', '.join(MEMORY_POOLS)}")


@torch.no_grad()
def explanation_pass(model: nn.Module, data: RunData, features: Tensor, sampler: MemorySampler,
                     order: torch.Generator | None, description: str = "explaining") -> ExplanationCounts:
    """One pass over the test set; each test batch draws a memory M and an auxiliary memory A.

    The test images' encodings are computed once (`features`), and M's encoding serves both the
    inputs' attention and M's own prediction (with A): per batch only M and A are encoded.
    """
    counts = ExplanationCounts()
    for positions, _, batch in memory_batches(model, data, features, sampler, order=order, description=description):
        counts += count_explanations(batch.predictions, batch.weights, batch.memory_predictions,
                                     data.test.labels[positions])
    return counts


def explain_run(restored, passes: int = 5, pool: str = "subset") -> ModelExplanation:
    """Explanation accuracy of a restored memory model: `passes` passes with seeded memory draws."""
    images, size = memory_pool(restored, pool)
    data = restored.data
    sampler = data.memory_sampler(f"explanation_memory_{pool}", pool=images, size=size)
    order = generator(restored.seed, "explanation_order", data.device) if data.spec.shuffle_test else None
    features = encode_test_set(restored.model, data)
    result = ModelExplanation()
    for index in range(passes):
        result.passes.append(explanation_pass(restored.model, data, features, sampler, order,
                                              f"pass {index + 1}/{passes}"))
    return result


# ---- top example and counterfactual --------------------------------------------------------------
@dataclass(frozen=True)
class MemorySelection:
    """Positive-weight memory samples of one input, in descending weight order."""

    order: Tensor  # memory indices
    weights: Tensor  # their weights
    example: int | None  # position in `order` of the top explanation by example (q = p)
    counterfactual: int | None  # position in `order` of the top counterfactual (q != p)


def select_memories(weights: Tensor, memory_predictions: Tensor, prediction: int) -> MemorySelection:
    """weights [m] of one input, memory_predictions [m]; ties keep the lower memory index first."""
    sorted_weights, order = torch.sort(weights.detach().cpu(), descending=True, stable=True)
    keep = sorted_weights > 0
    order, sorted_weights = order[keep], sorted_weights[keep]
    same = (memory_predictions.detach().cpu()[order] == prediction).tolist()
    example = next((i for i, s in enumerate(same) if s), None)
    counterfactual = next((i for i, s in enumerate(same) if not s), None)
    return MemorySelection(order, sorted_weights, example, counterfactual)


# ---- attributions (heat maps) -------------------------------------------------------------------
def baseline_like(images: Tensor, kind: str, spec: DatasetSpec, normalization: str) -> Tensor:
    """Attribution baseline in normalised space.

    ones: all ones after normalisation, the original's choice. In pixel space that is mean + std per
    channel, a light grey (about 0.69, 0.68, 0.65 for CIFAR10), not white.
    white / black: the normalised images of pixel value 1 / 0.
    """
    if kind == "ones":
        return torch.ones_like(images)
    if kind not in BASELINES:
        raise ValueError(f"unknown baseline '{kind}'; valid baselines: {', '.join(BASELINES)}")
    mean, std = (torch.tensor(v, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
                 for v in spec.normalization(normalization))
    pixel = 1.0 if kind == "white" else 0.0
    return ((pixel - mean) / std).expand_as(images).clone()


def attribute(model: nn.Module, inputs: Tensor, memory: Tensor, target: int, baselines: tuple[Tensor, Tensor],
              method: str = DEFAULT_METHOD, memory_labels: Tensor | None = None, **options) -> tuple[Tensor, Tensor]:
    """Attribution of logit `target` to the input [1, C, H, W] and to every memory image [r, C, H, W]
    with the registered `method` (suite.attribution). `memory_labels`: for heads that read them."""
    if inputs.shape[0] != 1:
        raise ValueError("attributions explain one input at a time")

    def forward(x: Tensor, mem: Tensor) -> Tensor:
        labels = None
        if memory_labels is not None:  # captum may batch k interpolation steps: k copies of the memory
            labels = memory_labels.repeat(mem.shape[0] // memory_labels.shape[0])
        return model(x, mem, memory_labels=labels)

    model.eval()
    input_attr, memory_attr = get_method(method).attribute(forward, (inputs, memory), baselines, target, **options)
    return input_attr.detach(), memory_attr.detach()


@dataclass
class InputExplanation:
    """Everything the heat-map figure of one input needs."""

    index: int  # position in the test-set order
    prediction: int
    label: int
    selection: MemorySelection
    input_image: Tensor  # [C, H, W], normalised
    memory_images: Tensor  # [r, C, H, W] positive-weight memories, descending weight
    input_attribution: Tensor  # [C, H, W]
    memory_attributions: Tensor  # [r, C, H, W]


def explain_input(model: nn.Module, image: Tensor, memory: tuple[Tensor, Tensor], auxiliary: tuple[Tensor, Tensor],
                  baseline: str, spec: DatasetSpec, normalization: str, method: str = DEFAULT_METHOD, index: int = 0,
                  label: int = -1, **options) -> InputExplanation:
    """The original heat-map procedure for one input (docs/protocol.md, heat maps).

    The prediction (attribution target) is made with the whole memory M; the attribution then runs
    on the input and the reduced memory R = the positive-weight samples of M.
    """
    x = image.unsqueeze(0)
    (memory, memory_labels), (auxiliary, auxiliary_labels) = memory, auxiliary
    with torch.no_grad():
        memory_features = model.forward_encoder(memory)
        logits, weights = model.classify(model.forward_encoder(x), memory_features, memory_labels,
                                         return_weights=True)
        prediction = int(logits.argmax(dim=1)[0])
        memory_predictions = model.classify(memory_features, model.forward_encoder(auxiliary),
                                            auxiliary_labels).argmax(dim=1)
    selection = select_memories(weights[0], memory_predictions, prediction)
    kept = selection.order.to(memory.device)
    reduced = memory[kept]
    baselines = (baseline_like(x, baseline, spec, normalization), baseline_like(reduced, baseline, spec, normalization))
    labels = memory_labels[kept] if model.uses_memory_labels else None
    input_attr, memory_attr = attribute(model, x, reduced, prediction, baselines, method, labels, **options)
    return InputExplanation(index, prediction, label, selection, image.detach().cpu(), reduced.detach().cpu(),
                            input_attr[0].cpu(), memory_attr.cpu())


def whole_figures(max_images: int, per_figure: int, available: int) -> int:
    """Test inputs a figure script draws: `max_images` rounded up to whole figures (0: all), so that a figure
    file always shows the same inputs, whatever --max_images asked (figures are named by their last input)."""
    if max_images == 0:
        return available
    return min(available, -(-max_images // per_figure) * per_figure)


def explain_inputs(restored, max_images: int, baseline: str, on_batch: Callable[[list[InputExplanation]], None],
                   method: str = DEFAULT_METHOD, description: str = "heat maps (figures)", log_every: int = 0,
                   **options) -> int:
    """Walk the test set in batches of `batch_size_test` (one figure per batch), explaining each input
    with its own draws. Per input, a memory M and an auxiliary memory A are drawn, in that order, from
    one generator seeded by the run ("heatmaps" stream); methods that sample (GradientShap) draw from
    the global RNG, seeded by the run too. Returns the number of inputs explained."""
    data, model = restored.data, restored.model
    sampler = data.memory_sampler("heatmaps")
    order = generator(restored.seed, "heatmaps_order", data.device) if data.spec.shuffle_test else None
    limit = whole_figures(max_images, data.batch_size_test, len(data.test))
    batches = math.ceil(limit / data.batch_size_test)
    done = 0
    numpy_state = np.random.get_state()  # captum's GradientShap also draws from numpy
    try:
        with torch.random.fork_rng(devices=[data.device] if data.device.type == "cuda" else []):
            torch.manual_seed(derive_seed(restored.seed, "heatmaps_attribution"))
            np.random.seed(derive_seed(restored.seed, "heatmaps_attribution") % 2**32)
            for positions in track(itertools.islice(data.test_index_batches(order), batches), description,
                                   total=batches, log_every=log_every):
                positions = positions[: limit - done]
                images, labels = data.test_inputs(positions), data.test.labels[positions]
                explained = []
                for offset, (image, label) in enumerate(zip(images, labels)):
                    memory = sampler.draw()
                    auxiliary = sampler.draw()
                    explained.append(explain_input(model, image, memory, auxiliary, baseline, data.spec,
                                                   restored.settings.config["normalization"], method,
                                                   index=done + offset, label=int(label), **options))
                on_batch(explained)
                done += len(explained)
    finally:
        np.random.set_state(numpy_state)
    return done
