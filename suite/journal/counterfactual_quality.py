"""Counterfactual quality: Memory Wrap's own counterfactuals against prototype-guided search, per input.

For each test input x with prediction o, one memory draw M and one auxiliary draw A per test batch
(M's samples are classified with A, as in explanation_accuracy):

- memory_wrap: the memory sample of highest positive weight that the model predicts as a class
  other than o (ties: the lower memory index), a real training image; its class t is that
  prediction. An input without such a sample has no Memory Wrap counterfactual: counted, not scored.
  (The journal took the memory index from input 0's ranking for every input of a batch.)
- prototype: the search of suite.journal.cfproto on x, with the model and M fixed (`predict` is the
  model classifying with M), prototypes = mean latents of the run's training images grouped by the
  model's prediction (one seeded memory draw), latents from the all-class autoencoder's encoder,
  the feature range of the normalised training images, as the journal. By default the target class
  is Memory Wrap's t, so both methods explain the same class change on the same inputs (`target =
  "any"`: every input, guided to its nearest prototype of another class). Failed searches are
  counted and never scored. Its class t is the model's prediction with M.

IM1, IIM1 and IM2 (suite.journal.interpretability) are computed per counterfactual with the class
autoencoders of the run (suite.journal.autoencoders), and so are its L1 and L2 distances to x.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field, replace
from typing import Iterator

import torch
from torch import Tensor

from ..data import RunData, generator
from ..evaluation import encode_test_set
from .autoencoders import ENCODE_BATCH, RunAutoencoders, normalised
from .cfproto import CFProtoOptions, feature_range_of, prototype_counterfactuals
from .interpretability import interpretability_scores
from ..explain import memory_batches

NO_COUNTERFACTUAL = -1
METHODS = {"memory_wrap": "Memory Wrap", "prototype": "Prototype search"}
TARGET_MODES = ("memory", "any")
SCORES = ("im1", "iim1", "im2", "l1", "l2")
MEMORY_STREAM, PROTOTYPE_STREAM, ORDER_STREAM = ("counterfactual_memory", "counterfactual_prototype_memory",
                                                 "counterfactual_order")


@dataclass(frozen=True)
class CounterfactualSettings:
    search: CFProtoOptions = CFProtoOptions()
    target: str = "memory"  # "memory": Memory Wrap's class, on inputs that have one; "any": every input
    max_inputs: int = 0  # the first test inputs (in test order) to explain; 0: all
    data_feature_range: bool = True  # the journal's: min / max of the normalised training pixels
    figure_inputs: int = 4  # inputs kept for the figure

    def __post_init__(self) -> None:
        if self.target not in TARGET_MODES:
            raise ValueError(f"target must be one of {', '.join(TARGET_MODES)}, got '{self.target}'")
        if self.max_inputs < 0 or self.figure_inputs < 0:
            raise ValueError("max_inputs and figure_inputs must be 0 or more")


def memory_counterfactuals(weights: Tensor, memory_predictions: Tensor, predictions: Tensor) -> Tensor:
    """[B]: per input the memory index of highest positive weight whose prediction differs from the
    input's (the lower index on ties), or -1 when there is none."""
    eligible = (weights > 0) & (memory_predictions.unsqueeze(0) != predictions.unsqueeze(1))
    masked = torch.where(eligible, weights, torch.full_like(weights, -math.inf))
    best = masked.argmax(dim=1)  # the first maximum
    return torch.where(eligible.any(dim=1), best, torch.full_like(best, NO_COUNTERFACTUAL))


def score_rows(x_cf: Tensor, inputs: Tensor, cf_class: Tensor, orig_class: Tensor, found: Tensor,
               autoencoders: RunAutoencoders) -> dict[str, Tensor]:
    """{score: [B]}: IM1, IIM1, IM2 and the L1 / L2 distances to the input; NaN where not found."""
    out = {name: torch.full((len(found),), math.nan, device=found.device) for name in SCORES}
    if not bool(found.any()):
        return out
    kept = x_cf[found]
    scores = interpretability_scores(kept, cf_class[found], orig_class[found], autoencoders.classes, autoencoders.full)
    change = (kept - inputs[found]).flatten(1)
    scores["l1"], scores["l2"] = change.abs().sum(dim=1), change.pow(2).sum(dim=1).sqrt()
    for name in SCORES:
        out[name][found] = scores[name].float()
    return out


