"""The one training loop: `train_run` trains, evaluates and records one seeded run of a cell.

train.py loops it over a cell's runs; grid.py hands single runs to workers; the tests call it.
A run resumes from its last finished epoch (model, optimiser, scheduler, scaler, every generator
and RNG: see `RunState`), so a killed-then-resumed run gives the same numbers as an uninterrupted
one on the CPU.

The step does no host synchronisation: the loss and the correct count accumulate on the device
and are read once per epoch, where a non-finite loss stops the run (TrainingDiverged).
"""
from __future__ import annotations

import hashlib
import json
import math
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

import architectures
from . import compiled
from .checkpoints import RunFinished, atomic_torch_save, load_torch_file
from .config import TrainSettings, settings_difference
from .data import RunData, build_run_data
from .errors import CheckpointError, TrainingDiverged
from .evaluation import Evaluation, evaluate
from .files import remove_leftovers
from .locks import RunLock, run_lock
from .metrics import EpochLog, epoch_row, metrics_path, require_tensorboard, resumed_history
from .progress import track
from .records import RunLog, write_record
from .recipe import build_loss, build_model, build_optimizer, build_scheduler, resolve_device
from .run_state import RunState
from .seeding import global_rng_state, restore_global_rng_state, set_seed
from .stats import mean_and_std


@dataclass(frozen=True)
class EpochStats:
    """What one epoch leaves on record (read from the device once, at its end)."""

    epoch: int  # 1-based
    learning_rate: float  # the lr the epoch trained with
    loss: float  # mean training loss over its steps
    accuracy: float  # training accuracy (%) over its inputs, with the training transform
    seconds: float


EpochCallback = Callable[[EpochStats, RunState], None]


# ---- one epoch ------------------------------------------------------------------------------
def train_epoch(state: RunState, criterion: torch.nn.Module, use_amp: bool, description: str,
                log_every: int = 0) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """One pass over the training batches: (loss sum, correct count) on the device, steps, inputs seen."""
    model, data, optimizer, scaler = state.model, state.data, state.optimizer, state.scaler
    model.train()
    memory = data.training_memory() if model.uses_memory else None
    loss_sum = torch.zeros((), device=data.device)
    correct = torch.zeros((), dtype=torch.long, device=data.device)
    steps = seen = 0
    for inputs, targets in track(data.train_batches(), description, total=data.train_steps, log_every=log_every):
        memory_images, memory_labels = memory.draw() if memory is not None else (None, None)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(data.device.type, dtype=torch.float16, enabled=use_amp):
            logits = model(inputs, memory_images, memory_labels=memory_labels)
            loss = criterion(logits, targets)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        loss_sum += loss.detach().float()
        correct += (logits.detach().argmax(dim=1) == targets).sum()
        steps += 1
        seen += targets.shape[0]
    return loss_sum, correct, steps, seen


# ---- a whole run ----------------------------------------------------------------------------
@dataclass(frozen=True)
class RunResult:
    record: dict  # what <run>.json holds
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


def check_same_settings(saved: dict, settings: TrainSettings, where: Path) -> None:
    changed = settings_difference(saved, settings.comparable_json())
    if changed:
        raise CheckpointError(f"'{where}' was written with other settings (differs in: {', '.join(changed)}); "
                              "use another models_dir or --overwrite")


