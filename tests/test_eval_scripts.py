"""eval.py and eval_dir.py: each modality through the CLI, exact agreement with train.py, checkpoint
restoration (this suite's, the original suite's, GPU-saved) and every bad input."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch

from conftest import run_script
from suite import commands
from suite.run_files import finished_runs, load_checkpoint
from suite.cli import CheckpointError, DatasetError, UserError
from suite.evaluation import plain_evaluate
from suite.restore import CheckpointOptions, folder_runs, restore_run, seed_from_name
from suite.data import split_indices

CPU = CheckpointOptions(device="cpu")
from trained_runs import trained_runs


@pytest.fixture(scope="session")
def runs(tmp_path_factory, tiny_dataset_dir):
    return trained_runs(tmp_path_factory, tiny_dataset_dir)


def _records(folder: Path) -> dict[int, dict]:
    return finished_runs(folder)


def _one_line_error(result, start: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {start}"), result.stderr


# ---- eval.py ----------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("modality", ["std", "memory", "encoder_memory"])
def test_eval_py_evaluates_each_modality(runs, tmp_path, modality):
    checkpoint = runs.checkpoint(modality)
    out = tmp_path / "result.json"
    result = run_script("eval.py", f"--path_model={checkpoint}", "--dataset=CIFAR10", f"--modality={modality}",
                        f"--json={out}", "--device=cpu", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Device:cpu" and lines[1].startswith(f"Checkpoint:{checkpoint} (CIFAR10 {modality} vit")
    payload = json.loads(out.read_text())
    record = _records(runs.folders[modality])[1]
    expected = "Loss:{loss:.4f} | Accuracy {accuracy:.2f}".format(**payload)
    if modality == "std":
        assert lines[2] == expected and payload["passes"] == 1
        assert payload["accuracy"] == record["accuracy"] and payload["loss"] == record["loss"]
    else:
        # 10 passes by default; they continue the seeded stream that train.py's passes started.
        assert lines[2] == expected + " | Passes:10" and len(payload["pass_accuracies"]) == 10
        assert payload["pass_accuracies"][: len(record["pass_accuracies"])] == record["pass_accuracies"]
    assert payload["seed"] == 0 and payload["run"] == 1


@pytest.mark.parametrize("cell", ["encoder_memory", "cnn"])
def test_eval_with_the_training_pass_count_gives_train_py_numbers(runs, cell):
    """train.py evaluates the model it has just trained (left in train mode by the last epoch); eval.py a
    freshly restored one. The CNN cell has BatchNorm: any test batch seen in train mode would move its
    statistics and the two would part."""
    folder = runs.folders[cell]
    for run, record in _records(folder).items():
        passes = len(record["pass_accuracies"])
        payload = commands.evaluate_checkpoint(str(folder / f"{run}.pt"), CPU, passes=passes, out=lambda _: None)
        assert payload["pass_accuracies"] == record["pass_accuracies"] and payload["loss"] == record["loss"]
        checkpoint = load_checkpoint(folder / f"{run}.pt")  # the checkpoint carries the record's mean accuracy
        assert (checkpoint["accuracy"], checkpoint["run"], checkpoint["seed"]) == (record["accuracy"], run, run - 1)
    if cell == "encoder_memory":  # passes differ here, so the mean is not any single pass
        assert any(len(set(r["pass_accuracies"])) > 1 for r in _records(folder).values())


# ---- eval_dir.py ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_eval_dir_prints_exactly_what_train_py_printed(runs, tmp_path):
    folder = tmp_path / "cell"
    shutil.copytree(runs.folders["encoder_memory"], folder)
    (folder / "pretrained.pt").write_bytes(b"not a run")  # skipped with a note, never opened
    (folder / "notes.txt").write_text("ignored")
    result = run_script("eval_dir.py", f"--path={folder}/", "--device=cpu", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "note: skipping" in result.stderr and "pretrained.pt" in result.stderr
    trained = {m.group(1): m.group(2) for m in re.finditer(r"^Run:(\d+) \| Loss:\S+ \| Accuracy (\S+) \|",
                                                            runs.train_stdout, re.M)}
    evaluated = {m.group(1): m.group(2) for m in re.finditer(r"^Run:(\d+) \| Accuracy (\S+) \|", result.stdout, re.M)}
    assert trained and evaluated == trained
    train_summary = runs.train_stdout.strip().splitlines()[-1]  # Mean Accuracy:x | Std Dev Accuracy:y
    *_, summary, saved = result.stdout.strip().splitlines()
    assert summary.startswith(train_summary + " | Runs:2") and saved == f"Saved {folder / 'eval_dir.json'}"
    payload = json.loads((folder / "eval_dir.json").read_text())
    records = _records(folder)
    assert [r["run"] for r in payload["runs"]] == [1, 2]
    for entry in payload["runs"]:
        assert entry["pass_accuracies"] == records[entry["run"]]["pass_accuracies"]
        assert entry["accuracy"] == records[entry["run"]]["accuracy"] and entry["passes"] == 3


@pytest.mark.slow
@pytest.mark.parametrize("modality", ["std", "memory"])
def test_eval_dir_handles_each_modality(runs, tmp_path, modality):
    folder = runs.folders[modality]
    out = tmp_path / "out.json"
    result = run_script("eval_dir.py", f"--path={folder}", f"--modality={modality}", "--dataset=CIFAR10",
                        f"--json={out}", "--device=cpu", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    record = _records(folder)[1]
    assert re.search(rf"^Run:1 \| Accuracy {record['accuracy']:.2f} \| Mean Accuracy:{record['accuracy']:.2f} \| "
                     r"Std Dev:0\.00 \| E:\d+\.\d\dmin$", result.stdout, re.M), result.stdout
    assert json.loads(out.read_text())["runs"][0]["pass_accuracies"] == record["pass_accuracies"]


def test_folder_runs_are_numeric_and_slash_insensitive(tmp_path):
    for name in ["10.pt", "2.pt", "1.pt", "best.pt", "1.resume.pt", "results.jsonl"]:
        (tmp_path / name).write_bytes(b"")
    notes = []
    for folder in (str(tmp_path), f"{tmp_path}/"):
        assert [n for n, _ in folder_runs(folder, notes.append)] == [1, 2, 10]
    assert sorted(Path(re.search(r"'(.*)'", n).group(1)).name for n in notes[:2]) == ["1.resume.pt", "best.pt"]


# ---- restoring checkpoints --------------------------------------------------------------------------
def _original_style(source: Path, target: Path, dataset: str = "DIGITS") -> Path:
    """A checkpoint with only the original suite's seven keys."""
    checkpoint = load_checkpoint(source)
    keys = ("model_state_dict", "train_examples", "mem_examples", "model_name", "num_classes", "modality")
    torch.save({**{k: checkpoint[k] for k in keys}, "dataset_name": dataset}, target)
    return target


