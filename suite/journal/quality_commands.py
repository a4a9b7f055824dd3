"""The bodies of explanation_quality.py, train_autoencoders.py and counterfactual_quality.py.

Each takes a cell folder (the runs `<N>.pt` of one dataset / modality / model / size), checks every
checkpoint before any work (one-line errors: std models, wrong --dataset / --modality, mixed cells,
missing autoencoders), then handles the runs in numeric order and writes the cell's results beside
them: `<folder>/<experiment>.json`, `.md` and `.csv` (per-run rows, then the mean and population std
over the runs). Printing goes through `out` (stdout) and notes through `note` (stderr).
"""
from __future__ import annotations

import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from ..run_files import write_output
from ..commands import check_folder
from ..cli import UserError
from ..figures import figure_png
from ..restore import CheckpointOptions, RestoredRun, folder_runs, read_checkpoint, restore_run
from ..stats import mean_and_std
from . import quality_tables as tables
from .autoencoders import (
    AutoencoderRecipe, FOLDER, TrainedAutoencoder, autoencoder_folder, autoencoder_names, load_run_autoencoders,
    train_run_autoencoders,
)
from .counterfactual_quality import (
    METHODS as CF_METHODS, SCORES as CF_SCORES, CounterfactualSettings, counterfactual_run,
)
from .example_quality import RANKERS, SCORES as EXAMPLE_SCORES, example_quality_run
from .memory_batch import require_hidden_interface

Printer = Callable[[str], None]

EXAMPLE_BATCH = 256  # the journal's test batch for examples (one memory draw per batch)
COUNTERFACTUAL_BATCH = 64  # the journal's test batch for counterfactuals
STD_KIND = "population (ddof=0) over runs"


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def _describe(restored: RestoredRun) -> str:
    s = restored.settings
    return f"{s.dataset_name}/{s.modality}/{s.model}/{s.train_examples}"


def _checked_runs(folder: str, options: CheckpointOptions, note: Printer, memory_wrap_for: str = "") -> list:
    """The folder's runs, checked: memory models of one cell; Memory Wrap ones when `memory_wrap_for`
    names the experiment that needs them."""
    runs = folder_runs(folder, note)
    check_folder(runs, options, require_memory=True)  # also: one cell, so one modality and one dataset
    if memory_wrap_for:
        require_hidden_interface(read_checkpoint(runs[0][1], options)["modality"], runs[0][1], memory_wrap_for)
    return runs


def _minutes(started: float) -> float:
    return (time.perf_counter() - started) / 60


