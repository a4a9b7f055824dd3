"""The bodies of explanation_quality.py, train_autoencoders.py and counterfactual_quality.py.

Each takes a cell folder (the runs `<N>.pt` of one dataset / modality / model / size), checks every
checkpoint before any work (one-line errors: std models, wrong --dataset / --modality, mixed cells,
missing autoencoders), then handles the runs in numeric order and writes the cell's results beside
them: `<folder>/<experiment>.json`, `.md` and `.csv` (per-run rows, then the mean and population std
over the runs). Printing goes through `out` (stdout) and notes through `note` (stderr).
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from ..cli import UserError
from ..commands import Printer, each_run, result_name, saved, stderr, write_results
from ..figures import figure_png
from ..restore import CheckpointOptions
from ..run_files import load_torch_file, write_output
from ..stats import mean_and_std
from . import quality_tables as tables
from .autoencoders import (
    AutoencoderTraining, FOLDER, TrainedAutoencoder, autoencoder_folder, autoencoder_names, load_run_autoencoders,
    train_run_autoencoders,
)
from .counterfactual_quality import (
    METHODS as CF_METHODS, SCORES as CF_SCORES, CounterfactualSettings, counterfactual_run,
)
from .example_quality import RANKERS, SCORES as EXAMPLE_SCORES, example_quality_run
from ..explain import require_hidden_interface

EXAMPLE_BATCH = 256  # the journal's test batch for examples (one memory draw per batch)
COUNTERFACTUAL_BATCH = 64  # the journal's test batch for counterfactuals


def _memory_wrap_only(task: str) -> Callable[[dict, Path], None]:
    """A folder check: the cell holds Memory Wrap models (a hidden layer, sparse weights) for `task`."""
    return lambda checkpoint, path: require_hidden_interface(checkpoint["modality"], path, task)


def _number(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _method_summary(records: list[dict], method: str, scores: tuple[str, ...]) -> dict:
    """Per score of one method: mean and population std over the runs' means (runs without any left out)."""
    return {score: dict(zip(("mean", "std"), mean_and_std([r["methods"][method][score] for r in records])))
            for score in scores}


