"""The bodies of the five evaluation and explanation scripts, callable in-process.

eval.py, eval_dir.py, explanation_accuracy.py, generate_memory_images.py and generate_heatmaps.py
only parse flags and call one function here. Every function prints through `out` (stdout by
default) and notes through `note` (stderr), and returns what it printed in machine-readable form.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from datasets import MemorySampler, undo_normalization
from .checkpoints import write_output
from .errors import UserError
from .evaluation import evaluate
from .progress import track
from .restore import RestoredRun, folder_runs, read_checkpoint, restore_run
from .seeding import derive_seed, seeded_generator
from .training import resolve_device

Printer = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def write_json(path: str | Path, payload: dict) -> Path:
    return write_output(path, (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode())


def _device(name: str) -> torch.device:
    return resolve_device(name or "auto")


def _describe(restored: RestoredRun) -> str:
    run = f"run {restored.run}, " if restored.run is not None else ""
    s = restored.settings
    return (f"Checkpoint:{restored.path} ({s.dataset_name} {s.modality} {s.model}, {s.train_examples} training images, "
            f"{run}seed {restored.seed})")


def _cell(checkpoint: dict) -> tuple:
    return (checkpoint["dataset_name"], checkpoint["modality"], checkpoint["model_name"], checkpoint["train_examples"])


def _check_folder(runs: list[tuple[int, Path]], dataset: str | None, modality: str | None,
                  require_memory: bool = False) -> None:
    """Read every run of a folder first: wrong flags, std models or mixed cells fail before any work."""
    cells = {}
    for _, path in runs:
        checkpoint = read_checkpoint(path, dataset, modality)
        if require_memory and checkpoint["modality"] == "std":
            raise UserError(f"'{path}' holds a std model, which has no memory to explain; "
                            "explanation accuracy needs memory or encoder_memory models")
        cells.setdefault(_cell(checkpoint), path)
    if len(cells) > 1:
        (a, first), (b, second) = list(cells.items())[:2]
        raise UserError(f"the folder mixes runs of different cells ('{first}' is {'/'.join(map(str, a))}, "
                        f"'{second}' is {'/'.join(map(str, b))}); point it at one cell's folder")


def _population_std(values: list[float]) -> float:
    return float(np.std(values)) if values else float("nan")


# ---- eval.py ------------------------------------------------------------------------------------
def evaluate_checkpoint(path: str, dataset: str | None = None, modality: str | None = None,
                        dataset_dir: str | None = None, batch_size_test: int | None = None, passes: int = 10,
                        device: str = "auto", json_path: str | None = None, out: Printer = print) -> dict:
    """One checkpoint: std models one pass, memory models `passes` passes (mean accuracy, last loss)."""
    if passes < 1:
        raise UserError(f"--passes must be at least 1, got {passes}")
    torch_device = _device(device)
    restored = restore_run(path, dataset_dir, batch_size_test, torch_device, dataset, modality)
    out(f"Device:{torch_device}")
    out(_describe(restored))
    passes = passes if restored.model.uses_memory else 1
    result = evaluate(restored.model, restored.data, restored.seed, passes, torch_device)
    line = f"Loss:{result.loss:.4f} | Accuracy {result.accuracy:.2f}"
    out(line + (f" | Passes:{passes}" if restored.model.uses_memory else ""))
    payload = {"checkpoint": str(restored.path), "cell": restored.label, "seed": restored.seed, "run": restored.run,
               "device": str(torch_device), "passes": passes, "accuracy": result.accuracy, "loss": result.loss,
               "pass_accuracies": list(result.pass_accuracies),
               "batch_size_test": restored.settings.config["batch_size_test"]}
    if json_path:
        write_json(json_path, payload)
    return payload


# ---- eval_dir.py --------------------------------------------------------------------------------
def evaluate_folder(folder: str, dataset: str | None = None, modality: str | None = None,
                    dataset_dir: str | None = None, batch_size_test: int | None = None, passes: int | None = None,
                    device: str = "auto", json_path: str | None = None, out: Printer = print,
                    note: Printer = _stderr) -> dict:
    """Every `<N>.pt` run of a folder (numeric order), then mean and population std of the accuracies.

    Memory models get `passes` passes; by default each run's own `eval_passes` (5 unless the training
    config changed it, the original's count), so that the numbers are those train.py printed.
    """
    if passes is not None and passes < 1:
        raise UserError(f"--passes must be at least 1, got {passes}")
    runs = folder_runs(folder, note)
    _check_folder(runs, dataset, modality)
    torch_device = _device(device)
    out(f"Device:{torch_device}")
    accuracies, records = [], []
    for number, path in runs:
        started = time.perf_counter()
        restored = restore_run(path, dataset_dir, batch_size_test, torch_device, dataset, modality)
        count = (passes or restored.settings.config["eval_passes"]) if restored.model.uses_memory else 1
        result = evaluate(restored.model, restored.data, restored.seed, count, torch_device)
        minutes = (time.perf_counter() - started) / 60
        accuracies.append(result.accuracy)
        out(f"Run:{number} | Accuracy {result.accuracy:.2f} | Mean Accuracy:{np.mean(accuracies):.2f} | "
            f"Std Dev:{_population_std(accuracies):.2f} | E:{minutes:.2f}min")
        records.append({"run": number, "checkpoint": str(path), "seed": restored.seed, "passes": count,
                        "accuracy": result.accuracy, "loss": result.loss,
                        "pass_accuracies": list(result.pass_accuracies)})
    mean, std = float(np.mean(accuracies)), _population_std(accuracies)
    out(f"Mean Accuracy:{mean:.2f} | Std Dev Accuracy:{std:.2f} | Runs:{len(accuracies)}")
    payload = {"folder": str(Path(folder)), "cell": restored.label, "device": str(torch_device), "runs": records,
               "mean_accuracy": mean, "std_accuracy": std, "std_kind": "population (ddof=0)"}
    target = Path(folder) / "eval_dir.json" if json_path is None else json_path
    if target:
        payload["json"] = str(write_json(target, payload))
    return payload


# ---- explanation_accuracy.py --------------------------------------------------------------------
def explanation_line(mean_std: dict) -> str:
    """The final line, in the form of the original README's "Expected Output" (tab separated)."""
    from .explain import format_value as f

    (em, es), (cm, cs), (xm, xs) = mean_std["explanation"], mean_std["counterfactual"], mean_std["example"]
    return (f"Explanation accuracy (mean):{f(em)}\t(std_dev):{f(es)}\tcounterfactual acc mean:{f(cm)}\t"
            f"counterfactual std:{f(cs)}\texample acc mean:{f(xm)}\texample std:{f(xs)}")


