"""Grid throughput on one GPU: runs per hour with 1, 4, 8 and 16 workers sharing it, with and
without NVIDIA MPS, measured in one invocation.

    python benchmarks/grid_throughput.py [--workers=1,4,8,16] [--runs_per_worker=1] [--epochs=12] [--record]

Small-data runs leave a large GPU mostly idle (their steps are launch-bound), so several worker
processes per GPU raise throughput; MPS lets their kernels run concurrently instead of
time-slicing the GPU. The grid is a Table 1-like cell: shufflenet, encoder_memory, 1,000 images of
(synthetic) CIFAR10, `--epochs` epochs, 5 evaluation passes over 10,000 test images, trained through
grid.py with `--gpus=0`.

Two figures per row:
- steady x: the throughput of runs in progress, from the runs' own records (training + evaluation
  seconds, which exclude a worker's start-up): workers / mean run seconds, against one worker's.
  Table 1's runs last minutes to hours, so this is the factor a long grid gets.
- runs/h (wall): runs over the grid's whole wall time, start-up of the workers included.
--record keeps the best steady factor, its workers and MPS setting, under the encoder's name in this GPU's
profile of benchmarks/step_times.json, where `grid.py --dry_run` divides each run's one-at-a-time hours
by its own encoder's factor (encoders not measured get the lowest measured one, and the line says so).

MPS: started with `nvidia-cuda-mps-control -d` (needs the right to do so on the machine) and
stopped with `echo quit | nvidia-cuda-mps-control`; without it the MPS rows are skipped. One worker
with MPS is not measured: MPS only changes how several processes share the GPU.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import torch
import yaml
from absl import app, flags

from common import environment_line, hardware, write_synthetic_cifar10

FLAGS = flags.FLAGS
flags.DEFINE_list("workers", ["1", "4", "8", "16"], "Worker counts to measure (the first is the reference).")
flags.DEFINE_integer("runs_per_worker", 1, "Runs each worker trains (the grid has workers x this many runs).")
flags.DEFINE_integer("epochs", 12, "Epochs per run.")
flags.DEFINE_string("model", "shufflenet", "Encoder.")
flags.DEFINE_enum("mps", "auto", ["auto", "on", "off"], "auto: measure without MPS, then with it if it starts.")
flags.DEFINE_multi_string("set", [], "Extra overrides of every run (e.g. compile=true).")
flags.DEFINE_bool("record", False, "Keep the best steady factor in this GPU's profile of benchmarks/step_times.json.")

REPO = Path(__file__).resolve().parents[1]
STEP_TIMES = Path(__file__).with_name("step_times.json")


def grid_file(scratch: Path, name: str, runs: int) -> Path:
    grid = {"base_config": str(REPO / "config" / "train.yaml"), "datasets": ["CIFAR10"], "models": [FLAGS.model],
            "train_examples": [1000], "modalities": ["encoder_memory"], "runs": runs,
            "overrides": [f"CIFAR10.num_epochs={FLAGS.epochs}", f"dataset_dir={scratch / 'data'}", "download=false",
                          f"models_dir={scratch / name}", "save=false", *FLAGS.set]}
    path = scratch / f"{name}.yaml"
    path.write_text(yaml.safe_dump(grid))
    return path


def measure(scratch: Path, workers: int, label: str) -> dict:
    """One grid of workers x runs_per_worker runs: wall seconds and the runs' own seconds."""
    runs = workers * FLAGS.runs_per_worker
    name = f"{label}_{workers}"
    path = grid_file(scratch, name, runs)
    started = time.perf_counter()
    result = subprocess.run([sys.executable, str(REPO / "grid.py"), f"--grid={path}", f"--workers={workers}",
                             "--gpus=0"], cwd=scratch, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"grid with {workers} workers failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    records = [json.loads(p.read_text()) for p in (scratch / name).rglob("*.json") if p.stem.isdigit()]
    if len(records) != runs:
        raise SystemExit(f"grid with {workers} workers recorded {len(records)} of {runs} runs")
    seconds = [r["train_seconds"] + r["eval_seconds"] for r in records]
    return {"workers": workers, "wall": wall, "run_seconds": sum(seconds) / len(seconds),
            "devices": sorted({r["device"] for r in records})}


def mps(action: str) -> bool:
    control = shutil.which("nvidia-cuda-mps-control")
    if control is None:
        return False
    if action == "start":
        started = subprocess.run([control, "-d"], capture_output=True).returncode == 0
        time.sleep(1.0)
        return started
    return subprocess.run([control], input="quit\n", text=True, capture_output=True).returncode == 0


def record(best: dict, reference: dict) -> None:
    profiles = json.loads(STEP_TIMES.read_text()) if STEP_TIMES.exists() else {"profiles": {}}
    key = hardware(torch.device("cuda:0"))
    entry = profiles["profiles"].setdefault(key, {"models": {}})
    entry.setdefault("grid", {})[FLAGS.model] = {
        "workers": best["workers"], "mps": best["mps"], "throughput": round(best["steady"], 2),
        "measured": date.today().isoformat(),
        "note": f"benchmarks/grid_throughput.py: {FLAGS.model} encoder_memory, 1,000 images, {FLAGS.epochs} epochs; "
                f"one worker's run {reference['run_seconds']:.1f} s"}
    STEP_TIMES.write_text(json.dumps(profiles, indent=2, sort_keys=True) + "\n")
    print(f"recorded in {STEP_TIMES}: {FLAGS.model} {entry['grid'][FLAGS.model]}", flush=True)


def main(argv: list[str]) -> None:
    if not torch.cuda.is_available():
        raise SystemExit("grid_throughput needs a CUDA GPU")
    print(environment_line(torch.device("cuda:0")))
    scratch = Path(tempfile.mkdtemp(prefix="grid_throughput_"))
    write_synthetic_cifar10(scratch / "data")
    counts = [int(w) for w in FLAGS.workers]
    modes = {"auto": ["off", "on"], "on": ["on"], "off": ["off"]}[FLAGS.mps]
    # The reference first, then each count without and with MPS, so a session cut short has pairs.
    order = [(modes[0], counts[0])] + [(mode, w) for w in counts[1:] for mode in modes]
    rows: list[dict] = []
    reference, mps_on = None, False
    print(f"{'MPS':>4}{'workers':>8}{'run s':>8}{'steady runs/h':>15}{'steady x':>10}{'wall s':>8}{'runs/h (wall)':>15}",
          flush=True)
    try:
        for mode, workers in order:
            if mode not in modes:
                continue
            if mode == "on" and not mps_on:
                mps_on = mps("start")
                if not mps_on:
                    print("MPS could not be started here: MPS rows skipped", flush=True)
                    modes = ["off"]
                    continue
            elif mode == "off" and mps_on:
                mps("stop")
                mps_on = False
            try:
                row = measure(scratch, workers, f"mps_{mode}") | {"mps": mode == "on"}
            except SystemExit as failure:
                if mode == "off":
                    raise
                print(f"with MPS: {failure}\nMPS rows skipped", flush=True)
                modes = ["off"]
                continue
            reference = reference or row
            row["steady"] = (workers / row["run_seconds"]) / (reference["workers"] / reference["run_seconds"])
            rows.append(row)
            print(f"{mode:>4}{workers:>8}{row['run_seconds']:>8.1f}{workers / row['run_seconds'] * 3600:>15.0f}"
                  f"{row['steady']:>10.2f}{row['wall']:>8.1f}"
                  f"{workers * FLAGS.runs_per_worker / row['wall'] * 3600:>15.0f}", flush=True)
            if FLAGS.record:  # after every row: a session cut short keeps what it measured
                record(max(rows, key=lambda r: r["steady"]), reference)
    finally:
        if mps_on:
            mps("stop")
    print(json.dumps(rows))


if __name__ == "__main__":
    app.run(main)
