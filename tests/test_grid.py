"""grid.py: grid files, the local and submitit executors, kill-and-rerun, the Slurm submission, the report.

The tiny grid: DIGITS (embedded, no download), shufflenet and a tiny ViT (its own base config),
sizes 40 and 60, the three modalities, 2 runs of 1 epoch: 24 runs of about a second each.
"""
from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import re
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats

from suite.run_files import finished_runs, write_record
from suite.cli import ConfigError, UserError
from suite.grid import dry_run_lines, make_plan
from suite.gridspec import Cell, load_grid
from suite.stats import summarize
from conftest import run_script

REPO = Path(__file__).resolve().parents[1]
MODALITIES = ["std", "memory", "encoder_memory"]
TINY_VIT = {"patches": 4, "depth": 1, "hidden": 32, "heads": 2, "mlp_hidden": 32}
T_975 = {1: 12.70620474, 2: 4.30265273}  # Student t, two-sided 95 %, by degrees of freedom (printed tables)
MODALITY_COLORS = {"std": (0x1F, 0x77, 0xB4), "memory": (0x7F, 0x7F, 0x7F), "encoder_memory": (0xD6, 0x27, 0x28)}


# ---- helpers ------------------------------------------------------------------------------------
def grid_env() -> dict:
    # One thread per process: the executors then give identical numbers, and the shared cores are spared.
    return dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")


def grid_cli(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "grid.py"), *args], cwd=cwd, env=grid_env(),
                          capture_output=True, text=True, timeout=timeout)


def write_tiny_grid(folder: Path, name: str = "tiny", epochs: int = 1, models=("shufflenet", "vit"),
                    sizes=(40, 60), modalities=MODALITIES, runs: int = 2, extra=(), sweep=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    quickstart = yaml.safe_load((REPO / "config" / "quickstart.yaml").read_text())
    vit = dict(quickstart, model="vit", model_options=TINY_VIT)
    (folder / "vit_tiny.yaml").write_text(yaml.safe_dump(vit))
    grid = {
        "base_config": {"default": str(REPO / "config" / "quickstart.yaml"), "vit": str(folder / "vit_tiny.yaml")},
        "datasets": ["DIGITS"], "models": list(models), "train_examples": list(sizes),
        "modalities": list(modalities), "runs": runs,
        "overrides": [f"DIGITS.num_epochs={epochs}", "DIGITS.mem_examples=10", "batch_size_train=32",
                      "batch_size_test=250", "eval_passes=1", "device=cpu", f"models_dir={folder / 'models'}", *extra],
    }
    if sweep:
        grid["sweep"] = sweep
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(grid))
    return path


def read_results(models_dir: Path) -> dict[tuple[str, int], dict]:
    """(cell folder relative to models_dir, run) -> record, from the per-run record files."""
    from suite.run_files import record_folders

    records = {}
    for folder in record_folders(models_dir):
        for record in finished_runs(folder).values():
            records[(str(folder.relative_to(models_dir)), record["run"])] = record
    return records


def expected_keys(models=("shufflenet", "vit"), sizes=(40, 60), runs=2) -> set[tuple[str, int]]:
    return {(f"DIGITS/{v}/{m}/{n}", r) for m in models for v in MODALITIES for n in sizes for r in range(1, runs + 1)}


def run_lines(stdout: str) -> set[tuple[str, int]]:
    """(cell, run) of every train.py run line the grid printed."""
    found = set()
    for line in stdout.splitlines():
        if " | Run:" in line:
            cell, rest = line.split(" | Run:", 1)
            found.add((cell, int(rest.split(" ", 1)[0])))
    return found


# ---- grid files ---------------------------------------------------------------------------------
def test_grid_file_yields_cells_and_their_settings(tmp_path):
    grid = load_grid(write_tiny_grid(tmp_path))
    cells = grid.cells()
    assert len(cells) == 2 * 2 * 3 and cells[0] == Cell("DIGITS", "shufflenet", 40, "std")
    settings = grid.cell_settings(Cell("DIGITS", "vit", 60, "memory"))
    assert settings.model == "vit" and settings.config["model_options"] == TINY_VIT
    assert settings.train_examples == 60 and settings.num_epochs == 1 and settings.config["runs"] == 2
    assert settings.cell_folder == tmp_path / "models" / "DIGITS" / "memory" / "vit" / "60"
    assert grid.cell_settings(cells[0]).config["model_options"] == {}


@pytest.mark.parametrize("change, message", [
    ({"colour": 1}, "unknown key 'colour'"),
    ({"runs": 0}, "key 'runs' must be an integer of at least 1"),
    ({"train_examples": [40, 40]}, "key 'train_examples' must be a non-empty list of distinct positive integers"),
    ({"models": []}, "key 'models' must be a non-empty list of names"),
    ({"overrides": ["model=resnet18"]}, "'model' is set per cell by the grid key 'models'"),
    ({"base_config": {"vit": "x.yaml"}}, "base_config has no entry for model 'shufflenet'"),
    ({"sweep": {"DIGITS.mem_examples": []}}, "key 'sweep.DIGITS.mem_examples' must be a non-empty list of distinct"),
    ({"sweep": {"DIGITS.mem_examples": [5, 5]}}, "key 'sweep.DIGITS.mem_examples' must be a non-empty list of"),
    ({"sweep": {"train_examples": [5, 6]}}, "'train_examples' is set per cell by the grid key 'train_examples'"),
    ({"sweep": {"cell_tag": ["a"]}}, "'cell_tag' is set per cell by the grid key 'sweep'"),
    ({"sweep": [1, 2]}, "key 'sweep' must be a mapping of config keys to lists of values"),
])
def test_bad_grid_files_are_one_line_errors(tmp_path, change, message):
    path = write_tiny_grid(tmp_path)
    raw = yaml.safe_load(path.read_text()) | change
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as error:
        load_grid(path)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_unknown_names_and_bad_overrides_stop_before_any_work(tmp_path):
    path = write_tiny_grid(tmp_path, models=("shufflenet", "lenet"))
    result = grid_cli(f"--grid={path}", cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    import architectures

    assert result.stderr.strip().splitlines() == [
        f"error: grid file '{path}': unknown model 'lenet' in 'models'; valid: {', '.join(architectures.list_models())}"]
    path = write_tiny_grid(tmp_path, extra=("DIGITS.epochs=3",))
    with pytest.raises(ConfigError, match="cell DIGITS/std/shufflenet/40: unknown config key 'DIGITS.epochs'"):
        make_plan(load_grid(path))
    path = write_tiny_grid(tmp_path)
    raw = yaml.safe_load(path.read_text())
    raw["base_config"]["vti"] = "config/vit.yaml"  # a typo would silently train ViT with the CNN recipe
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="unknown model 'vti' in 'base_config'"):
        make_plan(load_grid(path))
    assert not (tmp_path / "models").exists()
    result = grid_cli(f"--grid={path}", "reprot", cwd=tmp_path)
    assert result.returncode == 2 and "the subcommand is 'report'" in result.stderr