def explanation_accuracy(folder: str, dataset: str | None = None, modality: str | None = None,
                         dataset_dir: str | None = None, batch_size_test: int | None = None, passes: int = 5,
                         memory_pool: str = "subset", device: str = "auto", json_path: str | None = None,
                         out: Printer = print, note: Printer = _stderr) -> dict:
    """Explanation accuracy (Table 5), counterfactual accuracy (Table 6) and example accuracy of every
    memory model of a folder: `passes` passes per model, then mean and population std over the models."""
    from .explain import MEMORY_POOLS, explain_run, format_value, mean_and_std

    if passes < 1:
        raise UserError(f"--passes must be at least 1, got {passes}")
    if memory_pool not in MEMORY_POOLS:
        raise UserError(f"--memory_pool must be one of {', '.join(MEMORY_POOLS)}, got '{memory_pool}'")
    runs = folder_runs(folder, note)
    _check_folder(runs, dataset, modality, require_memory=True)
    torch_device = _device(device)
    out(f"Device:{torch_device}")
    models, records = [], []
    for index, (number, path) in enumerate(runs, start=1):
        restored = restore_run(path, dataset_dir, batch_size_test, torch_device, dataset, modality, require_memory=True)
        result = explain_run(restored, passes, memory_pool)
        models.append(result)
        share = sum(p.counterfactual_total for p in result.passes) / sum(p.total for p in result.passes) * 100
        out(f"Run:{number} | Explanation accuracy:{result.explanation_accuracy:.2f} | "
            f"Counterfactual acc:{format_value(result.counterfactual_accuracy)} | "
            f"Example acc:{format_value(result.example_accuracy)} | Counterfactual cases:{share:.2f}% | "
            f"Models:{index}/{len(runs)}")
        records.append({"run": number, "checkpoint": str(path), "seed": restored.seed} | result.as_dict())
    summary = {
        "explanation": mean_and_std([m.explanation_accuracy for m in models]),
        "counterfactual": mean_and_std([m.counterfactual_accuracy for m in models]),
        "example": mean_and_std([m.example_accuracy for m in models]),
    }
    out("")
    out(explanation_line(summary))
    payload = {"folder": str(Path(folder)), "cell": restored.label, "device": str(torch_device),
               "memory_pool": memory_pool, "passes": passes, "runs": records,
               "summary": {k: {"mean": v[0], "std": v[1]} for k, v in summary.items()},
               "std_kind": "population (ddof=0)", "missing_values": "null where a group had no cases"}
    target = Path(folder) / f"explanation_accuracy_{memory_pool}.json" if json_path is None else json_path
    if target:
        payload["json"] = str(write_json(target, payload))
    return payload


