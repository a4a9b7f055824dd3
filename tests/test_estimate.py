"""Device-hour estimates of the runs left in a grid, from step times measured on named hardware."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from suite.config import TrainSettings, load_config
from suite.datasets import get_spec, registry as dataset_registry
from suite.estimate import estimate, run_seconds

REPO = Path(__file__).resolve().parents[1]
PROFILE = {"models": {"mobilenet": {"train_step": 0.5, "encode_500": 2.0, "pass_batch_500": 0.25},
                      "resnet18": {"train_step": 1.0}}}


def _settings(modality: str, *overrides: str) -> TrainSettings:
    return TrainSettings(load_config(REPO / "config" / "train.yaml", list(overrides)), modality)


def test_a_runs_seconds_are_computed_from_its_epochs_steps_and_passes():
    # SVHN, 1,000 images, batch 128 with drop_last: 7 steps x 40 epochs; memory 100 -> 228 images per step.
    memory = _settings("encoder_memory")
    seconds, with_eval = run_seconds(memory, PROFILE["models"]["mobilenet"])
    test_batches = 53  # ceil(26,032 / 500)
    assert with_eval and seconds == pytest.approx(40 * 7 * 0.5 + test_batches * 2.0 + 5 * test_batches * 0.25)
    std, _ = run_seconds(_settings("std"), PROFILE["models"]["mobilenet"])
    assert std == pytest.approx(40 * 7 * 0.5 * 128 / 228 + test_batches * 2.0)  # no memory, no passes
    # CINIC10 keeps its last partial batch: 5,000 images -> 40 steps; 300 epochs.
    cinic, _ = run_seconds(_settings("std", "dataset_name=CINIC10", "train_examples=5000"),
                           PROFILE["models"]["mobilenet"])
    assert cinic == pytest.approx(300 * 40 * 0.5 * 128 / 228 + 180 * 2.0)
    # The journal's CINIC10 loaders drop it (config key CINIC10.drop_last): 1,000 images -> 7 steps, not 8.
    kept, _ = run_seconds(_settings("std", "dataset_name=CINIC10"), {"train_step": 1.0})
    dropped, _ = run_seconds(_settings("std", "dataset_name=CINIC10", "CINIC10.drop_last=true"), {"train_step": 1.0})
    assert (kept, dropped) == (pytest.approx(300 * 8 * 128 / 228), pytest.approx(300 * 7 * 128 / 228))
    # The whole split: 73,257 - 6,000 held out = 67,257 images -> 525 steps.
    full, _ = run_seconds(_settings("std", "train_examples=100000"), {"train_step": 1.0})
    assert full == pytest.approx(40 * 525 * 128 / 228)


def test_estimate_sums_runs_and_names_what_it_cannot_estimate():
    runs = [_settings("encoder_memory"), _settings("std", "model=resnet18"), _settings("std", "model=vit")]
    found = estimate(runs, "Test GPU", PROFILE)
    expected = run_seconds(runs[0], PROFILE["models"]["mobilenet"])[0] + 40 * 7 * 1.0 * 128 / 228
    assert found.hours == pytest.approx(expected / 3600) and found.runs == 3
    assert found.unknown_models == ("vit",) and found.training_only  # resnet18's profile has no eval costs
    assert found.line().startswith(f"{expected / 3600:,.1f} device-hours for 2 of 3 runs on Test GPU one run at a "
                                   "time; training only")  # the hours count 2 runs: vit has no step times
    assert "without vit (not in the profile)" in found.line()


def test_a_measured_grid_throughput_divides_the_one_at_a_time_hours():
    runs = [_settings("encoder_memory")] * 4
    alone = estimate(runs, "Test GPU", PROFILE)
    grid = {"mobilenet": {"workers": 16, "mps": True, "throughput": 8.0}}
    shared = estimate(runs, "Test GPU", PROFILE | {"grid": grid})
    assert shared.hours == pytest.approx(alone.hours)  # the first figure stays the one-at-a-time hours
    assert shared.grid_hours == pytest.approx(alone.hours / 8)
    assert shared.line().startswith(f"{alone.hours:,.1f} device-hours for 4 runs on Test GPU one run at a time; "
                                    f"{alone.hours / 8:,.1f} with several workers per GPU (factors measured: "
                                    "mobilenet 8.00x (16 workers, MPS))")
    assert "with" not in alone.line() and alone.grid_hours is None


def test_each_run_gets_its_own_encoders_factor_and_the_others_the_lowest_measured():
    """Per encoder: mobilenet measured at 8x; resnet18 not measured, so it gets the lowest measured factor
    (a 2x encoder's, not mobilenet's 8x: an encoder that keeps the GPU busier shares it worse), and the line
    says which factors were measured and which assumed."""
    mobile, resnet = _settings("encoder_memory"), _settings("encoder_memory", "model=resnet18")
    grid = {"mobilenet": {"workers": 16, "mps": True, "throughput": 8.0},
            "densenet": {"workers": 4, "mps": False, "throughput": 2.0}}
    found = estimate([mobile, resnet, resnet], "Test GPU", PROFILE | {"grid": grid})
    mobile_seconds = run_seconds(mobile, PROFILE["models"]["mobilenet"])[0]
    resnet_seconds = run_seconds(resnet, PROFILE["models"]["resnet18"])[0]
    assert found.grid_hours == pytest.approx((mobile_seconds / 8.0 + 2 * resnet_seconds / 2.0) / 3600)
    assert found.grid_measured == ("mobilenet 8.00x (16 workers, MPS)",) and found.grid_assumed == ("resnet18",)
    assert "(factors measured: mobilenet 8.00x (16 workers, MPS); assumed 2.00x, the lowest measured, for " \
           "resnet18)" in found.line()
    # a plan none of whose encoders was measured says so, with nothing left blank
    only_assumed = estimate([resnet], "Test GPU", PROFILE | {"grid": grid})
    assert only_assumed.grid_measured == () and "with several workers per GPU (assumed 2.00x, the lowest measured, " \
           "for resnet18)" in only_assumed.line()


def test_models_with_options_are_named_as_timed_by_their_default_size():
    runs = [_settings("std", "model_options={depth: 1}"), _settings("std")]
    found = estimate(runs, "Test GPU", PROFILE)
    assert found.hours == pytest.approx(2 * run_seconds(runs[1], PROFILE["models"]["mobilenet"])[0] / 3600)
    assert found.line().endswith("; mobilenet with model_options timed as the default architecture")


def test_runs_without_nominal_sizes_or_step_times_are_named_not_estimated(monkeypatch):
    # A dataset registered without `sizes` (the README's one-file example) cannot be estimated.
    monkeypatch.setitem(dataset_registry._REGISTRY, "DIGITS", replace(get_spec("DIGITS"), sizes=None))
    runs = [_settings("encoder_memory"), _settings("std", "dataset_name=DIGITS"), _settings("std", "model=vit")]
    found = estimate(runs, "Test GPU", PROFILE)
    assert found.hours == pytest.approx(run_seconds(runs[0], PROFILE["models"]["mobilenet"])[0] / 3600)
    assert found.runs == 3 and found.unknown_models == ("vit",) and found.unsized_datasets == ("DIGITS",)
    assert found.estimated_runs == 1 and " device-hours for 1 of 3 runs " in found.line()
    assert found.line().endswith("; without vit (not in the profile); without DIGITS (the dataset has no nominal "
                                 "sizes)")
    bare = estimate(runs, "Test GPU", {"measured": "2024-05-01"})  # a profile without step times
    assert bare.hours == 0 and bare.unknown_models == ("mobilenet", "vit")