def test_table1_grid_is_the_papers_full_grid(monkeypatch):
    import datasets

    monkeypatch.chdir(REPO)
    grid = load_grid("config/table1.yaml")
    assert grid.datasets == ("SVHN", "CIFAR10", "CINIC10") and grid.runs == 15
    assert set(grid.models) == {"mobilenet", "efficientnet", "googlenet", "shufflenet", "densenet", "resnet18", "vit"}
    assert grid.train_examples == (1000, 2000, 5000, 100000) and grid.modalities == tuple(MODALITIES)
    assert len(grid.cells()) * grid.runs == 3 * 7 * 4 * 3 * 15
    names = datasets.list_datasets()
    epochs = {"SVHN": 40, "CIFAR10": 300, "CINIC10": 300}
    for dataset in grid.datasets:
        cnn = grid.cell_settings(Cell(dataset, "resnet18", 1000, "encoder_memory"), names)
        assert cnn.num_epochs == epochs[dataset] and cnn.config["optimizer"]["name"] == "sgd"
        vit = grid.cell_settings(Cell(dataset, "vit", 1000, "std"), names)
        assert vit.config["optimizer"]["name"] == "adam" and vit.section["lr_schedule"] == "warmup_cosine"


def test_plan_splits_runs_by_their_records_and_resume_files(tmp_path):
    from suite.grid import plan_runs

    grid = load_grid(write_tiny_grid(tmp_path, models=("vit",), sizes=(40,), modalities=("std", "memory"), runs=3))
    a, b = grid.cells()
    settings = {cell: grid.cell_settings(cell) for cell in (a, b)}
    good = {"settings": settings[a].comparable_json()}
    records = {a: {1: good, 3: good, 5: {"settings": {}}}}  # run 5 is beyond the grid: ignored
    plan = plan_runs(grid, settings, records, {(a, 1), (a, 2), (b, 1)})
    assert [(task.cell, task.run) for task, _ in plan.done] == [(a, 1), (a, 3)]
    assert [(task.cell, task.run) for task in plan.todo] == [(a, 2), (b, 1), (b, 2), (b, 3)]
    assert plan.resumable == {f"{a.label} run 2", f"{b.label} run 1"}  # a finished run's resume file is not
    assert [task.run for task in plan.todo] == [2, 1, 2, 3] and plan.total == 6
    other = {"settings": dict(settings[b].comparable_json(), eval_passes=9)}
    for run in (1, 3):  # the first and the last run of the grid alike
        with pytest.raises(UserError, match=rf"'{settings[b].cell_folder}' holds run {run} trained with other "
                                            r"settings \(differs in: eval_passes: 9 recorded, 1 now\)"):
            plan_runs(grid, settings, {b: {run: other}}, set())
    # make_plan reads the same from disk; a damaged record stops it with one line naming the file.
    settings[a].cell_folder.mkdir(parents=True)
    (settings[a].cell_folder / "1.resume.pt").write_bytes(b"")
    (settings[a].cell_folder / "2.json").write_text("{")
    with pytest.raises(UserError, match=rf"run record '{settings[a].cell_folder / '2.json'}' is not valid JSON; "
                                        "delete it to train run 2 again"):
        make_plan(grid)
    (settings[a].cell_folder / "2.json").write_text(json.dumps(dict(good, run=2)))
    plan = make_plan(grid)
    assert [(t.cell, t.run) for t, _ in plan.done] == [(a, 2)] and plan.resumable == {f"{a.label} run 1"}


def test_workers_share_gpus_round_robin():
    from suite.grid import worker_devices

    assert worker_devices(5, ["0", "1"]) == ["cuda:0", "cuda:1", "cuda:0", "cuda:1", "cuda:0"]
    assert worker_devices(2, []) == [None, None]


# ---- one run: busy and finished runs are skipped, under the lock -------------------------------------
def test_execute_skips_a_locked_run_and_never_retrains_a_finished_one(tmp_path):
    from suite.run_files import run_lock
    from suite.grid import ALREADY_DONE, BUSY, TRAINED, RunTask, execute

    grid = load_grid(write_tiny_grid(tmp_path, models=("vit",)))
    cell = Cell("DIGITS", "vit", 40, "encoder_memory")
    task = RunTask(cell, grid.cell_settings(cell), 1)
    with run_lock(task.cell_folder, task.run):  # another process (here: this one) trains it
        assert execute(task).status == BUSY
    assert not (task.cell_folder / "1.json").exists()
    first = execute(task)
    assert first.status == TRAINED and first.record["run"] == 1
    before = (task.cell_folder / "1.json").read_text()
    assert execute(task).status == ALREADY_DONE
    assert (task.cell_folder / "1.json").read_text() == before
    assert sorted(p.name for p in task.cell_folder.iterdir()) == ["1.json", "1.metrics.csv", "1.pt"]  # no lock left


