"""A path means the same place on every executor (issue 26): the grid's relative paths (base_config,
models_dir, dataset_dir, --submitit_dir) are taken from the directory the grid is planned in, and a
local worker, a Slurm task that starts in another directory and a requeued task all read and write
exactly there, never in their own working directory.

The grid is planned in folder A (relative paths only: A/base.yaml, A/data, A/models, A/jobs); each
executor then runs one run of it from another, empty folder, which must stay empty. Runs are a tiny
ViT on the tiny CIFAR10 (tests/tiny_data.py), one epoch: run 1 goes to a local worker, run 2 to a
Slurm task, run 3 to a requeued Slurm task. Slurm itself is faked (an sbatch that only records the
script); its tasks are the pickled calls submitit would run, started by hand in other folders.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import tiny_data
from suite.grid import TRAINED, Plan, make_plan, run_local
from suite.gridspec import load_grid
from suite.run_files import finished_runs
from trained_runs import TINY_VIT

REPO = Path(__file__).resolve().parents[1]
CELL = Path("CIFAR10") / "std" / "vit" / "40"


def _environment(**extra: str) -> dict:
    """This tree's code for the processes a test starts (not the installed package), one thread each."""
    return dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1") | extra


@pytest.fixture(scope="module")
def planned(tmp_path_factory) -> Path:
    """Folder A: the dataset, a base config and a grid file that name each other by relative paths."""
    folder = tmp_path_factory.mktemp("planned_here").resolve()
    tiny_data.write_cifar10(folder / "data")
    section = {"num_classes": 10, "num_epochs": 1, "opt_milestones": [1], "mem_examples": 10,
               "lr_schedule": "multistep", "validation_size": 20}
    base = {"model": "vit", "model_options": TINY_VIT, "train_examples": 100, "runs": 1, "batch_size_train": 16,
            "batch_size_test": 25, "optimizer": {"name": "adam", "learning_rate": 0.003},
            "dataset_name": "CIFAR10", "download": False, "device": "cpu", "eval_passes": 1, "CIFAR10": section}
    (folder / "base.yaml").write_text(yaml.safe_dump(base))
    grid = {"base_config": "base.yaml", "datasets": ["CIFAR10"], "models": ["vit"], "train_examples": [40],
            "modalities": ["std"], "runs": 3, "overrides": ["models_dir=models", "dataset_dir=data"]}
    (folder / "grid.yaml").write_text(yaml.safe_dump(grid))
    return folder


def _plan_in(folder: Path, monkeypatch) -> Plan:
    monkeypatch.chdir(folder)
    return make_plan(load_grid("grid.yaml"))


def _elsewhere(tmp_path: Path, name: str = "elsewhere") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    return folder


def _assert_recorded_in(planned: Path, run: int, *elsewhere: Path) -> None:
    """Run `run` is recorded in A's models folder, with its seed; the other folders hold nothing."""
    record = finished_runs(planned / "models" / CELL).get(run)
    assert record is not None and (record["run"], record["seed"]) == (run, run - 1), record
    assert (planned / "models" / CELL / f"{run}.pt").is_file()
    for folder in elsewhere:
        assert list(folder.iterdir()) == [], f"{folder} holds {sorted(p.name for p in folder.rglob('*'))}"


def test_the_plan_pins_every_path_to_the_folder_it_was_made_in(planned, monkeypatch):
    plan = _plan_in(planned, monkeypatch)
    tasks = plan.todo + [task for task, _ in plan.done]
    assert sorted(task.run for task in tasks) == [1, 2, 3]
    for task in tasks:
        config = task.settings.config
        assert (config["models_dir"], config["dataset_dir"]) == (str(planned / "models"), str(planned / "data"))
        assert task.cell_folder == planned / "models" / CELL


def test_a_local_worker_started_in_another_folder_writes_where_the_grid_was_planned(planned, tmp_path, monkeypatch):
    plan = _plan_in(planned, monkeypatch)
    task = next(task for task in plan.todo if task.run == 1)
    elsewhere = _elsewhere(tmp_path)
    monkeypatch.chdir(elsewhere)  # the worker process starts here
    lines: list[str] = []
    summary = run_local(Plan(plan.grid, [task], [], set()), workers=1, threads=1, out=lines.append)
    assert [outcome.status for outcome in summary.outcomes] == [TRAINED], lines
    _assert_recorded_in(planned, 1, elsewhere)