def test_original_suite_checkpoints_take_defaults_and_the_seed_from_the_name(runs, tmp_path):
    """The original suite trained CNNs without model_options; a shufflenet checkpoint stands for them."""
    source = runs.checkpoint("cnn")
    third = restore_run(_original_style(source, tmp_path / "3.pt"), CPU)
    assert third.seed == 2 and third.run == 3
    assert third.settings.config["batch_size_test"] == 500 and third.settings.mem_examples == 10
    assert third.data.spec.name == "DIGITS" and third.data.train.indices == split_indices(1297, 100, 100, 2)[0]
    other = restore_run(_original_style(source, tmp_path / "pretrained.pt"), CPU)
    assert other.seed == 42 and other.run is None
    assert other.data.train.indices == split_indices(1297, 100, 100, 42)[0]
    payload = commands.evaluate_checkpoint(str(tmp_path / "3.pt"), CPU, passes=2, out=lambda _: None)
    # The straightforward evaluation of those weights on seed 2's subset and draws (500 test digits, one batch).
    expected = plain_evaluate(third.model, third.data, 2)
    assert payload["pass_accuracies"] == list(expected.pass_accuracies) and payload["loss"] == expected.loss
    assert payload["seed"] == 2 and payload["batch_size_test"] == 500
    assert [seed_from_name(Path(n)) for n in ("1.pt", "15.pt", "0.pt", "x.pt")] == [0, 14, 42, 42]


def test_configs_with_defaulted_keys_restore(runs, tmp_path):
    """A checkpoint's config with None for "the dataset's default validation size" (as earlier configs stored
    it) restores with the dataset's value filled in (DIGITS: 100)."""
    checkpoint = load_checkpoint(runs.checkpoint("memory"))
    section = dict(checkpoint["config"]["CIFAR10"], validation_size=None)
    config = dict(checkpoint["config"], dataset_name="DIGITS", DIGITS=section)
    torch.save(dict(checkpoint, dataset_name="DIGITS", config=config), tmp_path / "1.pt")
    restored = restore_run(tmp_path / "1.pt", CPU)
    assert restored.seed == 0 and len(restored.data.train) == 100
    assert restored.settings.config["DIGITS"]["validation_size"] == 100


def test_a_checkpoint_saved_on_a_gpu_opens_on_the_cpu(runs, tmp_path, monkeypatch):
    """Tensors tagged 'cuda:0' (as torch.save writes them on a GPU) need map_location on a CPU-only machine."""
    checkpoint = load_checkpoint(runs.checkpoint("std"))
    target = tmp_path / "1.pt"
    with monkeypatch.context() as patch:
        patch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        torch.save(checkpoint, target)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a CPU-only machine, even where CUDA exists
    with pytest.raises(RuntimeError, match="CUDA"):
        torch.load(target, weights_only=True)
    restored = restore_run(target, CPU)
    assert next(restored.model.parameters()).device.type == "cpu"
    payload = commands.evaluate_checkpoint(str(target), CPU, out=lambda _: None)
    assert payload["accuracy"] == _records(runs.folders["std"])[1]["accuracy"]


