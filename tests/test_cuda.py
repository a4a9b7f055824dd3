"""The CUDA paths, where users run them: resident data and generators on the GPU, fused optimiser with
GradScaler (AMP), resume of CUDA generator states, eval_dir.py repeating train.py, a GPU checkpoint
on the CPU, torch.compile (default and CUDA graphs) and channels_last.

Marked `cuda` and skipped without a GPU; `benchmarks/gpu_check.sh` runs them (`pytest -m cuda`).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

import datasets
from conftest import run_script, tiny_config, write_config
from suite import training
from suite.run_files import finished_runs, load_checkpoint
from suite.config import TrainSettings, validate
from suite.restore import CheckpointOptions, restore_run
from suite.evaluation import evaluate
from suite.training import train_run

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

GPU = "cuda:0"
SECTION = {"num_classes": 10, "num_epochs": 3, "opt_milestones": [2], "mem_examples": 10, "validation_size": 20}
TINY_VIT = {"patches": 4, "depth": 1, "hidden": 16, "heads": 2, "mlp_hidden": 16}


def _settings(root: Path, dataset_dir: Path, modality: str = "encoder_memory", **top_level) -> TrainSettings:
    raw = tiny_config(root, dataset_dir, **(dict(device=GPU, runs=1, CIFAR10=dict(SECTION)) | top_level))
    return TrainSettings(validate(raw, datasets.list_datasets()), modality)


class _Killed(Exception):
    pass


def _generator_states(state) -> dict:
    """Every random stream a training run draws from, as bytes: exact, whatever the float arithmetic."""
    streams = {name: bytes(gen.get_state().tolist()) for name, gen in state.data.generators.items()}
    streams["cuda"] = bytes(torch.cuda.get_rng_state().tolist())
    streams["cpu"] = bytes(torch.get_rng_state().tolist())
    return streams


@pytest.mark.parametrize("modality", ["std", "encoder_memory"])
def test_cuda_run_with_amp_resumes_to_the_same_numbers(tmp_path, tiny_dataset_dir, modality):
    """AMP + GradScaler + fused SGD on the GPU; killed after epoch 2, resumed: every CUDA generator
    continues where it stopped (exact states) and the run ends where the uninterrupted one ends."""
    at_end: dict[str, dict] = {}

    def keep(name: str):
        def callback(stats, state) -> None:
            if stats.epoch == SECTION["num_epochs"]:
                at_end[name] = _generator_states(state)
        return callback

    def kill(stats, state) -> None:
        if stats.epoch == 2:
            raise _Killed

    whole_settings = _settings(tmp_path / "whole", tiny_dataset_dir, modality)
    whole = train_run(whole_settings, 1, epoch_callbacks=[keep("whole")]).record
    killed = _settings(tmp_path / "killed", tiny_dataset_dir, modality)
    with pytest.raises(_Killed):
        train_run(killed, 1, epoch_callbacks=[kill])
    saved = torch.load(killed.cell_folder / "1.resume.pt", map_location="cpu", weights_only=True)
    assert saved["state"]["scaler"]["scale"] > 0  # AMP was on: the scaler's state is part of the resume file
    resumed = train_run(killed, 1, resume=True, epoch_callbacks=[keep("resumed")]).record
    assert whole["device"] == resumed["device"] == GPU
    assert at_end["resumed"] == at_end["whole"]
    assert resumed["loss"] == pytest.approx(whole["loss"], rel=1e-5)
    assert resumed["pass_accuracies"] == pytest.approx(whole["pass_accuracies"], abs=2.0)  # 1 image of 50
    first = load_checkpoint(whole_settings.cell_folder / "1.pt")["model_state_dict"]
    again = load_checkpoint(killed.cell_folder / "1.pt")["model_state_dict"]
    assert all(torch.allclose(first[k].float(), again[k].float(), atol=1e-4) for k in first)


def test_a_gpu_run_evaluates_again_to_its_record(tmp_path, tiny_dataset_dir):
    """A run's evaluation on the GPU repeats exactly when evaluated again on the GPU."""
    settings = _settings(tmp_path, tiny_dataset_dir, CIFAR10=dict(SECTION, num_epochs=1))
    record = train_run(settings, 1).record
    restored = restore_run(settings.cell_folder / "1.pt", CheckpointOptions(device=GPU))
    again = evaluate(restored.model, restored.data, len(record["pass_accuracies"]))
    assert list(again.pass_accuracies) == record["pass_accuracies"] and again.loss == pytest.approx(record["loss"])