# ---- the local executor -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def local_grid(tmp_path_factory):
    """The tiny grid run once by 2 local workers (module-scoped: the report tests reuse it)."""
    folder = tmp_path_factory.mktemp("local_grid")
    path = write_tiny_grid(folder)
    started = time.perf_counter()
    result = grid_cli(f"--grid={path}", "--workers=2", cwd=folder)
    return folder, path, result, time.perf_counter() - started


@pytest.mark.slow
def test_local_executor_trains_every_run_once(local_grid):
    folder, path, result, seconds = local_grid
    assert result.returncode == 0, result.stderr[-3000:]
    records = read_results(folder / "models")
    assert set(records) == expected_keys()
    assert run_lines(result.stdout) == {(cell, run) for cell, run in expected_keys()}
    assert result.stdout.count("worker 0: pid") == 1 and result.stdout.count("worker 1: pid") == 1
    assert "Grid summary: 24 trained, 0 already done (skipped), 0 skipped (being trained elsewhere), 0 failed" \
        in result.stdout
    for (cell, run), record in records.items():
        assert record["seed"] == run - 1 and record["train_examples"] == int(cell.rsplit("/", 1)[1])
        assert (folder / "models" / cell / f"{run}.pt").is_file()
        assert not (folder / "models" / cell / f"{run}.resume.pt").exists()
    # Nothing left to do: a rerun trains nothing and a dry run lists every run as done.
    again = grid_cli(f"--grid={path}", "--workers=2", cwd=folder)
    assert again.returncode == 0 and "worker" not in again.stdout and not run_lines(again.stdout)
    assert "0 trained, 24 already done (skipped)" in again.stdout
    assert read_results(folder / "models") == records
    dry = "\n".join(dry_run_lines(make_plan(load_grid(path)), list_runs=True))
    assert "24 finished, 0 to train" in dry and dry.count("  done      DIGITS/") == 24 and "to train  " not in dry
    cells = "\n".join(dry_run_lines(make_plan(load_grid(path))))  # by default a line per cell, not per run
    assert cells.count(" 2 finished, 0 to train") == 12 and "  done  " not in cells


# ---- the Slurm path through submitit's local executor -------------------------------------------
@pytest.mark.slow
def test_submitit_local_executor_gives_the_same_runs(tmp_path, local_grid):
    path = write_tiny_grid(tmp_path)
    result = grid_cli(f"--grid={path}", "--executor=submitit_local", "--gpus_per_node=0", "--timeout_min=10",
                      "--runs_per_task=6", cwd=tmp_path, timeout=400)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Running 24 runs as 4 submitit local jobs" in result.stdout
    assert "Grid summary: 24 trained, 0 already done" in result.stdout
    records = read_results(tmp_path / "models")
    assert set(records) == expected_keys() and run_lines(result.stdout) == expected_keys()
    logs = list((tmp_path / "grids" / "tiny" / "submitit").glob("*_log.out"))
    assert len(logs) == 4 and sum(log.read_text().count(" | Run:") for log in logs) == 24
    from submitit.core.utils import DelayedSubmission  # the default requeue limit, well above submitit's 3

    submissions = list((tmp_path / "grids" / "tiny" / "submitit").glob("*_submitted.pkl"))
    assert len(submissions) == 4 and {DelayedSubmission.load(p)._timeout_countdown for p in submissions} == {50}
    # Same training code, same seeds, one thread each: the same numbers as the local executor.
    local = read_results(local_grid[0] / "models")
    assert {key: r["accuracy"] for key, r in records.items()} == {key: r["accuracy"] for key, r in local.items()}
    assert {key: r["loss"] for key, r in records.items()} == pytest.approx({key: r["loss"] for key, r in local.items()})