@contextlib.contextmanager
def frozen(model: torch.nn.Module) -> Iterator[None]:
    """Parameters without gradients while searching: the search differentiates w.r.t. the input only."""
    previous = [p.requires_grad for p in model.parameters()]
    model.requires_grad_(False)
    try:
        yield
    finally:
        for parameter, flag in zip(model.parameters(), previous):
            parameter.requires_grad_(flag)


@torch.no_grad()
def prototype_space(model, data: RunData, autoencoders: RunAutoencoders, memory: tuple[Tensor, Tensor]
                    ) -> tuple[Tensor, Tensor]:
    """(latents [N, ...], the model's predictions [N]) of the run's training images, with one memory."""
    images, labels = memory
    memory_features = model.forward_encoder(images)
    latents, predictions = [], []
    for start in range(0, len(data.train), ENCODE_BATCH):
        x = normalised(data, data.train.images[start:start + ENCODE_BATCH])
        latents.append(autoencoders.full.encode(x))
        predictions.append(model.classify(model.forward_encoder(x), memory_features, labels).argmax(dim=1))
    return torch.cat(latents), torch.cat(predictions)


@torch.no_grad()
def training_feature_range(data: RunData) -> tuple[float, float]:
    low, high = math.inf, -math.inf
    for start in range(0, len(data.train), ENCODE_BATCH):
        part_low, part_high = feature_range_of(normalised(data, data.train.images[start:start + ENCODE_BATCH]))
        low, high = min(low, part_low), max(high, part_high)
    return low, high


@dataclass
class FigureItem:
    """What the side-by-side figure shows of one input (images normalised, on the CPU)."""

    test_index: int
    label: int
    prediction: int
    image: Tensor
    memory_wrap: Tensor
    memory_wrap_class: int
    memory_wrap_weight: float
    memory_wrap_scores: dict
    prototype: Tensor
    prototype_class: int
    prototype_scores: dict


@dataclass
class RunCounterfactuals:
    """One run: a record per (input, method) and the counts behind the means."""

    records: list[dict] = field(default_factory=list)
    figure: list[FigureItem] = field(default_factory=list)
    feature_range: tuple[float, float] = (-math.inf, math.inf)
    search_seconds: float = 0.0
    prediction_mismatch: int = 0  # inputs whose prediction changed when re-encoded alone (expected 0)

    def summary(self) -> dict[str, dict]:
        """Per method: inputs, found, not found by reason, and the mean of each score over found ones."""
        out = {}
        for method in METHODS:
            rows = [r for r in self.records if r["method"] == method]
            found = [r for r in rows if r["found"]]
            reasons: dict[str, int] = {}
            for r in rows:
                if not r["found"]:
                    reasons[r["reason"]] = reasons.get(r["reason"], 0) + 1
            means = {name: (sum(r[name] for r in found) / len(found) if found else None) for name in SCORES}
            out[method] = {"inputs": len(rows), "found": len(found), "not_found": reasons} | means
        return out


def _records(method: str, positions: Tensor, labels: Tensor, predictions: Tensor, found: Tensor, target: Tensor,
             cf_class: Tensor, scores: dict[str, Tensor], reason: list[str], extra: dict[str, Tensor]) -> list[dict]:
    columns = {"test_index": positions, "label": labels, "prediction": predictions, "found": found, "target": target,
               "cf_class": cf_class} | {name: scores[name] for name in SCORES} | extra
    values = {name: column.tolist() for name, column in columns.items()}
    rows = []
    for i in range(len(positions)):
        row = {"method": method} | {name: values[name][i] for name in columns}
        for name in SCORES:
            row[name] = None if math.isnan(row[name]) else row[name]
        row["reason"] = "" if row["found"] else reason[i]
        rows.append(row)
    return rows


def counterfactual_run(restored, autoencoders: RunAutoencoders,
                       settings: CounterfactualSettings = CounterfactualSettings()) -> RunCounterfactuals:
    """Both methods on the first `max_inputs` test inputs of a restored memory run."""
    data, model = restored.data, restored.model
    model.eval()
    result = RunCounterfactuals()
    options = settings.search
    if settings.data_feature_range:
        result.feature_range = training_feature_range(data)
        options = replace(options, feature_range=result.feature_range)
    sampler = data.memory_sampler(MEMORY_STREAM)
    latents, latent_labels = prototype_space(model, data, autoencoders,
                                             data.memory_sampler(PROTOTYPE_STREAM).draw())
    order = generator(restored.seed, ORDER_STREAM, data.device) if data.spec.shuffle_test else None
    features = encode_test_set(model, data)
    for positions, memory, batch in memory_batches(model, data, features, sampler, order=order,
                                                   limit=settings.max_inputs, log_every=1,
                                                   description=f"run {restored.run}: counterfactual search"):
        inputs, labels = data.test_inputs(positions), data.test.labels[positions]
        _explain_batch(model, batch, memory, inputs, positions, labels, autoencoders, latents, latent_labels,
                       options, settings, result)
    return result


