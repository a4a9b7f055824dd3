"""Running a grid: plan its runs, then hand them out, one run at a time, to local worker processes or
to Slurm array tasks (through submitit).

The unit of work is one seeded run of a cell, so many workers share a cell. Every run goes through
`train_run` (resume from the last finished epoch, a per-run lock that holds across nodes, a record
file per run), which makes the grid safe to interrupt and to run from several places at once:
- a recorded run (one with its `<run>.json`) is never trained again (checked
  under the run's lock);
- a run whose lock is held by a live process is skipped;
- a worker killed mid-run loses at most its current epoch; the next worker resumes the run.

torch is imported lazily: the script's module and spawned workers stay light until they train.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from collections import Counter, deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Collection, Mapping

from submitit.helpers import Checkpointable

from .run_files import finished_runs, require_tensorboard, resume_path
from .config import NON_SCIENCE_KEYS, TrainSettings, non_science_differences, settings_changes
from .cli import ConfigError, UserError
from .gridspec import DEFAULT, Cell, Grid

Printer = Callable[[str], None]

TRAINED, ALREADY_DONE, BUSY, FAILED = "trained", "already done", "busy", "failed"

# ---- planning -------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunTask:
    """One seeded run of a cell: what a worker needs to train it (picklable)."""

    cell: Cell
    settings: TrainSettings
    run: int  # 1-based, as its files and records

    @property
    def label(self) -> str:
        return f"{self.cell.label} run {self.run}"

    @property
    def cell_folder(self) -> Path:
        return self.settings.cell_folder


@dataclass
class Plan:
    grid: Grid
    todo: list[RunTask]  # not finished yet, in hand-out order
    done: list[tuple[RunTask, dict]]  # finished before this command, with their records
    resumable: set[str]  # labels of todo runs with a resume file (an interrupted run)

    @property
    def total(self) -> int:
        return len(self.todo) + len(self.done)

    def headline(self) -> str:
        grid = self.grid
        return (f"Grid {grid.path}: {len(grid.cells())} cells x {grid.runs} runs = {self.total} runs; "
                f"{len(self.done)} finished, {len(self.todo)} to train"
                + (f" ({len(self.resumable)} resume an interrupted run)" if self.resumable else ""))

    def where(self) -> str:
        """Where the runs' files are (every command says where it writes)."""
        roots = sorted({str(Path(task.settings.config["models_dir"]).resolve())
                        for task in self.todo + [task for task, _ in self.done]})
        return f"Run files: {' and '.join(roots)}/DATASET/MODALITY/MODEL/TRAIN_EXAMPLES/ (see the cells' labels)"

    def reuse_notes(self) -> list[str]:
        """One line per non-science setting (`NON_SCIENCE_KEYS`) that finished runs were trained with other
        values of than the grid gives: they count as they are, and their files follow their own settings."""
        differences: Counter = Counter()
        for task, record in self.done:
            trained = record.get("config") or {}
            for key, was, now in non_science_differences(trained, task.settings.config):
                differences[(key, was, now)] += 1
        return [f"note: {count} finished run(s) trained with {key} {was} are reused as they are (this grid: "
                f"{key} {now}); {NON_SCIENCE_KEYS[key]}" for (key, was, now), count in sorted(differences.items())]


def check_names(grid: Grid) -> list[str]:
    """Datasets, models and modalities against the registries; returns the dataset names."""
    import architectures

    from .datasets import list_datasets

    names, models = list_datasets(), architectures.list_models()
    configured = [key for key in grid.base_configs if key != DEFAULT]  # a typo here would train with the default
    for noun, key, values, valid in (("dataset", "datasets", grid.datasets, names),
                                     ("model", "models", grid.models, models),
                                     ("modality", "modalities", grid.modalities, architectures.list_modalities()),
                                     ("model", "base_config", configured, models)):
        unknown = [v for v in values if v not in valid]
        if unknown:
            raise ConfigError(f"grid file '{grid.path}': unknown {noun} '{unknown[0]}' in '{key}'; "
                              f"valid: {', '.join(valid)}")
    return names


