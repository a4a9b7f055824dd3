"""Training: train.py through its CLI, determinism, kill-and-resume, the recipe pieces, bad input."""
from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import datasets
from conftest import REPO, run_script, tiny_config, write_config
from suite.run_files import CHECKPOINT_KEYS, finished_runs, load_checkpoint, metrics_path, read_metrics
from suite.config import TrainSettings, validate
from suite.data import split_indices
from suite.cli import CheckpointError, TrainingDiverged
from suite.recipe import SmoothedCrossEntropy, build_optimizer, build_scheduler, warmup_cosine_factor
from suite.training import indices_digest, train_run


def _settings(tmp_path: Path, dataset_dir: Path, modality: str = "encoder_memory", **overrides) -> TrainSettings:
    raw = tiny_config(tmp_path, dataset_dir, **overrides)
    return TrainSettings(validate(raw, datasets.list_datasets()), modality)


def _run_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("Run:")]


def _without_seconds(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


# ---- train.py end to end ---------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("modality", ["std", "memory", "encoder_memory"])
def test_train_script_trains_saves_and_records_each_modality(tmp_path, tiny_dataset_dir, modality):
    config = write_config(tmp_path / "train.yaml", tiny_config(tmp_path, tiny_dataset_dir))
    result = run_script("train.py", f"--modality={modality}", f"--config={config}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = _run_lines(result.stdout)
    assert [line.split(" |")[0] for line in lines] == ["Run:1", "Run:2"]
    assert result.stdout.splitlines()[-1].startswith("Mean Accuracy:")
    folder = tmp_path / "models" / "CIFAR10" / modality / "shufflenet" / "100"
    records = list(finished_runs(folder).values())
    assert [r["run"] for r in records] == [1, 2] and [r["seed"] for r in records] == [0, 1]
    for record, line in zip(records, lines):
        assert f"Accuracy {record['accuracy']:.2f} |" in line
        assert len(record["pass_accuracies"]) == (1 if modality == "std" else 2)
        assert record["accuracy"] == pytest.approx(sum(record["pass_accuracies"]) / len(record["pass_accuracies"]))
        assert record["config"]["model"] == "shufflenet" and record["versions"]["torch"] == torch.__version__
        checkpoint = load_checkpoint(folder / f"{record['run']}.pt")
        assert all(key in checkpoint for key in CHECKPOINT_KEYS) and checkpoint["modality"] == modality
    assert not list(folder.glob("*.resume.pt")) and not list(folder.glob(".*.tmp"))


@pytest.mark.slow
def test_two_identical_invocations_print_identical_numbers(tmp_path, tiny_dataset_dir):
    outputs = []
    for name in ("first", "second"):
        config = write_config(tmp_path / f"{name}.yaml", tiny_config(tmp_path / name, tiny_dataset_dir, runs=1))
        result = run_script("train.py", "--modality=encoder_memory", f"--config={config}", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        outputs.append(list(finished_runs(tmp_path / name / "models/CIFAR10/encoder_memory/shufflenet/100").values())[0])
    assert outputs[0]["pass_accuracies"] == outputs[1]["pass_accuracies"]
    assert outputs[0]["loss"] == outputs[1]["loss"]


# ---- what an epoch records --------------------------------------------------------------------------
@pytest.mark.parametrize("dataset, train_examples, batch, drop_last", [
    ("CINIC10", 14, 4, None),  # no drop_last: batches of 4, 4, 4 and 2
    ("CIFAR10", 12, 4, None),  # drop_last, nothing to drop
    ("CIFAR10", 10, 4, False),  # drop_last turned off: a short last batch
])
def test_training_accuracy_on_record_is_over_every_input_seen(tmp_path, tiny_dataset_dir, monkeypatch, dataset,
                                                             train_examples, batch, drop_last):
    """A model that predicts class 0 whatever it sees (and learns nothing: lr 1e-12): each epoch's training
    accuracy is the share of class 0 among the subset's images, whatever the size of the last batch
    (metrics CSV and callbacks)."""
    import suite.training
    from suite.data import build_run_data

    build = suite.training.build_model

    def always_class_0(settings):
        model = build(settings)
        with torch.no_grad():
            model.linear.weight.zero_()
            model.linear.bias.copy_(torch.tensor([100.0] + [0.0] * 9))
        return model

    monkeypatch.setattr(suite.training, "build_model", always_class_0)
    section = {"num_classes": 10, "num_epochs": 2, "opt_milestones": [], "mem_examples": 2,
               "validation_size": 10 if dataset == "CINIC10" else 20, "drop_last": drop_last}
    settings = _settings(tmp_path, tiny_dataset_dir, "std", dataset_name=dataset, train_examples=train_examples,
                         batch_size_train=batch, runs=1, optimizer={"name": "sgd", "learning_rate": 1e-12},
                         **{dataset: section})
    labels = build_run_data(settings.config, 0).train.labels
    assert len(labels) == train_examples
    expected = 100.0 * int((labels == 0).sum()) / len(labels)
    assert 0 < expected < 100
    seen = []
    train_run(settings, 1, epoch_callbacks=[lambda stats, state: seen.append(stats.accuracy)])
    rows = read_metrics(metrics_path(settings.cell_folder, 1))
    assert [row["train_accuracy"] for row in rows] == seen == [pytest.approx(expected)] * 2


# ---- resume -----------------------------------------------------------------------------------
class _Killed(Exception):
    pass


def _kill_after(epochs: int):
    def callback(stats, state) -> None:
        if stats.epoch == epochs:
            raise _Killed

    return callback


@pytest.mark.slow
def test_interrupted_run_resumes_to_the_same_numbers(tmp_path, tiny_dataset_dir):
    def settings(name: str) -> TrainSettings:
        section = {"num_classes": 10, "num_epochs": 3, "opt_milestones": [2], "mem_examples": 10,
                   "validation_size": 20}
        return _settings(tmp_path / name, tiny_dataset_dir, CIFAR10=section)

    uninterrupted = train_run(settings("whole"), 1).record
    interrupted = settings("killed")
    with pytest.raises(_Killed):
        train_run(interrupted, 1, epoch_callbacks=[_kill_after(2)])
    assert (interrupted.cell_folder / "1.resume.pt").exists() and not (interrupted.cell_folder / "1.pt").exists()
    resumed = train_run(interrupted, 1, resume=True).record
    assert resumed["pass_accuracies"] == uninterrupted["pass_accuracies"]
    assert resumed["loss"] == uninterrupted["loss"]
    whole = load_checkpoint(settings("whole").cell_folder / "1.pt")["model_state_dict"]
    again = load_checkpoint(interrupted.cell_folder / "1.pt")["model_state_dict"]
    assert all(torch.equal(whole[k], again[k]) for k in whole)


@pytest.mark.slow
def test_killed_process_continues_with_continue_train(tmp_path, tiny_dataset_dir):
    section = {"num_classes": 10, "num_epochs": 3, "opt_milestones": [2], "mem_examples": 10, "validation_size": 20}
    config = write_config(tmp_path / "c.yaml", tiny_config(tmp_path, tiny_dataset_dir, runs=2, CIFAR10=section))
    folder = tmp_path / "models/CIFAR10/memory/shufflenet/100"
    process = subprocess.Popen([sys.executable, str(REPO / "train.py"), "--modality=memory", f"--config={config}"],
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=dict(os.environ, PYTHONPATH=str(REPO)))
    deadline = time.time() + 300
    while not (folder / "2.resume.pt").exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert (folder / "2.resume.pt").exists() and len(list(finished_runs(folder).values())) == 1
    refused = run_script("train.py", "--modality=memory", f"--config={config}", cwd=tmp_path)
    assert refused.returncode == 2 and "--continue_train" in refused.stderr and "Traceback" not in refused.stderr
    resumed = run_script("train.py", "--modality=memory", f"--config={config}", "--continue_train", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "Restarting training process" in resumed.stdout
    assert [r["run"] for r in list(finished_runs(folder).values())] == [1, 2]
    reference = write_config(tmp_path / "r.yaml", tiny_config(tmp_path / "ref", tiny_dataset_dir, runs=2,
                                                                CIFAR10=section))
    whole = run_script("train.py", "--modality=memory", f"--config={reference}", cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr
    # The whole records, not the 2-decimal lines: every pass, the full-precision loss, the subset.
    expected = finished_runs(tmp_path / "ref/models/CIFAR10/memory/shufflenet/100")
    for run, record in finished_runs(folder).items():
        for key in ("accuracy", "pass_accuracies", "loss", "train_indices_sha256", "settings"):
            assert record[key] == expected[run][key], (run, key)
    weights = load_checkpoint(folder / "2.pt")["model_state_dict"]
    reference_weights = load_checkpoint(tmp_path / "ref/models/CIFAR10/memory/shufflenet/100/2.pt")["model_state_dict"]
    assert all(torch.equal(weights[k], reference_weights[k]) for k in reference_weights)
    resumed_rows = read_metrics(metrics_path(folder, 2))
    assert [row["epoch"] for row in resumed_rows] == [1, 2, 3]  # the killed epoch once, not twice
    assert _without_seconds(resumed_rows) == _without_seconds(read_metrics(
        metrics_path(tmp_path / "ref/models/CIFAR10/memory/shufflenet/100", 2)))


# ---- recipe pieces ----------------------------------------------------------------------------
def test_vit_warmup_cosine_schedule_matches_the_original_values():
    lrs = [1e-3 * warmup_cosine_factor(e, 5, 200, 1e-3, 1e-5) for e in range(200)]
    assert lrs[:7] == pytest.approx([0, 2e-4, 4e-4, 6e-4, 8e-4, 1e-3, 1e-3], abs=1e-12)
    assert lrs[199] == pytest.approx(1.30e-5, abs=1e-7)
    assert all(a >= b for a, b in zip(lrs[6:], lrs[7:]))


def test_scheduler_is_stepped_per_epoch_with_the_configured_shape(tmp_path, tiny_dataset_dir):
    model = torch.nn.Linear(2, 2)
    settings = _settings(tmp_path, tiny_dataset_dir, "std")
    section = dict(settings.config["CIFAR10"], num_epochs=10, opt_milestones=[3, 6])
    multistep = TrainSettings(dict(settings.config, CIFAR10=section), "std")
    optimizer = build_optimizer(model, multistep.config["optimizer"])
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.defaults["nesterov"]
    scheduler = build_scheduler(optimizer, multistep)
    lrs = []
    for _ in range(8):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs == pytest.approx([0.05] * 3 + [0.005] * 3 + [0.0005] * 2)
    cosine = TrainSettings(dict(settings.config, dataset_name="CINIC10",
                                CINIC10=dict(section, lr_schedule="cosine")), "std")
    optimizer = build_optimizer(model, cosine.config["optimizer"])
    scheduler = build_scheduler(optimizer, cosine)
    for _ in range(5):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.05 * (1 + math.cos(math.pi * 5 / 10)) / 2)


CUDA = [pytest.param("cuda:0", marks=[pytest.mark.cuda,
                                       pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")])]


@pytest.mark.parametrize("device", ["cpu"] + CUDA)
@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_an_overflow_step_the_scaler_skips_leaves_no_trace(name, device):
    """Every optimiser the recipe builds on CUDA, under AMP: a step whose gradients overflowed is skipped
    whole, so skip + step lands exactly where the step alone lands (torch's fused SGD advanced its
    momentum on skipped steps, and runs diverged to NaN; on the CPU too). The optimiser is built as for
    a CUDA run wherever the test runs."""

    options = {"name": name, "learning_rate": 0.1, "weight_decay": 5e-4, "momentum": 0.9, "nesterov": True}
    inputs = torch.linspace(-1, 1, 8, device=device).view(2, 4)

    def trained(overflows: list[bool], init_scale: float):
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 3).to(device)
        optimizer = build_optimizer(model, options, torch.device("cuda"))
        scaler = torch.amp.GradScaler(torch.device(device).type, init_scale=init_scale)
        for overflow in overflows:
            optimizer.zero_grad()
            with torch.autocast(torch.device(device).type, dtype=torch.float16):
                loss = model(inputs).float().pow(2).mean()
            scaler.scale(loss).backward()
            if overflow:
                model.weight.grad[0, 0] = float("inf")
            scaler.step(optimizer)
            scaler.update()
        return model, optimizer, scaler

    skipped, skipped_optimizer, skipped_scaler = trained([True, False, False], 2.0**16)
    plain, plain_optimizer, _ = trained([False, False], 2.0**15)  # the scale the skip left
    assert skipped_scaler.get_scale() == 2.0**15
    assert all(torch.equal(a, b) for a, b in zip(skipped.state_dict().values(), plain.state_dict().values()))
    for a, b in zip(skipped_optimizer.state.values(), plain_optimizer.state.values()):
        assert all(torch.equal(torch.as_tensor(a[k]).cpu(), torch.as_tensor(b[k]).cpu()) for k in a)


def test_label_smoothing_matches_a_hand_computation():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    targets = torch.tensor([0, 2])
    eps = 0.1
    expected = 0.0
    for row, target in zip(logits, targets):
        log_p = row - torch.logsumexp(row, 0)
        weights = torch.full((3,), eps / 2)
        weights[target] = 1 - eps
        expected += -(weights * log_p).sum().item()
    assert SmoothedCrossEntropy(eps)(logits, targets).item() == pytest.approx(expected / 2, rel=1e-6)


# ---- bad input --------------------------------------------------------------------------------
@pytest.mark.parametrize("args, message", [
    (["--set", "model=inception"], "error: unknown model 'inception'; valid models: densenet, efficientnet, googlenet"),
    (["--set", "model=mobilnet"], "error: unknown model 'mobilnet'; did you mean 'mobilenet'?"),
    (["--set", "dataset_name=MNIST"], "error: unknown dataset 'MNIST'"),
    (["--set", "nonsense=1"], "error: unknown config key 'nonsense'"),
    (["--set", "download=false", "--set", "dataset_dir=nowhere"], "error: SVHN file 'nowhere/train_32x32.mat' not"),
    (["--config=missing.yaml"], "error: config file 'missing.yaml' not found in the current folder, '"),
    (["--set", "model_options={depth: 3}"], "error: model 'mobilenet' has no option 'depth'; its model_options: none"),
    (["--set", "model=vit", "--set", "model_options={pooling: max}"], "error: cannot build model 'vit' with model_options"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    result = run_script("train.py", "--modality=std", f"--config={REPO / 'config/train.yaml'}", *args, cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.strip().startswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "models").exists()


def test_unknown_modality_is_rejected_by_the_flag_parser():
    result = run_script("train.py", "--modality=hybrid")
    assert result.returncode != 0 and "modality" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("modality", ["std", "encoder_memory"])
def test_diverging_loss_stops_naming_run_and_epoch(tmp_path, tiny_dataset_dir, modality):
    section = {"num_classes": 10, "num_epochs": 3, "opt_milestones": [3], "mem_examples": 10, "validation_size": 20}
    settings = _settings(tmp_path, tiny_dataset_dir, modality, CIFAR10=section,
                         optimizer={"name": "sgd", "learning_rate": 1e12, "momentum": 0.9})
    with pytest.raises(TrainingDiverged, match=r"in run 1, epoch [123]; that epoch was not saved") as error:
        train_run(settings, 1)
    assert not (settings.cell_folder / "1.pt").exists() and not list(finished_runs(settings.cell_folder).values())
    epoch = int(re.search(r"epoch (\d)", str(error.value)).group(1))  # what the message says is what is there
    assert (f"(the run's metrics and its resume file hold epochs 1-{epoch - 1})" if epoch > 1
            else "(no epoch was saved)") in str(error.value)
    assert [row["epoch"] for row in read_metrics(metrics_path(settings.cell_folder, 1))] == list(range(1, epoch))


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupted_resume_state_is_reported(tmp_path, tiny_dataset_dir, damage):
    settings = _settings(tmp_path, tiny_dataset_dir, "std")
    with pytest.raises(_Killed):
        train_run(settings, 1, epoch_callbacks=[_kill_after(1)])
    state = settings.cell_folder / "1.resume.pt"
    content = state.read_bytes()
    state.write_bytes(content[: len(content) // 3] if damage == "truncate" else b"\x80\x04garbage")
    damaged = state.read_bytes()
    with pytest.raises(CheckpointError, match="cannot read checkpoint .*1.resume.pt"):
        train_run(settings, 1, resume=True)
    assert state.read_bytes() == damaged  # left as found: neither repaired nor overwritten nor removed
    assert not (settings.cell_folder / "1.pt").exists() and not list(finished_runs(settings.cell_folder).values())


def test_a_damaged_record_is_reported(tmp_path, tiny_dataset_dir):
    settings = _settings(tmp_path, tiny_dataset_dir, "std", runs=1)
    settings.cell_folder.mkdir(parents=True)
    (settings.cell_folder / "1.json").write_text('{"run": 1, "accuracy"\n')
    config = write_config(tmp_path / "c.yaml", settings.config)
    result = run_script("train.py", "--modality=std", f"--config={config}", "--continue_train", cwd=tmp_path)
    assert result.returncode == 2 and "1.json' is not valid JSON" in result.stderr
    assert (settings.cell_folder / "1.json").read_text() == '{"run": 1, "accuracy"\n'


def test_resuming_with_changed_settings_is_refused(tmp_path, tiny_dataset_dir):
    settings = _settings(tmp_path, tiny_dataset_dir, "std")
    with pytest.raises(_Killed):
        train_run(settings, 1, epoch_callbacks=[_kill_after(1)])
    changed = TrainSettings(dict(settings.config, batch_size_train=16), "std")
    with pytest.raises(CheckpointError, match="differs in: batch_size_train"):
        train_run(changed, 1, resume=True)


def test_checkpoints_load_safely_on_cpu(tmp_path, tiny_dataset_dir):
    settings = _settings(tmp_path, tiny_dataset_dir, "memory", runs=1)
    train_run(settings, 1)
    content = torch.load(settings.cell_folder / "1.pt", map_location="cpu", weights_only=True)
    assert json.loads(json.dumps(content["config"])) == content["config"]
    assert content["run"] == 1 and content["seed"] == 0 and content["mem_examples"] == 10


# ---- what a record says of its split ---------------------------------------------------------------
@pytest.mark.parametrize("validation_size, train_examples, subset", [
    (20, 50, 50),  # a subset of the asked size
    (20, 1000, 180),  # more than there is: the whole rest of the 200 after the validation hold-out
    (0, 1000, 200),  # validation_size 0 is honoured: no hold-out at all (not the dataset's 6,000)
])
def test_the_record_gives_the_real_size_of_the_training_subset(tmp_path, tiny_dataset_dir, validation_size,
                                                               train_examples, subset):
    section = {"num_classes": 10, "num_epochs": 1, "opt_milestones": [], "mem_examples": 2,
               "validation_size": validation_size}
    settings = _settings(tmp_path, tiny_dataset_dir, "std", train_examples=train_examples, runs=1, eval_passes=1,
                         batch_size_train=100, CIFAR10=section)
    train_run(settings, 1)
    record = finished_runs(settings.cell_folder)[1]
    assert record["train_examples"] == train_examples and record["train_subset_size"] == subset
    train, validation = split_indices(200, train_examples, validation_size, seed=0)
    assert len(train) == subset and len(validation) == validation_size and not set(train) & set(validation)
    assert record["train_indices_sha256"] == indices_digest(train)  # the fixture-pinned digest of this split
