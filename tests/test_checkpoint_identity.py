"""A checkpoint is self-describing (issue 26): a checkpoint written by train.py records its run, seed and
settings, so every script that opens checkpoints gives the original file's numbers whatever the file
is called and wherever it lies: renamed (`best.pt`, `7.pt`), copied to another folder, or with its
whole folder moved. Folder commands number (and order) runs by the run a file holds, not by its name.

(Checkpoints of the original suite carry no seed; their file name decides it: tests/test_eval_scripts.py.)
The runs are the session's tiny trained ViT runs (tests/trained_runs.py): encoder_memory runs 1 and 2,
seeds 0 and 1, so a seed taken from any other file name than the original's gives other memory draws.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from suite import commands
from suite.cli import UserError
from suite.journal import quality_commands
from suite.journal.autoencoders import AutoencoderTraining
from suite.journal.cfproto import CFProtoOptions
from suite.journal.counterfactual_quality import CounterfactualSettings
from suite.journal.majority_vote_eval import majority_vote_folder
from suite.restore import CheckpointOptions
from suite.run_files import finished_runs
from trained_runs import trained_runs

CPU = CheckpointOptions(device="cpu")
# What names a file, a folder or a clock, never a number: left out when two outputs are compared.
PLACES = {"checkpoint", "folder", "path", "json", "files", "figure", "minutes", "search_minutes"}


@pytest.fixture(scope="session")
def runs(tmp_path_factory, tiny_dataset_dir):
    return trained_runs(tmp_path_factory, tiny_dataset_dir)


def _quiet(_: str) -> None:
    pass


def portable(value):
    """An output without its paths and timings: what must not depend on where a checkpoint lies."""
    if isinstance(value, dict):
        return {key: portable(item) for key, item in value.items() if key not in PLACES}
    if isinstance(value, list):
        return [portable(item) for item in value]
    return value


# ---- one checkpoint: eval.py, generate_memory_images.py, generate_heatmaps.py -----------------------------
def _single_checkpoint_outputs(path: Path, images: Path) -> dict:
    """What eval.py, generate_memory_images.py and generate_heatmaps.py make of one checkpoint: the
    evaluation's numbers and the figures' bytes (by file name)."""
    evaluation = commands.evaluate_checkpoint(str(path), CPU, passes=3, out=_quiet)
    memory = commands.memory_images(str(path), CheckpointOptions(device="cpu", batch_size_test=2), max_images=2,
                                    images_dir=images, out=_quiet)
    heat = commands.heatmaps(str(path), CheckpointOptions(device="cpu", batch_size_test=1), max_images=1,
                             method_options={"n_steps": 4, "internal_batch_size": 4}, images_dir=images, out=_quiet)
    figures = {str(p.relative_to(images)): p.read_bytes() for p in memory + heat}
    assert len(figures) == 2
    return {"evaluation": portable(evaluation), "figures": figures}


def test_a_renamed_copied_or_moved_checkpoint_gives_the_original_numbers_and_figures(runs, tmp_path):
    folder = runs.folders["encoder_memory"]
    source = folder / "2.pt"
    record = finished_runs(folder)[2]
    renamed = tmp_path / "renamed"
    renamed.mkdir()
    copies = [renamed / "best.pt", renamed / "7.pt"]
    for copy in copies:
        shutil.copy(source, copy)
    moved = tmp_path / "moved" / "cell"
    shutil.copytree(folder, moved, ignore=shutil.ignore_patterns("autoencoders", "*.png"))
    copies.append(moved / "2.pt")

    original = _single_checkpoint_outputs(source, tmp_path / "images_original")
    # The known answer: train.py's own evaluation of run 2 (seed 1), its 3 passes.
    evaluation = original["evaluation"]
    assert (evaluation["run"], evaluation["seed"]) == (2, 1)
    assert evaluation["pass_accuracies"] == record["pass_accuracies"] and evaluation["loss"] == record["loss"]
    for index, copy in enumerate(copies):
        assert _single_checkpoint_outputs(copy, tmp_path / f"images_{index}") == original, copy


# ---- a folder of runs: eval_dir.py (and --majority_vote), explanation_accuracy.py, the journal's three ----
# A short search with a large prediction weight, towards any other class: it finds counterfactuals for
# both inputs of each run, so each run has a figure.
CF_SETTINGS = CounterfactualSettings(CFProtoOptions(max_iterations=4, c_steps=1, c_init=1000.0, theta=1.0),
                                     target="any", max_inputs=2, figure_inputs=1)


def _folder_outputs(folder: Path) -> tuple[dict, list[str]]:
    """Every folder command on `folder`: their payloads (portable), the tables and figures they write
    beside the runs, and the notes they printed."""
    notes: list[str] = []
    quiet = {"out": _quiet, "note": notes.append}
    payloads = {
        "eval_dir": commands.evaluate_folder(str(folder), CPU, json_path="", **quiet),
        "majority_vote": majority_vote_folder(str(folder), CPU, passes=1, json_path="", **quiet),
        "explanation_accuracy": commands.explanation_accuracy(str(folder), CPU, passes=1, json_path="", **quiet),
        "explanation_quality": quality_commands.explanation_quality(
            str(folder), CheckpointOptions(device="cpu", batch_size_test=quality_commands.EXAMPLE_BATCH), **quiet),
        "train_autoencoders": quality_commands.train_autoencoders(str(folder), CPU, AutoencoderTraining(epochs=1, batch_size=256),
                                                                  **quiet),
        "counterfactual_quality": quality_commands.counterfactual_quality(
            str(folder), CheckpointOptions(device="cpu", batch_size_test=quality_commands.COUNTERFACTUAL_BATCH),
            CF_SETTINGS, **quiet),
    }
    written = {path.name: path.read_bytes() for pattern in ("example_quality.md", "example_quality.csv",
                                                            "counterfactual_quality*.csv", "counterfactual_quality*.md",
                                                            "counterfactuals_run*.png")
               for path in sorted(folder.glob(pattern))}  # the .json files hold paths: their payloads are compared
    return {"payloads": portable(payloads), "written": written}, notes


def test_a_moved_and_renumbered_folder_gives_the_original_numbers_in_every_folder_command(runs, tmp_path):
    """The same two runs in two folders: a cell folder with their own names, and another folder where
    they lie under names that say other runs (3.pt holds run 2, 8.pt run 1). Every folder command gives
    the same numbers, tables and figures, numbers runs by the run they hold (with a note), in run order."""
    folder = runs.folders["encoder_memory"]
    reference = tmp_path / "models" / "CIFAR10" / "encoder_memory" / "vit" / "100"
    renumbered = tmp_path / "elsewhere" / "renumbered"
    for target, names in ((reference, {1: "1.pt", 2: "2.pt"}), (renumbered, {1: "8.pt", 2: "3.pt"})):
        target.mkdir(parents=True)
        for run, name in names.items():
            shutil.copy(folder / f"{run}.pt", target / name)

    expected, notes = _folder_outputs(reference)
    assert not [n for n in notes if "holds run" in n]
    # The known answer: train.py's records, run by run (numbers, seeds, run order).
    records = finished_runs(folder)
    evaluated = expected["payloads"]["eval_dir"]["runs"]
    assert [(r["run"], r["seed"], r["accuracy"], r["pass_accuracies"]) for r in evaluated] == [
        (run, record["seed"], record["accuracy"], record["pass_accuracies"]) for run, record in records.items()]
    assert [r["seed"] for r in evaluated] == [0, 1]
    for command, payload in expected["payloads"].items():
        assert [r["run"] for r in payload["runs"]] == [1, 2], command
    figures = sorted(n for n in expected["written"] if n.endswith(".png"))  # named by run, then the options
    assert [re.fullmatch(r"counterfactuals_run(\d)(_.+)?\.png", n).group(1) for n in figures] == ["1", "2"]

    found, notes = _folder_outputs(renumbered)
    for command in expected["payloads"]:
        assert found["payloads"][command] == expected["payloads"][command], command
    assert found["written"] == expected["written"]
    # each of the six commands says so, once per file, in run order
    assert [n for n in notes if "holds run" in n] == [
        f"note: '{renumbered / '8.pt'}' holds run 1, not run 8: it is counted as run 1",
        f"note: '{renumbered / '3.pt'}' holds run 2, not run 3: it is counted as run 2"] * 6


def test_two_files_holding_one_run_are_refused_by_every_folder_command_before_any_work(runs, tmp_path):
    """A copy of run 1 named 7.pt beside 1.pt would count run 1 twice in every mean and std."""
    folder = tmp_path / "cell"
    folder.mkdir()
    for name in ("1.pt", "7.pt"):
        shutil.copy(runs.checkpoint("encoder_memory", 1), folder / name)
    shutil.copy(runs.checkpoint("encoder_memory", 2), folder / "2.pt")
    quiet = {"out": _quiet, "note": _quiet}
    folder_commands = [
        lambda: commands.evaluate_folder(str(folder), CPU, **quiet),
        lambda: majority_vote_folder(str(folder), CPU, **quiet),
        lambda: commands.explanation_accuracy(str(folder), CPU, **quiet),
        lambda: quality_commands.explanation_quality(str(folder), CPU, **quiet),
        lambda: quality_commands.train_autoencoders(str(folder), CPU, **quiet),
        lambda: quality_commands.counterfactual_quality(str(folder), CPU, **quiet),
    ]
    for command in folder_commands:
        with pytest.raises(UserError, match=re.escape(f"'{folder / '1.pt'}' and '{folder / '7.pt'}' hold the same run 1")):
            command()
    assert sorted(p.name for p in folder.iterdir()) == ["1.pt", "2.pt", "7.pt"]  # nothing written
