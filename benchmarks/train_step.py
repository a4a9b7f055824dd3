"""Seconds per training step (128 inputs + 100 memories) per encoder and setting, and the data path.

    python benchmarks/train_step.py [--models=shufflenet,mobilenet] [--steps=20] [--record]

Settings: eager fp32, eager AMP (CUDA only), channels_last (fp32), amp_channels_last (CUDA only),
torch.compile (default mode; on CUDA also reduce-overhead, i.e. CUDA graphs; compiled steps use the
device's default precision, AMP on CUDA). cuDNN is set as a run sets it (deterministic, no
benchmark: suite.data.set_seed). Every model of a row is timed in this one run, so the ratios
printed are measured, not assumed. The data path is timed too: what a step needed before
(torchvision transforms per image, on the CPU, for 128 inputs and a 100-image memory draw, as in
main@725cf25) against the resident path of suite/data.py (a gather, one batched flip and one
normalisation on the device).

--record writes the eager fp32 step times (and the per-batch evaluation cost) of this hardware
into benchmarks/step_times.json, which `grid.py --dry_run` uses to estimate device-hours.
"""
from __future__ import annotations

import json
import time
from datetime import date
from pathlib import Path

import torch
from absl import app, flags

import architectures
from common import environment_line, hardware
from suite.data import BatchTransform, MemorySampler, ResidentImages, batch_transform, set_seed
from suite.datasets import get_spec
from suite.recipe import build_optimizer

FLAGS = flags.FLAGS
flags.DEFINE_list("models", ["shufflenet", "efficientnet", "resnet18", "mobilenet", "densenet", "googlenet", "vit"],
                  "Encoders to time.")
flags.DEFINE_enum("modality", "encoder_memory", ["std", "memory", "encoder_memory"], "Model head.")
flags.DEFINE_list("settings", ["eager", "amp", "channels_last", "amp_channels_last", "compiled",
                                "compiled_cudagraphs"],
                  "Settings to time (amp, amp_channels_last and compiled_cudagraphs only on CUDA).")
flags.DEFINE_integer("steps", 10, "Timed steps per setting (after warm-up steps).")
flags.DEFINE_integer("batch", 128, "Inputs per step.")
flags.DEFINE_integer("memory", 100, "Memory images per step.")
flags.DEFINE_bool("record", False, "Write this hardware's eager step times into benchmarks/step_times.json.")
flags.DEFINE_string("json", None, "Also write every number as JSON to this file.")

STEP_TIMES = Path(__file__).with_name("step_times.json")
SGD = {"name": "sgd", "learning_rate": 1e-3, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4}  # small lr: random data


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(function, device: torch.device, steps: int, warmup: int) -> float:
    for _ in range(warmup):
        function()
    synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        function()
    synchronize(device)
    return (time.perf_counter() - started) / steps


def step_seconds(name: str, device: torch.device, setting: str) -> float:
    """Mean seconds of one optimiser step in `setting` (compilation excluded: it happens in warm-up)."""
    set_seed(0)  # also cuDNN as a run has it: deterministic algorithms, no benchmark search
    model = architectures.get_model(name, 10, FLAGS.modality).to(device).train()
    amp = device.type == "cuda" and (setting.startswith("amp") or setting.startswith("compiled"))
    inputs = torch.randn(FLAGS.batch, 3, 32, 32, device=device)
    memory = torch.randn(FLAGS.memory, 3, 32, 32, device=device)
    if setting.endswith("channels_last"):
        model = model.to(memory_format=torch.channels_last)
        inputs, memory = (t.contiguous(memory_format=torch.channels_last) for t in (inputs, memory))
    if setting.startswith("compiled"):
        mode = "reduce-overhead" if setting == "compiled_cudagraphs" else None
        model.forward_encoder = torch.compile(model.forward_encoder, mode=mode)
        model.classify = torch.compile(model.classify, mode=mode)
    optimizer = build_optimizer(model, SGD, device)  # the recipe's optimiser (not fused on CUDA)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    targets = torch.randint(0, 10, (FLAGS.batch,), device=device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            logits = model(inputs) if not model.uses_memory else model(inputs, memory)
            loss = torch.nn.functional.cross_entropy(logits, targets)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    return timed(step, device, FLAGS.steps, warmup=5 if setting.startswith("compiled") else 3)


@torch.no_grad()
def eval_batch_seconds(name: str, device: torch.device) -> dict:
    """Evaluation costs: encoding 500 test images once, and one pass's batch (a memory draw's encoding
    and the head)."""
    model = architectures.get_model(name, 10, "encoder_memory").to(device).eval()
    images = torch.randn(500, 3, 32, 32, device=device)
    memory = torch.randn(FLAGS.memory, 3, 32, 32, device=device)
    encode = timed(lambda: model.forward_encoder(images), device, 3, 1)
    features = model.forward_encoder(images)
    per_pass = timed(lambda: model.classify(features, model.forward_encoder(memory)), device, 5, 1)
    return {"encode_500": encode, "pass_batch_500": per_pass}


