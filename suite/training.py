"""The one training loop: `train_run` trains, evaluates and records one seeded run of a cell.

train.py loops it over a cell's runs; grid.py hands single runs to workers; the tests call it.
A run resumes from its last finished epoch (model, optimiser, scheduler, scaler, every RNG and the
memory sampler are restored), so a killed-then-resumed run gives the same numbers as an
uninterrupted one on the CPU.
"""
from __future__ import annotations

import hashlib
import json
import math
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

import architectures
import datasets
from datasets import RunData
from .checkpoints import RunFinished, RunLog, atomic_torch_save, load_torch_file, run_lock
from .config import TrainSettings, settings_difference
from .errors import CheckpointError, ConfigError, TrainingDiverged
from .evaluation import Evaluation, evaluate
from .progress import track
from .seeding import global_rng_state, restore_global_rng_state, set_seed


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device '{name}'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device '{name}' requested but CUDA is not available")
    return device


def build_model(settings: TrainSettings) -> architectures.MemoryWrapNet:
    try:
        return architectures.get_model(settings.model, settings.num_classes, settings.modality,
                                       **settings.config["model_options"])
    except (TypeError, ValueError) as error:  # unknown or invalid model_options
        raise ConfigError(f"cannot build model '{settings.model}' with model_options "
                          f"{settings.config['model_options']}: {error}") from None


# ---- optimiser, schedule, loss --------------------------------------------------------------
def build_optimizer(model: nn.Module, options: dict) -> torch.optim.Optimizer:
    """SGD (the CNN recipe) or Adam with coupled L2 decay (the ViT recipe), on all parameters."""
    if options["name"] == "adam":
        return torch.optim.Adam(model.parameters(), lr=options["learning_rate"], weight_decay=options["weight_decay"])
    return torch.optim.SGD(model.parameters(), lr=options["learning_rate"], momentum=options["momentum"],
                           weight_decay=options["weight_decay"], nesterov=options["nesterov"])


def warmup_cosine_factor(epoch: int, warmup_epochs: int, total_epochs: int, base_lr: float, min_lr: float) -> float:
    """The lr factor of the ViT recipe (GradualWarmupScheduler then CosineAnnealingLR, per epoch).

    Epochs 0..W climb linearly from 0 to the base lr; epoch W+1 still uses the base lr; from then
    the cosine over `total_epochs` runs, one step per epoch (REFERENCE.md 4.6).
    """
    if epoch <= warmup_epochs and warmup_epochs > 0:
        return epoch / warmup_epochs
    step = epoch - warmup_epochs - 1 if warmup_epochs > 0 else epoch
    lr = min_lr + (base_lr - min_lr) * (1 + math.cos(math.pi * step / total_epochs)) / 2
    return lr / base_lr


def build_scheduler(optimizer: torch.optim.Optimizer, settings: TrainSettings) -> torch.optim.lr_scheduler.LRScheduler:
    """Stepped once per epoch. multistep (SVHN, CIFAR10), cosine (CINIC10), warmup_cosine (ViT)."""
    schedule, options = settings.dataset["lr_schedule"], settings.config["optimizer"]
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings.num_epochs,
                                                          eta_min=options["min_lr"])
    if schedule == "warmup_cosine":
        base_lr = options["learning_rate"]
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: warmup_cosine_factor(
            epoch, options["warmup_epochs"], settings.num_epochs, base_lr, options["min_lr"]))
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=settings.dataset["opt_milestones"])


class SmoothedCrossEntropy(nn.Module):
    """ViT-CIFAR's label smoothing: 1 - eps on the target and eps / (C - 1) on every other class."""

    def __init__(self, smoothing: float):
        super().__init__()
        self.smoothing = smoothing

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        log_probs = logits.log_softmax(dim=-1)
        classes = logits.shape[-1]
        target_dist = torch.full_like(log_probs, self.smoothing / (classes - 1))
        target_dist.scatter_(1, targets.unsqueeze(1), 1.0 - self.smoothing)
        return torch.mean(torch.sum(-target_dist * log_probs, dim=-1))


def build_loss(settings: TrainSettings) -> nn.Module:
    smoothing = settings.config["label_smoothing"]
    return SmoothedCrossEntropy(smoothing) if smoothing > 0 else nn.CrossEntropyLoss()