# ---- explanation_quality.py ---------------------------------------------------------------------------
def explanation_quality(folder: str, options: CheckpointOptions = CheckpointOptions(batch_size_test=EXAMPLE_BATCH),
                        passes: int = 1, out: Printer = print, note: Printer = stderr) -> dict:
    """Example quality of every Memory Wrap run of a cell: per method the mean prediction and input
    non-representativeness over the test inputs (`passes` passes), then mean and std over the runs."""
    if passes < 1:
        raise UserError(f"--passes must be at least 1, got {passes}")

    def line(record: dict, records: list[dict]) -> str:
        parts = [f"{RANKERS[m].label} {_number(record['methods'][m][EXAMPLE_SCORES[0]], 4)}/"
                 f"{_number(record['methods'][m][EXAMPLE_SCORES[1]], 4)}" for m in RANKERS]
        return (f"Run:{record['run']} | " + " | ".join(parts) + f" | inputs {record['inputs']}, no candidate "
                f"{record['no_candidate']} | E:{record['minutes']:.2f}min")

    results = each_run(folder, options, lambda restored: example_quality_run(restored, passes).as_dict(), line,
                       require_memory=True, out=out, note=note,
                       require=_memory_wrap_only("explanation quality (examples ranked by the weights and the MLP's "
                                                 "hidden features)"))
    records = results.runs
    summary = {m: _method_summary(records, m, EXAMPLE_SCORES + ("same_as_memory_wrap",)) for m in RANKERS}
    for method in RANKERS:
        s = summary[method]
        out(f"{RANKERS[method].label}: prediction non-representativeness "
            f"{tables.mean_std_text(s[EXAMPLE_SCORES[0]]['mean'], s[EXAMPLE_SCORES[0]]['std'])} | input "
            f"non-representativeness {tables.mean_std_text(s[EXAMPLE_SCORES[1]]['mean'], s[EXAMPLE_SCORES[1]]['std'])}")
    payload = results.payload(passes=passes, batch_size_test=results.settings.config["batch_size_test"],
                              summary=summary, lower_is_better=list(EXAMPLE_SCORES))
    headers = ["Method", "Prediction non-representativeness", "Input non-representativeness",
               "Same example as Memory Wrap"]
    rows = [[RANKERS[m].label] + [tables.mean_std_text(summary[m][k]["mean"], summary[m][k]["std"], digits)
                                  for k, digits in ((EXAMPLE_SCORES[0], 4), (EXAMPLE_SCORES[1], 4),
                                                    ("same_as_memory_wrap", 3))] for m in RANKERS]
    inputs, missing = sum(r["inputs"] for r in records), sum(r["no_candidate"] for r in records)
    zero = sum(r["zero_weight_examples"] for r in records)
    markdown = (f"# Example quality: {results.cell}\n\n{len(records)} runs, {passes} pass(es), test batch "
                f"{payload['batch_size_test']} (one memory draw per batch); mean ± population std over runs; "
                "lower is better.\n\n" + tables.markdown_table(headers, rows) +
                f"\nInputs without any memory sample of their predicted class (not scored): {missing} of {inputs}. "
                f"Memory Wrap examples of weight 0: {zero}.\n")
    csv_rows = [[r["run"], m, r["methods"][m]["scored"], r["methods"][m][EXAMPLE_SCORES[0]],
                 r["methods"][m][EXAMPLE_SCORES[1]], r["methods"][m]["same_as_memory_wrap"], r["no_candidate"]]
                for r in records for m in RANKERS]
    csv_rows += [[stat, m, None, summary[m][EXAMPLE_SCORES[0]][stat], summary[m][EXAMPLE_SCORES[1]][stat],
                  summary[m]["same_as_memory_wrap"][stat], None] for stat in ("mean", "std") for m in RANKERS]
    csv = tables.csv_text(["run", "method", "scored", *EXAMPLE_SCORES, "same_as_memory_wrap", "no_candidate"], csv_rows)
    name = results.name("example_quality", {"passes": passes, "batch_size_test": payload["batch_size_test"]},
                        {"passes": 1, "batch_size_test": EXAMPLE_BATCH})
    saved(out, write_results(folder, name, payload, tables={"md": markdown, "csv": csv}))
    return payload


# ---- train_autoencoders.py ----------------------------------------------------------------------------
def train_autoencoders(folder: str, options: CheckpointOptions = CheckpointOptions(),
                       training: AutoencoderTraining = AutoencoderTraining(), overwrite: bool = False,
                       out: Printer = print, note: Printer = stderr) -> dict:
    """The class autoencoders and the all-class one of every run of a cell, beside the runs; those
    already trained with the same split and training are kept (resume)."""

    def measure(restored) -> dict:
        def report(item: TrainedAutoencoder) -> None:
            state = "trained" if item.trained_now else "kept"
            out(f"Run:{restored.run} | {item.name} | {item.train_images} training images | final train loss "
                f"{item.train_losses[-1]:.4f} | test MSE {item.test_mse:.4f} ({item.test_images} images) | {state}")

        trained = train_run_autoencoders(restored, training, overwrite, report)
        return {"folder": str(autoencoder_folder(restored.path)),
                "autoencoders": [asdict(item) | {"path": str(item.path)} for item in trained]}

    results = each_run(folder, options, measure, require_memory=True, out=out, note=note)
    payload = results.payload(training=asdict(training))
    saved(out, [run["folder"] + "/" for run in results.runs] + write_results(Path(folder) / FOLDER, "autoencoders",
                                                                              payload))
    return payload