# ---- generate_memory_images.py ------------------------------------------------------------------
def _check_max_images(max_images: int) -> None:
    if max_images < 0:
        raise UserError(f"--max_images must be 0 (the whole test set) or more, got {max_images}")


def figure_folder(images_dir: str | Path, kind: str, restored: RestoredRun) -> Path:
    """images/<kind>/DATASET/MODALITY/MODEL/, as the original."""
    settings = restored.settings
    return Path(images_dir) / kind / settings.dataset_name / settings.modality / settings.model


def memory_images(path: str, dataset: str | None = None, modality: str | None = None, dataset_dir: str | None = None,
                  batch_size_test: int = 3, max_images: int = 30, device: str = "auto",
                  images_dir: str | Path = "images", out: Printer = print) -> list[Path]:
    """One figure per `batch_size_test` test inputs: each input with its prediction, and below it the
    memory samples of positive weight in descending weight order. The inputs of a figure share one
    memory draw (as the original). Files are named after the last test index they show (2.png, 5.png...)."""
    from .figures import figure_png, memory_figure

    _check_max_images(max_images)
    torch_device = _device(device)
    restored = restore_run(path, dataset_dir, batch_size_test, torch_device, dataset, modality, require_memory=True)
    out(f"Device:{torch_device}")
    out(_describe(restored))
    data, model, spec = restored.data, restored.model, restored.data.spec
    normalization = restored.settings.config["normalization"]
    folder = figure_folder(images_dir, "mem_images", restored)
    sampler = MemorySampler(data.train_set, restored.settings.mem_examples,
                            seeded_generator(restored.seed, "memory_images"))
    limit = len(data.test_set) if max_images == 0 else min(max_images, len(data.test_set))
    batches = -(-limit // data.test_loader.batch_size)
    written, done = [], 0
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(derive_seed(restored.seed, "memory_images_transforms"))
        for images, _ in track(data.test_loader, "memory images", total=batches):
            images = images[: limit - done].to(torch_device)
            memory = sampler.draw().to(torch_device)
            logits, weights = model(images, memory, return_weights=True)
            predictions = logits.argmax(dim=1).tolist()
            used = []
            for row in weights:
                ordered_weights, order = torch.sort(row, descending=True, stable=True)
                used.append(undo_normalization(memory[order[ordered_weights > 0]], spec, normalization).cpu())
            titles = [f"Prediction:{spec.classes[p]}" for p in predictions]
            figure = memory_figure(undo_normalization(images, spec, normalization).cpu(), titles, used,
                                   data.test_loader.batch_size)
            target = folder / f"{done + len(images) - 1}.png"
            write_output(target, figure_png(figure))
            written.append(target)
            done += len(images)
            if done >= limit:
                break
    out(f"Saved {len(written)} figures ({done} test images) in {folder}")
    return written


# ---- generate_heatmaps.py -----------------------------------------------------------------------
def heatmaps(path: str, dataset: str | None = None, modality: str | None = None, dataset_dir: str | None = None,
             batch_size_test: int = 1, max_images: int = 10, baseline: str = "ones", n_steps: int = 40,
             internal_batch_size: int = 2, device: str = "auto", images_dir: str | Path = "images",
             out: Printer = print) -> list[Path]:
    """Integrated Gradients saliency of each input, its top explanation by example and its top
    counterfactual (REFERENCE.md 5.2); one figure per `batch_size_test` inputs (the original: 1)."""
    from .explain import BASELINES, explain_inputs
    from .figures import SaliencyRow, figure_png, saliency_figure

    _check_max_images(max_images)
    if baseline not in BASELINES:
        raise UserError(f"--baseline must be one of {', '.join(BASELINES)}, got '{baseline}'")
    if n_steps < 1 or internal_batch_size < 1:
        raise UserError("--n_steps and --internal_batch_size must be at least 1")
    torch_device = _device(device)
    restored = restore_run(path, dataset_dir, batch_size_test, torch_device, dataset, modality, require_memory=True)
    out(f"Device:{torch_device}")
    out(_describe(restored))
    spec, normalization = restored.data.spec, restored.settings.config["normalization"]
    folder = figure_folder(images_dir, "saliency", restored)
    written: list[Path] = []

    def pixels(image: torch.Tensor) -> torch.Tensor:
        return undo_normalization(image.unsqueeze(0), spec, normalization)[0]

    def save(explained) -> None:
        blocks = []
        for item in explained:
            selection = item.selection
            rows = [SaliencyRow(pixels(item.input_image), item.input_attribution,
                                f"Input\nPredict:{spec.classes[item.prediction]}")]
            for name, position in (("Example", selection.example), ("Counterfactual", selection.counterfactual)):
                if position is not None:
                    rows.append(SaliencyRow(pixels(item.memory_images[position]), item.memory_attributions[position],
                                            f"{name}\nw:{float(selection.weights[position]):.2f}"))
            blocks.append(rows)
        target = folder / f"{explained[-1].index}.png"
        write_output(target, figure_png(saliency_figure(blocks)))
        written.append(target)

    done = explain_inputs(restored, max_images, baseline, n_steps, internal_batch_size, save)
    out(f"Saved {len(written)} figures ({done} test images) in {folder}")
    return written


# ---- flags shared by the five scripts ------------------------------------------------------------
def define_common_flags(batch_size_default: int | None, batch_size_help: str) -> None:
    """--dataset, --modality, --dir_dataset, --batch_size_test and --device, as the README documents them."""
    from absl import flags

    import architectures
    import datasets

    flags.DEFINE_enum("dataset", None, datasets.list_datasets(),
                      "Optional check: the dataset the checkpoint was trained on (an error if it differs).")
    flags.DEFINE_enum("modality", None, list(architectures.MODALITIES),
                      "Optional check: the checkpoint's modality (an error if it differs).")
    flags.DEFINE_string("dir_dataset", None, "Dataset folder; default: the one recorded in the checkpoint's "
                        "training config ('datasets' for checkpoints of the original suite).")
    flags.DEFINE_integer("batch_size_test", batch_size_default, batch_size_help)
    flags.DEFINE_string("device", "auto", "auto (cuda:0 when available, else cpu), cpu, cuda, cuda:1...")
