"""Device-hours of runs still to train, from step times measured on named hardware.

`benchmarks/train_step.py --record` measures, per encoder, the seconds of one training step
(128 inputs + 100 memories, the default precision of that device) and the evaluation costs
(encoding 500 test images; one pass's batch: a memory draw's encoding and the head), and keeps
them per hardware in benchmarks/step_times.json. A run's estimate is then
    epochs x steps per epoch x step time (scaled by the step's images)
  + test batches x encoding time + passes x test batches x per-batch time (memory models).
It ignores process start-up and data loading, and is as good as the profile's match to the run.

A GPU profile may also hold `grid`: per encoder, the steady throughput of several grid workers sharing
the GPU against one (benchmarks/grid_throughput.py --model=NAME --record); the estimate then also gives
the hours of the grid run that way, each run's one-at-a-time hours divided by its own encoder's factor.
An encoder without a measured factor is given the lowest one measured (an encoder that keeps the GPU
busier shares it worse, so the highest would flatter it), and the line names which factors were
measured and which assumed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

from .config import TrainSettings
from .data import drop_last, validation_size, steps_per_epoch
from .datasets import get_spec

PROFILE_IMAGES = 128 + 100  # images per step when the profile was measured
PROFILE_TEST_BATCH = 500


@dataclass(frozen=True)
class Estimate:
    hardware: str
    hours: float
    runs: int
    unknown_models: tuple[str, ...]  # models of the plan the profile has no time for
    training_only: bool  # the profile has no evaluation costs
    unsized_datasets: tuple[str, ...] = ()  # datasets of the plan registered without nominal sizes
    grid_hours: float | None = None  # the hours with several workers per GPU, each run at its encoder's factor
    grid_measured: tuple[str, ...] = ()  # "model 12.64x (16 workers, MPS)" for the factors measured
    grid_assumed: tuple[str, ...] = ()  # the plan's models without a measured factor
    assumed_factor: float | None = None  # the factor they were given: the lowest measured
    resized: tuple[str, ...] = ()  # models of the plan with model_options (timed as their default size)
    estimated_runs: int = 0  # the runs the hours count (the others are named: unknown model, unsized dataset)

    def line(self) -> str:
        counted = f"{self.runs}" if self.estimated_runs == self.runs else f"{self.estimated_runs} of {self.runs}"
        parts = [f"{self.hours:,.1f} device-hours for {counted} runs on {self.hardware} one run at a time"]
        if self.grid_hours is not None:
            factors = ([f"factors measured: {', '.join(self.grid_measured)}"] if self.grid_measured else []) + (
                [f"assumed {self.assumed_factor:.2f}x, the lowest measured, for {', '.join(self.grid_assumed)}"]
                if self.grid_assumed else [])
            parts[0] += f"; {self.grid_hours:,.1f} with several workers per GPU ({'; '.join(factors)})"
        if self.training_only:
            parts.append("training only (the profile has no evaluation costs)")
        if self.unknown_models:
            parts.append(f"without {', '.join(self.unknown_models)} (not in the profile)")
        if self.unsized_datasets:
            parts.append(f"without {', '.join(self.unsized_datasets)} (the dataset has no nominal sizes)")
        if self.resized:
            parts.append(f"{', '.join(self.resized)} with model_options timed as the default architecture")
        return "; ".join(parts)


def run_seconds(settings: TrainSettings, times: dict) -> tuple[float, bool]:
    """(estimated seconds of one run, whether evaluation was included); its dataset must have nominal
    sizes (`estimate` leaves out the runs of those without)."""
    spec = get_spec(settings.dataset_name)
    if spec.sizes is None:
        raise ValueError(f"dataset {spec.name} has no nominal sizes for estimates")
    train_split, test_size = spec.sizes
    subset = min(settings.train_examples, train_split - validation_size(settings.config))
    batch = min(settings.config["batch_size_train"], subset)
    steps = steps_per_epoch(subset, batch, drop_last(settings.config))
    memory = settings.mem_examples if settings.modality != "std" else 0
    seconds = settings.num_epochs * steps * times["train_step"] * (batch + memory) / PROFILE_IMAGES
    if "encode_500" not in times:
        return seconds, False
    batches = math.ceil(test_size / PROFILE_TEST_BATCH)
    passes = settings.config["eval_passes"] if settings.modality != "std" else 0
    seconds += batches * times["encode_500"] + passes * batches * times.get("pass_batch_500", 0.0)
    return seconds, True


def grid_factors(profile: dict) -> dict[str, dict]:
    """Encoder -> its measured grid throughput entry (workers, mps, throughput) of a profile."""
    return {model: entry for model, entry in (profile.get("grid") or {}).items()
            if isinstance(entry, dict) and entry.get("throughput")}


def estimate(settings_of_runs: Iterable[TrainSettings], hardware: str, profile: dict) -> Estimate:
    """The device-hours of the runs on `hardware`; runs it cannot estimate (a model without step times,
    a dataset registered without nominal sizes) are left out of the hours and named in the line."""
    total, runs, unknown, unsized, resized, with_eval = 0.0, 0, set(), set(), set(), True
    factors = grid_factors(profile)
    lowest = min((entry["throughput"] for entry in factors.values()), default=None)
    shared, assumed, used, estimated = 0.0, set(), set(), 0
    for settings in settings_of_runs:
        runs += 1
        if settings.config["model_options"]:
            resized.add(settings.model)
        times = profile.get("models", {}).get(settings.model)
        if times is None:
            unknown.add(settings.model)
            continue
        if get_spec(settings.dataset_name).sizes is None:
            unsized.add(settings.dataset_name)
            continue
        seconds, evaluated = run_seconds(settings, times)
        total += seconds
        estimated += 1
        with_eval &= evaluated
        if lowest is not None:
            measured = factors.get(settings.model)
            (used if measured else assumed).add(settings.model)
            shared += seconds / (measured["throughput"] if measured else lowest)
    described = tuple(f"{model} {factors[model]['throughput']:.2f}x ({factors[model].get('workers', '?')} workers"
                      f"{', MPS' if factors[model].get('mps') else ''})" for model in sorted(used))
    return Estimate(hardware, total / 3600, runs, tuple(sorted(unknown)), not with_eval, tuple(sorted(unsized)),
                    shared / 3600 if lowest is not None else None, described, tuple(sorted(assumed)),
                    lowest if assumed else None, tuple(sorted(resized)), estimated)