# ---- one epoch ------------------------------------------------------------------------------
def train_epoch(model: architectures.MemoryWrapNet, data: RunData, optimizer: torch.optim.Optimizer,
                scaler: torch.amp.GradScaler, criterion: nn.Module, device: torch.device, use_amp: bool,
                description: str, log_every: int) -> float:
    """One pass over the training loader; returns the mean batch loss."""
    model.train()
    total = torch.zeros((), device=device)
    steps = 0
    for inputs, targets in track(data.train_loader, description, log_every=log_every):
        inputs, targets = inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        memory = data.memory.draw().to(device, non_blocking=True) if model.uses_memory else None
        optimizer.zero_grad()
        with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
            logits = model(inputs) if memory is None else model(inputs, memory)
            loss = criterion(logits, targets)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        total += loss.detach().float()
        steps += 1
    return (total / max(steps, 1)).item()


# ---- a whole run ----------------------------------------------------------------------------
@dataclass(frozen=True)
class RunResult:
    record: dict  # the line written to results.jsonl
    evaluation: Evaluation


def resume_path(folder: Path, run: int) -> Path:
    return Path(folder) / f"{run}.resume.pt"


def library_versions() -> dict:
    import entmax
    import torchvision

    return {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
            "entmax": getattr(entmax, "__version__", "unknown")}


def indices_digest(indices: list[int]) -> str:
    """sha256 of the index list, hashed as the reference fixture does."""
    return hashlib.sha256(json.dumps(list(indices)).encode()).hexdigest()


def _check_same_settings(saved: dict, settings: TrainSettings, where: Path) -> None:
    changed = settings_difference(saved, settings.comparable_json())
    if changed:
        raise CheckpointError(f"'{where}' was written with other settings (differs in: {', '.join(changed)}); "
                              "use another models_dir or --overwrite")


def train_run(settings: TrainSettings, run_index: int, device: torch.device | None = None,
              resume: bool = True, log_every: int = 0,
              on_epoch_end: Callable[[int], None] | None = None, skip_finished: bool = False) -> RunResult:
    """Train run `run_index` (0-based; seed = run_index, files named run_index + 1) and record it.

    Raises RunBusy if another process holds the run's lock and, with `skip_finished`, RunFinished if
    results.jsonl already records the run (checked under the lock: concurrent grid workers never
    train a run twice).
    """
    device = device or resolve_device(settings.config["device"])
    folder, run = settings.output_dir, run_index + 1
    started = time.perf_counter()
    with torch.device("meta"):
        build_model(settings)  # bad model_options fail here, allocating nothing
    # Data next (its draws use their own generators, not the global RNG): a missing dataset fails
    # before anything is written.
    data = datasets.build_run_data(settings.config, run_index, settings.modality != "std",
                                   pin_memory=device.type == "cuda")
    with run_lock(folder, run):
        if skip_finished and run in RunLog(folder).finished():
            raise RunFinished(f"run {run} in '{folder}' is already finished")
        set_seed(run_index)
        model = build_model(settings).to(device)
        optimizer = build_optimizer(model, settings.config["optimizer"])
        scheduler = build_scheduler(optimizer, settings)
        use_amp = settings.config["amp"] and device.type == "cuda"
        scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
        criterion = build_loss(settings)
        first_epoch, trained_seconds = 0, 0.0
        state_file = resume_path(folder, run)
        if resume and state_file.exists():
            state = load_torch_file(state_file, map_location=device)
            _check_same_settings(state["settings"], settings, state_file)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            scaler.load_state_dict(state["scaler"])
            data.train_loader.generator.set_state(state["train_loader_generator"])
            if data.memory is not None:
                data.memory.load_state_dict(state["memory"])
            restore_global_rng_state(state["rng"])
            first_epoch, trained_seconds = state["epoch"], state["train_seconds"]
        for epoch in range(first_epoch, settings.num_epochs):
            description = f"Run {run} | epoch {epoch + 1}/{settings.num_epochs}"
            try:
                loss = train_epoch(model, data, optimizer, scaler, criterion, device, use_amp, description,
                                   log_every)
            except FloatingPointError:  # non-finite encodings reached the memory layer
                loss = math.nan
            if not math.isfinite(loss):
                raise TrainingDiverged(f"the training loss became {loss} in run {run}, epoch {epoch + 1}; "
                                       "nothing was saved for this run")
            scheduler.step()
            atomic_torch_save({
                "epoch": epoch + 1, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "rng": global_rng_state(),
                "train_loader_generator": data.train_loader.generator.get_state(),
                "memory": data.memory.state_dict() if data.memory is not None else {},
                "settings": settings.comparable_json(),
                "train_seconds": trained_seconds + time.perf_counter() - started,
            }, state_file)
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1)
        train_seconds = trained_seconds + time.perf_counter() - started
        eval_started = time.perf_counter()
        passes = settings.config["eval_passes"] if model.uses_memory else 1
        evaluation = evaluate(model, data, run_index, passes, device)
        eval_seconds = time.perf_counter() - eval_started
        record = {
            "run": run, "seed": run_index, "accuracy": evaluation.accuracy, "loss": evaluation.loss,
            "pass_accuracies": list(evaluation.pass_accuracies), "train_seconds": round(train_seconds, 3),
            "eval_seconds": round(eval_seconds, 3), "device": str(device), "versions": library_versions(),
            "model": settings.model, "modality": settings.modality, "dataset": settings.dataset_name,
            "train_examples": settings.train_examples, "train_subset_size": len(data.train_set),
            "train_indices_sha256": indices_digest(data.train_set.indices),
            "settings": settings.comparable_json(), "config": settings.config,
        }
        if settings.config["save"]:
            atomic_torch_save({
                "model_state_dict": model.state_dict(), "train_examples": settings.train_examples,
                "mem_examples": settings.mem_examples, "model_name": settings.model,
                "num_classes": settings.num_classes, "modality": settings.modality,
                "dataset_name": settings.dataset_name, "run": run, "seed": run_index,
                "accuracy": evaluation.accuracy, "config": settings.config,
            }, folder / f"{run}.pt")
        RunLog(folder).append(record)
        state_file.unlink(missing_ok=True)
        return RunResult(record, evaluation)


