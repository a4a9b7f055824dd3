"""The one training loop: `train_run` trains, evaluates and records one seeded run of a cell.

train.py loops it over a cell's runs; grid.py hands single runs to workers; the tests call it.
A run resumes from its last finished epoch (model, optimiser, scheduler, scaler, every generator
and RNG: see `RunState`), so a killed-then-resumed run gives the same numbers as an uninterrupted
one on the CPU.

The step does no host synchronisation: the loss and the correct count accumulate on the device
and are read once per epoch, where a non-finite loss stops the run (TrainingDiverged).
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import platform
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch.utils._pytree import tree_map

import architectures
from .run_files import (
    EpochLog, RunBusy, RunFinished, RunLock, check_output_folder, check_writable, checkpoint_path, epoch_row,
    finished_runs, live_locks, load_torch_file, metrics_path, record_files, record_path, remove_leftovers,
    require_tensorboard, result_files, resume_path, resumed_history, run_lock, save_torch_file, write_errors,
    write_record,
)
from .config import (
    NON_SCIENCE_KEYS, TrainSettings, non_science_differences, run_seed, settings_changes, settings_notes,
)
from .data import RunData, build_run_data, global_rng_state, restore_global_rng_state, set_seed
from .cli import CheckpointError, ConfigError, TrainingDiverged, on_terminal, print_line, timing, track
from .evaluation import Evaluation, evaluate
from .recipe import build_loss, build_model, build_optimizer, build_scheduler, resolve_device
from .stats import mean_and_std


# ---- run state ---------------------------------------------------------------------------------------
STATE_FORMAT = 2  # 1: the first release (DataLoader generator), not resumable by this version


@dataclass
class RunState:
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    data: RunData  # its generators: batch order, flips, memory draws
    epoch: int = 0  # finished epochs
    train_seconds: float = 0.0

    KEYS = ("format", "epoch", "train_seconds", "model", "optimizer", "scheduler", "scaler", "data", "rng")

    def state_dict(self) -> dict:
        state = {"format": STATE_FORMAT, "epoch": self.epoch, "train_seconds": self.train_seconds,
                 "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                 "data": self.data.state_dict(), "rng": global_rng_state()}
        assert tuple(state) == self.KEYS
        return state

    def load_state_dict(self, state: dict, where: str) -> None:
        if state.get("format") != STATE_FORMAT or any(key not in state for key in self.KEYS):
            raise CheckpointError(f"'{where}' was written by another version of the suite and cannot be resumed; "
                                  "delete it to restart that run, or use --overwrite")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.data.load_state_dict(state["data"])
        restore_global_rng_state(state["rng"])
        self.epoch, self.train_seconds = state["epoch"], state["train_seconds"]


# ---- compiled models (config compile: true) ----------------------------------------------------------
COMPILE_BACKEND = "inductor"  # tests swap in a counting backend
CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")  # torch.compile modes that replay CUDA graphs
_COMPILED: dict[tuple, architectures.MemoryWrapNet] = {}
_CHECKED: set[str] = set()


def check_compile_works(device: torch.device, mode: str) -> None:
    """Compile and run a one-line function once per process and device type: a missing C compiler
    (CPU backend) or Triton (GPU) then stops the run before training, in one line."""
    if device.type in _CHECKED or COMPILE_BACKEND != "inductor":
        return
    try:
        probe = torch.compile(lambda x: x * 2 + 1, backend=COMPILE_BACKEND, mode=None if mode == "default" else mode)
        probe(torch.ones(4, device=device))
    except Exception as error:  # noqa: BLE001 - any failure of the toolchain means: cannot compile here
        first = (str(error).strip().splitlines() or [error.__class__.__name__])[0][:200]
        raise ConfigError(f"compile: true, but torch.compile does not work on {device.type} here "
                          f"({error.__class__.__name__}: {first}); set compile: false") from None
    _CHECKED.add(device.type)


def compiled_model(fresh: architectures.MemoryWrapNet, key: tuple, device: torch.device,
                   mode: str) -> architectures.MemoryWrapNet:
    """The process's compiled model for `key`, holding `fresh`'s weights (and buffers)."""
    full_key = key + (str(device), mode, COMPILE_BACKEND if isinstance(COMPILE_BACKEND, str) else id(COMPILE_BACKEND))
    cached = _COMPILED.get(full_key)
    if cached is None:
        check_compile_works(device, mode)
        options = {} if mode == "default" else {"mode": mode}
        keep = _copied_outputs if mode in CUDA_GRAPH_MODES else (lambda function: function)
        fresh.forward_encoder = keep(torch.compile(fresh.forward_encoder, backend=COMPILE_BACKEND, **options))
        fresh.classify = keep(torch.compile(fresh.classify, backend=COMPILE_BACKEND, **options))
        _COMPILED[full_key] = fresh
        return fresh
    cached.load_state_dict(fresh.state_dict())
    cached.train()
    return cached


def _copied_outputs(function):
    """CUDA graphs (reduce-overhead) write every replay's outputs into the same memory, so an output
    kept across calls (the test encodings collected batch by batch) would be overwritten by the next
    batch's: each call's outputs are copied out (autograd follows the copy)."""
    @functools.wraps(function)
    def call(*args, **kwargs):
        return tree_map(lambda value: value.clone() if isinstance(value, torch.Tensor) else value,
                        function(*args, **kwargs))

    return call


def model_key(model_name: str, modality: str, num_classes: int, options: dict, channels_last: bool) -> tuple:
    return model_name, modality, num_classes, json.dumps(options, sort_keys=True), channels_last


@dataclass(frozen=True)
class EpochStats:
    """What one epoch leaves on record (read from the device once, at its end)."""

    epoch: int  # 1-based
    learning_rate: float  # the lr the epoch trained with
    loss: float  # mean training loss over its steps
    accuracy: float  # training accuracy (%) over its inputs, with the training transform
    seconds: float


EpochCallback = Callable[[EpochStats, RunState], None]


# ---- progress -------------------------------------------------------------------------------
class TrainingProgress:
    """Off a terminal (a log, nohup, Slurm, a grid worker), a line every `log_every` training steps of a
    run, and after a step that ends `seconds_between` seconds without one (small-data epochs have a few
    steps: a log would otherwise show a line per run): epoch and step, the epoch's mean loss so far,
    learning rate, images per second, elapsed and estimated time left of the run's training. The loss is
    read from the device only then. `log_every` 0: no lines."""

    seconds_between = 60.0
    now = staticmethod(time.perf_counter)  # the clock (a test sets its own)

    def __init__(self, label: str, state: RunState, num_epochs: int, log_every: int,
                 out: Callable[[str], None] = print_line):
        self.label, self.num_epochs, self.log_every, self.out = label, num_epochs, log_every, out
        self.total = (num_epochs - state.epoch) * state.data.train_steps
        self.done = self.images = 0
        self.started = self.last_line = self.now()

    @property
    def active(self) -> bool:
        return bool(self.log_every) and not on_terminal()

    def step(self, epoch: int, step: int, steps: int, loss_sum: torch.Tensor, images: int, lr: float) -> None:
        """After step `step` (1-based) of `steps` of epoch `epoch` (1-based); `loss_sum` over the epoch's steps."""
        self.done += 1
        self.images += images
        if not self.active:
            return
        now = self.now()
        if self.done % self.log_every and now - self.last_line < self.seconds_between:
            return
        self.last_line = now
        seconds = max(now - self.started, 1e-9)
        self.out(f"{self.label} | epoch {epoch}/{self.num_epochs} | step {step}/{steps} | "
                 f"loss {float(loss_sum) / step:.4f} | lr {lr:.4g} | {self.images / seconds:.0f} img/s | "
                 f"{timing(self.done, self.total, self.started, now)}")