# ---- counterfactual_quality.py ------------------------------------------------------------------------
def _check_autoencoders_exist(checkpoint: dict, path: Path) -> dict:
    """Fail before any work when a run has no autoencoders (their split is checked when loaded); returns
    the training settings they were made with, the same for every run (their numbers depend on them)."""
    trainings = {}
    for run_path in sorted(Path(path).parent.glob("*.pt")):
        if not run_path.stem.isdigit():
            continue
        for name in autoencoder_names(int(checkpoint["num_classes"])):  # one cell: the same for every run
            target = autoencoder_folder(run_path) / f"{name}.pt"
            if not target.exists():
                raise UserError(f"autoencoder '{target}' not found; train the run's autoencoders first: "
                                f"python3 train_autoencoders.py --path_models={run_path.parent}")
            trainings[target] = load_torch_file(target).get("training")
    distinct: dict[str, Path] = {}
    for target, training in trainings.items():
        distinct.setdefault(json.dumps(training, sort_keys=True), target)
    if len(distinct) > 1:
        first, second = list(distinct.values())[:2]
        raise UserError(f"the autoencoders were trained with different settings ('{first}': {trainings[first]}, "
                        f"'{second}': {trainings[second]}); retrain them alike with train_autoencoders.py --overwrite")
    return next(iter(trainings.values()), None) or {}


def counterfactual_quality(folder: str,
                           options: CheckpointOptions = CheckpointOptions(batch_size_test=COUNTERFACTUAL_BATCH),
                           settings: CounterfactualSettings = CounterfactualSettings(), out: Printer = print,
                           note: Printer = stderr) -> dict:
    """Memory Wrap's counterfactuals and prototype-guided ones of every run of a cell, scored per input
    (IM1, IIM1, IM2, L1, L2); a figure per run; tables of the per-run means and their mean and std."""
    from .quality_figures import counterfactual_figure

    needs_memory_wrap = _memory_wrap_only("counterfactual quality (Memory Wrap's counterfactual comes from its "
                                          "sparse weights)")

    naming: dict[str, str] = {}  # the files' suffix: set by `require`, before any run is measured

    def require(checkpoint: dict, path: Path) -> None:
        needs_memory_wrap(checkpoint, path)
        naming["autoencoders"] = _check_autoencoders_exist(checkpoint, path)
        naming["suffix"] = result_name("", counterfactual_options(settings, options.batch_size_test,
                                                                  naming["autoencoders"]),
                                       counterfactual_options(CounterfactualSettings(), COUNTERFACTUAL_BATCH))

    input_rows: list[dict] = []

    def measure(restored) -> dict:
        result = counterfactual_run(restored, load_run_autoencoders(restored), settings)
        record = {"search_minutes": result.search_seconds / 60,
                  "feature_range": list(result.feature_range) if settings.data_feature_range else None,
                  "prediction_mismatch": result.prediction_mismatch, "methods": result.summary()}
        if result.figure:
            spec = restored.data.spec
            figure = counterfactual_figure(result.figure, spec.classes, spec, restored.settings.config["normalization"])
            record["figure"] = str(write_output(
                Path(folder) / f"counterfactuals_run{restored.run}{naming['suffix']}.png", figure_png(figure)))
        input_rows.extend({"run": restored.run} | row for row in result.records)
        return record

    def line(record: dict, records: list[dict]) -> str:
        parts = [f"{CF_METHODS[m]}: {s['found']}/{s['inputs']} found, IM1 {_number(s['im1'])}, IIM1 "
                 f"{_number(s['iim1'])}, IM2 {_number(s['im2'], 4)}" for m, s in record["methods"].items()]
        drawn = "" if record.get("figure") or not settings.figure_inputs else (
            " | no figure: no input has both a Memory Wrap counterfactual and a found prototype-guided one")
        return (f"Run:{record['run']} | " + " | ".join(parts) + f" | search {record['search_minutes']:.2f}min | "
                f"E:{record['minutes']:.2f}min{drawn}")

    results = each_run(folder, options, measure, line, require_memory=True, require=require, out=out, note=note)
    records = results.runs
    summary = {method: _method_summary(records, method, CF_SCORES)
               | {"found": sum(r["methods"][method]["found"] for r in records),
                  "inputs": sum(r["methods"][method]["inputs"] for r in records),
                  "not_found": _sum_reasons(r["methods"][method]["not_found"] for r in records)}
               for method in CF_METHODS}
    search = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(settings.search).items()}
    # the range applied: each run's own (in its record), or none (the option's sentinel values)
    search["feature_range"] = "training pixels" if settings.data_feature_range else "unbounded"
    payload = results.payload(
        batch_size_test=results.settings.config["batch_size_test"], summary=summary,
        settings={"target": settings.target, "max_inputs": settings.max_inputs,
                  "data_feature_range": settings.data_feature_range, "search": search,
                  "autoencoders": naming["autoencoders"]},
        scores={"im1": "lower is better", "iim1": "higher is better", "im2": "lower is better",
                "l1": "distance to the input (normalised pixels)", "l2": "distance to the input"})
    suffix = naming["suffix"]
    written = write_results(folder, f"counterfactual_quality{suffix}", payload,
                            tables=_counterfactual_tables(results.cell, payload, input_rows))
    inputs_csv = write_output(Path(folder) / f"counterfactual_quality_inputs{suffix}.csv",
                              _inputs_csv(input_rows).encode())
    for method in CF_METHODS:
        s = summary[method]
        out(f"{CF_METHODS[method]}: {s['found']}/{s['inputs']} found | IM1 "
            f"{tables.mean_std_text(s['im1']['mean'], s['im1']['std'], 3)} | IIM1 "
            f"{tables.mean_std_text(s['iim1']['mean'], s['iim1']['std'], 3)} | IM2 "
            f"{tables.mean_std_text(s['im2']['mean'], s['im2']['std'], 4)}")
        scored = sum(r["methods"][method]["im1"] is not None for r in records)
        if scored < len(records):  # a "± 0.000" over one run reads like agreement between runs
            out(f"note: {CF_METHODS[method]}'s scores are over {scored} of {len(records)} runs (the others found no "
                "counterfactual)")
    saved(out, written + [str(inputs_csv)] + [r["figure"] for r in records if r.get("figure")])
    return payload