def plan_runs(grid: Grid, settings: Mapping[Cell, TrainSettings], records: Mapping[Cell, Mapping[int, dict]],
              resume_files: Collection[tuple[Cell, int]]) -> Plan:
    """Split runs 1..grid.runs of each cell of `settings` into done (a record with the cell's settings)
    and todo (no record; resumable where (cell, run) is in `resume_files`). Reads nothing from disk.

    `records` maps a cell to its records by run (a cell may be missing: no records). A record of
    other settings for one of the grid's runs is refused (UserError): it would be neither redone
    nor comparable. Records of runs above grid.runs are ignored.
    """
    todo, done, resumable = [], [], set()
    for cell, cell_settings in settings.items():
        finished = records.get(cell, {})
        current = cell_settings.comparable_json()
        for run, record in sorted(finished.items()):
            if 1 <= run <= grid.runs and record.get("settings") != current:
                changed = settings_changes(record.get("settings") or {}, current)
                raise UserError(f"'{cell_settings.cell_folder}' holds run {run} trained with other settings "
                                f"(differs in: {changed}); give the grid another models_dir "
                                "(overrides: [models_dir=...]) or move those results away")
        for run in range(1, grid.runs + 1):
            task = RunTask(cell, cell_settings, run)
            if task.run in finished:
                done.append((task, finished[task.run]))
            else:
                todo.append(task)
                if (cell, task.run) in resume_files:
                    resumable.add(task.label)
    return Plan(grid, todo, done, resumable)


PATH_KEYS = ("models_dir", "dataset_dir")  # the config's paths, pinned by the plan


def with_absolute_paths(settings: TrainSettings) -> TrainSettings:
    """The settings with their paths (PATH_KEYS) made absolute, from the current directory as the grid
    command found it. Not part of the comparable settings, so records and resume files still match."""
    config = dict(settings.config)
    for key in PATH_KEYS:
        config[key] = str(Path(config[key]).resolve())
    return TrainSettings(config, settings.modality)


def make_plan(grid: Grid) -> Plan:
    """Every run of the grid, split into finished and to-train from the cell folders' records and
    resume files; refuses results of other settings.

    The plan pins every path once, here: a local worker, a Slurm task that starts in another
    directory and a requeued task all get the same absolute models_dir and dataset_dir (relative
    ones, and a relative base_config, being taken from the directory the grid was planned in)."""
    names = check_names(grid)
    settings = {cell: with_absolute_paths(grid.cell_settings(cell, names)) for cell in grid.cells()}
    for cell_settings in settings.values():
        require_tensorboard(cell_settings.config)
    records = {cell: finished_runs(s.cell_folder) for cell, s in settings.items()}
    resume_files = {(cell, run) for cell, s in settings.items() for run in range(1, grid.runs + 1)
                    if resume_path(s.cell_folder, run).exists()}
    return plan_runs(grid, settings, records, resume_files)


def remove_finished_resume_files(plan: Plan) -> None:
    """A resume file of a recorded run is garbage (left by a kill just after the record): remove it.
    Safe at any time: a recorded run is never trained again."""
    for task, _ in plan.done:
        resume_path(task.cell_folder, task.run).unlink(missing_ok=True)


def estimate_lines(plan: Plan, profiles: dict) -> list[str]:
    """The device-hours of the runs still to train, on every hardware the step-time profiles name
    (benchmarks/step_times.json; see suite.estimate)."""
    from .estimate import estimate

    if not plan.todo:
        return []
    lines = ["Estimated device-hours of the runs to train (step times measured on named hardware; "
             "start-up and data loading not counted):"]
    for hardware, profile in sorted(profiles.get("profiles", {}).items()):
        found = estimate((task.settings for task in plan.todo), hardware, profile)
        lines.append(f"  {found.line()} (measured {profile.get('measured', '?')})")
    return lines