# ---- one epoch ------------------------------------------------------------------------------
def train_epoch(state: RunState, criterion: torch.nn.Module, use_amp: bool, description: str,
                progress: TrainingProgress | None = None,
                epoch: int = 0) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """One pass over the training batches: (loss sum, correct count) on the device, steps, inputs seen."""
    model, data, optimizer, scaler = state.model, state.data, state.optimizer, state.scaler
    model.train()
    memory = data.training_memory() if model.uses_memory else None
    loss_sum = torch.zeros((), device=data.device)
    correct = torch.zeros((), dtype=torch.long, device=data.device)
    steps = seen = 0
    learning_rate = optimizer.param_groups[0]["lr"]
    for inputs, targets in track(data.train_batches(), description, total=data.train_steps):
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
        if progress is not None:
            progress.step(epoch, steps, data.train_steps, loss_sum, targets.shape[0], learning_rate)
    return loss_sum, correct, steps, seen


# ---- a whole run ----------------------------------------------------------------------------
@dataclass(frozen=True)
class RunResult:
    record: dict  # what <run>.json holds
    evaluation: Evaluation


def library_versions() -> dict:
    import entmax
    import torchvision

    return {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
            "entmax": getattr(entmax, "__version__", "unknown")}


def indices_digest(indices: list[int]) -> str:
    """sha256 of the index list, hashed as the reference fixture does."""
    return hashlib.sha256(json.dumps(list(indices)).encode()).hexdigest()