def data_path_seconds(device: torch.device) -> tuple[float, float]:
    """(per-image torchvision path, resident batched path): seconds to prepare one step's inputs and
    memory, CIFAR10 transform (flips), from a 5,000-image subset."""
    from torchvision import transforms

    images = torch.randint(0, 256, (5000, 3, 32, 32), dtype=torch.uint8)
    spec = get_spec("CIFAR10")
    per_image = transforms.Compose([transforms.RandomHorizontalFlip(), transforms.ConvertImageDtype(torch.float32),
                                    transforms.Normalize(spec.mean, spec.std)])
    generator = torch.Generator().manual_seed(0)

    def old() -> None:  # main@725cf25: DataLoader-style per-image transforms, then a copy to the device
        for count in (FLAGS.batch, FLAGS.memory):
            chosen = torch.randperm(5000, generator=generator)[:count]
            torch.stack([per_image(images[int(i)]) for i in chosen]).to(device)

    pool = ResidentImages(images.to(device), torch.zeros(5000, dtype=torch.long, device=device), list(range(5000)))
    transform: BatchTransform = batch_transform(spec, device, train=True)
    device_generator = (torch.Generator(device=device) if device.type == "cuda" else torch.Generator()).manual_seed(0)
    sampler = MemorySampler(pool, FLAGS.memory, device_generator, transform)

    def new() -> None:
        order = torch.randperm(5000, generator=device_generator, device=device)[: FLAGS.batch]
        transform(pool.images[order], device_generator)
        sampler.draw()

    return timed(old, device, 10, 2), timed(new, device, 20, 3)


def main(argv: list[str]) -> None:
    device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    print(environment_line(device))
    print(f"modality {FLAGS.modality}, {FLAGS.batch} inputs + {FLAGS.memory} memories, {FLAGS.steps} timed steps")
    old, new = data_path_seconds(device)
    print(f"data path per step: per-image (main@725cf25) {old * 1000:.1f} ms, resident batched {new * 1000:.2f} ms "
          f"({old / new:.0f}x less)")
    settings = [s for s in FLAGS.settings
                if device.type == "cuda" or s not in ("amp", "amp_channels_last", "compiled_cudagraphs")]
    results: dict = {"hardware": hardware(device), "torch": torch.__version__, "date": date.today().isoformat(),
                     "data_path_ms": {"per_image": old * 1000, "resident": new * 1000}, "models": {}}
    header = f"{'model':<14}" + "".join(f"{s:>20}" for s in settings) + "   ratios vs eager"
    print(header)
    for name in FLAGS.models:
        times = {setting: step_seconds(name, device, setting) for setting in settings}
        ratios = ", ".join(f"{s} {times['eager'] / t:.2f}x" for s, t in times.items() if s != "eager")
        print(f"{name:<14}" + "".join(f"{t:>20.4f}" for t in times.values()) + f"   {ratios}", flush=True)
        results["models"][name] = {"step_seconds": times, **eval_batch_seconds(name, device)}
        if FLAGS.json:
            Path(FLAGS.json).write_text(json.dumps(results, indent=2) + "\n")
        if FLAGS.record:  # after every model: a session cut short keeps what it measured
            record(results)


def record(results: dict) -> None:
    """Keep this hardware's step times in the run's default precision (AMP on CUDA, fp32 on the CPU)
    and evaluation costs; a grid-throughput entry already there (benchmarks/grid_throughput.py) stays."""
    profiles = json.loads(STEP_TIMES.read_text()) if STEP_TIMES.exists() else {"profiles": {}}
    entry = {"measured": results["date"], "torch": results["torch"], "modality": FLAGS.modality,
             "note": "benchmarks/train_step.py, synthetic inputs, 128 inputs + 100 memories, eager", "models": {}}
    for name, numbers in results["models"].items():
        steps = numbers["step_seconds"]
        entry["models"][name] = {"train_step": steps.get("amp", steps["eager"]), "encode_500": numbers["encode_500"],
                                 "pass_batch_500": numbers["pass_batch_500"]}
    if "grid" in profiles["profiles"].get(results["hardware"], {}):
        entry["grid"] = profiles["profiles"][results["hardware"]]["grid"]
    profiles["profiles"][results["hardware"]] = entry
    STEP_TIMES.write_text(json.dumps(profiles, indent=2, sort_keys=True) + "\n")
    print(f"recorded in {STEP_TIMES}", flush=True)


if __name__ == "__main__":
    app.run(main)