def cell_profile(profiles: dict) -> tuple[str, dict] | None:
    """The profile per-cell hours are given on: a GPU one with a measured grid throughput if there is
    one (the hardware a grid is run on), else the first by name."""
    named = sorted(profiles.get("profiles", {}).items())
    with_grid = [item for item in named if item[1].get("grid")]
    return (with_grid or named or [None])[0]


def cell_lines(plan: Plan, profiles: dict) -> list[str]:
    """One line per cell: its runs finished and to train, and the device-hours of those to train."""
    from .estimate import estimate

    done, todo = Counter(task.cell for task, _ in plan.done), {}
    for task in plan.todo:
        todo.setdefault(task.cell, []).append(task)
    chosen = cell_profile(profiles)
    lines = ["Cells (runs finished / to train" + (f", device-hours one run at a time on {chosen[0]}" if chosen else "")
             + "):"]
    width = max((len(cell.label) for cell in plan.grid.cells()), default=0)
    for cell in plan.grid.cells():
        tasks = todo.get(cell, [])
        resumable = sum(task.label in plan.resumable for task in tasks)
        line = f"  {cell.label:<{width}}  {done[cell]} finished, {len(tasks)} to train"
        if resumable:
            line += f" ({resumable} resume)"
        if tasks and chosen:
            found = estimate((t.settings for t in tasks), *chosen)
            why = (f"{', '.join(found.unknown_models)} not in the profile" if found.unknown_models
                   else f"{', '.join(found.unsized_datasets)} has no nominal sizes")
            line += f", {found.hours:,.2f} h" if found.estimated_runs else f", n/a ({why})"
        lines.append(line)
    return lines


def dry_run_lines(plan: Plan, profiles: dict | None = None, list_runs: bool = False) -> list[str]:
    """What `--dry_run` prints: the headline, the estimates, a line per cell and, with `list_runs`, a line
    per run."""
    profiles = profiles or {}
    lines = ([plan.headline(), plan.where()] + plan.grid.override_notes() + plan.reuse_notes()
             + estimate_lines(plan, profiles) + cell_lines(plan, profiles))
    if not list_runs:
        return lines + ["(--list_runs: a line per run)"]
    if plan.done:
        lines.append(f"Finished ({len(plan.done)}):")
        lines += [f"  done      {task.label}  accuracy {record.get('accuracy', float('nan')):.2f}"
                  for task, record in plan.done]
    if plan.todo:
        lines.append(f"Would train ({len(plan.todo)}):")
        lines += [f"  to train  {task.label}" + ("  (resumes from its last finished epoch)"
                                                  if task.label in plan.resumable else "")
                  for task in plan.todo]
    return lines


def prepare_datasets(tasks: list[RunTask], out: Printer) -> None:
    """Open (and, where allowed, download) every dataset once, before any worker starts.

    Workers would otherwise race to download the same files; a missing dataset fails here, once.
    """
    from .datasets import open_images

    seen = set()
    for task in tasks:
        config = task.settings.config
        key = (config["dataset_name"], config["dataset_dir"], config["download"])
        if key in seen:
            continue
        seen.add(key)
        out(f"Checking dataset {key[0]} in '{key[1]}'")
        for train in (True, False):
            open_images(key[0], key[1], train, key[2])
    open_images.cache_clear()


# ---- one run, in whatever process a worker is ---------------------------------------------------
@dataclass
class Outcome:
    label: str
    status: str  # TRAINED, ALREADY_DONE, BUSY or FAILED
    message: str = ""
    record: dict | None = None  # the record fields the run line shows
    where: str = ""  # which worker / job


RECORD_FIELDS = ("run", "accuracy", "loss", "train_seconds", "eval_seconds", "device")