def _explain_batch(model, batch, memory, inputs: Tensor, positions: Tensor, labels: Tensor,
                   autoencoders: RunAutoencoders, latents: Tensor, latent_labels: Tensor, options: CFProtoOptions,
                   settings: CounterfactualSettings, result: RunCounterfactuals) -> None:
    predictions, memory_predictions = batch.predictions, batch.memory_predictions
    rows = torch.arange(len(positions), device=inputs.device)
    # Memory Wrap's own counterfactual
    chosen = memory_counterfactuals(batch.weights, memory_predictions, predictions)
    has_mw = chosen != NO_COUNTERFACTUAL
    safe = chosen.clamp(min=0)
    mw_images, mw_class = memory[0][safe], torch.where(has_mw, memory_predictions[safe], -1)
    mw_scores = score_rows(mw_images, inputs, mw_class, predictions, has_mw, autoencoders)
    mw_weight = torch.where(has_mw, batch.weights[rows, safe], torch.full_like(batch.weights[:, 0], math.nan))
    result.records += _records("memory_wrap", positions, labels, predictions, has_mw, mw_class, mw_class, mw_scores,
                               ["no positive-weight sample of another class"] * len(positions),
                               {"memory_index": chosen, "weight": mw_weight})
    # prototype-guided search, with M fixed
    memory_features, memory_labels = batch.memory_features, memory[1]

    def predict(x: Tensor) -> Tensor:
        return model.classify(model.forward_encoder(x), memory_features, memory_labels)

    search = has_mw.clone() if settings.target == "memory" else torch.ones_like(has_mw)
    target = mw_class if settings.target == "memory" else None
    reasons = ["" if s else "no Memory Wrap counterfactual to take the target from" for s in search.tolist()]
    # a prototype needs training images that the model predicts as the class (the target, or any other)
    predicted = torch.bincount(latent_labels, minlength=batch.logits.shape[1]) > 0
    if target is not None:
        reachable = predicted[target.clamp(min=0)]
    else:
        reachable = (predicted.unsqueeze(0) & (torch.arange(len(predicted), device=predicted.device).unsqueeze(0)
                                                != predictions.unsqueeze(1))).any(dim=1)
    with torch.no_grad():
        recomputed = predict(inputs).argmax(dim=1)
    for i in (search & ~reachable).nonzero().flatten().tolist():
        reasons[i] = "no training image predicted as the target class (no prototype)"
    mismatch = search & reachable & (recomputed != predictions)
    for i in mismatch.nonzero().flatten().tolist():
        reasons[i] = "prediction changed when re-encoded"
    result.prediction_mismatch += int(mismatch.sum())
    search &= reachable & ~mismatch
    found = torch.zeros_like(has_mw)
    cf_images = torch.full_like(inputs, math.nan)
    cf_class = torch.full_like(predictions, -1)
    if bool(search.any()):
        started = time.perf_counter()
        with frozen(model), torch.enable_grad():
            searched = prototype_counterfactuals(
                predict, inputs[search], encoder=autoencoders.full.encode, latents=latents, labels=latent_labels,
                target=None if target is None else target[search],
                autoencoder=autoencoders.full if options.gamma > 0 else None, options=options)
        result.search_seconds += time.perf_counter() - started
        found[search], cf_images[search], cf_class[search] = searched.found, searched.counterfactual, searched.cf_class
        for i in (search & ~found).nonzero().flatten().tolist():
            reasons[i] = "search failed"
    proto_scores = score_rows(cf_images, inputs, cf_class, predictions, found, autoencoders)
    proto_target = target if target is not None else torch.full_like(predictions, -1)
    result.records += _records("prototype", positions, labels, predictions, found, proto_target, cf_class,
                               proto_scores, reasons, {})
    for i in (has_mw & found).nonzero().flatten().tolist():
        if len(result.figure) >= settings.figure_inputs:
            break
        result.figure.append(FigureItem(
            int(positions[i]), int(labels[i]), int(predictions[i]), inputs[i].cpu(), mw_images[i].cpu(),
            int(mw_class[i]), float(mw_weight[i]), {n: float(mw_scores[n][i]) for n in SCORES},
            cf_images[i].cpu(), int(cf_class[i]), {n: float(proto_scores[n][i]) for n in SCORES}))