@pytest.fixture(scope="module")
def gpu_cell(tmp_path_factory, tiny_dataset_dir):
    """Two encoder_memory runs and one std run trained on the GPU by train.py (AMP on)."""
    root = tmp_path_factory.mktemp("gpu_cell")
    outputs = {}
    for modality in ("encoder_memory", "std"):
        config = write_config(root / f"{modality}.yaml", tiny_config(root, tiny_dataset_dir, device=GPU, runs=2,
                                                                     eval_passes=3, CIFAR10=dict(SECTION)))
        result = run_script("train.py", f"--modality={modality}", f"--config={config}", cwd=root)
        assert result.returncode == 0, result.stderr[-3000:]
        outputs[modality] = result.stdout
    return root / "models" / "CIFAR10", outputs


def test_eval_dir_on_the_gpu_prints_what_train_py_printed(gpu_cell, tmp_path):
    cells, outputs = gpu_cell
    folder = cells / "encoder_memory" / "shufflenet" / "100"
    out = tmp_path / "eval.json"
    result = run_script("eval_dir.py", f"--path={folder}", f"--device={GPU}", f"--json={out}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    trained = dict(re.findall(r"^Run:(\d+) \| Loss:\S+ \| Accuracy (\S+) \|", outputs["encoder_memory"], re.M))
    evaluated = dict(re.findall(r"^Run:(\d+) \| Accuracy (\S+) \|", result.stdout, re.M))
    assert trained and evaluated == trained
    records = finished_runs(folder)
    for entry in json.loads(out.read_text())["runs"]:
        assert entry["pass_accuracies"] == records[entry["run"]]["pass_accuracies"]
        assert records[entry["run"]]["device"] == GPU


def test_a_gpu_checkpoint_evaluates_on_the_cpu(gpu_cell, tmp_path):
    """The real thing (tensors saved from the GPU): weights equal after the move; the std model's accuracy
    on the CPU is the GPU's within one test image (float rounding of another device)."""
    cells, _ = gpu_cell
    folder = cells / "std" / "shufflenet" / "100"
    saved = torch.load(folder / "1.pt", map_location="cpu", weights_only=True)["model_state_dict"]
    restored = restore_run(folder / "1.pt", CheckpointOptions(device="cpu"))
    assert next(restored.model.parameters()).device.type == "cpu"
    assert all(torch.equal(saved[k], v) for k, v in restored.model.state_dict().items())
    on_cpu = evaluate(restored.model, restored.data, 1)
    assert on_cpu.accuracy == pytest.approx(finished_runs(folder)[1]["accuracy"], abs=2.0)
    result = run_script("eval.py", f"--path_model={cells / 'encoder_memory/shufflenet/100/1.pt'}", "--device=cpu",
                        cwd=tmp_path)
    assert result.returncode == 0 and "Accuracy" in result.stdout, result.stderr[-3000:]


@pytest.mark.parametrize("mode", ["default", "reduce-overhead"])
def test_compiled_cuda_run_lands_where_eager_lands(tmp_path, tiny_dataset_dir, monkeypatch, mode):
    """torch.compile with AMP on the GPU (inductor; reduce-overhead adds CUDA graphs), tiny ViT."""
    monkeypatch.setattr(training, "_COMPILED", {})
    torch._dynamo.reset()

    def vit(name: str, **extra) -> TrainSettings:
        raw = tiny_config(tmp_path / name, tiny_dataset_dir, model="vit", model_options=TINY_VIT, train_examples=40,
                          batch_size_train=16, runs=2, eval_passes=2, device=GPU, **extra)
        raw["CIFAR10"].update(mem_examples=8, num_epochs=2)
        return TrainSettings(validate(raw, datasets.list_datasets()), "encoder_memory")

    fast = vit("compiled", compile=True, compile_mode=mode)
    eager = vit("eager")
    for run in (1, 2):  # the second run reuses the process's compiled model
        got, expected = train_run(fast, run).record, train_run(eager, run).record
        assert got["loss"] == pytest.approx(expected["loss"], rel=1e-2)
        assert got["pass_accuracies"] == pytest.approx(expected["pass_accuracies"], abs=6.0)  # 3 images of 50


def test_channels_last_on_the_gpu_lands_where_the_default_layout_lands(tmp_path, tiny_dataset_dir):
    plain = train_run(_settings(tmp_path / "plain", tiny_dataset_dir), 1).record
    last = train_run(_settings(tmp_path / "last", tiny_dataset_dir, channels_last=True), 1).record
    assert last["loss"] == pytest.approx(plain["loss"], rel=1e-2)
    assert last["pass_accuracies"] == pytest.approx(plain["pass_accuracies"], abs=6.0)



@pytest.mark.parametrize("name", ["uniform", "class_balanced"])
def test_memory_strategies_draw_on_the_gpu(name):
    from collections import Counter

    from suite.sampling import get_sampling

    labels = torch.arange(10, device=GPU).repeat_interleave(7)
    positions = get_sampling(name)(labels, 20).draw(torch.Generator(device=GPU).manual_seed(0))
    assert positions.device.type == "cuda" and len(set(positions.tolist())) == 20
    if name == "class_balanced":
        assert sorted(Counter(labels[positions].tolist()).values()) == [2] * 10