def execute(task: RunTask, device=None, where: str = "", log_every: int = 0) -> Outcome:
    """Train one run (resuming it if interrupted); never raises for a failed run, only reports it.
    `log_every`: a progress line every this many steps, starting with the run's label and `where`."""
    from .run_files import RunBusy, RunFinished
    from .training import train_run

    try:
        result = train_run(task.settings, task.run, device, resume=True, skip_finished=True, log_every=log_every,
                           label=task.label + (f" [{where}]" if where else ""))
    except RunBusy as error:
        return Outcome(task.label, BUSY, str(error), where=where)
    except RunFinished:
        return Outcome(task.label, ALREADY_DONE, where=where)
    except UserError as error:  # diverged loss, unreadable resume file, missing data...
        return Outcome(task.label, FAILED, f"{error.__class__.__name__}: {error}", where=where)
    except Exception as error:  # a bug or CUDA out of memory: report it and let the worker go on
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return Outcome(task.label, FAILED, f"{error.__class__.__name__}: {first}\n{traceback.format_exc()}",
                       where=where)
    return Outcome(task.label, TRAINED, record={k: result.record[k] for k in RECORD_FIELDS}, where=where)


def outcome_line(task: RunTask, outcome: Outcome) -> str:
    """train.py's run line (mean and std over the cell's finished runs) behind the cell, or a status."""
    from .training import run_line

    suffix = f"  [{outcome.where}]" if outcome.where else ""
    if outcome.status == TRAINED:
        try:
            finished = finished_runs(task.cell_folder)
        except UserError:
            finished = {}
        accuracies = [record["accuracy"] for run, record in sorted(finished.items())
                      if run <= task.settings.config["runs"]]
        return f"{task.cell.label} | {run_line(outcome.record, accuracies or [outcome.record['accuracy']])}{suffix}"
    if outcome.status == ALREADY_DONE:
        return f"{task.label}: already finished by another process, skipped{suffix}"
    if outcome.status == BUSY:
        return f"{task.label}: being trained by another process, skipped{suffix}"
    return f"{task.label}: FAILED: {outcome.message.splitlines()[0]}{suffix}"


# ---- the summary --------------------------------------------------------------------------------
SHOWN_FAILURES = 20

@dataclass
class Summary:
    planned_done: int  # finished before this command
    outcomes: list[Outcome] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    notes: list[str] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(outcome.status == status for outcome in self.outcomes)

    @property
    def failed(self) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if outcome.status == FAILED]

    def lines(self) -> list[str]:
        seconds = time.perf_counter() - self.started
        wall = f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m{seconds % 60:04.1f}s"
        lines = [f"Grid summary: {self.count(TRAINED)} trained, "
                 f"{self.planned_done + self.count(ALREADY_DONE)} already done (skipped), "
                 f"{self.count(BUSY)} skipped (being trained elsewhere), {len(self.failed)} failed | wall {wall}"]
        lines += self.notes
        for outcome in self.failed[:SHOWN_FAILURES]:
            lines.append(f"  failed: {outcome.label}: {outcome.message.splitlines()[0]}")
        if len(self.failed) > SHOWN_FAILURES:
            lines.append(f"  ... and {len(self.failed) - SHOWN_FAILURES} more failed runs")
        if self.count(BUSY):
            lines.append("  runs being trained elsewhere are left to that process; rerun the grid to check")
        if self.failed:
            lines.append("  rerun the same command to retry the failed runs (finished ones are kept)")
        return lines


# ---- local executor -------------------------------------------------------------------------------
def default_threads(workers: int) -> int:
    """CPU threads per worker: the cores this process may use, shared; OMP_NUM_THREADS caps it."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = max(1, cores // max(workers, 1))
    cap = os.environ.get("OMP_NUM_THREADS", "")
    return min(threads, int(cap)) if cap.isdigit() and int(cap) > 0 else threads


def worker_devices(workers: int, gpus: list[str]) -> list[str | None]:
    """Worker i gets GPU gpus[i % len(gpus)] (several workers may share one); None: the config's device."""
    if not gpus:
        return [None] * workers
    return [f"cuda:{gpus[i % len(gpus)]}" for i in range(workers)]