# ---- explanation_quality.py ---------------------------------------------------------------------------
def explanation_quality(folder: str, options: CheckpointOptions = CheckpointOptions(batch_size_test=EXAMPLE_BATCH),
                        passes: int = 1, out: Printer = print, note: Printer = _stderr) -> dict:
    """Example quality of every Memory Wrap run of a cell: per method the mean prediction and input
    non-representativeness over the test inputs (`passes` passes), then mean and std over the runs."""
    if passes < 1:
        raise UserError(f"--passes must be at least 1, got {passes}")
    runs = _checked_runs(folder, options, note, memory_wrap_for="explanation quality (examples ranked by the "
                                                                 "weights and the MLP's hidden features)")
    out(f"Device:{options.torch_device}")
    records = []
    for number, path in runs:
        started = time.perf_counter()
        restored = restore_run(path, options, require_memory=True)
        result = example_quality_run(restored, passes)
        summary = result.as_dict()
        parts = [f"{RANKERS[m].label} {_number(summary['methods'][m][EXAMPLE_SCORES[0]], 4)}/"
                 f"{_number(summary['methods'][m][EXAMPLE_SCORES[1]], 4)}" for m in RANKERS]
        minutes = _minutes(started)
        out(f"Run:{number} | " + " | ".join(parts) + f" | inputs {result.inputs}, no candidate {result.no_candidate}"
            f" | E:{minutes:.2f}min")
        records.append({"run": number, "checkpoint": str(path), "seed": restored.seed, "minutes": minutes} | summary)
    summary = {method: {score: dict(zip(("mean", "std"), mean_and_std(
        [r["methods"][method][score] for r in records]))) for score in EXAMPLE_SCORES + ("same_as_memory_wrap",)}
        for method in RANKERS}
    label = _describe(restored)
    for method in RANKERS:
        s = summary[method]
        out(f"{RANKERS[method].label}: prediction non-representativeness "
            f"{tables.mean_std_text(s[EXAMPLE_SCORES[0]]['mean'], s[EXAMPLE_SCORES[0]]['std'])} | input "
            f"non-representativeness {tables.mean_std_text(s[EXAMPLE_SCORES[1]]['mean'], s[EXAMPLE_SCORES[1]]['std'])}")
    payload = {"cell": label, "folder": str(Path(folder)), "device": str(options.torch_device), "passes": passes,
               "batch_size_test": restored.settings.config["batch_size_test"], "runs": records, "summary": summary,
               "std_kind": STD_KIND, "lower_is_better": list(EXAMPLE_SCORES)}
    headers = ["Method", "Prediction non-representativeness", "Input non-representativeness",
               "Same example as Memory Wrap"]
    rows = [[RANKERS[m].label, tables.mean_std_text(summary[m][EXAMPLE_SCORES[0]]["mean"],
                                                    summary[m][EXAMPLE_SCORES[0]]["std"]),
             tables.mean_std_text(summary[m][EXAMPLE_SCORES[1]]["mean"], summary[m][EXAMPLE_SCORES[1]]["std"]),
             tables.mean_std_text(summary[m]["same_as_memory_wrap"]["mean"], summary[m]["same_as_memory_wrap"]["std"],
                                  3)] for m in RANKERS]
    inputs = sum(r["inputs"] for r in records)
    missing = sum(r["no_candidate"] for r in records)
    zero = sum(r["zero_weight_examples"] for r in records)
    markdown = (f"# Example quality: {label}\n\n{len(records)} runs, {passes} pass(es), test batch "
                f"{payload['batch_size_test']} (one memory draw per batch); mean ± population std over runs; "
                "lower is better.\n\n" + tables.markdown_table(headers, rows) +
                f"\nInputs without any memory sample of their predicted class (not scored): {missing} of {inputs}. "
                f"Memory Wrap examples of weight 0: {zero}.\n")
    csv_rows = [[r["run"], m, r["methods"][m]["scored"], r["methods"][m][EXAMPLE_SCORES[0]],
                 r["methods"][m][EXAMPLE_SCORES[1]], r["methods"][m]["same_as_memory_wrap"], r["no_candidate"]]
                for r in records for m in RANKERS]
    csv_rows += [[stat, m, None, summary[m][EXAMPLE_SCORES[0]][stat], summary[m][EXAMPLE_SCORES[1]][stat],
                  summary[m]["same_as_memory_wrap"][stat], None] for stat in ("mean", "std") for m in RANKERS]
    stem = Path(folder) / "example_quality"
    payload["files"] = tables.write_texts({
        stem.with_suffix(".md"): markdown,
        stem.with_suffix(".csv"): tables.csv_text(["run", "method", "scored", *EXAMPLE_SCORES, "same_as_memory_wrap",
                                                   "no_candidate"], csv_rows),
        stem.with_suffix(".json"): tables.json_text(payload)})
    out(f"Saved {', '.join(payload['files'])}")
    return payload


# ---- train_autoencoders.py ----------------------------------------------------------------------------
def train_autoencoders(folder: str, options: CheckpointOptions = CheckpointOptions(),
                       recipe: AutoencoderRecipe = AutoencoderRecipe(), overwrite: bool = False,
                       out: Printer = print, note: Printer = _stderr) -> dict:
    """The class autoencoders and the all-class one of every run of a cell, beside the runs; those
    already trained with the same split and recipe are kept (resume)."""
    runs = _checked_runs(folder, options, note)
    out(f"Device:{options.torch_device}")
    records = []
    for number, path in runs:
        started = time.perf_counter()
        restored = restore_run(path, options, require_memory=True)

        def report(item: TrainedAutoencoder) -> None:
            state = "trained" if item.trained_now else "kept"
            out(f"Run:{number} | {item.name} | {item.train_images} training images | final train loss "
                f"{item.train_losses[-1]:.4f} | test MSE {item.test_mse:.4f} ({item.test_images} images) | {state}")

        trained = train_run_autoencoders(restored, recipe, overwrite, report)
        records.append({"run": number, "checkpoint": str(path), "seed": restored.seed, "minutes": _minutes(started),
                        "folder": str(autoencoder_folder(path)),
                        "autoencoders": [asdict(item) | {"path": str(item.path)} for item in trained]})
    payload = {"folder": str(Path(folder)), "device": str(options.torch_device), "recipe": asdict(recipe),
               "runs": records}
    payload["files"] = tables.write_texts({Path(folder) / FOLDER / "autoencoders.json": tables.json_text(payload)})
    return payload