def test_slurm_submission_reaches_sbatch_with_the_resource_flags(tmp_path):
    """A fake sbatch/srun records what the Slurm path submits: arrays of at most --max_array_size tasks."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "sbatch").write_text(
        "#!/bin/sh\n"
        f"n=$(cat {tmp_path}/count 2>/dev/null || echo 0); n=$((n+1)); echo $n > {tmp_path}/count\n"
        f'cat "$@" > {tmp_path}/sbatch_$n.sh\n'
        "echo \"Submitted batch job $((4240+n))\"\n")
    for tool in ("srun", "sbatch"):
        (bin_dir / tool).chmod(0o755)
    path = write_tiny_grid(tmp_path, models=("vit",))
    env = grid_env()
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    result = subprocess.run(
        [sys.executable, str(REPO / "grid.py"), f"--grid={path}", "--executor=slurm", "--slurm_partition=gpu",
         "--timeout_min=30", "--gpus_per_node=1", "--cpus_per_task=3", "--slurm_array_parallelism=4",
         "--max_array_size=5", "--slurm_option=account=memwrap", "--slurm_setup=module load cuda", "--max_requeues=7",
         f"--submitit_dir={tmp_path / 'jobs'}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Submitted 12 runs as 12 tasks in 3 job array(s) (4241, 4242, 4243)" in result.stdout
    scripts = [(tmp_path / f"sbatch_{n}.sh").read_text() for n in (1, 2, 3)]
    assert [s.count("#SBATCH --array=") for s in scripts] == [1, 1, 1]
    assert "#SBATCH --array=0-4%4" in scripts[0] and "#SBATCH --array=0-1%2" in scripts[2]
    for script in scripts:
        for line in ("#SBATCH --partition=gpu", "#SBATCH --time=30", "#SBATCH --gpus-per-node=1",
                     "#SBATCH --cpus-per-task=3", "#SBATCH --account=memwrap", "module load cuda"):
            assert line in script, line
    assert not (tmp_path / "models").exists()  # nothing trained here
    # A task may be cut off by its time limit 7 times and requeued (submitit's default is 3).
    from submitit.core.utils import DelayedSubmission

    submissions = sorted((tmp_path / "jobs").rglob("*_submitted.pkl"))
    assert len(submissions) == 12
    assert {DelayedSubmission.load(path)._timeout_countdown for path in submissions} == {7}


# ---- kill and rerun ---------------------------------------------------------------------------------
def _count_records(models_dir: Path) -> int:
    return sum(1 for path in models_dir.rglob("*.json") if path.stem.isdigit())


def _wait_for(condition, process: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, "the grid ended before the test could interrupt it"
        assert time.monotonic() < deadline, "timed out waiting for the grid"
        time.sleep(0.05)


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.slow
def test_killed_worker_and_killed_grid_resume_without_retraining(tmp_path):
    path = write_tiny_grid(tmp_path)
    models = tmp_path / "models"
    log = tmp_path / "first.log"
    with open(log, "w") as stdout:
        process = subprocess.Popen([sys.executable, str(REPO / "grid.py"), f"--grid={path}", "--workers=2"],
                                   cwd=tmp_path, env=grid_env(), stdout=stdout, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        # 1. Kill one worker in the middle of the grid: its run goes back to the queue, a new worker starts.
        _wait_for(lambda: "[worker 0]" in log.read_text() and "[worker 1]" in log.read_text(), process)
        worker = int(re.search(r"worker 0: pid (\d+),", log.read_text()).group(1))
        os.kill(worker, signal.SIGKILL)
        _wait_for(lambda: log.read_text().count("worker 0: pid") == 2, process)
        cell, run = re.search(r"worker 0 died while training (\S+) run (\d+);", log.read_text()).groups()
        _wait_for(lambda: f"{cell} | Run:{run} |" in log.read_text(), process)  # back in the queue, trained
        # 2. Kill the grid process alone (SIGKILL: it cannot stop its workers): they stop by themselves,
        # and nothing half-written may remain.
        _wait_for(lambda: _count_records(models) >= 8, process)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        deadline = time.monotonic() + 30
        while not _group_gone(process.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _group_gone(process.pid), "workers outlived the killed grid"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    before = read_results(models)
    assert 8 <= len(before) < 24
    checkpoints = {key: (models / key[0] / f"{key[1]}.pt").stat().st_mtime_ns for key in before}

    dry = grid_cli(f"--grid={path}", "--dry_run", "--list_runs", cwd=tmp_path)
    assert f"{len(before)} finished, {24 - len(before)} to train" in dry.stdout
    assert dry.stdout.count("  done      DIGITS/") == len(before)

    rerun = grid_cli(f"--grid={path}", "--workers=2", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    after = read_results(models)
    assert set(after) == expected_keys()
    assert run_lines(rerun.stdout) == expected_keys() - set(before)  # only the missing runs were trained
    assert {key: after[key] for key in before} == before  # finished runs untouched (timings included)
    assert {key: (models / key[0] / f"{key[1]}.pt").stat().st_mtime_ns for key in before} == checkpoints
    assert not list(models.rglob("*.resume.pt"))  # every interrupted run was resumed and finished
    assert f"{24 - len(before)} trained, {len(before)} already done (skipped)" in rerun.stdout


# ---- sweeps --------------------------------------------------------------------------------------
SWEEP = {"DIGITS.mem_examples": [5, 10], "memory_sampling": ["uniform", "class_balanced"]}


def test_a_sweep_makes_a_cell_of_every_combination_in_folders_of_their_own(tmp_path):
    grid = load_grid(write_tiny_grid(tmp_path, models=("vit",), sizes=(40,), modalities=("encoder_memory",),
                                     sweep=SWEEP))
    cells = grid.cells()
    assert [c.tag for c in cells] == ["DIGITS.mem_examples=5,memory_sampling=uniform",
                                      "DIGITS.mem_examples=5,memory_sampling=class_balanced",
                                      "DIGITS.mem_examples=10,memory_sampling=uniform",
                                      "DIGITS.mem_examples=10,memory_sampling=class_balanced"]
    settings = grid.cell_settings(cells[3])
    assert (settings.mem_examples, settings.config["memory_sampling"]) == (10, "class_balanced")
    assert settings.cell_folder == (tmp_path / "models/DIGITS/encoder_memory/vit/"
                                    "40@DIGITS.mem_examples=10,memory_sampling=class_balanced")
    plain = load_grid(write_tiny_grid(tmp_path, name="plain", models=("vit",), sizes=(40,)))
    assert plain.cell_settings(plain.cells()[0]).cell_folder.name == "40"  # a plain cell never carries '@'
    assert len({grid.cell_settings(c).cell_folder for c in cells}) == 4
    # The swept values change numbers: they are part of the settings a record is compared with.
    assert grid.cell_settings(cells[0]).comparable_json() != grid.cell_settings(cells[1]).comparable_json()
    assert "cell_tag" not in settings.comparable_json()


@pytest.fixture(scope="module")
def sweep_grid(tmp_path_factory):
    """A swept tiny grid (memory size x sampling, encoder_memory and std, 2 runs), trained by 2 workers."""
    folder = tmp_path_factory.mktemp("sweep_grid")
    path = write_tiny_grid(folder, models=("vit",), sizes=(40,), modalities=("std", "encoder_memory"), sweep=SWEEP)
    result = grid_cli(f"--grid={path}", "--workers=2", cwd=folder)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return folder, path, result


@pytest.mark.slow
def test_a_sweep_cell_is_an_ordinary_cell_for_every_script(sweep_grid, tmp_path):
    """eval_dir.py reads it as it reads any cell; train.py --continue_train with its config (cell_tag
    included) keeps its runs; a second grid command trains nothing."""
    folder, path, result = sweep_grid
    cell = folder / "models/DIGITS/encoder_memory/vit/40@DIGITS.mem_examples=10,memory_sampling=class_balanced"
    records = finished_runs(cell)
    assert sorted(records) == [1, 2] and {r["config"]["memory_sampling"] for r in records.values()} == {"class_balanced"}
    evaluated = run_script("eval_dir.py", f"--path={cell}", "--device=cpu", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert {int(m) for m in re.findall(r"^Run:(\d+) \| Accuracy", evaluated.stdout, re.M)} == {1, 2}
    for run, record in records.items():
        assert f"Run:{run} | Accuracy {record['accuracy']:.2f} |" in evaluated.stdout
    config = tmp_path / "cell.yaml"
    config.write_text(yaml.safe_dump(records[1]["config"]))
    again = run_script("train.py", "--modality=encoder_memory", f"--config={config}", "--continue_train", cwd=tmp_path)
    assert again.returncode == 0 and again.stdout.count("Run:") == 2 and "| epoch " not in again.stdout, again.stderr
    rerun = grid_cli(f"--grid={path}", cwd=folder)
    assert rerun.returncode == 0 and "0 trained, 10 already done (skipped)" in rerun.stdout  # one Std cell


@pytest.mark.slow
def test_a_killed_sweep_grid_resumes_without_training_anything_twice(tmp_path):
    path = write_tiny_grid(tmp_path, models=("vit",), sizes=(40,), modalities=("encoder_memory",), sweep=SWEEP,
                           epochs=2)
    models = tmp_path / "models"
    log = tmp_path / "first.log"
    with open(log, "w") as stdout:
        process = subprocess.Popen([sys.executable, str(REPO / "grid.py"), f"--grid={path}", "--workers=1"],
                                   cwd=tmp_path, env=grid_env(), stdout=stdout, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        _wait_for(lambda: _count_records(models) >= 3, process)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    before = read_results(models)
    assert 3 <= len(before) < 8
    rerun = grid_cli(f"--grid={path}", "--workers=2", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    after = read_results(models)
    assert len(after) == 8 and {key: after[key] for key in before} == before
    assert run_lines(rerun.stdout) == set(after) - set(before)  # each missing run trained once, nothing twice
    assert not list(models.rglob("*.resume.pt"))


@pytest.mark.slow
def test_the_sweep_report_has_a_table_and_a_figure_per_swept_key_computed_by_hand(sweep_grid):
    folder, path, _ = sweep_grid
    report = grid_cli("report", f"--grid={path}", f"--out={folder / 'report'}", cwd=folder, timeout=120)
    assert report.returncode == 0, report.stderr[-2000:]
    table = (folder / "report" / "sweep_DIGITS_mem_examples.md").read_text()
    rows = list(csv.DictReader((folder / "report" / "sweep_DIGITS_mem_examples.csv").open()))
    # per value of the other key: Memory Wrap at 2 memory sizes, and Std's one cell (it reads no memory size)
    assert len(rows) == 2 * (2 + 1) and {r["value"] for r in rows if r["modality"] == "std"} == {"all"}
    for row in rows:
        cell = (folder / "models/DIGITS" / row["modality"] / "vit"
                / (f"40@DIGITS.mem_examples={row['value']},{row['other_swept']}" if row["modality"] != "std" else "40"))
        accuracies = [r["accuracy"] for r in finished_runs(cell).values()]
        summary = summarize(accuracies)
        assert (int(row["n"]), float(row["mean"]), float(row["ci_high"])) == (2, pytest.approx(summary.mean, abs=1e-4),
                                                                              pytest.approx(summary.ci_high, abs=1e-4))
        assert summary.text(2) in table
    assert "## DIGITS · ViT · 40 training images, memory_sampling=class_balanced" in table
    differences = list(csv.DictReader((folder / "report" / "differences.csv").open()))
    assert len(differences) == 4 and {d["sweep"] for d in differences} == {
        f"DIGITS.mem_examples={m},memory_sampling={s}" for m in (5, 10) for s in ("uniform", "class_balanced")}
    for name in ("sweep_DIGITS_mem_examples.png", "sweep_memory_sampling.png"):
        pixels = _png_pixels(folder / "report" / name)
        assert _has_colour(pixels, MODALITY_COLORS["std"]) and _has_colour(pixels, MODALITY_COLORS["encoder_memory"])


# ---- failures -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_failed_run_is_reported_and_the_others_finish(tmp_path):
    path = write_tiny_grid(tmp_path, models=("vit",), sizes=(5, 40), modalities=("std", "memory"), runs=1)
    result = grid_cli(f"--grid={path}", "--workers=1", cwd=tmp_path)
    assert result.returncode == 1, result.stderr[-2000:]
    assert ("DIGITS/memory/vit/5 run 1: FAILED: DatasetError: mem_examples (10) is larger than the training "
            "subset (5 images)") in result.stdout
    assert "Grid summary: 3 trained, 0 already done (skipped), 0 skipped (being trained elsewhere), 1 failed" \
        in result.stdout
    assert len(read_results(tmp_path / "models")) == 3
    # Results of other settings in the same folders are refused, not mixed in.
    with pytest.raises(UserError, match=r"trained with other settings \(differs in: eval_passes: 1 recorded, 2 now\)"):
        make_plan(load_grid(path, ["eval_passes=2"]))


# ---- the report ---------------------------------------------------------------------------------
def _png_pixels(path: Path) -> np.ndarray:
    import matplotlib.image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return matplotlib.image.imread(str(path))[..., :3]


def _has_colour(pixels: np.ndarray, rgb: tuple[int, int, int]) -> bool:
    return bool((np.abs(pixels - np.array(rgb) / 255.0).max(axis=-1) < 0.02).sum() >= 20)


@pytest.mark.slow
def test_report_numbers_are_the_results_computed_by_hand(local_grid):
    folder, path, result, _ = local_grid
    assert result.returncode == 0
    report = grid_cli("report", f"--grid={path}", f"--out={folder / 'report'}", cwd=folder, timeout=120)
    assert report.returncode == 0, report.stderr[-2000:]
    rows = list(csv.DictReader((folder / "report" / "table1.csv").open()))
    markdown = (folder / "report" / "table1.md").read_text()
    assert len(rows) == 12 and report.stdout.startswith(markdown)
    for row in rows:
        accuracies = [record["accuracy"] for record in list(finished_runs(folder / "models" / "DIGITS" / row["modality"]
                                                              / row["model"] / row["train_examples"]).values())]
        mean = sum(accuracies) / len(accuracies)
        std = math.sqrt(sum((a - mean) ** 2 for a in accuracies) / len(accuracies))  # population std
        assert (int(row["n"]), int(row["runs"])) == (2, 2)
        assert float(row["mean"]) == pytest.approx(mean, abs=1e-4)
        assert float(row["std"]) == pytest.approx(std, abs=1e-4)
        assert f"{mean:.2f} ± {std:.2f}" in markdown
    latex = (folder / "report" / "table1.tex").read_text()
    assert "\\begin{tabular}{llcc}" in latex and "ShuffleNetV2 & Std &" in latex and "ViT & Std &" in latex
    pixels = _png_pixels(folder / "report" / "accuracy_vs_size.png")
    assert pixels.shape[0] > 300 and pixels.shape[1] > 500
    assert (pixels.min(axis=-1) < 0.5).mean() > 0.01  # not blank: text, axes and lines
    assert all(_has_colour(pixels, rgb) for rgb in MODALITY_COLORS.values())  # one line per variant


def _fake_record(settings: dict, cell: Cell, run: int, accuracy: float, subset: int) -> dict:
    return {"run": run, "seed": run - 1, "accuracy": accuracy, "loss": 1.0, "dataset": cell.dataset,
            "model": cell.model, "modality": cell.modality, "train_examples": cell.train_examples,
            "train_subset_size": subset, "settings": settings}


def _write_records(models: Path, records: list[dict]) -> None:
    for record in records:
        folder = models / record["dataset"] / record["modality"] / record["model"] / str(record["train_examples"])
        write_record(folder, record)


@pytest.fixture
def paper_grid(tmp_path):
    """Table 1's layout for SVHN and CIFAR10 with hand-made results (no training): complete, partial,
    missing and foreign cells, a run beyond the grid and a record of other settings."""

    grid_file = tmp_path / "paper.yaml"
    grid_file.write_text(yaml.safe_dump({
        "base_config": str(REPO / "config" / "train.yaml"), "datasets": ["SVHN", "CIFAR10"],
        "models": ["mobilenet", "shufflenet"], "train_examples": [1000, 100000], "modalities": MODALITIES,
        "runs": 3, "overrides": [f"models_dir={tmp_path / 'models'}"]}))
    grid = load_grid(grid_file)
    names = ["SVHN", "CIFAR10", "CINIC10", "DIGITS"]

    def settings(cell: Cell) -> dict:
        return grid.cell_settings(cell, names).comparable_json()

    std, wrap, full = (Cell("SVHN", "mobilenet", 1000, "std"), Cell("SVHN", "mobilenet", 1000, "encoder_memory"),
                       Cell("SVHN", "mobilenet", 100000, "std"))
    shuffle = Cell("SVHN", "shufflenet", 1000, "std")
    other = settings(shuffle) | {"SVHN": settings(shuffle)["SVHN"] | {"num_epochs": 1}}
    records = [_fake_record(settings(std), std, r, a, 1000) for r, a in ((1, 40.0), (2, 41.0), (3, 45.0))]
    records += [_fake_record(settings(std), std, 4, 99.0, 1000)]  # run 4 of a 3-run grid: left out
    records += [_fake_record(settings(wrap), wrap, r, a, 1000) for r, a in ((1, 60.0), (2, 70.0))]  # 2 of 3
    records += [_fake_record(settings(full), full, 1, 95.0, 67257)]
    records += [_fake_record(other, shuffle, 1, 50.0, 1000)]  # other settings: left out
    records += [_fake_record(settings(std) | {"dataset_name": "DIGITS"}, Cell("DIGITS", "mobilenet", 40, "std"),
                             1, 12.0, 40)]  # a cell outside the grid
    _write_records(tmp_path / "models", records)
    return grid, tmp_path


def test_report_of_partial_results_keeps_missing_cells_missing(paper_grid):
    from suite.report import write_report

    grid, folder = paper_grid
    collected, paths = write_report(grid, folder / "report")
    markdown = paths["markdown"].read_text()
    # Complete cell with the paper's number beside it; a partial cell shows n=2/3 and is the best modality.
    # Intervals (Student t, 95 %): std 42 ± t(2) * sqrt(7 / 3) = 42 ± 6.57; Memory Wrap 65 ± t(1) * 5 = 65 ± 63.53.
    std_half, wrap_half = T_975[2] * math.sqrt(7 / 3), T_975[1] * 5.0
    assert (f"| MobileNetV2 | Std | 42.00 ± 2.16 (n=3; CI {42 - std_half:.2f}–{42 + std_half:.2f}); paper 42.71, "
            f"Δ −0.71, inside our CI | 95.00 ± 0.00 (n=1/3; CI n/a); paper 95.95, Δ −0.95 |") in markdown
    assert (f"| MobileNetV2 | Memory Wrap | **65.00 ± 5.00** (n=2/3; CI {65 - wrap_half:.2f}–{65 + wrap_half:.2f}); "
            "paper 66.93, Δ −1.93, inside our CI | missing; paper 95.63 |") in markdown
    assert "| MobileNetV2 | Only Memory | missing | missing |" in markdown
    assert "| ShuffleNetV2 | Std | missing | missing |" in markdown
    assert "| Encoder | Modality | 1000 | full (67257) |" in markdown
    assert ("SVHN/std/shufflenet/1000: 1 record(s) left out, trained with other settings (differ in: "
            "SVHN.num_epochs)") in markdown
    assert "1 record(s) under" in markdown and "belong to cells outside this grid" in markdown
    assert "1 record(s) of runs above the grid's 3 runs per cell left out" in markdown
    assert "1 of 24 cells complete, 21 missing" in markdown

    rows = {(r["dataset"], r["model"], r["modality"], r["train_examples"]): r
            for r in csv.DictReader(paths["csv"].open())}
    assert len(rows) == 24
    row = rows[("SVHN", "mobilenet", "std", "1000")]
    assert (row["n"], row["mean"], row["std"], row["best"], row["paper_mean"], row["difference"]) == \
        ("3", "42.0000", f"{math.sqrt(14 / 3):.4f}", "0", "42.7100", "-0.7100")
    assert (row["ci_low"], row["ci_high"], row["paper_inside_ci"]) == (f"{42 - std_half:.4f}", f"{42 + std_half:.4f}",
                                                                       "1")
    assert rows[("SVHN", "mobilenet", "encoder_memory", "1000")]["best"] == "1"
    missing = rows[("CIFAR10", "shufflenet", "memory", "100000")]
    assert (missing["n"], missing["mean"], missing["std"], missing["best"], missing["ci_low"]) == ("0", "", "", "0", "")
    single = rows[("SVHN", "mobilenet", "std", "100000")]
    assert (single["n"], single["ci_low"], single["ci_high"], single["paper_inside_ci"]) == ("1", "", "", "")
    assert rows[("CIFAR10", "mobilenet", "std", "1000")]["paper_mean"] == "38.5700"

    # Memory Wrap against Std at 1,000 SVHN images: Welch by hand; the only comparison with 2+ runs on both
    # sides, so Holm changes nothing. Hedges' g with the pooled sample std.
    t = (65 - 42) / math.sqrt(50 / 2 + 7 / 3)
    dof = (50 / 2 + 7 / 3) ** 2 / ((50 / 2) ** 2 / 1 + (7 / 3) ** 2 / 2)
    p = 2 * stats.t.sf(t, dof)
    g = (1 - 3 / (4 * 5 - 9)) * 23 / math.sqrt((1 * 50 + 2 * 7) / 3)
    assert f"| SVHN | MobileNetV2 | 1000 | Memory Wrap | +23.00 | {p:.4f} | {p:.4f} | {g:+.2f} |" in markdown
    assert "| SVHN | MobileNetV2 | full (67257) | Memory Wrap | n/a | n/a | n/a | n/a |" in markdown
    differences = list(csv.DictReader(paths["differences_csv"].open()))
    measured = [d for d in differences if d["p_welch"]]
    assert len(measured) == 1 and (measured[0]["modality"], measured[0]["n"], measured[0]["n_reference"]) == \
        ("encoder_memory", "2", "3")
    assert [float(measured[0][k]) for k in ("difference", "p_welch", "p_holm", "hedges_g")] == \
        pytest.approx([23.0, p, p, g], abs=1e-4)

    latex = paths["latex"].read_text()
    assert (f"MobileNetV2 & Std & $42.00 \\pm 2.16$ {{\\scriptsize $n{{=}}3$, CI {42 - std_half:.2f}–"
            f"{42 + std_half:.2f}}} {{\\scriptsize (paper 42.71, $-0.71$, in CI)}}") in latex
    assert "& Memory Wrap & $\\mathbf{65.00 \\pm 5.00}$" in latex and "ShuffleNetV2 & Std & -- & --" in latex
    assert f"SVHN & MobileNetV2 & 1000 & Memory Wrap & +23.00 & {p:.4f} & {p:.4f} & {g:+.2f}" in latex

    pixels = _png_pixels(paths["figure"])
    assert (pixels.min(axis=-1) < 0.5).mean() > 0.01
    assert _has_colour(pixels, MODALITY_COLORS["std"]) and _has_colour(pixels, MODALITY_COLORS["encoder_memory"])


def _write_metrics(folder: Path, run: int, losses: list[float], tests: list[float | None]) -> None:
    from suite.run_files import csv_text, epoch_row

    rows = [epoch_row(e, 0.1, loss, 10.0 * e, 1.0, test) for e, (loss, test) in enumerate(zip(losses, tests), 1)]
    (folder / f"{run}.metrics.csv").write_text(csv_text(rows))


def test_training_curves_are_mean_and_std_over_the_counted_runs(paper_grid):
    from suite.curves import curve, curve_files, read_runs
    from suite.report import collect

    grid, folder = paper_grid
    std = folder / "models/SVHN/std/mobilenet/1000"
    wrap = folder / "models/SVHN/encoder_memory/mobilenet/1000"
    _write_metrics(std, 1, [2.0, 1.0], [None, 40.0])
    _write_metrics(std, 2, [4.0, 2.0], [None, 41.0])
    (std / "3.metrics.csv").write_text("epoch,learning_rate,loss,train_accuracy,seconds,test_accuracy\n1,0.1,")
    _write_metrics(std, 4, [99.0, 99.0], [None, 99.0])  # run 4 of a 3-run grid: not counted
    _write_metrics(wrap, 1, [1.0, 0.5], [None, None])
    _write_metrics(wrap, 2, [3.0, 0.5], [None, None])
    collected = collect(grid)
    rows, notes_std = read_runs(collected.run_folders[Cell("SVHN", "mobilenet", 1000, "std")])
    assert sorted(rows) == [1, 2] and notes_std == [f"metrics file '{std / '3.metrics.csv'}' ends in a truncated line; "
                                                "delete it (its curves are then missing; a run in progress "
                                                "rewrites it when it resumes)"]
    loss = curve(rows, "loss")
    assert loss.epochs.tolist() == [1, 2] and loss.mean.tolist() == [3.0, 1.5] and loss.std.tolist() == [1.0, 0.5]
    test = curve(rows, "test_accuracy")
    assert test.epochs.tolist() == [2] and test.mean.tolist() == [40.5] and test.runs.tolist() == [2]
    files, notes = curve_files(collected)
    assert list(files) == ["curves/SVHN_mobilenet_1000.png"] and notes[0] == notes_std[0]
    full = folder / "models/SVHN/std/mobilenet/100000/1.metrics.csv"  # a record of an earlier version
    assert notes[1:] == [f"no metrics file '{full}' (run trained by an earlier version?)"]
    (folder / "curve.png").write_bytes(files["curves/SVHN_mobilenet_1000.png"])
    pixels = _png_pixels(folder / "curve.png")
    assert _has_colour(pixels, MODALITY_COLORS["std"]) and _has_colour(pixels, MODALITY_COLORS["encoder_memory"])


def test_report_names_encoders_and_variants_from_the_registries(paper_grid, monkeypatch):
    """A new encoder or head brings its display name; the report needs no edit (issue 10)."""
    from architectures import base as registry
    from architectures import model_display_name, modality_display_name

    monkeypatch.setitem(registry._DISPLAY_NAMES, "mobilenet", "A new name")
    assert model_display_name("mobilenet") == "A new name" and model_display_name("wrn28_10") == "WRN-28-10"
    assert [modality_display_name(m) for m in ("std", "memory", "encoder_memory", "matching", "protonet")] == [
        "Std", "Only Memory", "Memory Wrap", "Matching Networks", "ProtoNet"]
    grid, folder = paper_grid
    from suite.report import write_report

    _, paths = write_report(grid, folder / "out")
    assert "| A new name | Std |" in paths["markdown"].read_text()


def test_every_kind_of_swept_value_gives_a_folder_name_the_config_accepts(tmp_path):
    """Numbers, strings, booleans and lists (opt_milestones) alike: one compact spelling without spaces
    in the cell's folder name, and the cell's settings carry the swept value itself."""
    sweep = {"DIGITS.opt_milestones": [[1, 2], []], "DIGITS.lr_schedule": ["cosine"],
             "optimizer.learning_rate": [0.05], "autoaugment": [True]}
    grid = load_grid(write_tiny_grid(tmp_path, models=("vit",), sizes=(40,), modalities=("std",), sweep=sweep))
    cells = grid.cells()
    assert [c.tag for c in cells] == [
        "DIGITS.lr_schedule=cosine,DIGITS.opt_milestones=[1,2],autoaugment=true,optimizer.learning_rate=0.05",
        "DIGITS.lr_schedule=cosine,DIGITS.opt_milestones=[],autoaugment=true,optimizer.learning_rate=0.05"]
    for cell, milestones in zip(cells, ([1, 2], [])):
        settings = grid.cell_settings(cell)
        assert settings.cell_folder.name == f"40@{cell.tag}"
        assert settings.config["DIGITS"]["opt_milestones"] == milestones
        assert settings.config["optimizer"]["learning_rate"] == 0.05 and settings.config["autoaugment"] is True


def test_a_cells_folder_does_not_depend_on_the_order_of_the_swept_keys(tmp_path):
    """The same sweep written in two key orders names the same folders (keys sorted in the tag), so a
    reordered grid file still finds its finished runs."""
    sweep = {"memory_sampling": ["uniform", "class_balanced"], "DIGITS.mem_examples": [5, 10]}
    folders = []
    for name, keys in (("given", list(sweep)), ("reversed", list(reversed(sweep)))):
        path = write_tiny_grid(tmp_path, name=name, models=("vit",), sizes=(40,), modalities=("memory",))
        grid_file = yaml.safe_load(path.read_text()) | {"sweep": {key: sweep[key] for key in keys}}
        path.write_text(yaml.safe_dump(grid_file, sort_keys=False))
        grid = load_grid(path)
        assert [key for key, _ in grid.sweep] == keys  # the grid keeps the file's order
        folders.append(sorted(grid.cell_settings(cell).cell_folder.name for cell in grid.cells()))
    assert folders[0] == folders[1] == sorted(
        f"40@DIGITS.mem_examples={m},memory_sampling={s}" for m in (5, 10) for s in ("uniform", "class_balanced"))


def test_every_panel_of_a_sweep_figure_is_drawn(tmp_path, monkeypatch):
    """One panel per combination of the other swept keys, whatever their count against the figure's
    columns (4 panels in 3 columns: a second row), each drawn once with its own title."""
    from matplotlib.figure import Figure

    from suite.report import collect
    from suite.figures import figure_png
    from suite.sweeps import sweep_figure

    rates = [0.01, 0.02, 0.05, 0.1]
    sweep = {"DIGITS.mem_examples": [5, 10], "optimizer.learning_rate": rates}
    grid = load_grid(write_tiny_grid(tmp_path, models=("vit",), sizes=(40,), modalities=("memory",), sweep=sweep))
    drawn, save = [], Figure.savefig

    def recording_save(figure, *args, **kwargs):
        drawn.append(figure)
        return save(figure, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", recording_save)
    collected = collect(grid)
    for key, others in (("DIGITS.mem_examples", [f"optimizer.learning_rate={r}" for r in rates]),
                        ("optimizer.learning_rate", ["DIGITS.mem_examples=5", "DIGITS.mem_examples=10"])):
        figure_png(sweep_figure(collected, key, dict(grid.sweep)[key]))
        titles = [axis.get_title() for axis in drawn[-1].axes if axis.get_visible() and axis.lines]
        assert [title.splitlines()[-1] for title in titles] == others