_WORKER: dict = {}  # in a worker process: its device, its label, or why it could not start


def _exit_with_parent(parent_pid: int) -> None:
    """A worker ends when the grid process is gone (killed too: no orphan keeps training)."""
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    os._exit(1)


def _stop(signum: int, frame) -> None:
    """SIGTERM in a worker: unwind (the run lock is released, the finished epochs stay) instead of dying
    where it stands."""
    raise SystemExit(128 + signum)


def _start_worker(index: int, device_name: str | None, threads: int, parent_pid: int) -> None:
    """Initializer of worker `index`: its device and threads, no progress bars, dies with the grid."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the grid process's to handle
    signal.signal(signal.SIGTERM, _stop)  # the grid stopping its workers: release the run's lock on the way out
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()
    device = None
    try:
        import torch

        from . import cli
        from .recipe import resolve_device

        cli.on_terminal = lambda: False  # no progress bars from several processes on one terminal
        torch.set_num_threads(threads)
        device = resolve_device(device_name) if device_name else None
    except Exception as error:  # noqa: BLE001 - every run handed to this worker reports it
        _WORKER["error"] = f"{error.__class__.__name__}: {error}"
    _WORKER.update(device=device, where=f"worker {index}" + (f", {device}" if device is not None else ""))
    # One write: with unbuffered output, print() writes the text and its newline apart, and two workers'
    # lines interleave.
    sys.stdout.write(f"worker {index}: pid {os.getpid()}, device {device_name or 'from the config'}, "
                     f"{threads} CPU threads\n")
    sys.stdout.flush()


def _work(task: RunTask, log_every: int = 0) -> Outcome:
    """A run, in a worker process."""
    if "error" in _WORKER:
        return Outcome(task.label, FAILED, f"the worker could not start: {_WORKER['error']}", where=_WORKER["where"])
    device = _WORKER["device"]
    outcome = execute(task, device, where=_WORKER["where"], log_every=log_every)
    if outcome.status == FAILED and device is not None and device.type == "cuda":
        import torch

        torch.cuda.empty_cache()
    return outcome


def run_local(plan: Plan, workers: int, gpus: list[str] = (), threads: int = 0, out: Printer = print,
              log_every: int = 0) -> Summary:
    """Train the plan's runs with `workers` processes on this machine (each printing a progress line
    every `log_every` training steps).

    Each worker is a one-process ProcessPoolExecutor (spawn), so that a worker that dies (killed, out
    of memory) is known with its run: the run goes back to the queue and that worker alone restarts;
    a run whose worker dies twice is reported failed.
    """
    summary = Summary(planned_done=len(plan.done))
    queue = deque(plan.todo)
    if not queue:
        return summary
    workers = max(1, min(workers, len(queue)))
    threads = threads or default_threads(workers)
    devices = worker_devices(workers, list(gpus))
    context = multiprocessing.get_context("spawn")
    pools: dict[int, ProcessPoolExecutor] = {}
    running: dict[Future, tuple[int, RunTask]] = {}
    deaths: Counter = Counter()

    def hand_out(index: int) -> None:
        if not queue:
            return
        if index not in pools:
            pools[index] = ProcessPoolExecutor(1, mp_context=context, initializer=_start_worker,
                                               initargs=(index, devices[index], threads, os.getpid()))
        task = queue.popleft()
        out(f"worker {index}: starting {task.label}")
        running[pools[index].submit(_work, task, log_every)] = (index, task)

    def died(index: int, task: RunTask) -> Outcome | None:
        pools.pop(index).shutdown(wait=True)
        deaths[task.label] += 1
        if deaths[task.label] >= 2:
            return Outcome(task.label, FAILED, "workers died twice while training it (out of memory?)")
        out(f"worker {index} died while training {task.label}; the run goes back to the queue and resumes from "
            "its last finished epoch")
        summary.notes.append(f"  worker {index} died; its run went back to the queue")
        queue.appendleft(task)
        return None

    try:
        for index in range(workers):
            hand_out(index)
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                index, task = running.pop(future)
                try:
                    outcome = future.result()
                except BrokenProcessPool:
                    outcome = died(index, task)
                except Exception as error:  # noqa: BLE001 - e.g. a task that cannot be sent to the worker
                    outcome = Outcome(task.label, FAILED, f"{error.__class__.__name__}: {error}")
                if outcome is not None:
                    summary.outcomes.append(outcome)
                    out(outcome_line(task, outcome))
                    if outcome.status == FAILED and "\n" in outcome.message:
                        out(outcome.message.split("\n", 1)[1].rstrip())
                hand_out(index)
    except BaseException:  # interrupted (Ctrl-C) or a bug: stop the workers, keep finished epochs
        for child in multiprocessing.active_children():
            child.terminate()
        raise
    finally:
        for pool in pools.values():
            pool.shutdown(wait=True, cancel_futures=True)
    return summary


# ---- Slurm (submitit) executor -------------------------------------------------------------------
class SubmititRun(Checkpointable):
    """The body of one array task: train its runs (one by default) one after the other.

    On a timeout or preemption submitit calls `checkpoint`, which requeues the same call: finished
    runs are then skipped and the interrupted one resumes from its last finished epoch.
    """

    def __init__(self, log_every: int = 0):
        self.log_every = log_every  # progress lines in the task's log every this many training steps

    def __call__(self, tasks: list[RunTask]) -> list[Outcome]:
        import torch

        torch.set_num_threads(default_threads(1))  # the task's cores (Slurm confines them), OMP_NUM_THREADS caps
        job = os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SUBMITIT_LOCAL_JOB_ID") or str(os.getpid())
        where = f"job {job}" + (f"_{os.environ['SLURM_ARRAY_TASK_ID']}" if "SLURM_ARRAY_TASK_ID" in os.environ else "")
        outcomes = []
        for task in tasks:
            print(f"{where}: starting {task.label}", flush=True)
            outcome = execute(task, where=where, log_every=self.log_every)
            print(outcome_line(task, outcome), flush=True)
            if outcome.status == FAILED:
                print(outcome.message, file=sys.stderr, flush=True)
            outcomes.append(outcome)
        return outcomes


def submitit_parameters(*, timeout_min: int, gpus_per_node: int, cpus_per_task: int, mem_gb: float | None,
                        partition: str | None, array_parallelism: int, setup: list[str],
                        slurm_options: list[str], name: str) -> dict:
    """AutoExecutor parameters; `slurm_options` are `key=value` for any other `slurm_<key>` parameter."""
    from .config import parse_yaml

    parameters: dict = {"timeout_min": timeout_min, "gpus_per_node": gpus_per_node, "cpus_per_task": cpus_per_task,
                        "name": name, "slurm_array_parallelism": array_parallelism}
    if mem_gb:
        parameters["mem_gb"] = mem_gb
    if partition:
        parameters["slurm_partition"] = partition
    if setup:
        parameters["slurm_setup"] = list(setup)
    for option in slurm_options:
        key, sep, value = option.partition("=")
        if not sep or not key:
            raise UserError(f"--slurm_option takes key=value (a submitit slurm_<key> parameter), got '{option}'")
        parameters[f"slurm_{key.removeprefix('slurm_')}"] = parse_yaml(value) if value else ""
    return parameters


def _job_outcomes(job, tasks: list[RunTask]) -> list[Outcome]:
    where = f"job {job.job_id}"
    try:
        outcomes = job.result()
    except Exception as error:  # noqa: BLE001 - the job failed, was cancelled or killed
        first = (str(error).strip().splitlines() or [error.__class__.__name__])[0]
        message = f"job {job.job_id} failed: {first[:200]} (log: {job.paths.stderr})"
        outcomes = []
        for task in tasks:  # runs it finished before failing are recorded
            try:
                finished = task.run in finished_runs(task.cell_folder)
            except UserError:
                finished = False
            outcomes.append(Outcome(task.label, ALREADY_DONE, where=where) if finished
                            else Outcome(task.label, FAILED, message, where=where))
        return outcomes
    if not isinstance(outcomes, list) or not all(isinstance(o, Outcome) for o in outcomes):
        return [Outcome(task.label, FAILED, f"job {job.job_id} returned {outcomes!r:.200}", where=where)
                for task in tasks]
    return outcomes


def _collect(jobs: list, summary: Summary, out: Printer, poll_seconds: float) -> None:
    """Wait for (job, tasks) pairs, printing each run's line (a job printed them in its log too)."""
    pending = list(jobs)
    while pending:
        still = []
        for job, tasks in pending:
            if job.done():
                for task, outcome in zip(tasks, _job_outcomes(job, tasks)):
                    summary.outcomes.append(outcome)
                    out(outcome_line(task, outcome))
            else:
                still.append((job, tasks))
        pending = still
        if pending:
            time.sleep(poll_seconds)