# ---- counterfactual_quality.py ------------------------------------------------------------------------
def _check_autoencoders_exist(runs: list, options: CheckpointOptions) -> None:
    """Fail before any work when a run has no autoencoders (their split is checked when loaded)."""
    num_classes = int(read_checkpoint(runs[0][1], options)["num_classes"])  # one cell: the same for every run
    for _, path in runs:
        for name in autoencoder_names(num_classes):
            target = autoencoder_folder(path) / f"{name}.pt"
            if not target.exists():
                raise UserError(f"autoencoder '{target}' not found; train the run's autoencoders first: "
                                f"python train_autoencoders.py --path_models={Path(path).parent}")


def counterfactual_quality(folder: str,
                           options: CheckpointOptions = CheckpointOptions(batch_size_test=COUNTERFACTUAL_BATCH),
                           settings: CounterfactualSettings = CounterfactualSettings(), out: Printer = print,
                           note: Printer = _stderr) -> dict:
    """Memory Wrap's counterfactuals and prototype-guided ones of every run of a cell, scored per input
    (IM1, IIM1, IM2, L1, L2); a figure per run; tables of the per-run means and their mean and std."""
    from .quality_figures import counterfactual_figure

    runs = _checked_runs(folder, options, note, memory_wrap_for="counterfactual quality (Memory Wrap's "
                                                                 "counterfactual comes from its sparse weights)")
    _check_autoencoders_exist(runs, options)
    out(f"Device:{options.torch_device}")
    records, input_rows = [], []
    for number, path in runs:
        started = time.perf_counter()
        restored = restore_run(path, options, require_memory=True)
        autoencoders = load_run_autoencoders(restored)
        result = counterfactual_run(restored, autoencoders, settings)
        summary = result.summary()
        minutes = _minutes(started)
        parts = [f"{CF_METHODS[m]}: {s['found']}/{s['inputs']} found, IM1 {_number(s['im1'])}, IIM1 "
                 f"{_number(s['iim1'])}, IM2 {_number(s['im2'], 4)}" for m, s in summary.items()]
        out(f"Run:{number} | " + " | ".join(parts) + f" | search {result.search_seconds / 60:.2f}min | "
            f"E:{minutes:.2f}min")
        record = {"run": number, "checkpoint": str(path), "seed": restored.seed, "minutes": minutes,
                  "search_minutes": result.search_seconds / 60,
                  "feature_range": list(result.feature_range) if settings.data_feature_range else None,
                  "prediction_mismatch": result.prediction_mismatch, "methods": summary}
        if result.figure:
            spec = restored.data.spec
            figure = counterfactual_figure(result.figure, spec.classes, spec, restored.settings.config["normalization"])
            record["figure"] = str(write_output(Path(folder) / f"counterfactuals_run{number}.png", figure_png(figure)))
        records.append(record)
        input_rows += [{"run": number} | row for row in result.records]
    summary = {method: {score: dict(zip(("mean", "std"), mean_and_std([r["methods"][method][score] for r in records])))
                        for score in CF_SCORES} | {"found": sum(r["methods"][method]["found"] for r in records),
                                                   "inputs": sum(r["methods"][method]["inputs"] for r in records),
                                                   "not_found": _sum_reasons(r["methods"][method]["not_found"]
                                                                             for r in records)}
               for method in CF_METHODS}
    label = _describe(restored)
    payload = {"cell": label, "folder": str(Path(folder)), "device": str(options.torch_device),
               "batch_size_test": restored.settings.config["batch_size_test"],
               "settings": {"target": settings.target, "max_inputs": settings.max_inputs,
                            "data_feature_range": settings.data_feature_range,
                            "search": {k: (list(v) if isinstance(v, tuple) else v)
                                       for k, v in asdict(settings.search).items()}},
               "runs": records, "summary": summary, "std_kind": STD_KIND,
               "scores": {"im1": "lower is better", "iim1": "higher is better", "im2": "lower is better",
                          "l1": "distance to the input (normalised pixels)", "l2": "distance to the input"}}
    # the range applied: each run's own (in its record), or none (the option's sentinel values)
    payload["settings"]["search"]["feature_range"] = "training pixels" if settings.data_feature_range else "unbounded"
    payload["files"] = tables.write_texts(_counterfactual_tables(Path(folder), label, payload, input_rows))
    for method in CF_METHODS:
        s = summary[method]
        out(f"{CF_METHODS[method]}: {s['found']}/{s['inputs']} found | IM1 "
            f"{tables.mean_std_text(s['im1']['mean'], s['im1']['std'], 3)} | IIM1 "
            f"{tables.mean_std_text(s['iim1']['mean'], s['iim1']['std'], 3)} | IM2 "
            f"{tables.mean_std_text(s['im2']['mean'], s['im2']['std'], 4)}")
    out(f"Saved {', '.join(payload['files'])}")
    return payload


