"""Training curves of a grid (`grid.py report`): per dataset, encoder and size, the per-epoch mean and
population std over each modality's runs, from the runs' `<run>.metrics.csv` files.

Only the runs that count in the table (finished, with the cell's settings) are drawn, so the curves
and the table describe the same runs. At an epoch, mean and std are over the runs that logged it
(all of them for the training columns; test accuracy only where `eval_every` asked for it).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .run_files import MetricsError, metrics_path, read_metrics

PANELS = (("loss", "training loss"), ("train_accuracy", "training accuracy (%)"),
          ("test_accuracy", "test accuracy (%)"))
CURVES_FOLDER = "curves"


@dataclass(frozen=True)
class Curve:
    """One column over epochs: mean and population std (ddof=0) over the runs that logged each epoch."""

    epochs: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    runs: np.ndarray  # how many runs logged each epoch


def curve(rows_by_run: dict[int, list[dict]], column: str) -> Curve | None:
    """The curve of `column` over the given runs' rows; None when no run logged it."""
    values: dict[int, list[float]] = {}
    for rows in rows_by_run.values():
        for row in rows:
            if row.get(column) is not None:
                values.setdefault(row["epoch"], []).append(float(row[column]))
    if not values:
        return None
    epochs = sorted(values)
    return Curve(np.array(epochs), np.array([np.mean(values[e]) for e in epochs]),
                 np.array([np.std(values[e]) for e in epochs]), np.array([len(values[e]) for e in epochs]))


def read_runs(run_folders: dict[int, Path]) -> tuple[dict[int, list[dict]], list[str]]:
    """Run -> its metrics rows; a missing or damaged file is left out and named in the notes."""
    rows, notes = {}, []
    for run, folder in sorted(run_folders.items()):
        path = metrics_path(folder, run)
        if not path.is_file():
            notes.append(f"no metrics file '{path}' (run trained by an earlier version?)")
            continue
        try:
            rows[run] = read_metrics(path)
        except MetricsError as error:
            notes.append(str(error))
    return rows, notes


def curves_figure(title: str, by_modality: dict[str, dict[int, list[dict]]], label: Callable[[str], str],
                  colors: dict[str, str], why_missing: dict[str, str] | None = None):
    """A panel per column that any run logged; a line per modality (mean), a band of ± std. A modality with
    runs but no value of a panel's column is named in that panel, with `why_missing[modality]` if known."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .figures import wrapped

    panels = [(column, name) for column, name in PANELS
              if any(curve(rows, column) is not None for rows in by_modality.values())]
    figure = Figure(figsize=(4.2 * len(panels) + 0.4, 3.6), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for axis, (column, name) in zip(axes, panels):
        absent = []
        for k, (modality, rows) in enumerate(by_modality.items()):
            found = curve(rows, column)
            if found is None:
                absent.append(label(modality) + (f" ({why_missing[modality]})" if (why_missing or {}).get(modality)
                                                 else ""))
                continue
            color = colors.get(modality, f"C{k + 3}")
            axis.plot(found.epochs, found.mean, color=color, linewidth=1.6,
                      label=f"{label(modality)} (n={int(found.runs.max())})",
                      marker="o" if len(found.epochs) < 12 else None, markersize=3)
            axis.fill_between(found.epochs, found.mean - found.std, found.mean + found.std, color=color,
                              alpha=0.2, linewidth=0)
        if absent:
            axis.text(0.02, 0.02, "not logged: " + "; ".join(absent), transform=axis.transAxes, fontsize=7,
                      color="0.35", va="bottom", wrap=True)
        axis.set_xlabel("epoch")
        axis.set_ylabel(name)
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(wrapped(f"{title}: mean ± std over runs per epoch", figure, 11), fontsize=11)
    return figure


def why_test_accuracy_missing(records: dict[int, dict]) -> str:
    """Why runs have no test-accuracy curve: the `eval_every` they were trained with."""
    values = sorted({(record.get("config") or {}).get("eval_every", 0) for record in records.values()})
    return "trained with eval_every " + "/".join(map(str, values)) if values else ""


def curve_file(dataset: str, model: str, size: int, tag: str) -> str:
    """`DATASET_MODEL_SIZE[@tag].png`: one file per panel of the table (and per swept combination)."""
    return f"{dataset}_{model}_{size}" + (f"@{tag}" if tag else "") + ".png"


def curve_files(collected) -> tuple[dict[str, bytes], list[str]]:
    """`collected`: the report's `Collected` (suite/report.py imports this module, never the reverse).
    {`curves/DATASET_MODEL_SIZE[@swept values].png`: figure} for each dataset, encoder, size (and
    combination of swept values) with metrics, and notes; the report writes them with its other files."""
    from architectures import model_display_name, modality_display_name

    from .figures import MODALITY_COLORS, figure_png
    from .gridspec import sweep_tag

    grid = collected.grid
    files, notes = {}, []
    for dataset in grid.datasets:
        for model in grid.models:
            for size in grid.train_examples:
                for sweep in grid.sweeps():
                    by_modality, why = {}, {}
                    for modality in grid.modalities:
                        cell = grid.cell(dataset, model, size, modality, sweep)
                        rows, problems = read_runs(collected.run_folders.get(cell, {}))
                        notes += [problem for problem in problems if problem not in notes]
                        if rows:
                            by_modality[modality] = rows
                            why[modality] = why_test_accuracy_missing(collected.records.get(cell, {}))
                    if not by_modality:
                        continue
                    title = (f"{dataset} · {model_display_name(model)} · {size} training images"
                             + (f" · {sweep_tag(sweep)}" if sweep else ""))
                    name = f"{CURVES_FOLDER}/{curve_file(dataset, model, size, sweep_tag(sweep))}"
                    files[name] = figure_png(curves_figure(title, by_modality, modality_display_name, MODALITY_COLORS,
                                                           why))
    return files, notes