def run_submitit(plan: Plan, cluster: str, folder: Path, parameters: dict, runs_per_task: int = 1,
                 max_array_size: int = 1000, wait: bool = True, poll_seconds: float = 2.0,
                 out: Printer = print, max_requeues: int = 50, log_every: int = 0) -> Summary | None:
    """Submit one array task per run to be trained (or per `runs_per_task` runs).

    cluster "slurm": sbatch, arrays of at most `max_array_size` tasks, `slurm_array_parallelism` of
    them running at once; returns None unless `wait`. cluster "local": the same tasks through
    submitit's LocalExecutor on this machine, `slurm_array_parallelism` jobs at a time, always waited for.
    A task cut off by its time limit is requeued up to `max_requeues` times (submitit's max_num_timeout).
    """
    import submitit

    summary = Summary(planned_done=len(plan.done))
    if not plan.todo:
        return summary
    # Jobs import this code by its module name: the suite is installed (pip install -e .), so they
    # find it from wherever they start, with the same interpreter.
    try:
        executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster,
                                         **{f"{cluster}_max_num_timeout": max_requeues})
        executor.update_parameters(**parameters)
    except (ValueError, RuntimeError, TypeError) as error:
        raise UserError(f"submitit: {error}") from None
    tasks = list(plan.todo)  # their paths pinned by the plan: a task may start in another directory
    chunks = [tasks[i:i + runs_per_task] for i in range(0, len(tasks), runs_per_task)]
    local = cluster != "slurm"
    group = max(1, parameters.get("slurm_array_parallelism", 64)) if local else max_array_size
    if local:
        out(f"Running {len(tasks)} runs as {len(chunks)} submitit {cluster} jobs, {group} at a time; logs in {folder}")
    submitted = []
    for start in range(0, len(chunks), group):
        part = chunks[start:start + group]
        try:
            jobs = list(zip(executor.map_array(SubmititRun(log_every), part), part))
        except Exception as error:  # noqa: BLE001 - sbatch refused (partition, limits...)
            raise UserError(f"submission failed after {sum(len(c) for _, c in submitted)} of {len(tasks)} runs: "
                            f"{(str(error).strip().splitlines() or [''])[0]}") from None
        submitted += jobs
        if local:
            _collect(jobs, summary, out, poll_seconds)
    if local:
        return summary
    arrays = sorted({str(job.job_id).split("_")[0] for job, _ in submitted})
    out(f"Submitted {len(tasks)} runs as {len(chunks)} tasks in {len(arrays)} job array(s) ({', '.join(arrays)}); "
        f"logs in {folder}")
    if not wait:
        out(f"Not waiting for them: follow with `python3 grid.py --grid={plan.grid.path} --dry_run` "
            f"and build the table with `python3 grid.py report --grid={plan.grid.path}`")
        return None
    _collect(submitted, summary, out, poll_seconds)
    return summary
