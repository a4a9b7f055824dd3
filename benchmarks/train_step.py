"""Time one Memory Wrap training step (128 inputs + 100 memories) per encoder, fp32 against AMP.

    python benchmarks/train_step.py [--models=shufflenet,mobilenet] [--modality=encoder_memory] [--steps=10]

Prints the hardware, seconds per step for each setting and the ratios measured in this one run,
plus the cost of drawing a memory set, so claims about speed stay measured.
"""
from __future__ import annotations

import platform
import sys
import time
from pathlib import Path

import torch
from absl import app, flags

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import architectures  # noqa: E402
import datasets  # noqa: E402
from suite import formats  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("models", ["shufflenet", "efficientnet", "resnet18", "mobilenet"], "Encoders to time.")
flags.DEFINE_enum("modality", "encoder_memory", list(architectures.MODALITIES), "Model head.")
flags.DEFINE_integer("steps", 10, "Timed steps per setting (after 3 warm-up steps).")
flags.DEFINE_integer("batch", 128, "Inputs per step.")
flags.DEFINE_integer("memory", 100, "Memory images per step.")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_step(name: str, device: torch.device, amp: bool) -> float:
    torch.manual_seed(0)
    model = architectures.get_model(name, 10, FLAGS.modality).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3,  # small: random data must not diverge
                                momentum=0.9, nesterov=True, weight_decay=5e-4)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    inputs = torch.randn(FLAGS.batch, 3, 32, 32, device=device)
    memory = torch.randn(FLAGS.memory, 3, 32, 32, device=device)
    targets = torch.randint(0, 10, (FLAGS.batch,), device=device)

    def step() -> None:
        optimizer.zero_grad()
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            logits = model(inputs) if not model.uses_memory else model(inputs, memory)
            loss = torch.nn.functional.cross_entropy(logits, targets)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    for _ in range(3):
        step()
    synchronize(device)
    started = time.perf_counter()
    for _ in range(FLAGS.steps):
        step()
    synchronize(device)
    return (time.perf_counter() - started) / FLAGS.steps


def memory_draw_seconds() -> float:
    images = torch.randint(0, 256, (5000, 3, 32, 32), dtype=torch.uint8)
    spec = datasets.get_spec("CIFAR10")
    subset = datasets.TransformedSubset(formats.TensorImages(images, torch.zeros(5000, dtype=torch.long)),
                                        range(5000), datasets.image_transform(spec, train=True))
    sampler = datasets.MemorySampler(subset, FLAGS.memory, torch.Generator().manual_seed(0))
    started = time.perf_counter()
    for _ in range(20):
        sampler.draw()
    return (time.perf_counter() - started) / 20


def main(argv: list[str]) -> None:
    device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    hardware = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(f"device: {device} ({hardware}), torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"modality {FLAGS.modality}, {FLAGS.batch} inputs + {FLAGS.memory} memories, {FLAGS.steps} timed steps")
    draw = memory_draw_seconds()
    print(f"memory draw (CIFAR10 transform, {FLAGS.memory} images): {draw * 1000:.1f} ms")
    print(f"{'model':<14}{'fp32 s/step':>12}{'amp s/step':>12}{'fp32/amp':>10}{'draw/step':>11}")
    for name in FLAGS.models:
        fp32 = seconds_per_step(name, device, amp=False)
        if device.type == "cuda":
            amp = seconds_per_step(name, device, amp=True)
            print(f"{name:<14}{fp32:>12.4f}{amp:>12.4f}{fp32 / amp:>10.2f}{draw / amp:>11.2f}")
        else:
            print(f"{name:<14}{fp32:>12.4f}{'n/a':>12}{'n/a':>10}{draw / fp32:>11.2f}")


if __name__ == "__main__":
    app.run(main)