def _number(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _sum_reasons(dicts) -> dict[str, int]:
    total: dict[str, int] = {}
    for reasons in dicts:
        for reason, count in reasons.items():
            total[reason] = total.get(reason, 0) + count
    return total


def _counterfactual_tables(folder: Path, label: str, payload: dict, input_rows: list[dict]) -> dict[Path, str]:
    summary, records = payload["summary"], payload["runs"]
    headers = ["Method", "Found / inputs", "IM1 (lower better)", "IIM1 (higher better)", "IM2 (lower better)",
               "L1 to input", "L2 to input"]
    rows = [[CF_METHODS[m], f"{summary[m]['found']} / {summary[m]['inputs']}",
             *(tables.mean_std_text(summary[m][s]["mean"], summary[m][s]["std"], 4 if s == "im2" else 3)
               for s in CF_SCORES)] for m in CF_METHODS]
    search = payload["settings"]["search"]
    not_found = "; ".join(f"{CF_METHODS[m]}: " + (", ".join(f"{n} {reason}" for reason, n in
                                                           summary[m]["not_found"].items()) or "none")
                          for m in CF_METHODS)
    markdown = (f"# Counterfactual quality: {label}\n\n{len(records)} runs, test batch {payload['batch_size_test']} "
                f"(one memory draw per batch), inputs per run: {payload['settings']['max_inputs'] or 'all'}, "
                f"search target: {payload['settings']['target']}. Means over the counterfactuals found, then "
                "mean ± population std over runs.\n\n" + tables.markdown_table(headers, rows) +
                f"\nNot found (never scored): {not_found}.\n\nSearch: "
                + ", ".join(f"{k}={v}" for k, v in search.items()) + "\n")
    csv_rows = [[r["run"], m, r["methods"][m]["inputs"], r["methods"][m]["found"], *(r["methods"][m][s]
                                                                                    for s in CF_SCORES)]
                for r in records for m in CF_METHODS]
    csv_rows += [[stat, m, None, None, *(summary[m][s][stat] for s in CF_SCORES)] for stat in ("mean", "std")
                 for m in CF_METHODS]
    columns = ["run", "method", "test_index", "label", "prediction", "found", "reason", "target", "cf_class",
               *CF_SCORES, "memory_index", "weight"]
    per_input = [[row.get(c) for c in columns] for row in input_rows]
    stem = folder / "counterfactual_quality"
    return {stem.with_suffix(".md"): markdown,
            stem.with_suffix(".csv"): tables.csv_text(["run", "method", "inputs", "found", *CF_SCORES], csv_rows),
            stem.with_suffix(".json"): tables.json_text(payload),
            folder / "counterfactual_quality_inputs.csv": tables.csv_text(columns, per_input)}
