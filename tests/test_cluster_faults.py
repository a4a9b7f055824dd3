"""A grid on a cluster file system that ignores flock: two nodes at once, and 20+ SIGKILLs.

tests/fault_harness.py forks the trainers (each does what a Slurm array task does, with flock and
lockf failing); these tests check what they leave on disk. Runs are a tiny ViT on DIGITS.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from suite.run_files import finished_runs, metrics_path, read_metrics, record_files
from test_grid import write_tiny_grid

REPO = Path(__file__).resolve().parents[1]


def harness(*args: str, timeout: float = 400) -> dict:
    out = Path(args[1]).with_name(f"{Path(args[1]).stem}_{args[0]}.json")
    result = subprocess.run([sys.executable, str(REPO / "tests" / "fault_harness.py"), args[0], args[1], str(out),
                             *args[2:]], env=dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1"),
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return json.loads(out.read_text())


def cell_folders(models: Path) -> list[Path]:
    return sorted(p for p in models.glob("DIGITS/*/vit/*") if p.is_dir())


def grid_files(models: Path, runs: int, epochs: int) -> dict[tuple[str, int], tuple[dict, list[dict]]]:
    """(cell, run) -> (record, metrics rows), after checking that the folders hold nothing else."""
    found = {}
    for folder in cell_folders(models):
        assert sorted(record_files(folder)) == list(range(1, runs + 1)), folder
        names = sorted(p.name for p in folder.iterdir())
        assert names == sorted(f"{r}.{kind}" for r in range(1, runs + 1) for kind in ("json", "pt", "metrics.csv")), \
            f"{folder} holds {names}"  # no temporary file, lock or resume file left
        for run, record in finished_runs(folder).items():
            text = metrics_path(folder, run).read_text()
            assert text.endswith("\n") and len(text.splitlines()) == 1 + epochs, text  # no torn or repeated line
            rows = read_metrics(metrics_path(folder, run))
            assert [row["epoch"] for row in rows] == list(range(1, epochs + 1))
            found[(str(folder.relative_to(models)), run)] = (record, rows)
    return found


def numbers(found: dict) -> dict:
    """What must not depend on kills: accuracies, losses and every metrics column but seconds."""
    return {key: (record["accuracy"], record["loss"], record["pass_accuracies"],
                  [{k: v for k, v in row.items() if k != "seconds"} for row in rows])
            for key, (record, rows) in found.items()}


@pytest.mark.slow
def test_two_nodes_without_flock_train_every_run_exactly_once(tmp_path):
    path = write_tiny_grid(tmp_path, models=("vit",), sizes=(40,), modalities=("std", "encoder_memory"), runs=4,
                           epochs=3)
    report = harness("nodes", str(path))
    assert report["codes"] == {"node-a": 0, "node-b": 0}
    outcomes = report["outcomes"]
    trained = {host: {label for label, status in runs.items() if status == "trained"} for host, runs in outcomes.items()}
    labels = {f"DIGITS/{m}/vit/40 run {r}" for m in ("std", "encoder_memory") for r in range(1, 5)}
    assert trained["node-a"] | trained["node-b"] == labels and not trained["node-a"] & trained["node-b"]
    assert trained["node-a"] and trained["node-b"], "one node did all the work: the test did not run them together"
    skipped = [status for runs in outcomes.values() for status in runs.values() if status != "trained"]
    assert set(skipped) <= {"busy", "already done"} and skipped, "the nodes never met on a run"
    found = grid_files(tmp_path / "models", runs=4, epochs=3)
    assert len(found) == 8 and all(record["run"] == run for (_, run), (record, _) in found.items())
    print(f"\ntwo nodes: {len(trained['node-a'])} + {len(trained['node-b'])} runs trained, {len(skipped)} skipped "
          f"(busy or done elsewhere), {report['seconds']:.1f} s")


@pytest.mark.slow
def test_twenty_random_kills_leave_every_run_recorded_once_with_the_same_numbers(tmp_path):
    grid = dict(models=("vit",), sizes=(40,), modalities=("std", "encoder_memory"), runs=3, epochs=4,
                extra=("eval_every=2",))
    reference = write_tiny_grid(tmp_path / "reference", **grid)
    killed = write_tiny_grid(tmp_path / "killed", **grid)
    report = harness("kills", str(killed), "20260101", "20", str(reference))
    assert report["kills"] >= 20 and report["restarts"] == report["kills"]
    kinds = report["killed_writes"]
    assert set(kinds) == {"checkpoint", "record", "metrics row", "metrics file", "resume file"}, kinds
    found = grid_files(tmp_path / "killed" / "models", runs=3, epochs=4)
    assert numbers(found) == numbers(grid_files(tmp_path / "reference" / "models", runs=3, epochs=4))
    assert len(found) == 6
    print(f"\nrandom kills: {report['kills']} SIGKILLs ({report['at_random_moments']} at random moments, "
          f"{report['kills'] - report['at_random_moments']} in the middle of a write: {kinds}), "
          f"{report['restarts']} restarts, {len(found)} runs recorded once each, {report['seconds']:.1f} s")
