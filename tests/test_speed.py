"""The faster paths keep the numbers: cached test encodings, compiled models, channels_last, no
host sync in the step; compilation happens once per process; a missing toolchain is one line."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import datasets
from conftest import run_script, tiny_config, write_config
from suite import training
from suite.config import TrainSettings, validate
from suite.evaluation import evaluate, plain_evaluate
from suite.restore import CheckpointOptions, restore_run
from suite.training import train_run
from trained_runs import trained_runs

TINY_VIT = {"patches": 4, "depth": 1, "hidden": 16, "heads": 2, "mlp_hidden": 16}


def _tiny_vit(tmp_path: Path, dataset_dir: Path, **top_level) -> TrainSettings:
    options = dict(model="vit", model_options=TINY_VIT, train_examples=40, batch_size_train=16, runs=2,
                   eval_passes=2, device="cpu") | top_level
    raw = tiny_config(tmp_path, dataset_dir, **options)
    raw["CIFAR10"]["mem_examples"] = 8
    return TrainSettings(validate(raw, datasets.list_datasets()), "encoder_memory")


# ---- one encoding per test image ------------------------------------------------------------------
@pytest.mark.parametrize("batch_size_test", [25, 20])  # 20: a partial last batch (50 test images)
def test_cached_encodings_give_the_plain_evaluations_numbers(tmp_path_factory, tiny_dataset_dir, batch_size_test,
                                                             monkeypatch):
    """Same draws, same batches, same logits: every batch's loss agrees to float tolerance."""
    from suite import recipe

    runs = trained_runs(tmp_path_factory, tiny_dataset_dir)
    restored = restore_run(runs.checkpoint("encoder_memory"), CheckpointOptions(batch_size_test=batch_size_test,
                                                                                 device="cpu"))
    losses: list[float] = []
    original = recipe.CrossEntropy.forward
    monkeypatch.setattr(recipe.CrossEntropy, "forward",
                        lambda self, logits, targets: losses.append(logits.detach().clone()) or original(self, logits,
                                                                                                         targets))
    fast = evaluate(restored.model, restored.data, 3)
    fast_logits, losses[:] = list(losses), []
    plain = plain_evaluate(restored.model, restored.data, 3)
    assert fast.pass_accuracies == plain.pass_accuracies and fast.loss == pytest.approx(plain.loss, rel=1e-5)
    assert len(fast_logits) == len(losses) == 3 * -(-50 // batch_size_test)
    for a, b in zip(fast_logits, losses):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_cached_evaluation_encodes_each_test_image_once(tmp_path_factory, tiny_dataset_dir):
    runs = trained_runs(tmp_path_factory, tiny_dataset_dir)
    restored = restore_run(runs.checkpoint("encoder_memory"), CheckpointOptions(device="cpu"))
    sizes: list[int] = []
    original = restored.model.forward_encoder
    restored.model.forward_encoder = lambda x: sizes.append(x.shape[0]) or original(x)
    evaluate(restored.model, restored.data, 4)
    memory = restored.settings.mem_examples
    # 50 test images in 2 batches of 25, encoded once; then 4 passes x 2 batches of one memory draw each.
    assert sizes == [25, 25] + [memory] * 8


# ---- compiled step ----------------------------------------------------------------------------------
def test_compiled_model_is_compiled_once_and_reused_by_later_runs(tmp_path, tiny_dataset_dir, monkeypatch):
    """A grid worker trains many runs: the second run must not trace or compile again, and a compiled
    run must give the eager numbers (here with a counting backend that runs the traced graphs)."""
    from torch._dynamo.testing import CompileCounter

    torch._dynamo.reset()
    counter = CompileCounter()
    monkeypatch.setattr(training, "COMPILE_BACKEND", counter)
    monkeypatch.setattr(training, "_COMPILED", {})
    settings = _tiny_vit(tmp_path / "compiled", tiny_dataset_dir, compile=True)
    first = train_run(settings, 1).record
    frames = counter.frame_count
    assert frames >= 2  # the encoder and the head, in train and in eval mode
    second = train_run(settings, 2).record
    assert counter.frame_count == frames  # nothing traced again for run 2
    eager = _tiny_vit(tmp_path / "eager", tiny_dataset_dir)
    for run, record in ((1, first), (2, second)):
        reference = train_run(eager, run).record
        assert record["pass_accuracies"] == reference["pass_accuracies"]
        assert record["loss"] == pytest.approx(reference["loss"], rel=1e-6)


@pytest.mark.slow
def test_inductor_compiled_run_lands_where_eager_lands(tmp_path, tiny_dataset_dir, monkeypatch):
    monkeypatch.setattr(training, "_COMPILED", {})
    torch._dynamo.reset()
    fast = train_run(_tiny_vit(tmp_path / "compiled", tiny_dataset_dir, compile=True), 1).record
    eager = train_run(_tiny_vit(tmp_path / "eager", tiny_dataset_dir), 1).record
    assert fast["loss"] == pytest.approx(eager["loss"], rel=1e-4)
    assert fast["pass_accuracies"] == pytest.approx(eager["pass_accuracies"], abs=2.0)  # 1 image = 2 %


def test_compile_without_a_working_toolchain_is_one_line(tmp_path, tiny_dataset_dir):
    config = write_config(tmp_path / "c.yaml", tiny_config(tmp_path, tiny_dataset_dir, compile=True, device="cpu"))
    env = {"CXX": "/nonexistent/c++", "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor")}
    result = run_script("train.py", "--modality=std", f"--config={config}", cwd=tmp_path, env=env)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: compile: true, but torch.compile does not work on cpu")
    assert "set compile: false" in lines[0] and not (tmp_path / "models").exists()