def check_same_settings(saved: dict, settings: TrainSettings, where: Path) -> None:
    changed = settings_changes(saved, settings.comparable_json())
    if changed:
        raise CheckpointError(f"'{where}' was written with other settings (differs in: {changed}); "
                              "use another models_dir or --overwrite")


@dataclass
class Prepared:
    """What a run needs before it writes anything: its data and its freshly initialised model."""

    data: RunData
    model: architectures.MemoryWrapNet


def preflight(settings: TrainSettings, run: int, device: torch.device) -> Prepared:
    """Every check a run makes before writing anything, in one place: the config against the dataset
    (class count), TensorBoard, the compile toolchain, the model options (the model is built here,
    once, right after the run's seed is set, as the original did), the dataset files, the memory size."""
    settings.num_classes  # a config that contradicts the dataset fails here
    require_tensorboard(settings.config)
    config = settings.config
    if config["compile"]:
        check_compile_works(device, config["compile_mode"])
    set_seed(run_seed(run))
    model = build_model(settings).to(device)  # bad model_options fail here, before the dataset is read
    data = build_run_data(config, run_seed(run), device)
    if settings.modality != "std":
        data.training_memory()  # a memory larger than the subset: the one-line DatasetError
    if config["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    if config["compile"]:
        key = model_key(settings.model, settings.modality, settings.num_classes, config["model_options"],
                        config["channels_last"])
        model = compiled_model(model, key, device, config["compile_mode"])
    return Prepared(data, model)


def init_or_resume(settings: TrainSettings, prepared: Prepared, device: torch.device, state_file: Path,
                   resume: bool, note: Callable[[str], None] = lambda _: None) -> tuple[RunState, list[dict]]:
    """The run's optimiser, schedule and scaler, continued from the resume file when there is one (with a
    `note` per non-science setting it was trained with otherwise); also returns the metrics rows of the
    epochs it holds."""
    model = prepared.model
    optimizer = build_optimizer(model, settings.config["optimizer"], device)
    use_amp = settings.config["amp"] and device.type == "cuda"
    state = RunState(model, optimizer, build_scheduler(optimizer, settings),
                     torch.amp.GradScaler("cuda", enabled=use_amp), prepared.data)
    history: list[dict] = []
    if resume and state_file.exists():
        saved = load_torch_file(state_file, map_location=device)
        check_same_settings(saved.get("settings", {}), settings, state_file)
        state.load_state_dict(saved.get("state", {}), str(state_file))
        history = resumed_history(saved.get("epochs"), state.epoch)
        goes_on = (f"epoch {state.epoch + 1}" if state.epoch < settings.num_epochs else "the evaluation")
        note(f"Resuming from '{state_file}': epochs 1-{state.epoch} of {settings.num_epochs} done, going on with "
             f"{goes_on}")
        for key, was, now in non_science_differences(saved.get("config") or {}, settings.config):
            note(f"note: '{state_file}' (epoch {state.epoch}) was trained with {key} {was}, it goes on with {key} "
                 f"{now}; {NON_SCIENCE_KEYS[key]}")
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
                 callbacks: list[EpochCallback], epoch_log: EpochLog, lock: RunLock | None = None,
                 label: str | None = None) -> None:
    """Epochs from the state's to the last; after each: divergence check, the metrics row, the resume
    file (which also holds the rows, so that a resumed CSV has every epoch once), callbacks."""
    criterion = build_loss(settings)
    use_amp = state.scaler.is_enabled()
    label = label or f"Run {run}"
    progress = TrainingProgress(label, state, settings.num_epochs, log_every)
    for epoch in range(state.epoch, settings.num_epochs):
        started = time.perf_counter()
        learning_rate = state.optimizer.param_groups[0]["lr"]
        loss_sum, correct, steps, seen = train_epoch(state, criterion, use_amp,
                                                     f"{label} | epoch {epoch + 1}/{settings.num_epochs}", progress,
                                                     epoch + 1)
        loss = float(loss_sum) / max(steps, 1)  # the epoch's one read from the device
        if not math.isfinite(loss):
            kept = f"the run's metrics and its resume file hold epochs 1-{epoch}" if epoch else "no epoch was saved"
            raise TrainingDiverged(f"the training loss became {loss} in run {run}, epoch {epoch + 1}; that epoch was "
                                   f"not saved ({kept}); change the settings (a smaller learning_rate) and train the "
                                   "cell again with --overwrite")
        state.scheduler.step()
        seconds = time.perf_counter() - started
        state.epoch, state.train_seconds = epoch + 1, state.train_seconds + seconds
        stats = EpochStats(epoch + 1, learning_rate, loss, 100.0 * int(correct) / max(seen, 1), seconds)
        if lock is not None:
            lock.check()  # never write over the files of a process that took the run over
        epoch_log.append(epoch_row(stats.epoch, stats.learning_rate, stats.loss, stats.accuracy, stats.seconds,
                                   periodic_test_accuracy(state, settings, stats.epoch)))
        save_torch_file({"settings": settings.comparable_json(), "config": settings.config,
                         "state": state.state_dict(), "epochs": epoch_log.history}, state_file)
        for callback in callbacks:
            callback(stats, state)


