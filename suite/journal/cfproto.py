"""Counterfactual search guided by class prototypes, as published by Van Looveren & Klaise (2019).

Written by hand in PyTorch: the reference implementation (alibi's CounterfactualProto) needs TensorFlow.

For an input x0 that the model predicts as class t0, the search minimises over x = x0 + delta

    c * L_pred(x) + beta * ||x - x0||_1 + ||x - x0||_2^2 + gamma * L_AE(x) + theta * L_proto(x)

    L_pred(x)  = max(p_t0(x) - max_{j != t0} p_j(x), -kappa)    p = softmax of the model's logits
    L_AE(x)    = ||x - AE(x)||_2^2                               optional (gamma = 0 turns it off)
    L_proto(x) = ||ENC(x) - proto||_2^2                          proto: this input's own prototype

with FISTA: a gradient step on the smooth terms (the L1 term excluded, as published; the journal
code also differentiated beta * L1 there: `l1_in_gradient`), the shrinkage-thresholding operator of
beta around x0, a projection on the feature range, and a momentum step; the learning
rate decays polynomially (power 0.5) to 0 over `max_iterations`, gradients are clipped element-wise.
A candidate is valid when the model, with kappa added to the original class's probability, no longer
predicts t0, and predicts one of the allowed classes (the fixed target, or any other class); the
valid candidate with the smallest beta * L1 + L2 is kept. `c` is searched per input over `c_steps`
runs: after a run without a valid candidate c is multiplied by 10 (or bisected once an upper bound
is known), after a run with one it is bisected towards its lower bound.

Prototypes (one per input): per class, the mean latent (encoder space) of the k latents of that class
nearest to ENC(x0), k = None meaning all of them; the input's prototype is the nearest of those among
the allowed classes. The paper ranks classes by the distance from ENC(x0) to that mean, and so does
this module (alibi, with k set, ranks by the mean of the k distances instead).

Everything is per input: each row has its own c, prototype, best candidate and bounds, and the
objective is a sum of per-row terms, so a row's search does not depend on the other rows as long as
`predict`, `encoder` and `autoencoder` treat rows independently (eval mode; a memory model with one
fixed memory set qualifies).

How the journal code differed (it claimed to port alibi): it had no prediction term, so c had no
effect and its c search never ran; it used one prototype for the whole batch, chosen among the union
of the batch's target classes; it accepted a candidate predicted as any class targeted anywhere in
the batch; and it returned an all-zero image for inputs without a counterfactual, which were then
scored. Here failed rows are NaN and flagged by `found`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import Tensor

Predict = Callable[[Tensor], Tensor]  # inputs [B, C, H, W] -> logits [B, K]
Encoder = Callable[[Tensor], Tensor]  # inputs -> latents [B, ...]
Autoencoder = Callable[[Tensor], Tensor]  # inputs -> reconstructions, same shape

C_UNBOUNDED = 1e10  # upper bound of c before any run succeeded (alibi's value)
C_BOUND_KNOWN = 1e9


@dataclass(frozen=True)
class CFProtoOptions:
    """Hyper-parameters of the search. Defaults: the journal's run (its port of alibi), except gamma.

    gamma is 0 because the journal's objective had no autoencoder term and alibi's default is 0 too;
    the paper treats that term as optional. The journal took `feature_range` as the global min and
    max of the normalised training pixels (see `feature_range_of`); the default here is unbounded.
    """

    kappa: float = 0.0  # confidence margin of the prediction term and of validity
    beta: float = 0.1  # weight of the L1 term, also the shrinkage threshold
    gamma: float = 0.0  # weight of the optional autoencoder term
    theta: float = 100.0  # weight of the prototype term
    c_init: float = 1.0  # initial weight of the prediction term
    c_steps: int = 2  # runs of the search, c updated between them
    max_iterations: int = 1000  # FISTA iterations per run
    learning_rate: float = 0.1  # initial learning rate, decayed as (1 - t / max_iterations) ** 0.5
    clip: float = 1000.0  # element-wise gradient clip
    feature_range: tuple[float, float] = (-C_UNBOUNDED, C_UNBOUNDED)
    k: Optional[int] = None  # latents per class averaged into a prototype; None: the whole class
    l1_in_gradient: bool = False  # the journal code: beta * L1 also in the gradient step (its sign, 0 at x0)

    def __post_init__(self) -> None:
        low, high = self.feature_range
        checks = {
            "kappa >= 0": self.kappa >= 0, "beta >= 0": self.beta >= 0, "gamma >= 0": self.gamma >= 0,
            "theta >= 0": self.theta >= 0, "c_init >= 0": self.c_init >= 0, "c_steps >= 1": self.c_steps >= 1,
            "max_iterations >= 1": self.max_iterations >= 1, "learning_rate > 0": self.learning_rate > 0,
            "clip > 0": self.clip > 0, "feature_range low < high": low < high,
            "k is None or k >= 1": self.k is None or self.k >= 1,
        }
        failed = [name for name, ok in checks.items() if not ok]
        if failed:
            raise ValueError(f"invalid CFProtoOptions: {', '.join(failed)}")


@dataclass(frozen=True)
class CFProtoResult:
    """One batch of searches. Rows where `found` is False are NaN in `counterfactual`: never score them."""

    counterfactual: Tensor  # [B, C, H, W], NaN rows for failed searches
    found: Tensor  # [B] bool
    orig_class: Tensor  # [B] the model's class for the input
    target_class: Tensor  # [B] the fixed target, else the prototype's class, else -1 (no prototype term)
    cf_class: Tensor  # [B] the model's class for the counterfactual, -1 where not found
    distance: Tensor  # [B] beta * L1 + L2 of the counterfactual from the input, inf where not found
    c_final: Tensor  # [B] c after the last update (what a further run would use)
    c_found: Tensor  # [B] c of the run that produced the counterfactual, NaN where not found
    iterations: int  # FISTA iterations run per input, all runs together

    @property
    def n_found(self) -> int:
        return int(self.found.sum())

    @property
    def n_failed(self) -> int:
        return int((~self.found).sum())


def feature_range_of(images: Tensor) -> tuple[float, float]:
    """The global (min, max) pixel values of `images`: how the journal set the feature range."""
    return float(images.min()), float(images.max())


def prediction_loss(probs: Tensor, orig_class: Tensor, kappa: float) -> Tensor:
    """Per-row L_pred: the original class's probability minus the best other one, floored at -kappa."""
    rows = torch.arange(probs.shape[0], device=probs.device)
    orig = probs[rows, orig_class]
    others = probs.clone()
    others[rows, orig_class] = -math.inf
    return torch.clamp(orig - others.max(dim=1).values, min=-kappa)