# ---- channels_last ----------------------------------------------------------------------------------
def test_channels_last_trains_to_the_same_numbers_within_float_tolerance(tmp_path, tiny_dataset_dir):
    def record(name: str, channels_last: bool) -> dict:
        raw = tiny_config(tmp_path / name, tiny_dataset_dir, runs=1, eval_passes=2, device="cpu",
                          channels_last=channels_last)
        return train_run(TrainSettings(validate(raw, datasets.list_datasets()), "encoder_memory"), 1).record

    plain, last = record("plain", False), record("last", True)
    assert last["loss"] == pytest.approx(plain["loss"], rel=1e-3)
    assert last["pass_accuracies"] == pytest.approx(plain["pass_accuracies"], abs=4.0)  # 2 images of 50


# ---- no host synchronisation inside the step ---------------------------------------------------------
def test_the_training_step_never_reads_a_value_back_from_the_device(tmp_path, tiny_dataset_dir, monkeypatch):
    """`.item()`, `float()`, `bool()` and `.tolist()` on a tensor block until the device is done; in the
    step they would serialise a GPU with Python. The loop may read once per epoch, not per step."""
    from suite import training

    reads: list[str] = []
    for name in ("item", "tolist", "__bool__", "__float__", "__int__"):
        original = getattr(torch.Tensor, name)
        monkeypatch.setattr(torch.Tensor, name,
                            lambda self, *a, _o=original, _n=name, **k: reads.append(_n) or _o(self, *a, **k))
    settings = _tiny_vit(tmp_path, tiny_dataset_dir, runs=1)
    steps: list[int] = []
    original_epoch = training.train_epoch

    def counted(state, *args, **kwargs):
        before = len(reads)
        result = original_epoch(state, *args, **kwargs)
        steps.append(result[2])
        assert len(reads) == before, f"the step read {reads[before:]} back from the device"
        return result

    monkeypatch.setattr(training, "train_epoch", counted)
    section = dict(settings.config["CIFAR10"], num_epochs=2)
    train_run(TrainSettings(dict(settings.config, CIFAR10=section), "encoder_memory"), 1)
    assert steps == [2, 2]
