"""explanation_accuracy.py, generate_memory_images.py, generate_heatmaps.py and their shared pieces:
the counting on constructed cases, top example / counterfactual, Integrated Gradients, the figures."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import datasets
from architectures import MemoryWrapNet
from conftest import run_script
from suite import commands, explain, figures
from suite.cli import UserError
from suite.run_files import finished_runs
from suite.data import MemorySampler, batch_transform
from suite.explain import ExplanationCounts, ModelExplanation, count_explanations, select_memories
from suite.restore import CheckpointOptions, restore_run
from suite.stats import mean_and_std

CPU = CheckpointOptions(device="cpu")
FIGURE_CPU = CheckpointOptions(batch_size_test=3, device="cpu")
from trained_runs import trained_runs


@pytest.fixture(scope="session")
def runs(tmp_path_factory, tiny_dataset_dir):
    return trained_runs(tmp_path_factory, tiny_dataset_dir)


def _quiet(_: str) -> None:
    pass


def _assert_picture(path, size: tuple[int, int]) -> None:
    """A PNG of `size` pixels (width, height) that is not blank."""
    with Image.open(path) as image:
        assert image.size == size
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.std() > 20 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50


# ---- heads that read their memory's labels ------------------------------------------------------------
@pytest.mark.parametrize("modality", ["protonet", "matching"])
def test_every_path_classifies_with_the_labels_of_the_memory_it_encodes(runs, tmp_path, monkeypatch, modality):
    """ProtoNet and Matching Networks read the labels of their memory. Every script path that classifies
    (evaluation, explanation accuracy, majority vote, memory images, heat maps) hands the head the
    labels of the very draw whose encodings it hands it: for the inputs with M, for M's samples with
    the auxiliary draw A, never M's labels with A's encodings. (Attributions classify interpolated
    memories; the heat-map tests check their numbers.)"""
    from suite.config import TrainSettings, validate
    from suite.journal.majority_vote_eval import majority_vote_folder
    from suite.training import train_run
    from trained_runs import vit_config

    raw = vit_config(tmp_path, runs.dataset_dir, "std", runs=1)
    raw["CIFAR10"]["num_epochs"] = 1
    settings = TrainSettings(validate(raw, datasets.list_datasets()), modality)
    train_run(settings, 1)
    draws: list[tuple[torch.Tensor, torch.Tensor]] = []
    draw = MemorySampler.draw

    def recorded(sampler):
        images, labels = draw(sampler)
        draws.append((images, labels))
        return images, labels

    checked = []
    classify = MemoryWrapNet.classify

    def paired(model, features, memory_features=None, memory_labels=None, return_weights=False):
        if not torch.is_grad_enabled():  # attributions (grad on) classify interpolated images: no draw's own
            with torch.no_grad():
                owners = [labels for images, labels in draws if images.shape[0] == memory_features.shape[0]
                          and torch.allclose(model.forward_encoder(images), memory_features, atol=1e-6)]
            assert owners, "encodings of no memory draw"
            assert any(torch.equal(labels, memory_labels) for labels in owners), "labels of another draw"
            checked.append(len(memory_labels))
        return classify(model, features, memory_features, memory_labels, return_weights)

    monkeypatch.setattr(MemorySampler, "draw", recorded)
    monkeypatch.setattr(MemoryWrapNet, "classify", paired)
    folder, options = settings.cell_folder, CheckpointOptions(device="cpu", batch_size_test=25)
    commands.evaluate_folder(str(folder), options, passes=1, json_path="", out=_quiet)
    commands.explanation_accuracy(str(folder), options, passes=1, json_path="", out=_quiet)
    majority_vote_folder(str(folder), options, passes=1, json_path="", out=_quiet)
    commands.memory_images(str(folder / "1.pt"), FIGURE_CPU, max_images=3, images_dir=tmp_path / "images", out=_quiet)
    commands.heatmaps(str(folder / "1.pt"), FIGURE_CPU, max_images=2, images_dir=tmp_path / "images", out=_quiet)
    assert len(checked) > 10


# ---- counting -----------------------------------------------------------------------------------------
def test_counts_on_a_constructed_batch():
    predictions = torch.tensor([0, 1, 2, 1])
    labels = torch.tensor([0, 2, 2, 1])
    memory_predictions = torch.tensor([0, 1, 2])
    weights = torch.tensor([[0.7, 0.3, 0.0],  # top 0 -> class 0 = prediction: example, correct
                            [0.5, 0.5, 0.0],  # tie -> first index 0 -> class 0 != 1: counterfactual, wrong
                            [0.0, 0.2, 0.8],  # top 2 -> class 2 = prediction: example, correct
                            [0.0, 0.0, 1.0]])  # top 2 -> class 2 != 1: counterfactual, correct
    counts = count_explanations(predictions, weights, memory_predictions, labels)
    assert counts == ExplanationCounts(total=4, explained=2, counterfactual_total=2, counterfactual_correct=1,
                                       example_total=2, example_correct=2)
    assert (counts.explanation_accuracy, counts.counterfactual_accuracy, counts.example_accuracy) == (50.0, 50.0, 100.0)
    doubled = counts + counts
    assert doubled.total == 8 and doubled.counterfactual_correct == 2


def test_a_group_without_cases_is_n_a_not_nan():
    counts = count_explanations(torch.tensor([1, 1]), torch.tensor([[1.0, 0.0], [0.2, 0.8]]), torch.tensor([1, 1]),
                                torch.tensor([1, 0]))
    assert counts.counterfactual_total == 0 and counts.counterfactual_accuracy is None
    assert counts.explanation_accuracy == 100.0 and counts.example_accuracy == 50.0
    model = ModelExplanation([counts, counts])
    assert model.counterfactual_accuracy is None and model.example_accuracy == 50.0
    summary = {key: dict(zip(("mean", "std"), mean_and_std(values))) for key, values in
               (("explanation_accuracy", [100.0, 90.0]), ("counterfactual_accuracy", [None]),
                ("example_accuracy", [50.0, None, 70.0]))}
    assert commands.explanation_line(summary) == (
        "Explanation accuracy (mean):95.00\t(std_dev):5.00\tcounterfactual acc mean:n/a\t"
        "counterfactual std:n/a\texample acc mean:60.00\texample std:10.00")


def test_count_shapes_are_checked():
    with pytest.raises(ValueError, match="shapes do not fit"):
        count_explanations(torch.tensor([0]), torch.ones(1, 3), torch.tensor([0, 1]), torch.tensor([0]))


class _ConstantModel(nn.Module):
    """Inputs (test batches of 25) are predicted `input_class`, memory samples (10) `memory_class`;
    the weight always peaks on memory sample 0. Encodings carry the size of the batch they came from."""

    uses_memory, uses_memory_labels = True, False

    def __init__(self, input_class: int, memory_class: int):
        super().__init__()
        self.input_class, self.memory_class = input_class, memory_class

    def forward_encoder(self, x):
        return torch.full((x.shape[0], 1), float(x.shape[0]))

    def classify(self, features, memory_features, memory_labels=None, return_weights=False):
        predicted = self.memory_class if features[0, 0] == 10 else self.input_class
        logits = torch.nn.functional.one_hot(torch.full((features.shape[0],), predicted), 10).float()
        weights = torch.zeros(features.shape[0], memory_features.shape[0])
        weights[:, 0] = 1.0
        return (logits, weights) if return_weights else logits

    def forward(self, x, memory, return_weights=False, memory_labels=None):
        return self.classify(self.forward_encoder(x), self.forward_encoder(memory), memory_labels, return_weights)


@pytest.mark.parametrize("memory_class", [3, 4])
def test_explain_run_gives_the_known_answer_of_a_constructed_model(runs, memory_class):
    restored = restore_run(runs.checkpoint("memory"), CPU)
    assert restored.data.batch_size_test == 25 and restored.settings.mem_examples == 10
    restored.model = _ConstantModel(3, memory_class)
    result = explain.explain_run(restored, passes=2)
    labels = restored.data.test.labels
    share_of_threes = 100.0 * float((labels == 3).float().mean())
    if memory_class == 3:  # every top memory sample is an example
        assert result.explanation_accuracy == 100.0 and result.counterfactual_accuracy is None
        assert result.example_accuracy == pytest.approx(share_of_threes)
    else:  # every top memory sample is a counterfactual
        assert result.explanation_accuracy == 0.0 and result.example_accuracy is None
        assert result.counterfactual_accuracy == pytest.approx(share_of_threes)
    assert all(p.total == len(labels) for p in result.passes)


# ---- explanation_accuracy.py ------------------------------------------------------------------------
FINAL = re.compile(r"^Explanation accuracy \(mean\):(\S+)\t\(std_dev\):(\S+)\tcounterfactual acc mean:(\S+)\t"
                   r"counterfactual std:(\S+)\texample acc mean:(\S+)\texample std:(\S+)$")


@pytest.mark.slow
@pytest.mark.parametrize("modality", ["encoder_memory", "memory"])
def test_explanation_accuracy_script(runs, tmp_path, modality):
    folder = runs.folders[modality]
    out = tmp_path / "expl.json"
    result = run_script("explanation_accuracy.py", f"--path_models={folder}/", f"--modality={modality}",
                        "--dataset=CIFAR10", f"--json={out}", "--device=cpu", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    final = next(i for i, line in enumerate(lines) if FINAL.match(line))
    assert lines[0] == "Device:cpu" and lines[final - 1] == "" and lines[-1] == f"Saved {out}"
    assert all(line.startswith("note: ") for line in lines[final + 1:-1]), lines[final + 1:]
    match = FINAL.match(lines[final])
    payload = json.loads(out.read_text())
    assert payload["memory_pool"] == "subset" and [r["run"] for r in payload["runs"]] == sorted(
        int(p.stem) for p in folder.glob("*.pt"))
    keys = ("total", "explained", "counterfactual_total", "counterfactual_correct", "example_total", "example_correct")
    for record in payload["runs"]:
        # The counts of every pass are those of the procedure written out plainly, with the run's draws.
        plain = _plain_explanation_counts(restore_run(folder / f"{record['run']}.pt", CPU), passes=5)
        assert [{k: counts[k] for k in keys} for counts in record["passes"]] == plain
    assert any(counts["counterfactual_total"] for r in payload["runs"] for counts in r["passes"])  # both kinds occur
    mean, std = mean_and_std([r["explanation_accuracy"] for r in payload["runs"]])
    assert match.group(1) == f"{mean:.2f}" and match.group(2) == f"{std:.2f}"
    # Same numbers again in-process: every draw is seeded by the run.
    again = explain.explain_run(restore_run(folder / "1.pt", CPU), passes=5)
    assert again.as_dict() == {k: v for k, v in payload["runs"][0].items() if k not in ("run", "checkpoint", "seed",
                                                                                "minutes", "recorded_accuracy")}
    assert payload["runs"][0]["recorded_accuracy"] == finished_runs(folder)[1]["accuracy"]  # the run it explained


@torch.no_grad()
def _plain_explanation_counts(restored, passes: int) -> list[dict]:
    """Explanation accuracy as docs/protocol.md states it, with whole forwards and a loop per input: per
    test batch (in order) a memory M then an auxiliary memory A from the run's seeded stream; an input
    is an example case when M's top-weighted sample, classified with A, gets the input's prediction."""
    model, data = restored.model, restored.data
    sampler = data.memory_sampler("explanation_memory_subset")
    results = []
    for _ in range(passes):
        counts = dict.fromkeys(("total", "explained", "counterfactual_total", "counterfactual_correct",
                                "example_total", "example_correct"), 0)
        for positions in data.test_index_batches():
            (memory, memory_labels), (auxiliary, auxiliary_labels) = sampler.draw(), sampler.draw()
            logits, weights = model(data.test_inputs(positions), memory, return_weights=True,
                                    memory_labels=memory_labels)
            memory_predictions = model(memory, auxiliary, memory_labels=auxiliary_labels).argmax(dim=1).tolist()
            for row, label in zip(range(len(positions)), data.test.labels[positions].tolist()):
                prediction = int(logits[row].argmax())
                example = memory_predictions[int(weights[row].argmax())] == prediction
                group = "example" if example else "counterfactual"
                counts["total"] += 1
                counts["explained"] += example
                counts[f"{group}_total"] += 1
                counts[f"{group}_correct"] += prediction == label
        results.append(counts)
    return results


def test_full_memory_pool_draws_100_memories_from_the_whole_split(runs, monkeypatch):
    restored = restore_run(runs.checkpoint("encoder_memory"), CPU)
    pool, size = explain.memory_pool(restored, "full")
    assert size == 100 and len(pool) == 200 - 20  # all but the validation images
    assert pool.indices == datasets.split_indices(200, 200, 20, 42)[0]  # the original's split seed
    subset, size = explain.memory_pool(restored, "subset")
    assert size == 10 and len(subset) == 100
    drawn = []  # (pool size, memory size) of every draw the command makes
    original = MemorySampler.draw_indices
    monkeypatch.setattr(MemorySampler, "draw_indices",
                        lambda self: drawn.append((len(self.pool), self.size)) or original(self))
    payload = commands.explanation_accuracy(str(runs.folders["encoder_memory"]), CPU, passes=1, memory_pool="full",
                                            json_path="", out=_quiet, note=_quiet)
    assert payload["memory_pool"] == "full" and len(payload["runs"]) == 2
    assert drawn and set(drawn) == {(180, 100)}  # per test batch M and A, 100 images of the 180 each
    assert len(drawn) == 2 * 2 * 2  # 2 runs x 2 test batches x (M, A)


@pytest.mark.slow
def test_explanation_accuracy_refuses_std_models(runs, tmp_path):
    result = run_script("explanation_accuracy.py", f"--path_models={runs.folders['std']}", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.startswith("error: ") and "holds a std model" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# ---- top example and counterfactual -------------------------------------------------------------------
def test_selection_orders_positive_weights_and_splits_examples_from_counterfactuals():
    weights = torch.tensor([0.1, 0.0, 0.5, 0.2, 0.2])
    selection = select_memories(weights, torch.tensor([1, 1, 2, 1, 3]), prediction=1)
    assert selection.order.tolist() == [2, 3, 4, 0]  # the zero weight is dropped, ties keep index order
    assert selection.weights.tolist() == pytest.approx([0.5, 0.2, 0.2, 0.1])
    assert (selection.example, selection.counterfactual) == (1, 0)  # memory 3 (class 1), memory 2 (class 2)
    only_examples = select_memories(torch.tensor([0.6, 0.4]), torch.tensor([1, 1]), prediction=1)
    assert (only_examples.example, only_examples.counterfactual) == (0, None)


@pytest.mark.parametrize("normalization", ["paper", "vit"])
def test_baselines_in_pixel_space(normalization):
    """white / black are what the run's test transform makes of a white / black image (compared before
    any clipping back to pixels); ones is the original's light grey."""
    spec = datasets.get_spec("CIFAR10")
    images = torch.zeros(2, 3, 4, 4)
    transform = batch_transform(spec, torch.device("cpu"), False, normalization)
    for kind, pixel in (("white", 255), ("black", 0)):
        expected = transform(torch.full((2, 3, 4, 4), pixel, dtype=torch.uint8))
        torch.testing.assert_close(explain.baseline_like(images, kind, spec, normalization), expected)
    if normalization == "paper":
        grey = datasets.undo_normalization(explain.baseline_like(images, "ones", spec, "paper"), spec)
        assert grey[0, :, 0, 0].tolist() == pytest.approx([0.6937, 0.6816, 0.6475], abs=1e-4)  # light grey