def is_counterfactual(probs: Tensor, orig_class: Tensor, kappa: float) -> Tensor:
    """Per-row validity before class restrictions: with kappa added to the original class's
    probability, the model still prefers another class (ties resolve to the lowest index)."""
    rows = torch.arange(probs.shape[0], device=probs.device)
    margin = probs.clone()
    margin[rows, orig_class] += kappa
    return margin.argmax(dim=1) != orig_class


def shrink(z: Tensor, x0: Tensor, beta: float, low: float, high: float) -> Tensor:
    """Shrinkage-thresholding of z around x0: moves of at most beta are undone, larger ones shortened
    by beta, and the result is kept inside the feature range on the side it moved to."""
    delta = z - x0
    up = torch.clamp(z - beta, max=high)
    down = torch.clamp(z + beta, min=low)
    return torch.where(delta > beta, up, torch.where(delta < -beta, down, x0))


def polynomial_decay(learning_rate: float, step: int, decay_steps: int) -> float:
    """Learning rate at `step`: decays as (1 - step / decay_steps) ** 0.5 to 0 (TensorFlow's schedule)."""
    step = min(step, decay_steps)
    return learning_rate * (1.0 - step / decay_steps) ** 0.5


def update_c(c: Tensor, lower: Tensor, upper: Tensor, success: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """One step of the per-input c search; returns (c, lower, upper).

    A run that found a counterfactual makes c an upper bound and halves the interval (smaller c puts
    more weight on staying close to the input); a run that did not makes c a lower bound and
    multiplies c by 10 until some run succeeds, then bisects.
    """
    upper = torch.where(success, torch.minimum(upper, c), upper)
    lower = torch.where(success, lower, torch.maximum(lower, c))
    bisected = (lower + upper) / 2
    grown = torch.where(success, c, c * 10)
    return torch.where(upper < C_BOUND_KNOWN, bisected, grown), lower, upper


def class_prototypes(latents: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """Mean latent of each class, [num_classes, ...]; NaN for a class without latents.

    The paper labels the latents with the model's predictions on training data, not ground truth;
    the caller chooses which labels to pass.
    """
    flat = latents.flatten(1)
    out = torch.full((num_classes, flat.shape[1]), math.nan, dtype=flat.dtype, device=flat.device)
    for c in range(num_classes):
        members = flat[labels == c]
        if len(members):
            out[c] = members.mean(dim=0)
    return out.view(num_classes, *latents.shape[1:])


def nearest_prototypes(x_latent: Tensor, latents: Tensor, labels: Tensor, allowed: Tensor,
                       k: Optional[int] = None) -> tuple[Tensor, Tensor]:
    """Each input's prototype and its class: (prototypes [B, ...latent], classes [B]).

    allowed [B, K] bool says which classes input i may be guided to (all but its original class, or
    its fixed target). Per allowed class the prototype is the mean of the k latents of that class
    nearest to the input's latent (all of them when k is None); the nearest prototype wins.
    """
    if latents.shape[0] != labels.shape[0]:
        raise ValueError(f"{latents.shape[0]} latents but {labels.shape[0]} labels")
    if x_latent.shape[1:] != latents.shape[1:]:
        raise ValueError(f"input latents {tuple(x_latent.shape[1:])} and prototype latents "
                         f"{tuple(latents.shape[1:])} differ in shape")
    batch, num_classes = allowed.shape
    query = x_latent.flatten(1)
    flat = latents.flatten(1).to(query.dtype)
    protos = torch.full((num_classes, batch, query.shape[1]), math.nan, dtype=query.dtype, device=query.device)
    dists = torch.full((num_classes, batch), math.inf, dtype=query.dtype, device=query.device)
    for c in range(num_classes):
        members = flat[labels == c]
        if not len(members) or not bool(allowed[:, c].any()):
            continue
        if k is None:
            proto = members.mean(dim=0).expand(batch, -1)
        else:
            nearest = torch.cdist(query, members).topk(min(k, len(members)), dim=1, largest=False).indices
            proto = members[nearest].mean(dim=1)
        protos[c] = proto
        dists[c] = torch.where(allowed[:, c], (query - proto).norm(dim=1), math.inf)
    best = dists.argmin(dim=0)
    missing = torch.isinf(dists.min(dim=0).values).nonzero().flatten().tolist()
    if missing:
        raise ValueError(f"inputs {missing}: none of their allowed classes has a latent to build a prototype")
    rows = torch.arange(batch, device=query.device)
    return protos[best, rows].view(batch, *latents.shape[1:]), best


def prototype_counterfactuals(predict: Predict, x: Tensor, *, encoder: Optional[Encoder] = None,
                              latents: Optional[Tensor] = None, labels: Optional[Tensor] = None,
                              target: Optional[Tensor] = None, autoencoder: Optional[Autoencoder] = None,
                              options: CFProtoOptions = CFProtoOptions()) -> CFProtoResult:
    """Search one counterfactual per row of x [B, C, H, W].

    `predict` returns logits (the model in eval mode; for a memory model, a closure over one fixed
    memory set). The prototype term (theta > 0) needs `encoder` and the (latents, labels) that the
    prototypes are built from, latents made by the same encoder. `target` [B] fixes each input's
    class: its prototype is that class's, and only counterfactuals predicted as it are accepted.
    The autoencoder term (gamma > 0) needs `autoencoder`.
    """
    if x.dim() < 2:
        raise ValueError(f"x must be a batch [B, ...], got shape {tuple(x.shape)}")
    x = x.detach()
    with torch.no_grad():
        logits = predict(x)
    orig_class = logits.argmax(dim=1)
    allowed = _allowed_classes(orig_class, logits.shape[1], target)
    prototypes = None
    target_class = target.to(orig_class.device).clone() if target is not None else torch.full_like(orig_class, -1)
    if options.theta > 0:
        if encoder is None or latents is None or labels is None:
            raise ValueError("the prototype term (theta > 0) needs encoder, latents and labels")
        with torch.no_grad():
            prototypes, proto_class = nearest_prototypes(encoder(x), latents.to(x.device), labels.to(x.device),
                                                         allowed, options.k)
        target_class = proto_class if target is None else target_class
    if options.gamma > 0 and autoencoder is None:
        raise ValueError("the autoencoder term (gamma > 0) needs an autoencoder")
    return _fista_search(predict, x, orig_class, allowed, target_class, prototypes, encoder, autoencoder, options)


def _allowed_classes(orig_class: Tensor, num_classes: int, target: Optional[Tensor]) -> Tensor:
    rows = torch.arange(len(orig_class), device=orig_class.device)
    if target is None:
        allowed = torch.ones(len(orig_class), num_classes, dtype=torch.bool, device=orig_class.device)
        allowed[rows, orig_class] = False
        return allowed
    target = target.to(orig_class.device)
    if target.shape != orig_class.shape or bool(((target < 0) | (target >= num_classes)).any()):
        raise ValueError(f"target must hold one class in [0, {num_classes}) per input")
    same = (target == orig_class).nonzero().flatten().tolist()
    if same:
        raise ValueError(f"inputs {same}: the fixed target is the model's own prediction")
    allowed = torch.zeros(len(orig_class), num_classes, dtype=torch.bool, device=orig_class.device)
    allowed[rows, target] = True
    return allowed


def _squared_l2(x: Tensor) -> Tensor:
    return x.flatten(1).pow(2).sum(dim=1)


def _l1(x: Tensor) -> Tensor:
    return x.flatten(1).abs().sum(dim=1)


def search_gradient(y: Tensor, x0: Tensor, c: Tensor, predict: Predict, orig_class: Tensor, options: CFProtoOptions,
                    prototypes: Optional[Tensor] = None, encoder: Optional[Encoder] = None,
                    autoencoder: Optional[Autoencoder] = None) -> Tensor:
    """The FISTA gradient step's gradient at y, clipped element-wise: of the smooth part of the
    objective (everything but beta * L1, unless `l1_in_gradient`), a sum of row terms."""
    y = y.detach().requires_grad_(True)
    loss = c * prediction_loss(torch.softmax(predict(y), dim=1), orig_class, options.kappa)
    loss = loss + _squared_l2(y - x0)
    if options.l1_in_gradient:
        loss = loss + options.beta * _l1(y - x0)
    if options.gamma > 0:
        loss = loss + options.gamma * _squared_l2(y - autoencoder(y))
    if prototypes is not None:
        loss = loss + options.theta * _squared_l2(encoder(y) - prototypes)
    (grad,) = torch.autograd.grad(loss.sum(), y)
    return grad.clamp(-options.clip, options.clip)


def _fista_search(predict: Predict, x0: Tensor, orig_class: Tensor, allowed: Tensor, target_class: Tensor,
                  prototypes: Optional[Tensor], encoder: Optional[Encoder], autoencoder: Optional[Autoencoder],
                  options: CFProtoOptions) -> CFProtoResult:
    batch = x0.shape[0]
    rows = torch.arange(batch, device=x0.device)
    low, high = options.feature_range

    def vector(value: float) -> Tensor:
        return torch.full((batch,), value, dtype=x0.dtype, device=x0.device)

    def gradient(y: Tensor, c: Tensor) -> Tensor:
        return search_gradient(y, x0, c, predict, orig_class, options, prototypes, encoder, autoencoder)

    c, lower, upper = vector(options.c_init), vector(0.0), vector(C_UNBOUNDED)
    best = torch.full_like(x0, math.nan)
    best_distance, c_found = vector(math.inf), vector(math.nan)
    cf_class = torch.full_like(orig_class, -1)
    for _ in range(options.c_steps):
        adv, y = x0.clone(), x0.clone()
        success = torch.zeros(batch, dtype=torch.bool, device=x0.device)
        for step in range(options.max_iterations):
            rate = polynomial_decay(options.learning_rate, step, options.max_iterations)
            new_adv = shrink(y - rate * gradient(y, c), x0, options.beta, low, high)
            momentum = (step + 1) / (step + 4)
            y = torch.clamp(new_adv + momentum * (new_adv - adv), low, high)
            adv = new_adv
            with torch.no_grad():
                probs = torch.softmax(predict(adv), dim=1)
            predicted = probs.argmax(dim=1)
            valid = is_counterfactual(probs, orig_class, options.kappa) & allowed[rows, predicted]
            distance = _squared_l2(adv - x0) + options.beta * _l1(adv - x0)
            better = valid & (distance < best_distance)
            success |= valid
            best[better] = adv[better]
            best_distance = torch.where(better, distance, best_distance)
            cf_class = torch.where(better, predicted, cf_class)
            c_found = torch.where(better, c, c_found)
        c, lower, upper = update_c(c, lower, upper, success)
    found = torch.isfinite(best_distance)
    return CFProtoResult(counterfactual=best, found=found, orig_class=orig_class, target_class=target_class,
                         cf_class=cf_class, distance=best_distance, c_final=c, c_found=c_found,
                         iterations=options.c_steps * options.max_iterations)