def run_record(settings: TrainSettings, state: RunState, evaluation: Evaluation, run: int,
               eval_seconds: float) -> dict:
    return {
        "run": run, "seed": run_seed(run), "accuracy": evaluation.accuracy, "loss": evaluation.loss,
        "pass_accuracies": list(evaluation.pass_accuracies), "train_seconds": round(state.train_seconds, 3),
        "eval_seconds": round(eval_seconds, 3), "device": str(state.data.device), "versions": library_versions(),
        "model": settings.model, "modality": settings.modality, "dataset": settings.dataset_name,
        "train_examples": settings.train_examples, "train_subset_size": len(state.data.train),
        "train_indices_sha256": indices_digest(state.data.train.indices),
        "settings": settings.comparable_json(), "config": settings.config,
    }


def save_checkpoint(settings: TrainSettings, state: RunState, evaluation: Evaluation, run: int) -> None:
    """`<run>.pt` with the original keys, plus run, seed, accuracy and the full config."""
    save_torch_file({
        "model_state_dict": state.model.state_dict(), "train_examples": settings.train_examples,
        "mem_examples": settings.mem_examples, "model_name": settings.model,
        "num_classes": settings.num_classes, "modality": settings.modality,
        "dataset_name": settings.dataset_name, "run": run, "seed": run_seed(run),
        "accuracy": evaluation.accuracy, "config": settings.config,
    }, checkpoint_path(settings.cell_folder, run))


