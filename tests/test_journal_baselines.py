"""Journal baselines integrated: Matching Networks and ProtoNet trained by the one loop, the majority
vote through its evaluation code, and the comparison table of `grid.py report`, on known answers.

Everything runs on DIGITS (embedded, no download) and the CPU.
"""
from __future__ import annotations

import copy
import csv
import json
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml

from conftest import REPO
from suite.run_files import finished_runs, write_record
from suite.config import TrainSettings, cell_folder, load_config
from suite.data import build_run_data
from suite.cli import UserError
from suite.evaluation import evaluate
from suite.gridspec import Cell, load_grid
from suite.journal.comparison import MAJORITY_VOTE_FILE
from suite.journal.majority_vote_eval import majority_vote_folder, vote_evaluation
from suite.recipe import build_loss, build_model, build_optimizer, build_scheduler
from suite.restore import CheckpointOptions
from suite.training import RunState, train_epoch, train_run
from test_grid import TINY_VIT, grid_cli, grid_env, write_tiny_grid

QUICKSTART = REPO / "config" / "quickstart.yaml"
CPU = CheckpointOptions(device="cpu")
CLASSES = 10


def digits_settings(tmp_path: Path, modality: str, *overrides: str) -> TrainSettings:
    config = load_config(QUICKSTART, ["device=cpu", f"models_dir={tmp_path / 'models'}", "DIGITS.num_epochs=1",
                                      *overrides])
    return TrainSettings(config, modality)