# ---- Integrated Gradients -------------------------------------------------------------------------------
class _TinyNet(MemoryWrapNet):
    """A smooth tiny memory model (tanh encoder and MLP) for exact IG checks."""

    def __init__(self, modality: str):
        super().__init__(modality, 3)
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.feature_dim = 6
        self.build_head()
        self.mw.fc.activation = nn.Tanh()

    def forward_encoder(self, x):
        return torch.tanh(self.conv(x)).mean(dim=(2, 3))


@pytest.mark.parametrize("modality", ["memory", "encoder_memory"])
def test_integrated_gradients_completeness_with_one_step_per_forward(modality):
    torch.manual_seed(0)
    model = _TinyNet(modality).double().eval()
    x, memory = 2 * torch.randn(1, 3, 8, 8, dtype=torch.double), 2 * torch.randn(1, 3, 8, 8, dtype=torch.double)
    baselines = (torch.ones_like(x), torch.ones_like(memory))
    with torch.no_grad():
        target = int(model(x, memory).argmax())
        gap = (model(x, memory)[0, target] - model(*baselines)[0, target]).item()
    input_attr, memory_attr = explain.attribute(model, x, memory, target, baselines, n_steps=40, internal_batch_size=1)
    assert input_attr.shape == x.shape and memory_attr.shape == memory.shape
    assert (input_attr.sum() + memory_attr.sum()).item() == pytest.approx(gap, rel=1e-6, abs=1e-9)


