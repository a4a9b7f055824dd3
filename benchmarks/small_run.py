"""One whole small run, this suite against an earlier commit, measured back to back in one process.

    python benchmarks/small_run.py [--baseline_ref=725cf25] [--repeats=1] [--device=cpu]

The run of issue 8: shufflenet, encoder_memory, 1,000 training images of (synthetic) CIFAR10,
5 epochs, the 10,000-image test set, 5 evaluation passes. Each tree trains the same config through
its own train.py; the baseline tree is a git worktree of `--baseline_ref` made in a scratch folder.
Prints training and evaluation minutes of both (from their run records) and the ratios.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from absl import app, flags

from common import environment_line, write_synthetic_cifar10

FLAGS = flags.FLAGS
flags.DEFINE_string("baseline_ref", "725cf25", "Commit to compare with (main before the speed work).")
flags.DEFINE_integer("repeats", 1, "Alternate baseline and current this many times (medians are printed).")
flags.DEFINE_string("device", "cpu", "Device of both runs (cpu, cuda:0).")
flags.DEFINE_integer("epochs", 5, "Training epochs.")
flags.DEFINE_string("scratch", None, "Scratch folder (default: a temporary one).")
flags.DEFINE_multi_string("set", [], "Extra --set overrides for the current tree only (e.g. compile=true).")

REPO = Path(__file__).resolve().parents[1]


def run_tree(tree: Path, scratch: Path, name: str, extra: list[str]) -> dict:
    models = scratch / f"models_{name}"
    args = [sys.executable, str(tree / "train.py"), "--modality=encoder_memory", f"--config={tree / 'config/train.yaml'}",
            "--set", "dataset_name=CIFAR10", "--set", "model=shufflenet", "--set", "train_examples=1000",
            "--set", "runs=1", "--set", f"CIFAR10.num_epochs={FLAGS.epochs}", "--set", "eval_passes=5",
            "--set", f"dataset_dir={scratch / 'data'}", "--set", "download=false", "--set", f"device={FLAGS.device}",
            "--set", f"models_dir={models}", "--overwrite", "--log_interval=0"]
    for item in extra:
        args += ["--set", item]
    started = time.perf_counter()
    result = subprocess.run(args, cwd=tree, capture_output=True, text=True)  # tree/ is first on its sys.path
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{name} failed:\n{result.stderr[-3000:]}")
    folder = models / "CIFAR10" / "encoder_memory" / "shufflenet" / "1000"
    record = read_record(folder)
    return {"train": record["train_seconds"], "eval": record["eval_seconds"], "wall": wall,
            "accuracy": record["accuracy"]}


def read_record(folder: Path) -> dict:
    """Run 1's record: `1.json` (this suite) or the line of results.jsonl (earlier commits)."""
    if (folder / "1.json").is_file():
        return json.loads((folder / "1.json").read_text())
    return json.loads((folder / "results.jsonl").read_text().splitlines()[0])


def worktree(scratch: Path, ref: str) -> Path:
    target = scratch / f"baseline_{ref}"
    if not target.exists():
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-f", str(target), ref], check=True,
                       capture_output=True)
    return target


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def main(argv: list[str]) -> None:
    scratch = Path(FLAGS.scratch or tempfile.mkdtemp(prefix="small_run_"))
    print(environment_line(torch.device(FLAGS.device)), f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    write_synthetic_cifar10(scratch / "data")
    baseline = worktree(scratch, FLAGS.baseline_ref)
    results: dict[str, list[dict]] = {"baseline": [], "current": []}
    for repeat in range(FLAGS.repeats):
        results["baseline"].append(run_tree(baseline, scratch, f"baseline{repeat}", []))
        results["current"].append(run_tree(REPO, scratch, f"current{repeat}", FLAGS.set))
        print(f"repeat {repeat + 1}: baseline {results['baseline'][-1]}, current {results['current'][-1]}", flush=True)
    summary = {name: {key: median([r[key] for r in runs]) for key in ("train", "eval", "wall")}
               for name, runs in results.items()}
    print(f"{'':<10}{'train min':>11}{'eval min':>10}{'train+eval':>12}{'wall min':>10}")
    for name, numbers in summary.items():
        print(f"{name:<10}{numbers['train'] / 60:>11.3f}{numbers['eval'] / 60:>10.3f}"
              f"{(numbers['train'] + numbers['eval']) / 60:>12.3f}{numbers['wall'] / 60:>10.3f}")
    base, current = summary["baseline"], summary["current"]
    print(f"speed-up (baseline {FLAGS.baseline_ref} / current): train {base['train'] / current['train']:.2f}x, "
          f"eval {base['eval'] / current['eval']:.2f}x, train+eval "
          f"{(base['train'] + base['eval']) / (current['train'] + current['eval']):.2f}x, "
          f"wall {base['wall'] / current['wall']:.2f}x")
    print(json.dumps({"results": results, "medians": summary}))


if __name__ == "__main__":
    app.run(main)