def prepare_model(settings: TrainSettings, device: torch.device) -> architectures.MemoryWrapNet:
    """The run's freshly initialised model on `device` (the global RNG must be seeded first);
    with `compile`, the process's compiled model holding these weights."""
    model = build_model(settings).to(device)
    config = settings.config
    if config["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    if not config["compile"]:
        return model
    key = compiled.model_key(settings.model, settings.modality, settings.num_classes, config["model_options"],
                             config["channels_last"])
    return compiled.compiled_model(model, key, device, config["compile_mode"])


def init_or_resume(settings: TrainSettings, data: RunData, device: torch.device, state_file: Path,
                   resume: bool) -> tuple[RunState, list[dict]]:
    """Seed, build the recipe and, when a resume file exists, continue from it; also returns the
    metrics rows of the epochs it holds."""
    set_seed(data.seed)
    model = prepare_model(settings, device)
    optimizer = build_optimizer(model, settings.config["optimizer"], device)
    use_amp = settings.config["amp"] and device.type == "cuda"
    state = RunState(model, optimizer, build_scheduler(optimizer, settings),
                     torch.amp.GradScaler("cuda", enabled=use_amp), data)
    history: list[dict] = []
    if resume and state_file.exists():
        saved = load_torch_file(state_file, map_location=device)
        check_same_settings(saved.get("settings", {}), settings, state_file)
        state.load_state_dict(saved.get("state", {}), str(state_file))
        history = resumed_history(saved.get("epochs"), state.epoch)
    return state, history


def periodic_test_accuracy(state: RunState, settings: TrainSettings, epoch: int) -> float | None:
    """`eval_every: K`: the test accuracy after every K-th epoch, else None.

    The evaluation draws its memories from its own seeded generator, but their training transform
    may draw from the global RNG (AutoAugment); that state is put back, so the training, and the
    final evaluation, get the numbers they would get without `eval_every`.
    """
    every = settings.config["eval_every"]
    if not every or epoch % every:
        return None
    saved = global_rng_state()
    try:
        return evaluate(state.model, state.data, settings.config["eval_passes"]).accuracy
    finally:
        restore_global_rng_state(saved)


def train_epochs(state: RunState, settings: TrainSettings, state_file: Path, run: int, log_every: int,
                 callbacks: list[EpochCallback], epoch_log: EpochLog | None = None,
                 lock: RunLock | None = None) -> None:
    """Epochs from the state's to the last; after each: divergence check, the metrics row, the resume
    file (which also holds the rows, so that a resumed CSV has every epoch once), callbacks."""
    criterion = build_loss(settings)
    use_amp = state.scaler.is_enabled()
    for epoch in range(state.epoch, settings.num_epochs):
        started = time.perf_counter()
        learning_rate = state.optimizer.param_groups[0]["lr"]
        loss_sum, correct, steps, seen = train_epoch(state, criterion, use_amp,
                                               f"Run {run} | epoch {epoch + 1}/{settings.num_epochs}", log_every)
        loss = float(loss_sum) / max(steps, 1)  # the epoch's one read from the device
        if not math.isfinite(loss):
            raise TrainingDiverged(f"the training loss became {loss} in run {run}, epoch {epoch + 1}; "
                                   "nothing was saved for this run")
        state.scheduler.step()
        seconds = time.perf_counter() - started
        state.epoch, state.train_seconds = epoch + 1, state.train_seconds + seconds
        stats = EpochStats(epoch + 1, learning_rate, loss, 100.0 * int(correct) / max(seen, 1), seconds)
        if lock is not None:
            lock.check()  # never write over the files of a process that took the run over
        history = []
        if epoch_log is not None:
            epoch_log.append(epoch_row(stats.epoch, stats.learning_rate, stats.loss, stats.accuracy, stats.seconds,
                                       periodic_test_accuracy(state, settings, stats.epoch)))
            history = epoch_log.history
        save_run_file(state_file, {"settings": settings.comparable_json(), "state": state.state_dict(),
                                   "epochs": history})
        for callback in callbacks:
            callback(stats, state)


def save_run_file(path: Path, content: dict) -> None:
    """atomic_torch_save with a one-line error: a full disk or a lost mount leaves the previous file
    (the run resumes from it)."""
    try:
        atomic_torch_save(content, path)
    except OSError as error:
        raise CheckpointError(f"cannot write '{path}': {error.strerror or error}; the previous file is intact: "
                              "free space (or fix the mount) and run again to resume") from None


def run_record(settings: TrainSettings, state: RunState, evaluation: Evaluation, run_index: int,
               eval_seconds: float) -> dict:
    return {
        "run": run_index + 1, "seed": run_index, "accuracy": evaluation.accuracy, "loss": evaluation.loss,
        "pass_accuracies": list(evaluation.pass_accuracies), "train_seconds": round(state.train_seconds, 3),
        "eval_seconds": round(eval_seconds, 3), "device": str(state.data.device), "versions": library_versions(),
        "model": settings.model, "modality": settings.modality, "dataset": settings.dataset_name,
        "train_examples": settings.train_examples, "train_subset_size": len(state.data.train),
        "train_indices_sha256": indices_digest(state.data.train.indices),
        "settings": settings.comparable_json(), "config": settings.config,
    }


def save_checkpoint(settings: TrainSettings, state: RunState, evaluation: Evaluation, run_index: int) -> None:
    """`<run>.pt` with the original keys, plus run, seed, accuracy and the full config."""
    save_run_file(settings.output_dir / f"{run_index + 1}.pt", {
        "model_state_dict": state.model.state_dict(), "train_examples": settings.train_examples,
        "mem_examples": settings.mem_examples, "model_name": settings.model,
        "num_classes": settings.num_classes, "modality": settings.modality,
        "dataset_name": settings.dataset_name, "run": run_index + 1, "seed": run_index,
        "accuracy": evaluation.accuracy, "config": settings.config,
    })


def record_run(folder: Path, record: dict) -> None:
    """`<run>.json`, written once (atomic); a full disk is a one-line error and the run stays resumable."""
    try:
        write_record(folder, record)
    except OSError as error:
        raise CheckpointError(f"cannot write the record of run {record['run']} in '{folder}': "
                              f"{error.strerror or error}; free space and run again (the run resumes and is "
                              "evaluated again)") from None


def train_run(settings: TrainSettings, run_index: int, device: torch.device | None = None,
              resume: bool = True, log_every: int = 0, skip_finished: bool = False,
              epoch_callbacks: list[EpochCallback] = ()) -> RunResult:
    """Train run `run_index` (0-based; seed = run_index, files named run_index + 1), evaluate, record.

    Raises RunBusy if another process holds the run's lock and, with `skip_finished`, RunFinished if
    the run is already recorded (checked under the lock: concurrent workers never train a run twice).
    `epoch_callbacks(stats, state)` are called after each epoch's resume file is written.
    Writes `<run>.metrics.csv` as it trains, then `<run>.pt` (if `save`) and the record `<run>.json`.
    """
    device = device or resolve_device(settings.config["device"])
    folder, run = settings.output_dir, run_index + 1
    settings.num_classes  # a config that contradicts the dataset fails here, before anything is written
    require_tensorboard(settings.config)
    with torch.device("meta"):
        build_model(settings)  # bad model_options fail here, allocating nothing
    if settings.config["compile"]:  # a missing toolchain fails before any write
        compiled.check_compile_works(device, settings.config["compile_mode"])
    data = build_run_data(settings.config, run_index, device)  # a missing dataset fails before any write
    if settings.modality != "std" and settings.mem_examples > len(data.train):
        data.training_memory()  # raises the one-line DatasetError
    with run_lock(folder, run) as lock:
        remove_leftovers(folder)  # temporary files of writes killed earlier
        finished = RunLog(folder).finished()
        for done in finished:  # left by a kill between a run's record and the removal of its resume file
            resume_path(folder, done).unlink(missing_ok=True)
        if skip_finished and run in finished:
            raise RunFinished(f"run {run} in '{folder}' is already finished")
        state_file = resume_path(folder, run)
        state, history = init_or_resume(settings, data, device, state_file, resume)
        epoch_log = open_epoch_log(folder, run, history, settings.config["tensorboard"])
        try:
            train_epochs(state, settings, state_file, run, log_every, list(epoch_callbacks), epoch_log, lock)
        finally:
            epoch_log.close()
        eval_started = time.perf_counter()
        evaluation = evaluate(state.model, data, settings.config["eval_passes"])
        record = run_record(settings, state, evaluation, run_index, time.perf_counter() - eval_started)
        lock.check()
        if settings.config["save"]:
            save_checkpoint(settings, state, evaluation, run_index)
        record_run(folder, record)
        state_file.unlink(missing_ok=True)
        return RunResult(record, evaluation)


def open_epoch_log(folder: Path, run: int, history: list[dict], tensorboard: bool) -> EpochLog:
    try:
        return EpochLog(folder, run, history, tensorboard)
    except OSError as error:
        raise CheckpointError(f"cannot write '{metrics_path(folder, run)}': {error.strerror or error}") from None


# ---- all runs of a cell (train.py) ----------------------------------------------------------
def run_line(record: dict, accuracies: list[float]) -> str:
    """The original per-run line, without its junk text."""
    mean, std = mean_and_std(accuracies)
    return (f"Run:{record['run']} | Loss:{record['loss']:.4f} | Accuracy {record['accuracy']:.2f} | "
            f"Mean Accuracy:{mean:.2f} | Std Dev Accuracy:{std:.2f} | "
            f"T:{record['train_seconds'] / 60:.2f}min | E:{record['eval_seconds'] / 60:.2f}min")


def summary_line(accuracies: list[float]) -> str:
    mean, std = mean_and_std(accuracies)
    return f"Mean Accuracy:{mean:.2f} | Std Dev Accuracy:{std:.2f}"


def prepare_folder(settings: TrainSettings, continue_train: bool, overwrite: bool) -> dict[int, dict]:
    """Finished runs to keep; refuses to mix with earlier results unless asked to resume or overwrite."""
    folder, log = settings.output_dir, RunLog(settings.output_dir)
    leftovers = sorted(folder.glob("*.resume.pt"))
    if overwrite:
        log.clear()
        for path in leftovers + [p for p in folder.glob("*.pt") if p.stem.isdigit()] + list(folder.glob("*.metrics.csv")):
            path.unlink()
        if (folder / "tensorboard").is_dir():
            shutil.rmtree(folder / "tensorboard")
        return {}
    sources = log.sources()
    if (sources or leftovers) and not continue_train:
        raise CheckpointError(f"'{folder}' already holds runs of this cell; pass --continue_train to resume them "
                              "or --overwrite to start again")
    for record, where in sources.values():
        check_same_settings(record["settings"], settings, where)
    return {run: record for run, (record, _) in sources.items()}


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
