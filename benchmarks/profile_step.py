"""Where one training step's time goes (torch.profiler): GPU busy time against wall time, kernel
launches per step, and the operators that take the most device time.

    python benchmarks/profile_step.py [--models=shufflenet,densenet] [--steps=10] [--amp]

A step whose kernels keep the GPU busy for a small fraction of its wall time is launch-bound: the
host (Python, autograd, kernel launches) is the limit, and the levers are fewer launches (CUDA
graphs, fused kernels) or more work per launch (several runs at once: grid workers with MPS, or
batched runs). A step near 100 % busy is compute-bound and only less arithmetic helps.
"""
from __future__ import annotations

import time

import torch
from absl import app, flags
from torch.profiler import ProfilerActivity, profile

import architectures
from common import environment_line
from suite.recipe import build_optimizer
from suite.data import set_seed

FLAGS = flags.FLAGS
flags.DEFINE_list("models", ["shufflenet"], "Encoders (one line each; the operator table of the first).")
flags.DEFINE_enum("modality", "encoder_memory", ["std", "memory", "encoder_memory"], "Model head.")
flags.DEFINE_integer("steps", 10, "Profiled steps (after 5 warm-up steps).")
flags.DEFINE_bool("amp", True, "fp16 autocast and GradScaler on CUDA, as runs have by default.")
flags.DEFINE_integer("rows", 12, "Operators listed.")


def main(argv: list[str]) -> None:
    device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    print(environment_line(device))
    for index, name in enumerate(FLAGS.models):
        profile_model(name, device, table=index == 0)


def profile_model(name: str, device: torch.device, table: bool) -> None:
    set_seed(0)
    model = architectures.get_model(name, 10, FLAGS.modality).to(device).train()
    amp = FLAGS.amp and device.type == "cuda"
    optimizer = build_optimizer(model, {"name": "sgd", "learning_rate": 1e-3, "momentum": 0.9, "nesterov": True,
                                        "weight_decay": 5e-4}, device)  # the recipe's optimiser
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    inputs = torch.randn(128, 3, 32, 32, device=device)
    memory = torch.randn(100, 3, 32, 32, device=device)
    targets = torch.randint(0, 10, (128,), device=device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            logits = model(inputs, memory) if model.uses_memory else model(inputs)
            loss = torch.nn.functional.cross_entropy(logits, targets)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    for _ in range(5):
        step()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    if device.type == "cuda":
        torch.cuda.synchronize()
    with profile(activities=activities) as prof:
        started = time.perf_counter()
        for _ in range(FLAGS.steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        wall = (time.perf_counter() - started) / FLAGS.steps
    events = prof.key_averages()
    sort_key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    if device.type == "cuda":
        kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
        busy = sum(e.time_range.elapsed_us() for e in kernels) / 1e6 / FLAGS.steps  # us -> s, per step
        print(f"{name} {FLAGS.modality}, AMP {amp}: {wall * 1000:.2f} ms per step (profiled), "
              f"GPU kernels {busy * 1000:.2f} ms per step = {100 * busy / wall:.0f} % busy, "
              f"{len(kernels) / FLAGS.steps:.0f} kernels per step "
              f"({wall / max(len(kernels) / FLAGS.steps, 1) * 1e6:.1f} us of wall time per kernel)", flush=True)
    else:
        print(f"{name} {FLAGS.modality}: {wall * 1000:.2f} ms per step (profiled, CPU)")
    if table:
        print(events.table(sort_by=sort_key, row_limit=FLAGS.rows))


if __name__ == "__main__":
    app.run(main)