def test_the_originals_integrated_gradients_settings_are_the_default_on_every_path():
    """40 interpolation steps, 2 per forward pass (the original's), when nobody chooses: in the call
    the figures make and in the script's flags."""
    model = _TinyNet("encoder_memory").double().eval()
    x, memory = torch.randn(1, 3, 8, 8, dtype=torch.double), torch.randn(5, 3, 8, 8, dtype=torch.double)
    seen, original_forward = [], model.forward

    def spy(inputs, mem, return_weights=False, memory_labels=None):
        seen.append((inputs.shape[0], mem.shape[0]))
        return original_forward(inputs, mem, return_weights, memory_labels)

    model.forward = spy
    default = explain.attribute(model, x, memory, 0, (torch.zeros_like(x), torch.zeros_like(memory)))
    assert set(seen) == {(2, 10)} and len(seen) == 20
    chosen = explain.attribute(model, x, memory, 0, (torch.zeros_like(x), torch.zeros_like(memory)), n_steps=40,
                               internal_batch_size=2)
    assert all(torch.equal(a, b) for a, b in zip(default, chosen))
    help_text = run_script("generate_heatmaps.py", "--help").stdout
    blocks = {block.split(":")[0]: block for block in help_text.split("\n  --")}
    for flag, value in (("n_steps", 40), ("internal_batch_size", 2)):
        assert f"(default: '{value}')" in blocks[flag], blocks[flag]