# ---- bad input --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_bad_input_through_the_cli(runs, tmp_path):
    """Missing checkpoint, mismatched --dataset, missing folder: one line, exit 2 (the rest in-process)."""
    checkpoint = runs.checkpoint("encoder_memory")
    _one_line_error(run_script("eval.py", "--path_model=missing.pt", cwd=tmp_path),
                    "checkpoint 'missing.pt' not found")
    _one_line_error(run_script("eval.py", f"--path_model={checkpoint}", "--dataset=SVHN", cwd=tmp_path),
                    f"--dataset=SVHN does not match checkpoint '{checkpoint}', which holds a CIFAR10 encoder_memory")
    _one_line_error(run_script("eval_dir.py", f"--path={tmp_path / 'nowhere'}", cwd=tmp_path), "folder '")


def _quiet(_: str) -> None:
    pass


def test_unreadable_and_foreign_checkpoints_are_one_line_errors(runs, tmp_path):
    (tmp_path / "garbage.pt").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match=r"garbage.pt' is not a PyTorch checkpoint \(it holds text\)"):
        restore_run(tmp_path / "garbage.pt")
    (tmp_path / "binary.pt").write_bytes(bytes([0xFF, 0xFE, 0x00, 0x81]) * 8)
    with pytest.raises(CheckpointError, match=r"binary.pt' is not a PyTorch checkpoint \(an unknown format\)"):
        restore_run(tmp_path / "binary.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty.pt' is not a PyTorch checkpoint \(an empty file\)"):
        restore_run(tmp_path / "empty.pt")
    (tmp_path / "truncated.pt").write_bytes(runs.checkpoint("std").read_bytes()[:300])
    with pytest.raises(CheckpointError, match="cannot read checkpoint .*corrupted, truncated or unsafe"):
        restore_run(tmp_path / "truncated.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="is not a Memory Wrap checkpoint"):
        restore_run(tmp_path / "foreign.pt")
    checkpoint = load_checkpoint(runs.checkpoint("std"))
    torch.save(dict(checkpoint, modality="encoder_memory"), tmp_path / "mismatch.pt")  # std weights, memory model
    with pytest.raises(CheckpointError, match="weights do not fit model 'vit'"):
        restore_run(tmp_path / "mismatch.pt")
    torch.save(dict(checkpoint, model_name="lenet"), tmp_path / "unknown.pt")
    with pytest.raises(CheckpointError, match="inconsistent|cannot rebuild"):
        restore_run(tmp_path / "unknown.pt")


def test_bad_arguments_and_folders_are_user_errors(runs, tmp_path):
    checkpoint = str(runs.checkpoint("encoder_memory"))
    with pytest.raises(UserError, match="--modality=memory does not match"):
        restore_run(checkpoint, CheckpointOptions(modality="memory"))
    with pytest.raises(UserError, match="--modality=std does not match"):
        commands.evaluate_folder(str(runs.folders["encoder_memory"]), CheckpointOptions(modality="std", device="cpu"), out=_quiet,
                                 note=_quiet)
    with pytest.raises(UserError, match="--passes must be at least 1"):
        commands.evaluate_checkpoint(checkpoint, CPU, passes=0, out=_quiet)
    with pytest.raises(UserError, match="--batch_size_test must be at least 1"):
        commands.evaluate_checkpoint(checkpoint, CheckpointOptions(batch_size_test=0, device="cpu"), out=_quiet)
    with pytest.raises(DatasetError, match="CIFAR10 files not found"):
        commands.evaluate_checkpoint(checkpoint, CheckpointOptions(dataset_dir=str(tmp_path / "nowhere"), device="cpu"),
                                     out=_quiet)
    with pytest.raises(UserError, match="holds no run checkpoints"):
        commands.evaluate_folder(str(tmp_path), out=_quiet, note=_quiet)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copy(runs.checkpoint("std"), mixed / "1.pt")
    shutil.copy(runs.checkpoint("memory"), mixed / "2.pt")
    with pytest.raises(UserError, match="mixes runs of different cells"):
        commands.evaluate_folder(str(mixed), CPU, out=_quiet, note=_quiet)
    (tmp_path / "blocker").write_bytes(b"")
    with pytest.raises(UserError, match="cannot write"):
        commands.evaluate_checkpoint(checkpoint, CPU, json_path=str(tmp_path / "blocker" / "x.json"), out=_quiet)
