"""Inference cost: milliseconds per test image of an evaluation, per modality and memory size, with the
suite's encode-once evaluation and with the plain computation, measured in one run.

    python benchmarks/inference.py [--model=shufflenet] [--memory_sizes=25,100,400] [--passes=5]

An evaluation is what train.py and eval_dir.py run: `--passes` passes over the test set (std models:
one), each test batch of 500 with a fresh memory draw. The plain computation sends every test batch
through the whole model in every pass; encode-once encodes the test set once and each pass encodes
only its memories (suite/evaluation.py). Same numbers either way (tests/test_speed.py). Synthetic
CIFAR10-format data (speed depends on shapes, not on pixel values); untrained models.
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import torch
from absl import app, flags

import architectures
from common import environment_line, hardware, write_synthetic_cifar10
from suite.config import load_config
from suite.data import build_run_data
from suite.evaluation import evaluate, plain_evaluate

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "shufflenet", "Encoder.")
flags.DEFINE_list("memory_sizes", ["25", "100", "400"], "Memory sizes of the memory models.")
flags.DEFINE_integer("passes", 5, "Evaluation passes of memory models (the suite's default, eval_passes).")
flags.DEFINE_integer("test_images", 1000, "Test images.")
flags.DEFINE_integer("repeats", 2, "Timed evaluations per setting (the fastest is kept).")
flags.DEFINE_string("json", None, "Also write the numbers as JSON to this file.")

REPO = Path(__file__).resolve().parents[1]


def fastest(function, repeats: int) -> float:
    """The fastest of `repeats` timed calls, after one untimed call (warm-up: allocator, kernels' first use)."""
    function()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def main(argv: list[str]) -> None:
    device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    print(environment_line(device))
    root = Path(tempfile.mkdtemp(prefix="inference_"))
    write_synthetic_cifar10(root, train=2000, test=FLAGS.test_images)
    results = {"hardware": hardware(device), "model": FLAGS.model, "passes": FLAGS.passes,
               "test_images": FLAGS.test_images, "ms_per_test_image": {}}
    print(f"{FLAGS.model}, {FLAGS.test_images} test images in batches of 500, {FLAGS.passes} passes for memory "
          f"models; ms per test image of a whole evaluation")
    print(f"{'modality':<16}{'memory':>8}{'encode-once':>14}{'plain':>10}{'plain / once':>14}")
    for modality in ("std", "memory", "encoder_memory"):
        for size in ([0] if modality == "std" else [int(s) for s in FLAGS.memory_sizes]):
            config = load_config(REPO / "config" / "train.yaml", [
                "dataset_name=CIFAR10", f"dataset_dir={root}", "download=false", "train_examples=1000",
                f"CIFAR10.mem_examples={max(size, 1)}", "CIFAR10.validation_size=500"])
            data = build_run_data(config, 0, device)
            torch.manual_seed(0)
            model = architectures.get_model(FLAGS.model, 10, modality).to(device).eval()
            passes = FLAGS.passes if modality != "std" else 1
            with torch.no_grad():
                once = fastest(lambda: evaluate(model, data, passes), FLAGS.repeats)
                plain = fastest(lambda: plain_evaluate(model, data, passes), FLAGS.repeats)
            per_image = {"encode_once": 1000 * once / FLAGS.test_images, "plain": 1000 * plain / FLAGS.test_images}
            results["ms_per_test_image"][f"{modality}/{size}"] = per_image
            print(f"{modality:<16}{size or '-':>8}{per_image['encode_once']:>14.2f}{per_image['plain']:>10.2f}"
                  f"{plain / once:>13.2f}x", flush=True)
    if FLAGS.json:
        Path(FLAGS.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    app.run(main)