SEARCH_OPTIONS = ("kappa", "beta", "gamma", "theta", "c_init", "c_steps", "max_iterations", "learning_rate", "clip",
                  "k", "l1_in_gradient")


def counterfactual_options(settings: CounterfactualSettings, batch_size_test: int | None,
                           autoencoders: dict | None = None) -> dict:
    """The options of counterfactual_quality.py that change its numbers (not --figure_inputs), and the
    training of the autoencoders it scores with (`autoencoders`, default: train_autoencoders.py's defaults)."""
    trained = asdict(AutoencoderTraining()) | (autoencoders or {})
    return ({"target": settings.target, "max_inputs": settings.max_inputs,
             "data_feature_range": settings.data_feature_range}
            | {name: getattr(settings.search, name) for name in SEARCH_OPTIONS}
            | {"batch_size_test": batch_size_test or COUNTERFACTUAL_BATCH}
            | {f"autoencoder_{key}": value for key, value in trained.items()})


def _sum_reasons(dicts) -> dict[str, int]:
    total: dict[str, int] = {}
    for reasons in dicts:
        for reason, count in reasons.items():
            total[reason] = total.get(reason, 0) + count
    return total


def _counterfactual_tables(label: str, payload: dict, input_rows: list[dict]) -> dict[str, str]:
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
    return {"md": markdown, "csv": tables.csv_text(["run", "method", "inputs", "found", *CF_SCORES], csv_rows)}


INPUT_COLUMNS = ["run", "method", "test_index", "label", "prediction", "found", "reason", "target", "cf_class",
                 *CF_SCORES, "memory_index", "weight"]


def _inputs_csv(input_rows: list[dict]) -> str:
    return tables.csv_text(INPUT_COLUMNS, [[row.get(c) for c in INPUT_COLUMNS] for row in input_rows])
