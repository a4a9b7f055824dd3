"""The training recipe of a run: device, model, optimiser, learning-rate schedule and loss.

All are built from the run's settings alone, so a resumed run rebuilds exactly what it saved.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

import architectures
from .config import TrainSettings
from .cli import ConfigError
from .config import nearest


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device '{name}'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device '{name}' requested but CUDA is not available")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"device '{name}' requested but this machine has {torch.cuda.device_count()} GPU(s)")
    return device


def build_model(settings: TrainSettings) -> architectures.MemoryWrapNet:
    options = settings.config["model_options"]
    accepted = model_options(settings.model)
    unknown = sorted(set(options) - set(accepted)) if accepted is not None else []
    if unknown:
        guess = nearest(unknown[0], accepted)
        raise ConfigError(f"model '{settings.model}' has no option '{unknown[0]}'"
                          + (f"; did you mean '{guess}'?" if guess else
                             f"; its model_options: {', '.join(accepted) or 'none'}"))
    try:
        return architectures.get_model(settings.model, settings.num_classes, settings.modality, **options)
    except (TypeError, ValueError) as error:  # invalid model_options values
        raise ConfigError(f"cannot build model '{settings.model}' with model_options {options}: {error}") from None


def model_options(model: str) -> list[str] | None:
    """The option names an encoder's factory takes (None: it takes any, **kwargs)."""
    import inspect

    parameters = inspect.signature(architectures.get_model_factory(model)).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return None
    return [name for name in parameters if name not in ("modality", "num_classes")]


def build_optimizer(model: nn.Module, options: dict, device: torch.device | None = None) -> torch.optim.Optimizer:
    """SGD (the CNN recipe) or Adam with coupled L2 decay (the ViT recipe), on all parameters.

    On CUDA, Adam is the fused kernel (one launch per step, and with a GradScaler the inf check stays
    on the device). SGD is not: torch's fused SGD (2.11, seen on an H200) advances its momentum on
    the steps the GradScaler skips after an fp16 overflow, which are routine in the first steps, and
    the run's loss becomes NaN; the default (foreach) SGD skips them, at one host read per step.
    """
    cuda = device is not None and device.type == "cuda"
    if options["name"] == "adam":
        return torch.optim.Adam(model.parameters(), lr=options["learning_rate"], weight_decay=options["weight_decay"],
                                **({"fused": True} if cuda else {}))
    return torch.optim.SGD(model.parameters(), lr=options["learning_rate"], momentum=options["momentum"],
                           weight_decay=options["weight_decay"], nesterov=options["nesterov"])


def warmup_cosine_factor(epoch: int, warmup_epochs: int, total_epochs: int, base_lr: float, min_lr: float) -> float:
    """The lr factor of the ViT recipe (GradualWarmupScheduler then CosineAnnealingLR, per epoch).

    Epochs 0..W climb linearly from 0 to the base lr; epoch W+1 still uses the base lr; from then
    the cosine over `total_epochs` runs, one step per epoch (docs/protocol.md, ViT recipe).
    """
    if epoch <= warmup_epochs and warmup_epochs > 0:
        return epoch / warmup_epochs
    step = epoch - warmup_epochs - 1 if warmup_epochs > 0 else epoch
    lr = min_lr + (base_lr - min_lr) * (1 + math.cos(math.pi * step / total_epochs)) / 2
    return lr / base_lr


def build_scheduler(optimizer: torch.optim.Optimizer, settings: TrainSettings) -> torch.optim.lr_scheduler.LRScheduler:
    """Stepped once per epoch. multistep (SVHN, CIFAR10), cosine (CINIC10), warmup_cosine (ViT)."""
    schedule, options = settings.section["lr_schedule"], settings.config["optimizer"]
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings.num_epochs,
                                                          eta_min=options["min_lr"])
    if schedule == "warmup_cosine":
        base_lr = options["learning_rate"]
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: warmup_cosine_factor(
            epoch, options["warmup_epochs"], settings.num_epochs, base_lr, options["min_lr"]))
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=settings.section["opt_milestones"])


def _reachable(logits: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """Rows whose target logit is not -inf, and targets made safe for the others.

    A head may exclude a class from a step (ProtoNet: a class absent from the support draw has
    logit -inf). A query of such a class has no prototype to be pulled towards: it is left out of
    that step's loss. Only -inf excludes: NaN and +inf (a diverged model) still reach the loss, so
    divergence is caught. For every other head this changes nothing.
    """
    reachable = logits.gather(1, targets.unsqueeze(1)).squeeze(1) != float("-inf")
    return reachable, torch.where(reachable, targets, logits.argmax(dim=1))


class CrossEntropy(nn.Module):
    """Mean cross-entropy over the queries whose class the head can predict (see `_reachable`);
    with finite logits it is exactly `nn.CrossEntropyLoss()`."""

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        reachable, safe = _reachable(logits, targets)
        losses = nn.functional.cross_entropy(logits, safe, reduction="none")
        losses = torch.where(reachable, losses, torch.zeros_like(losses))
        return losses.sum() / reachable.sum().clamp(min=1)


class SmoothedCrossEntropy(nn.Module):
    """ViT-CIFAR's label smoothing: 1 - eps on the target and eps / (C - 1) on every other class."""

    def __init__(self, smoothing: float):
        super().__init__()
        self.smoothing = smoothing

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        log_probs = logits.log_softmax(dim=-1)
        classes = logits.shape[-1]
        target_dist = torch.full_like(log_probs, self.smoothing / (classes - 1))
        target_dist.scatter_(1, targets.unsqueeze(1), 1.0 - self.smoothing)
        return torch.mean(torch.sum(-target_dist * log_probs, dim=-1))


def build_loss(settings: TrainSettings) -> nn.Module:
    smoothing = settings.config["label_smoothing"]
    if smoothing > 0 and getattr(architectures.get_head_class(settings.modality), "excludes_classes", False):
        raise ConfigError(f"label_smoothing does not combine with modality '{settings.modality}', whose head gives "
                          "classes absent from a memory draw the logit -inf; set label_smoothing: 0")
    return SmoothedCrossEntropy(smoothing) if smoothing > 0 else CrossEntropy()