# ---- Slurm, through submitit: what grid.py submits, run as a task and as a requeued task -------------------
@pytest.fixture(scope="module")
def submitted(planned, tmp_path_factory) -> dict[int, Path]:
    """grid.py --executor=slurm in A with a fake sbatch; run -> the pickled call of its array task."""
    tools = tmp_path_factory.mktemp("fake_slurm")
    (tools / "sbatch").write_text(f'#!/bin/sh\ncat "$@" > {tools}/script.sh\necho "Submitted batch job 4242"\n')
    (tools / "srun").write_text("#!/bin/sh\nexit 0\n")
    for tool in ("sbatch", "srun"):
        (tools / tool).chmod(0o755)
    result = subprocess.run(
        [sys.executable, str(REPO / "grid.py"), "--grid=grid.yaml", "--executor=slurm", "--submitit_dir=jobs",
         "--gpus_per_node=0", "--timeout_min=5"], cwd=planned, capture_output=True, text=True, timeout=300,
        env=_environment(PATH=f"{tools}{os.pathsep}{os.environ['PATH']}"))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    from submitit.core.utils import DelayedSubmission

    calls = {}
    for path in (planned / "jobs").rglob("*_submitted.pkl"):
        (task,) = DelayedSubmission.load(path).args[0]
        calls[task.run] = path
    # submitit's own files (the task's script, logs, pickles) are under A's jobs folder too
    outputs = [line for line in (tools / "script.sh").read_text().splitlines() if line.startswith("#SBATCH --output=")]
    assert outputs and all(line.startswith(f"#SBATCH --output={planned / 'jobs'}/") for line in outputs), outputs
    return calls


def _run_call(pickled: Path, cwd: Path) -> list[str]:
    """Load a pickled submitit call and run it in a process started in `cwd`, as a Slurm task does."""
    code = ("import json, sys\nfrom submitit.core.utils import DelayedSubmission\n"
            "outcomes = DelayedSubmission.load(sys.argv[1]).result()\n"
            "print(json.dumps([outcome.status for outcome in outcomes]))\n")
    result = subprocess.run([sys.executable, "-c", code, str(pickled)], cwd=cwd, env=_environment(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_slurm_task_started_in_another_folder_writes_where_the_grid_was_planned(planned, submitted, tmp_path):
    elsewhere = _elsewhere(tmp_path)
    assert _run_call(submitted[2], elsewhere) == [TRAINED]
    _assert_recorded_in(planned, 2, elsewhere)


def test_a_requeued_slurm_task_started_in_another_folder_writes_where_the_grid_was_planned(
        planned, submitted, tmp_path, monkeypatch):
    """A task cut off by its time limit: submitit asks the call for its checkpoint (SubmititRun.checkpoint,
    in the task's process and folder) and requeues what it returns, which starts in yet another folder."""
    from submitit.core.utils import DelayedSubmission

    task_folder, requeue_folder = _elsewhere(tmp_path, "task"), _elsewhere(tmp_path, "requeued")
    monkeypatch.chdir(task_folder)
    call = DelayedSubmission.load(submitted[3])
    requeued = call.function.checkpoint(*call.args, **call.kwargs)
    requeued.dump(tmp_path / "requeued.pkl")
    monkeypatch.undo()
    assert _run_call(tmp_path / "requeued.pkl", requeue_folder) == [TRAINED]
    _assert_recorded_in(planned, 3, task_folder, requeue_folder)


def test_the_suites_own_files_are_found_from_any_folder(tmp_path):
    """What the suite reads of its own (the step-time profiles behind --dry_run's estimates) is found from
    the installed tree, not the current folder: a dry run from another folder prints the same estimates."""
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump({"base_config": str(REPO / "config" / "train.yaml"), "datasets": ["SVHN"],
                                    "models": ["mobilenet"], "train_examples": [1000], "modalities": ["std"],
                                    "runs": 1, "overrides": [f"models_dir={tmp_path / 'models'}"]}))
    outputs = []
    for folder in (REPO, _elsewhere(tmp_path)):
        result = subprocess.run([sys.executable, str(REPO / "grid.py"), f"--grid={grid}", "--dry_run"], cwd=folder,
                                env=_environment(), capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        outputs.append([line for line in result.stdout.splitlines() if "device-hours" in line])
    assert len(outputs[0]) > 1 and outputs[0] == outputs[1]  # the heading and one line per profile
