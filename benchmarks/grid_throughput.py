"""Grid throughput on one GPU: runs per hour with 1, 2, 4 and 8 workers sharing it, with and without
NVIDIA MPS, measured in one invocation.

    python benchmarks/grid_throughput.py [--workers=1,2,4,8] [--runs_per_worker=4] [--mps=auto]

Small-data runs leave a large GPU mostly idle (their steps are launch-bound), so several worker
processes per GPU raise throughput; MPS lets their kernels run concurrently instead of
time-slicing the GPU. The grid is a Table 1-like cell: shufflenet, encoder_memory, 1,000 images of
(synthetic) CIFAR10, `--epochs` epochs, 5 evaluation passes over 10,000 test images. Every worker
count trains `workers x runs_per_worker` runs through grid.py, so per-process start-up is included
as a grid pays it.

MPS: started with `nvidia-cuda-mps-control -d` (needs the right to do so on the machine) and
stopped with `echo quit | nvidia-cuda-mps-control`; without it the MPS rows are skipped.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml
from absl import app, flags

from common import environment_line, write_synthetic_cifar10

FLAGS = flags.FLAGS
flags.DEFINE_list("workers", ["1", "2", "4", "8"], "Worker counts to measure.")
flags.DEFINE_integer("runs_per_worker", 3, "Runs each worker trains (the grid has workers x this many runs).")
flags.DEFINE_integer("epochs", 10, "Epochs per run.")
flags.DEFINE_string("model", "shufflenet", "Encoder.")
flags.DEFINE_enum("mps", "auto", ["auto", "on", "off"], "auto: measure without MPS, then with it if it starts.")
flags.DEFINE_multi_string("set", [], "Extra overrides of every run (e.g. compile=true).")

REPO = Path(__file__).resolve().parents[1]


def grid_file(scratch: Path, name: str, runs: int) -> Path:
    grid = {"base_config": str(REPO / "config" / "train.yaml"), "datasets": ["CIFAR10"], "models": [FLAGS.model],
            "train_examples": [1000], "modalities": ["encoder_memory"], "runs": runs,
            "overrides": [f"CIFAR10.num_epochs={FLAGS.epochs}", f"dataset_dir={scratch / 'data'}", "download=false",
                          f"models_dir={scratch / name}", "save=false", *FLAGS.set]}
    path = scratch / f"{name}.yaml"
    path.write_text(yaml.safe_dump(grid))
    return path


def runs_per_hour(scratch: Path, workers: int, label: str) -> float:
    runs = workers * FLAGS.runs_per_worker
    path = grid_file(scratch, f"{label}_{workers}", runs)
    started = time.perf_counter()
    result = subprocess.run([sys.executable, str(REPO / "grid.py"), f"--grid={path}", f"--workers={workers}",
                             "--gpus=0"], cwd=scratch, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"grid with {workers} workers failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return runs / seconds * 3600


def mps(action: str) -> bool:
    control = shutil.which("nvidia-cuda-mps-control")
    if control is None:
        return False
    if action == "start":
        return subprocess.run([control, "-d"], capture_output=True).returncode == 0
    return subprocess.run([control], input="quit\n", text=True, capture_output=True).returncode == 0


def main(argv: list[str]) -> None:
    if not torch.cuda.is_available():
        raise SystemExit("grid_throughput needs a CUDA GPU")
    print(environment_line(torch.device("cuda:0")))
    scratch = Path(tempfile.mkdtemp(prefix="grid_throughput_"))
    write_synthetic_cifar10(scratch / "data")
    counts = [int(w) for w in FLAGS.workers]
    table: dict[str, dict[int, float]] = {}
    modes = {"auto": ["off", "on"], "on": ["on"], "off": ["off"]}[FLAGS.mps]
    for mode in modes:
        if mode == "on" and not mps("start"):
            print("MPS could not be started here: MPS rows skipped")
            continue
        try:
            table[mode] = {}
            for workers in counts:
                table[mode][workers] = runs_per_hour(scratch, workers, f"mps_{mode}")
                print(f"MPS {mode}, {workers} workers: {table[mode][workers]:.0f} runs/hour", flush=True)
        finally:
            if mode == "on":
                mps("stop")
    reference = table.get("off", {}).get(counts[0]) or next(iter(table.values()))[counts[0]]
    print(f"{'workers':>8}" + "".join(f"{'MPS ' + m + ' runs/h':>18}{'x 1 worker':>12}" for m in table))
    for workers in counts:
        print(f"{workers:>8}" + "".join(f"{table[m][workers]:>18.0f}{table[m][workers] / reference:>12.2f}"
                                        for m in table))


if __name__ == "__main__":
    app.run(main)