def train_run(settings: TrainSettings, run: int, device: torch.device | None = None, resume: bool = True,
              log_every: int = 0, skip_finished: bool = False, epoch_callbacks: list[EpochCallback] = (),
              prepared: Prepared | None = None, label: str | None = None) -> RunResult:
    """Train run `run` (1-based; its seed is `run_seed(run)`), evaluate, record.

    Raises RunBusy if another process holds the run's lock and, with `skip_finished`, RunFinished if
    the run is already recorded (checked under the lock: concurrent workers never train a run twice).
    `epoch_callbacks(stats, state)` are called after each epoch's resume file is written. `prepared`:
    this run's `preflight`, when the caller made it already. `log_every`: progress lines (see
    `TrainingProgress`, whose lines start with `label`, default "Run N"). Writes `<run>.metrics.csv` as it
    trains, then `<run>.pt` (if `save`) and the record `<run>.json`.
    """
    device = device or resolve_device(settings.config["device"])
    folder = settings.cell_folder
    prepared = prepared or preflight(settings, run, device)
    with run_lock(folder, run) as lock:
        remove_leftovers(folder)  # temporary files of writes killed earlier
        finished = finished_runs(folder)
        for done in finished:  # left by a kill between a run's record and the removal of its resume file
            resume_path(folder, done).unlink(missing_ok=True)
        if skip_finished and run in finished:
            raise RunFinished(f"run {run} in '{folder}' is already finished")
        state_file = resume_path(folder, run)
        state, history = init_or_resume(settings, prepared, device, state_file, resume, print_line)
        with write_errors(metrics_path(folder, run)):
            epoch_log = EpochLog(folder, run, history, settings.config["tensorboard"])
        try:
            train_epochs(state, settings, state_file, run, log_every, list(epoch_callbacks), epoch_log, lock, label)
        finally:
            epoch_log.close()
        eval_started = time.perf_counter()
        evaluation = evaluate(state.model, state.data, settings.config["eval_passes"])
        record = run_record(settings, state, evaluation, run, time.perf_counter() - eval_started)
        lock.check()
        if settings.config["save"]:
            save_checkpoint(settings, state, evaluation, run)
        write_record(folder, record)
        state_file.unlink(missing_ok=True)
        return RunResult(record, evaluation)


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


def check_cell(settings: TrainSettings, continue_train: bool, overwrite: bool) -> dict[int, dict]:
    """The finished runs to keep. Without --continue_train or --overwrite a cell that holds results is
    refused; with --continue_train every finished run must have the current settings. Deletes nothing."""
    folder = settings.cell_folder
    check_output_folder(folder, "models_dir")
    if overwrite:
        return {}
    finished = finished_runs(folder)
    if (finished or any(folder.glob("*.resume.pt"))) and not continue_train:
        raise CheckpointError(f"'{folder}' already holds runs of this cell; pass --continue_train to resume them "
                              "or --overwrite to start again")
    for run, record in finished.items():
        check_same_settings(record["settings"], settings, record_path(folder, run))
    return finished


def kept_lines(settings: TrainSettings, finished: dict[int, dict]) -> list[str]:
    """What --continue_train keeps: the finished runs, those beyond `runs`, and non-science settings they
    were trained with that differ from the current ones."""
    runs = settings.config["runs"]
    kept = [run for run in finished if run <= runs]
    lines = [f"Keeping finished run(s) {', '.join(map(str, kept))} of {runs}"
             + ("; nothing left to train" if len(kept) == runs else "")] if kept else []
    beyond = [run for run in finished if run > runs]
    if beyond:
        lines.append(f"note: the cell also holds finished run(s) {', '.join(map(str, beyond))}, beyond runs={runs}: "
                     "they are kept but not counted here")
    differences = Counter(d for run in kept
                          for d in non_science_differences(finished[run].get("config") or {}, settings.config))
    lines += [f"note: {count} finished run(s) were trained with {key} {was} (now {now}); {NON_SCIENCE_KEYS[key]}"
              for (key, was, now), count in sorted(differences.items())]
    return lines