# ---- all runs of a cell (train.py) ----------------------------------------------------------
def run_line(record: dict, accuracies: list[float]) -> str:
    """The original per-run line, without its junk text."""
    import numpy as np

    return (f"Run:{record['run']} | Loss:{record['loss']:.4f} | Accuracy {record['accuracy']:.2f} | "
            f"Mean Accuracy:{np.mean(accuracies):.2f} | Std Dev Accuracy:{np.std(accuracies):.2f} | "
            f"T:{record['train_seconds'] / 60:.2f}min | E:{record['eval_seconds'] / 60:.2f}min")


def summary_line(accuracies: list[float]) -> str:
    import numpy as np

    return f"Mean Accuracy:{np.mean(accuracies):.2f} | Std Dev Accuracy:{np.std(accuracies):.2f}"


def prepare_folder(settings: TrainSettings, continue_train: bool, overwrite: bool) -> dict[int, dict]:
    """Finished runs to keep; refuses to mix with earlier results unless asked to resume or overwrite."""
    folder, log = settings.output_dir, RunLog(settings.output_dir)
    leftovers = sorted(folder.glob("*.resume.pt"))
    if overwrite:
        log.clear()
        for path in leftovers + [p for p in folder.glob("*.pt") if p.stem.isdigit()]:
            path.unlink()
        return {}
    finished = log.finished()
    if (finished or leftovers) and not continue_train:
        raise CheckpointError(f"'{folder}' already holds runs of this cell; pass --continue_train to resume them "
                              "or --overwrite to start again")
    for record in finished.values():
        _check_same_settings(record["settings"], settings, log.path)
    return finished


def train_cell(settings: TrainSettings, continue_train: bool = False, overwrite: bool = False,
               log_every: int = 0, device: torch.device | None = None, out: Callable[[str], None] = print) -> list[float]:
    """Runs 1..runs of a cell, as train.py does; returns the accuracies in run order."""
    device = device or resolve_device(settings.config["device"])
    out(f"Model:{settings.model}\nSizeTrain:{settings.train_examples}\n")
    out(f"Device:{device}")
    finished = prepare_folder(settings, continue_train, overwrite)
    if continue_train:
        out("Restarting training process\n")
    accuracies: list[float] = []
    for run_index in range(settings.config["runs"]):
        record = finished.get(run_index + 1)
        if record is None:
            record = train_run(settings, run_index, device, resume=continue_train, log_every=log_every).record
        accuracies.append(record["accuracy"])
        out(run_line(record, accuracies))
    out(summary_line(accuracies))
    return accuracies