def test_internal_batch_size_mixes_interpolation_steps_in_one_memory():
    torch.manual_seed(0)
    model = _TinyNet("encoder_memory").double().eval()
    x, memory = 2 * torch.randn(1, 3, 8, 8, dtype=torch.double), 2 * torch.randn(5, 3, 8, 8, dtype=torch.double)
    baselines = (torch.ones_like(x), torch.ones_like(memory))
    seen = []
    original_forward = model.forward

    def spy(inputs, mem, return_weights=False, memory_labels=None):
        seen.append((inputs.shape[0], mem.shape[0]))
        return original_forward(inputs, mem, return_weights, memory_labels)

    model.forward = spy
    one = explain.attribute(model, x, memory, 0, baselines, n_steps=40, internal_batch_size=1)
    assert set(seen) == {(1, 5)} and len(seen) == 40
    seen.clear()
    two = explain.attribute(model, x, memory, 0, baselines, n_steps=40, internal_batch_size=2)
    assert set(seen) == {(2, 10)} and len(seen) == 20  # 2 inputs attend over both steps' memories
    assert not torch.allclose(one[1], two[1], rtol=1e-3, atol=1e-9)


# ---- figures ------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("modality, args, names, size, run_folder", [
    ("encoder_memory", ["--max_images=3"], ["2.png"], (1800, 1200), "run1"),
    ("memory", ["--max_images=2", "--batch_size_test=2"], ["1.png"], (1200, 1200), "run1_batch_size_test=2"),
])
def test_memory_images_script(runs, tmp_path, modality, args, names, size, run_folder):
    result = run_script("generate_memory_images.py", f"--path_model={runs.checkpoint(modality)}", "--dataset=CIFAR10",
                        f"--modality={modality}", "--device=cpu", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "images" / "mem_images" / "CIFAR10" / modality / "vit" / "100" / run_folder
    assert f"Writing figures to {Path('images/mem_images/CIFAR10') / modality / 'vit/100' / run_folder}" in result.stdout
    assert sorted(p.name for p in folder.iterdir()) == sorted(names + ["figures.json"])
    for name in names:
        _assert_picture(folder / name, size)


@pytest.mark.slow
@pytest.mark.parametrize("modality, args, names, method_folder", [
    ("encoder_memory", ["--max_images=1"], ["0.png"], "integrated_gradients"),
    ("memory", ["--max_images=1", "--baseline=white", "--internal_batch_size=1"], ["0.png"],
     "integrated_gradients_baseline=white,internal_batch_size=1"),
])
def test_heatmaps_script(runs, tmp_path, modality, args, names, method_folder):
    result = run_script("generate_heatmaps.py", f"--path_model={runs.checkpoint(modality)}", "--dataset=CIFAR10",
                        f"--modality={modality}", "--device=cpu", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "images" / "saliency" / "CIFAR10" / modality / "vit" / "100" / "run1" / method_folder
    assert sorted(p.name for p in folder.iterdir()) == sorted(names + ["figures.json"])
    for name in names:
        _assert_picture(folder / name, (400, 600))


def test_figures_are_reproducible_and_refuse_std_models(runs, tmp_path):
    checkpoint = str(runs.checkpoint("encoder_memory"))
    first = commands.memory_images(checkpoint, FIGURE_CPU, max_images=4, images_dir=tmp_path / "a", out=_quiet)
    second = commands.memory_images(checkpoint, FIGURE_CPU, max_images=3, images_dir=tmp_path / "b", out=_quiet)
    whole = commands.memory_images(checkpoint, FIGURE_CPU, max_images=6, images_dir=tmp_path / "c", out=_quiet)
    # --max_images rounds up to whole figures: a file name always shows the same inputs
    assert [p.name for p in first] == [p.name for p in whole] == ["2.png", "5.png"] and [p.name for p in second] == ["2.png"]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(first, whole))
    _assert_picture(first[1], (1800, 1200))
    assert np.array_equal(np.asarray(Image.open(first[0])), np.asarray(Image.open(second[0])))
    heat = commands.heatmaps(checkpoint, CheckpointOptions(batch_size_test=2, device="cpu"), max_images=2,
                             images_dir=tmp_path, out=_quiet)
    assert [p.name for p in heat] == ["1.png"]
    _assert_picture(heat[0], (800, 600))  # two inputs side by side: (8, 6) inches
    std = str(runs.checkpoint("std"))
    for make in (commands.memory_images, commands.heatmaps):
        with pytest.raises(UserError, match="holds a std model"):
            make(std, CPU, images_dir=tmp_path, out=_quiet)


class _BrightnessModel(nn.Module):
    """A memory model with known weights: input i of a batch weighs memory sample j by
    relu(b_j - t_i), normalised, where b_j is the sample's mean (normalised) pixel and t_i the
    (0.2 + 0.3 i)-quantile of the b's, so each input keeps a different number of samples. Its
    prediction is the class of its own mean pixel's first decimals."""

    uses_memory, uses_memory_labels = True, False

    @staticmethod
    def weights(images: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        brightness = memory.mean(dim=(1, 2, 3))
        levels = torch.tensor([min(0.2 + 0.3 * i, 1.0) for i in range(images.shape[0])])
        raw = (brightness.unsqueeze(0) - torch.quantile(brightness, levels).unsqueeze(1)).clamp(min=0)
        return raw / raw.sum(dim=1, keepdim=True).clamp(min=1e-12)

    @staticmethod
    def predictions(images: torch.Tensor) -> torch.Tensor:
        return (images.mean(dim=(1, 2, 3)).abs() * 1000).long() % 10

    def forward(self, images, memory, return_weights=False, memory_labels=None):
        logits = nn.functional.one_hot(self.predictions(images), 10).float()
        return (logits, self.weights(images, memory)) if return_weights else logits


def _capture_figures(monkeypatch) -> list:
    """Every matplotlib Figure the commands would write (not rendered: what it shows is in its artists)."""
    captured = []
    monkeypatch.setattr(figures, "figure_png", lambda figure: captured.append(figure) or b"")
    return captured


def _with_model(monkeypatch, model) -> None:
    real = commands.restore_run

    def restore(*args, **kwargs):
        restored = real(*args, **kwargs)
        restored.model = model
        return restored

    monkeypatch.setattr(commands, "restore_run", restore)


def _shown(axis) -> np.ndarray:
    return np.asarray(axis.images[-1].get_array())


def test_memory_images_show_each_input_with_its_positive_weight_memories_in_weight_order(runs, tmp_path,
                                                                                           monkeypatch):
    _with_model(monkeypatch, _BrightnessModel())
    shown = _capture_figures(monkeypatch)
    written = commands.memory_images(str(runs.checkpoint("memory")), FIGURE_CPU, max_images=5, images_dir=tmp_path,
                                     out=_quiet)
    assert [p.name for p in written] == ["2.png", "5.png"] and len(shown) == 2  # 5 rounds up to whole figures
    restored = restore_run(runs.checkpoint("memory"), FIGURE_CPU)
    data, spec = restored.data, restored.data.spec
    sampler = data.memory_sampler("memory_images")  # one draw per figure, the inputs of a figure share it
    for figure, positions in zip(shown, (torch.arange(0, 3), torch.arange(3, 6))):
        memory, _ = sampler.draw()
        inputs = data.test_inputs(positions)
        weights = _BrightnessModel.weights(inputs, memory)
        axes = figure.axes
        for column in range(3):
            top, bottom = axes[column], axes[3 + column]
            if column >= len(positions):  # a partial last figure leaves its last column blank
                assert not top.images and not bottom.images
                continue
            assert np.array_equal(_shown(top), figures.to_uint8_image(datasets.undo_normalization(
                inputs[column:column + 1], spec)[0]))
            prediction = int(_BrightnessModel.predictions(inputs[column:column + 1])[0])
            assert top.get_title() == f"Prediction:{spec.classes[prediction]}"
            row = weights[column]
            kept = sorted((j for j in range(len(row)) if row[j] > 0), key=lambda j: (-float(row[j]), j))
            assert 0 < len(kept) < len(row)  # some samples have no weight and are not shown
            expected = figures.memory_grid(datasets.undo_normalization(memory[kept], spec))
            assert np.array_equal(_shown(bottom), figures.to_uint8_image(expected))


def test_memory_images_of_a_batchnorm_model_show_what_the_model_computes_in_eval_mode(runs, tmp_path,
                                                                                    monkeypatch):
    # A figure of three test inputs must show the model's eval-mode predictions and weights: in train
    # mode BatchNorm would normalise with the statistics of these three inputs (and of the memory).
    shown = _capture_figures(monkeypatch)
    commands.memory_images(str(runs.checkpoint("cnn")), FIGURE_CPU, max_images=3, images_dir=tmp_path, out=_quiet)
    restored = restore_run(runs.checkpoint("cnn"), FIGURE_CPU)
    model, data, spec = restored.model.eval(), restored.data, restored.data.spec
    assert any(isinstance(module, nn.BatchNorm2d) for module in model.modules())
    memory, _ = data.memory_sampler("memory_images").draw()
    inputs = data.test_inputs(torch.arange(0, 3))
    with torch.no_grad():
        logits, weights = model(inputs, memory, return_weights=True)
    axes = shown[0].axes
    for column in range(3):
        assert axes[column].get_title() == f"Prediction:{spec.classes[int(logits[column].argmax())]}"
        row = weights[column]
        kept = sorted((j for j in range(len(row)) if row[j] > 0), key=lambda j: (-float(row[j]), j))
        expected = figures.memory_grid(datasets.undo_normalization(memory[kept], spec))
        assert np.array_equal(_shown(axes[3 + column]), figures.to_uint8_image(expected))


PIXEL = (5, 20)  # the one input pixel the heat-map stub looks at


class _OnePixelModel(MemoryWrapNet):
    """Output depends on pixel PIXEL alone (of the input and of each memory image). With s = the
    pixel's channels in pixel space / std (>= 0, 0 for black), logits are v * (s_input +
    0.1 * softmax weights . s_memory), v = (1, -1, ..., -1): the prediction is class 0. With a black
    baseline, the attributions of the predicted logit are >= 0 and live on that pixel; those of any
    other class's logit would be <= 0 (nothing to light)."""

    def __init__(self, spec):
        super().__init__("encoder_memory", 10)
        self.register_buffer("v", torch.tensor([1.0] + [-1.0] * 9))
        self.register_buffer("black", torch.tensor([-m / s for m, s in zip(spec.mean, spec.std)]))

    def forward_encoder(self, x):
        return x[:, :, PIXEL[0], PIXEL[1]] - self.black

    def classify(self, features, memory_features=None, memory_labels=None, return_weights=False):
        weights = torch.softmax(features @ memory_features.t(), dim=1)
        signal = features.sum(dim=1, keepdim=True) + 0.1 * weights @ memory_features.sum(dim=1, keepdim=True)
        logits = signal * self.v
        return (logits, weights) if return_weights else logits


def test_heat_maps_light_the_pixel_the_model_looks_at(runs, tmp_path, monkeypatch):
    restored = restore_run(runs.checkpoint("encoder_memory"), CPU)
    _with_model(monkeypatch, _OnePixelModel(restored.data.spec).eval())
    shown = _capture_figures(monkeypatch)
    commands.heatmaps(str(runs.checkpoint("encoder_memory")), CheckpointOptions(batch_size_test=1, device="cpu"),
                      max_images=2, baseline="black", images_dir=tmp_path, out=_quiet)
    assert len(shown) == 2 and restored.data.test.labels[:2].tolist() != [0, 0]  # a label differs from the prediction
    for index, figure in enumerate(shown):
        image, heat = figure.axes[0], figure.axes[1]  # row 0: the input and its heat map
        expected = figures.to_uint8_image(datasets.undo_normalization(
            restored.data.test_inputs(torch.tensor([index])), restored.data.spec)[0])
        assert np.array_equal(_shown(image), expected)
        lit = np.argwhere(_shown(heat) > 0)
        assert lit.tolist() == [list(PIXEL)], f"the heat map lights {lit.tolist()}, not {PIXEL}"
        titles = [axis.get_title() for axis in figure.axes[:6:2]]
        assert titles[0].startswith("Input\nPredict:") and titles[1].split("\n")[0] in ("Example", "Counterfactual")
        for row in (1, 2):  # the top example and counterfactual shown beneath: lit on the same pixel
            if titles[row].startswith(("Example", "Counterfactual")):
                assert np.argwhere(_shown(figure.axes[2 * row + 1]) > 0).tolist() == [list(PIXEL)]


def test_figure_arguments_are_checked(runs, tmp_path):
    checkpoint = str(runs.checkpoint("memory"))
    with pytest.raises(UserError, match="--max_images must be 0"):
        commands.memory_images(checkpoint, max_images=-1, images_dir=tmp_path, out=_quiet)
    with pytest.raises(UserError, match="--baseline must be one of"):
        commands.heatmaps(checkpoint, baseline="grey", images_dir=tmp_path, out=_quiet)
    with pytest.raises(UserError, match="--modality=encoder_memory does not match"):
        commands.heatmaps(checkpoint, CheckpointOptions(modality="encoder_memory"), images_dir=tmp_path, out=_quiet)
    assert not (tmp_path / "saliency").exists() and not (tmp_path / "mem_images").exists()


def test_saliency_layouts_and_an_attribution_without_positive_values(tmp_path):
    torch.manual_seed(0)
    image = torch.rand(3, 32, 32)
    rows = [figures.SaliencyRow(image, torch.randn(3, 32, 32), "Input\nPredict:cat"),
            figures.SaliencyRow(image.flip(2), -torch.rand(3, 32, 32), "Example\nw:0.50"),  # nothing positive
            figures.SaliencyRow(image.flip(1), torch.zeros(3, 32, 32), "Counterfactual\nw:0.20")]
    for count in (2, 3):
        path = tmp_path / f"{count}.png"
        path.write_bytes(figures.figure_png(figures.saliency_figure([rows[:count]], "Integrated Gradients")))
        _assert_picture(path, (400, 600))


def test_memory_figure_pixels_are_clipped_and_a_single_memory_has_no_padding(tmp_path):
    inputs = torch.rand(2, 3, 32, 32) * 1.4 - 0.2  # outside [0, 1] on purpose
    assert figures.to_uint8_image(inputs[0]).min() == 0 and figures.to_uint8_image(inputs[0]).max() == 255
    assert figures.memory_grid(inputs[:1]).shape == (3, 32, 32)
    assert figures.memory_grid(inputs).shape == (3, 36, 70)  # 2 images, 4 per row, 2-pixel padding
    path = tmp_path / "m.png"
    path.write_bytes(figures.figure_png(figures.memory_figure(inputs.clamp(0, 1), ["a", "b"],
                                                              [inputs[:1].clamp(0, 1), inputs.clamp(0, 1)], 2)))
    _assert_picture(path, (1200, 1200))


class _LinearModel(nn.Module):
    """Logits (s, -s) with s = <w, x> + <v, sum of the memory images>: every attribution method that
    multiplies by (input - baseline) has the exact answer (x - b) * w and (m - b') * v."""

    uses_memory_labels = False

    def __init__(self):
        super().__init__()
        generator = torch.Generator().manual_seed(3)
        self.w = nn.Parameter(torch.randn(1, 3, 4, 4, generator=generator))
        self.v = nn.Parameter(torch.randn(1, 3, 4, 4, generator=generator))

    def forward(self, x, memory, memory_labels=None):
        score = (x * self.w).sum(dim=(1, 2, 3)) + (memory * self.v).sum()
        return torch.stack([score, -score], dim=1)


def test_gradient_shap_gives_the_exact_answer_on_a_linear_model_with_a_memory_of_several_images():
    generator = torch.Generator().manual_seed(4)
    x, memory = torch.randn(1, 3, 4, 4, generator=generator), torch.randn(5, 3, 4, 4, generator=generator)
    baselines = (torch.ones_like(x), torch.zeros_like(memory))
    model = _LinearModel()
    input_attr, memory_attr = explain.attribute(model, x, memory, 0, baselines, "gradient_shap", n_samples=6)
    torch.testing.assert_close(input_attr, (x - 1) * model.w.detach())
    torch.testing.assert_close(memory_attr, memory * model.v.detach())


def test_gradient_shap_heat_maps_are_seeded_by_the_run_and_leave_numpy_alone(runs):
    restored = restore_run(runs.checkpoint("encoder_memory"), CheckpointOptions(batch_size_test=1, device="cpu"))
    results = []
    for global_seed in (7, 8):  # whatever state the caller left numpy and torch in
        np.random.seed(global_seed)
        torch.manual_seed(global_seed)
        before = np.random.get_state()[1].copy()
        explained = []
        explain.explain_inputs(restored, 1, "ones", explained.extend, method="gradient_shap", n_samples=4, stdevs=0.1)
        results.append(explained[0])
        assert np.array_equal(np.random.get_state()[1], before)
    assert torch.equal(results[0].input_attribution, results[1].input_attribution)
    assert torch.equal(results[0].memory_attributions, results[1].memory_attributions)
    assert results[0].memory_attributions.shape == results[0].memory_images.shape


def test_the_test_sets_last_figure_keeps_its_size_and_leaves_its_missing_columns_blank():
    """Only the test set's end makes a figure of fewer inputs than --batch_size_test (--max_images rounds up to
    whole figures): it keeps the full layout, its missing columns empty."""
    images = torch.rand(2, 3, 8, 8)
    figure = figures.memory_figure(images, ["Prediction:cat", "Prediction:dog"], [torch.rand(3, 3, 8, 8)] * 2, 3)
    axes = figure.axes
    assert [bool(axes[c].images) for c in range(3)] == [True, True, False]
    assert [bool(axes[3 + c].images) for c in range(3)] == [True, True, False]
    assert tuple(figure.get_size_inches()) == (6.0, 4.0)