def discard_cell(folder: Path) -> tuple[list[Path], list[Path]]:
    """--overwrite, once every check has passed: delete the cell's records, checkpoints, resume files,
    metrics and TensorBoard events, and the results computed from them (`result_files`). Refused while
    another process trains a run of the cell. Returns (run files, result files) deleted."""
    busy = live_locks(folder)
    if busy:
        run, owner = next(iter(busy.items()))
        raise RunBusy(f"run {run} in '{folder}' is being trained by another process"
                      + (f" ({owner.describe()})" if owner else "") + "; nothing was deleted")
    removed = (sorted(folder.glob("*.resume.pt")) + list(record_files(folder).values())
               + [p for p in folder.glob("*.pt") if p.stem.isdigit()] + sorted(folder.glob("*.metrics.csv")))
    if (folder / "tensorboard").is_dir():
        removed.append(folder / "tensorboard")
    results = result_files(folder)
    if not removed and not results:
        return [], []
    check_writable(folder)
    try:
        for path in removed + results:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    except OSError as error:
        raise CheckpointError(f"--overwrite: cannot delete '{error.filename}': {error.strerror or error}") from None
    return removed, results


def subset_note(settings: TrainSettings, data: RunData) -> str | None:
    """One line when the training split holds fewer images than `train_examples` asks for."""
    available = len(data.train)
    if available >= settings.train_examples:
        return None
    return (f"note: train_examples is {settings.train_examples}, but {settings.dataset_name} has {available} "
            f"training images after its validation hold-out: every run trains on all {available} (the cell keeps "
            f"the folder name {settings.train_examples}; records give train_subset_size {available})")


def train_cell(settings: TrainSettings, continue_train: bool = False, overwrite: bool = False,
               log_every: int = 0, device: torch.device | None = None,
               out: Callable[[str], None] = print) -> list[float]:
    """Runs 1..runs of a cell, as train.py does; returns the accuracies in run order.

    Every check that can fail (folder, config against the dataset, model, data, memory size, other
    trainers' locks) runs before --overwrite deletes anything: the first run to train is prepared first.
    """
    device = device or resolve_device(settings.config["device"])
    out(f"Model:{settings.model}\nSizeTrain:{settings.train_examples}\n")
    out(f"Device:{device}")
    finished = check_cell(settings, continue_train, overwrite)
    todo = [run for run in range(1, settings.config["runs"] + 1) if run not in finished]
    prepared = preflight(settings, todo[0], device) if todo else None
    for line in settings_notes(settings) + ([subset_note(settings, prepared.data)] if prepared else []):
        if line:
            out(line)
    if overwrite:
        removed, results = discard_cell(settings.cell_folder)
        if removed or results:
            out(f"--overwrite: deleted {len(removed)} file(s) of earlier runs in '{settings.cell_folder}'"
                + (f" and {len(results)} result file(s) computed from them ({', '.join(p.name for p in results)})"
                   if results else ""))
    if continue_train:
        out("Restarting training process\n")
        for line in kept_lines(settings, finished):
            out(line)
    folder = settings.cell_folder
    out(f"Writing runs to '{folder}'" + ("" if folder.is_absolute() else f" ({folder.resolve()})"))
    accuracies: list[float] = []
    for run in range(1, settings.config["runs"] + 1):
        record = finished.get(run)
        if record is None:
            record = train_run(settings, run, device, resume=continue_train, log_every=log_every,
                               prepared=prepared if run == todo[0] else None).record
        accuracies.append(record["accuracy"])
        out(run_line(record, accuracies))
    out(summary_line(accuracies))
    return accuracies