def population_stats(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


# ---- ProtoNet: a support missing classes, through the real training step ---------------------------
def test_protonet_support_missing_classes_through_the_real_training_step(tmp_path):
    # 30 training digits in one batch, a support of 4: at least 6 of the 10 classes are absent.
    settings = digits_settings(tmp_path, "protonet", "train_examples=30", "batch_size_train=30",
                               "DIGITS.mem_examples=4")
    data = build_run_data(settings.config, 0, "cpu")
    torch.manual_seed(0)
    model = build_model(settings)
    optimizer = build_optimizer(model, settings.config["optimizer"])
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    state = RunState(model, optimizer, build_scheduler(optimizer, settings), scaler, data)

    # Replay the step's draws on copies of the run's generators, with a copy of the model.
    replica = copy.deepcopy(state.model).train()
    copies = {name: torch.Generator().set_state(g.get_state()) for name, g in data.generators.items()}
    replay = replace(data, generators=copies)
    inputs, targets = next(replay.train_batches())
    memory, labels = replay.training_memory().draw()
    present = set(labels.tolist())
    reachable = [int(t) in present for t in targets]
    assert len(present) <= 4 and any(reachable) and not all(reachable)
    logits = replica(inputs, memory, memory_labels=labels)
    assert torch.isneginf(logits[:, [c for c in range(CLASSES) if c not in present]]).all()
    log_p = torch.log_softmax(logits, dim=1)
    hand = -torch.stack([log_p[i, t] for i, t in enumerate(targets.tolist()) if reachable[i]]).mean()

    before = {name: p.detach().clone() for name, p in state.model.named_parameters()}
    loss_sum, correct, steps, seen = train_epoch(state, build_loss(settings), False, "one step")
    assert (steps, seen) == (1, 30)
    assert math.isfinite(float(loss_sum)) and float(loss_sum) == pytest.approx(hand.item(), rel=1e-5)

    # The real step moved the weights exactly as SGD on the hand-computed loss does.
    optimizer = build_optimizer(replica, settings.config["optimizer"])
    optimizer.zero_grad()
    hand.backward()
    optimizer.step()
    changed = 0
    for (name, real), (_, expected) in zip(state.model.named_parameters(), replica.named_parameters()):
        assert torch.isfinite(real).all(), name
        torch.testing.assert_close(real, expected, rtol=1e-4, atol=1e-6)
        changed += int(not torch.equal(real, before[name]))
    assert changed > 0


def test_matching_run_resumes_to_the_same_numbers(tmp_path):
    class Killed(Exception):
        pass

    def kill_after_first(stats, state) -> None:
        if stats.epoch == 1:
            raise Killed

    # A tiny ViT keeps the LSTMs small (width 32); the head and its state are the same for every encoder.
    overrides = ("model=vit", *(f"model_options.{k}={v}" for k, v in TINY_VIT.items()), "train_examples=40",
                 "batch_size_train=20", "DIGITS.mem_examples=8", "DIGITS.num_epochs=2", "eval_passes=2",
                 "batch_size_test=250")
    whole = train_run(digits_settings(tmp_path / "whole", "matching", *overrides), 1).record
    killed = digits_settings(tmp_path / "killed", "matching", *overrides)
    with pytest.raises(Killed):
        train_run(killed, 1, epoch_callbacks=[kill_after_first])
    resumed = train_run(killed, 1, resume=True).record
    assert resumed["pass_accuracies"] == whole["pass_accuracies"] and resumed["loss"] == whole["loss"]
    assert whole["modality"] == "matching" and 0 < whole["train_seconds"] and len(whole["pass_accuracies"]) == 2


# ---- majority vote through the evaluation code, with a stub model -----------------------------------
def fingerprint(images: torch.Tensor) -> torch.Tensor:
    weights = torch.linspace(1.0, 2.0, images[0].numel(), dtype=torch.float64)
    return images.flatten(1).double() @ weights


class StubVoter(torch.nn.Module):
    """A memory model whose weights and predictions the test sets.

    Its encoding of an image is the label of the training image it is (-1 for any other image), so a
    memory sample's features tell its class. Weights: `shares` on the first sample of each class in
    `voters` (in draw order), 0 elsewhere. Prediction: a training image of class c is predicted
    c + 1 (mod 10); any other input (the test images) `test_prediction`.
    """

    uses_memory = uses_memory_labels = True
    num_classes = CLASSES

    def __init__(self, data, voters: tuple[int, ...], shares: tuple[float, ...], test_prediction: int):
        super().__init__()
        self.keys = fingerprint(data.train_transform(data.train.images))
        self.key_labels = data.train.labels
        self.voters, self.shares, self.test_prediction = voters, shares, test_prediction
        self.calls = 0

    def forward_encoder(self, x: torch.Tensor) -> torch.Tensor:
        match = (fingerprint(x)[:, None] - self.keys[None]).abs() < 1e-6
        labels = torch.where(match.any(dim=1), self.key_labels[match.int().argmax(dim=1)], -1)
        return labels.float().unsqueeze(1)

    def classify(self, features, memory_features, memory_labels, return_weights=False):
        self.calls += 1
        assert torch.equal(memory_features[:, 0].long(), memory_labels), "memory features and labels of two draws"
        weights = torch.zeros(features.shape[0], memory_labels.shape[0])
        for cls, share in zip(self.voters, self.shares):
            weights[:, int((memory_labels == cls).nonzero()[0])] = share
        queries = features[:, 0].long()
        predictions = torch.where(queries >= 0, (queries + 1) % CLASSES, self.test_prediction)
        logits = torch.nn.functional.one_hot(predictions, CLASSES).float()
        return (logits, weights) if return_weights else logits


@pytest.mark.parametrize("voters, shares, mvo_class, mvy_class", [
    ((5, 3), (0.7, 0.3), 4, 3),  # a tie (one vote each): the smaller class, although 5 weighs more
    ((7,), (1.0,), 8, 7),  # all the weight on one sample: that sample decides
])
def test_majority_vote_evaluation_with_a_stub_model(tmp_path, voters, shares, mvo_class, mvy_class):
    # The memory is the whole 30-image subset in a fresh order at every draw, so every class of the
    # subset is in every draw; 500 test digits in batches of 200, 2 passes.
    settings = digits_settings(tmp_path, "encoder_memory", "train_examples=30", "DIGITS.mem_examples=30",
                               "batch_size_test=200")
    data = build_run_data(settings.config, 0, "cpu")
    assert set(voters) <= set(data.train.labels.tolist())
    stub = StubVoter(data, voters, shares, test_prediction=5)
    test_keys = fingerprint(data.test_transform(data.test.images))
    assert not torch.isin(test_keys, stub.keys).any()  # no test digit is also a training digit

    passes = vote_evaluation(stub, data, passes=2)
    labels = data.test.labels
    expected = {name: 100.0 * float((labels == cls).double().mean())
                for name, cls in (("model", 5), ("mvo", mvo_class), ("mvy", mvy_class))}
    assert len(passes) == 2 and stub.calls == 2 * 2 * 3  # per batch: the inputs with M, then M with A
    single = len(voters) == 1
    for result in passes:
        tally = result.tally
        assert tally.total == 500
        assert tally.model_accuracy == pytest.approx(expected["model"])
        assert tally.mvo_accuracy == pytest.approx(expected["mvo"])
        assert tally.mvy_accuracy == pytest.approx(expected["mvy"])
        assert (result.single_voter, result.mvo_ties, result.mvy_ties, result.no_vote) == \
            ((500, 0, 0, 0) if single else (0, 500, 500, 0))


def test_majority_vote_keeps_the_evaluation_draws_and_repeats(tmp_path):
    """A real (untrained) model: the model accuracy of every pass is the evaluation's, and a second
    call gives the same votes. ProtoNet, because its predictions follow the draw even untrained (and a
    memory of 10 leaves classes out: the -inf logits go through the vote too)."""
    settings = digits_settings(tmp_path, "protonet", "train_examples=60", "DIGITS.mem_examples=10",
                               "batch_size_test=100")
    data = build_run_data(settings.config, 3, "cpu")
    torch.manual_seed(0)
    model = build_model(settings).eval()
    evaluation = evaluate(model, data, 3)
    assert len(set(evaluation.pass_accuracies)) > 1  # the draws matter, so agreeing is not luck
    first, second = vote_evaluation(model, data, 3), vote_evaluation(model, data, 3)
    assert [p.tally.model_accuracy for p in first] == list(evaluation.pass_accuracies)
    assert [p.as_dict() for p in first] == [p.as_dict() for p in second]


# ---- end to end: train.py and grid.py train the baselines, eval_dir.py votes, grid.py report compares ---
METHODS = ("std", "memory", "encoder_memory", "matching", "protonet")
TRAINED = ("encoder_memory", "matching", "protonet")  # std and memory: tests/test_grid.py


def _cell(folder: Path, modality: str) -> Path:
    return folder / "models" / "DIGITS" / modality / "shufflenet" / "60"


@pytest.fixture(scope="module")
def journal_grid(tmp_path_factory):
    """ProtoNet's cell trained by train.py, the others by grid.py (which then skips ProtoNet's runs);
    majority votes of Memory Wrap by eval_dir.py; the report. One thread per process throughout."""
    folder = tmp_path_factory.mktemp("journal_grid")
    path = write_tiny_grid(folder, name="journal", models=("shufflenet",), sizes=(60,), modalities=TRAINED,
                           extra=("eval_passes=2",))
    grid = yaml.safe_load(path.read_text())
    sets = [f"--set={item}" for item in grid["overrides"] + ["model=shufflenet", "train_examples=60", "runs=2"]]
    trained = subprocess.run([sys.executable, str(REPO / "train.py"), "--modality=protonet", f"--config={QUICKSTART}",
                              *sets], cwd=folder, env=grid_env(), capture_output=True, text=True, timeout=300)
    assert trained.returncode == 0, trained.stderr[-3000:]
    result = grid_cli(f"--grid={path}", cwd=folder, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    voted = subprocess.run([sys.executable, str(REPO / "eval_dir.py"), "--majority_vote",
                            f"--path={_cell(folder, 'encoder_memory')}"],
                           cwd=folder, env=grid_env(), capture_output=True, text=True, timeout=300)
    assert voted.returncode == 0, voted.stderr[-3000:]
    votes = json.loads((_cell(folder, "encoder_memory") / MAJORITY_VOTE_FILE).read_text())
    report = grid_cli("report", f"--grid={path}", f"--out={folder / 'report'}", cwd=folder, timeout=120)
    assert report.returncode == 0, report.stderr[-3000:]
    return folder, trained, result, (voted.stdout, votes), report


def _records(folder: Path, modality: str) -> list[dict]:
    return list(finished_runs(_cell(folder, modality)).values())


@pytest.mark.slow
def test_train_py_and_the_grid_train_matching_and_protonet(journal_grid):
    folder, trained, result, _, _ = journal_grid
    assert trained.stdout.splitlines()[-1].startswith("Mean Accuracy:")
    assert "Grid summary: 4 trained, 2 already done" in result.stdout and "0 failed" in result.stdout
    for modality in TRAINED:
        records = _records(folder, modality)
        assert [r["run"] for r in records] == [1, 2] and all(r["modality"] == modality for r in records)
        for record in records:
            assert len(record["pass_accuracies"]) == 2 and math.isfinite(record["loss"])
            assert record["accuracy"] == pytest.approx(sum(record["pass_accuracies"]) / 2)
            assert 0 < record["train_seconds"] and 0 < record["eval_seconds"]
            assert (_cell(folder, modality) / f"{record['run']}.pt").is_file()
    # Runs 1 and 2 train on their own subsets (split seeds 0 and 1), as for the paper's modalities.
    subsets = [r["train_indices_sha256"] for r in _records(folder, "matching")]
    assert subsets == [r["train_indices_sha256"] for r in _records(folder, "protonet")] and len(set(subsets)) == 2


@pytest.mark.slow
def test_majority_vote_of_a_cell_reports_the_recorded_accuracy(journal_grid):
    folder, _, _, (stdout, payload), _ = journal_grid
    records = _records(folder, "encoder_memory")
    assert [r["run"] for r in payload["runs"]] == [1, 2]
    for record, voted in zip(records, payload["runs"]):
        assert voted["accuracy"] == record["accuracy"]  # same draws, same thread count: identical
        assert voted["pass_accuracies"] == record["pass_accuracies"]
        assert voted["settings"] == record["settings"]
        for name in ("mvo", "mvy"):
            per_pass = [100.0 * p[f"{name}_correct"] / p["total"] for p in voted["pass_counts"]]
            assert voted[f"pass_{name}_accuracies"] == per_pass
            assert voted[f"{name}_accuracy"] == pytest.approx(sum(per_pass) / 2)
    mean, std = population_stats([r["mvy_accuracy"] for r in payload["runs"]])
    assert {k: payload["summary"]["mvy_accuracy"][k] for k in ("mean", "std", "n")} == pytest.approx(
        {"mean": mean, "std": std, "n": 2})
    assert f"MVY Accuracy:{mean:.2f} | Std Dev:{std:.2f}" in stdout.splitlines()[-2]
    assert stdout.splitlines()[-1].startswith("Saved ") and stdout.splitlines()[-1].endswith("majority_vote.json")


@pytest.mark.slow
def test_grid_report_writes_the_comparison_computed_by_hand(journal_grid):
    folder, _, _, (_, votes), report = journal_grid
    markdown = (folder / "report" / "comparison.md").read_text()
    rows = list(csv.DictReader((folder / "report" / "comparison.csv").open()))
    assert "comparison.md" in report.stdout and (folder / "report" / "table1.md").is_file()
    assert [(r["modality"], r["measure"]) for r in rows] == [(m, "accuracy") for m in TRAINED] + [
        ("encoder_memory", "mvo"), ("encoder_memory", "mvy")]
    for row in rows:
        if row["measure"] == "accuracy":
            values = [r["accuracy"] for r in _records(folder, row["modality"])]
        else:
            values = [r[f"{row['measure']}_accuracy"] for r in votes["runs"]]
        mean, std = population_stats(values)
        assert (row["n"], row["runs"]) == ("2", "2")
        assert float(row["mean"]) == pytest.approx(mean, abs=1e-4) and float(row["std"]) == pytest.approx(std, abs=1e-4)
        assert f"| {row['method']} | {by_hand(values, 2)} |" in markdown


def test_majority_vote_refuses_std_models(tmp_path):
    settings = digits_settings(tmp_path, "std", "model=vit", *(f"model_options.{k}={v}" for k, v in TINY_VIT.items()),
                               "train_examples=40", "batch_size_train=40")
    train_run(settings, 1)
    with pytest.raises(UserError, match="std model"):
        majority_vote_folder(str(settings.cell_folder), CPU, out=lambda _: None)
    assert not (settings.cell_folder / MAJORITY_VOTE_FILE).exists()


# ---- the comparison table from given records --------------------------------------------------------
def _fake_run(settings: dict, cell: Cell, run: int, accuracy: float) -> dict:
    return {"run": run, "seed": run - 1, "accuracy": accuracy, "loss": 1.0, "dataset": cell.dataset,
            "model": cell.model, "modality": cell.modality, "train_examples": cell.train_examples,
            "train_subset_size": cell.train_examples, "settings": settings}


def _append(folder: Path, record: dict) -> None:
    write_record(folder, record)


T_975 = {1: 12.70620474, 2: 4.30265273}  # Student t, two-sided 95 %, by degrees of freedom (printed tables)


def by_hand(values: list[float], runs: int) -> str:
    """mean ± population std (n; 95 % CI of the mean) of a report cell, computed here from the formulas."""
    mean, std = population_stats(values)
    count = f"n={len(values)}" if len(values) >= runs else f"n={len(values)}/{runs}"
    if len(values) < 2:
        return f"{mean:.2f} ± {std:.2f} ({count}; CI n/a)"
    half = T_975[len(values) - 1] * std / math.sqrt(len(values) - 1)
    return f"{mean:.2f} ± {std:.2f} ({count}; CI {mean - half:.2f}–{mean + half:.2f})"


def test_comparison_table_numbers_are_the_given_records_by_hand(tmp_path):
    from suite.report import write_report

    grid_file = tmp_path / "journal.yaml"
    grid_file.write_text(yaml.safe_dump({
        "base_config": str(REPO / "config" / "train.yaml"), "datasets": ["SVHN"], "models": ["wrn28_2"],
        "train_examples": [1000, 2000], "modalities": list(METHODS), "runs": 3,
        "overrides": [f"models_dir={tmp_path / 'models'}"]}))
    grid = load_grid(grid_file)
    names = ["SVHN", "CIFAR10", "CINIC10", "DIGITS"]
    models = tmp_path / "models"

    def settings(cell: Cell) -> dict:
        return grid.cell_settings(cell, names, ["wrn28_2"]).comparable_json()

    given = {("std", 1000): [50.0, 52.0, 57.0], ("encoder_memory", 1000): [60.0, 64.0, 62.0],
             ("memory", 1000): [58.0], ("matching", 1000): [40.0, 41.0, 42.0], ("protonet", 1000): [30.0, 33.0],
             ("encoder_memory", 2000): [70.0, 71.0, 75.0]}
    for (modality, size), accuracies in given.items():
        cell = Cell("SVHN", "wrn28_2", size, modality)
        for run, accuracy in enumerate(accuracies, start=1):
            _append(cell_folder(models, "SVHN", modality, "wrn28_2", size),
                    _fake_run(settings(cell), cell, run, accuracy))
    wrap = Cell("SVHN", "wrn28_2", 1000, "encoder_memory")
    vote_runs = [{"run": run, "mvo_accuracy": mvo, "mvy_accuracy": mvy, "settings": settings(wrap),
                  "recorded_accuracy": recorded}  # voted with the checkpoint whose record gives that accuracy
                 for run, mvo, mvy, recorded in ((1, 55.0, 48.0, 60.0), (2, 59.0, 50.0, 64.0), (3, 60.0, 53.0, 62.0))]
    vote_runs.append({"run": 4, "mvo_accuracy": 99.0, "mvy_accuracy": 99.0, "settings": settings(wrap)})  # beyond
    vote_runs.append({"run": 1, "mvo_accuracy": 1.0, "mvy_accuracy": 1.0,  # other settings: left out
                      "settings": settings(wrap) | {"batch_size_test": 7}})
    vote_runs = [vote_runs[4]] + vote_runs[:4]
    folder = cell_folder(models, "SVHN", "encoder_memory", "wrn28_2", 1000)
    (folder / MAJORITY_VOTE_FILE).write_text(json.dumps({"runs": vote_runs}))

    _, paths = write_report(grid, tmp_path / "report")
    markdown = paths["comparison_markdown"].read_text()
    table = markdown.split("| Method | 1000 | 2000 |")[1]
    expected_lines = [
        f"| Std | {by_hand([50, 52, 57], 3)} | missing |",
        f"| Only Memory | {by_hand([58], 3)} | missing |",
        f"| Memory Wrap | {by_hand([60, 64, 62], 3)} | {by_hand([70, 71, 75], 3)} |",
        f"| Matching Networks | {by_hand([40, 41, 42], 3)} | missing |",
        f"| ProtoNet | {by_hand([30, 33], 3)} | missing |",
        "| Only Memory: majority vote of predictions (MVO) | missing | missing |",
        "| Only Memory: majority vote of labels (MVY) | missing | missing |",
        f"| Memory Wrap: majority vote of predictions (MVO) | {by_hand([55, 59, 60], 3)} | missing |",
        f"| Memory Wrap: majority vote of labels (MVY) | {by_hand([48, 50, 53], 3)} | missing |",
    ]
    assert expected_lines[0] == "| Std | 53.00 ± 2.94 (n=3; CI 44.04–61.96) | missing |"  # sqrt(26/3), t(2) = 4.303
    assert [line for line in table.splitlines() if line.startswith("| ") and "---" not in line] == expected_lines
    assert "## SVHN, wrn28_2" in markdown
    assert "runs evaluated with other settings left out (differ in: batch_size_test)" in markdown
    assert "1 run(s) above the grid's 3 runs left out" in markdown
    assert "SVHN/memory/wrn28_2/1000: no majority votes yet" in markdown and "--majority_vote" in markdown

    rows = {(r["modality"], r["measure"], r["train_examples"]): r
            for r in csv.DictReader(paths["comparison_csv"].open())}
    assert len(rows) == 5 * 2 + 4 * 2
    row = rows[("std", "accuracy", "1000")]
    assert (row["n"], row["runs"], row["mean"], row["std"]) == ("3", "3", "53.0000", f"{math.sqrt(26 / 3):.4f}")
    row = rows[("encoder_memory", "mvy", "1000")]
    assert (row["method"], row["n"], row["mean"], row["std"]) == (
        "Memory Wrap: majority vote of labels (MVY)", "3", f"{151 / 3:.4f}", f"{population_stats([48, 50, 53])[1]:.4f}")
    assert (rows[("protonet", "accuracy", "2000")]["mean"], rows[("protonet", "accuracy", "2000")]["n"]) == ("", "0")


def test_table1_grids_get_no_comparison(tmp_path):
    from suite.report import write_report

    grid_file = tmp_path / "paper.yaml"
    grid_file.write_text(yaml.safe_dump({
        "base_config": str(REPO / "config" / "train.yaml"), "datasets": ["SVHN"], "models": ["mobilenet"],
        "train_examples": [1000], "modalities": ["std", "memory", "encoder_memory"], "runs": 2,
        "overrides": [f"models_dir={tmp_path / 'models'}"]}))
    grid = load_grid(grid_file)
    cell = Cell("SVHN", "mobilenet", 1000, "std")
    settings = grid.cell_settings(cell, ["SVHN", "CIFAR10", "CINIC10", "DIGITS"], ["mobilenet"]).comparable_json()
    _append(cell_folder(tmp_path / "models", "SVHN", "std", "mobilenet", 1000), _fake_run(settings, cell, 1, 50.0))
    _, paths = write_report(grid, tmp_path / "report")
    assert "comparison_markdown" not in paths and not (tmp_path / "report" / "comparison.md").exists()
    assert (tmp_path / "report" / "table1.md").exists()


def test_journal_comparison_grid_file_holds_the_five_methods():
    grid = load_grid(REPO / "config" / "journal_comparison.yaml")
    assert grid.modalities == METHODS and len(grid.datasets) == 1 and len(grid.models) == 1
    assert grid.runs == 15
