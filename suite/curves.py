"""Training curves of a grid (`grid.py report`): per dataset, encoder and size, the per-epoch mean and
population std over each modality's runs, from the runs' `<run>.metrics.csv` files.

Only the runs that count in the table (finished, with the cell's settings) are drawn, so the curves
and the table describe the same runs. At an epoch, mean and std are over the runs that logged it
(all of them for the training columns; test accuracy only where `eval_every` asked for it).
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TYPE_CHECKING

import numpy as np

from .run_files import write_output, MetricsError, metrics_path, read_metrics
from .gridspec import Cell

if TYPE_CHECKING:
    from .report import Collected

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


def curves_png(title: str, by_modality: dict[str, dict[int, list[dict]]], label: Callable[[str], str],
               colors: dict[str, str]) -> bytes:
    """A panel per column that any run logged; a line per modality (mean), a band of ± std."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = [(column, name) for column, name in PANELS
              if any(curve(rows, column) is not None for rows in by_modality.values())]
    figure = Figure(figsize=(4.2 * len(panels) + 0.4, 3.6), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for axis, (column, name) in zip(axes, panels):
        for k, (modality, rows) in enumerate(by_modality.items()):
            found = curve(rows, column)
            if found is None:
                continue
            color = colors.get(modality, f"C{k + 3}")
            axis.plot(found.epochs, found.mean, color=color, linewidth=1.6,
                      label=f"{label(modality)} (n={int(found.runs.max())})",
                      marker="o" if len(found.epochs) < 12 else None, markersize=3)
            axis.fill_between(found.epochs, found.mean - found.std, found.mean + found.std, color=color,
                              alpha=0.2, linewidth=0)
        axis.set_xlabel("epoch")
        axis.set_ylabel(name)
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(f"{title}: mean ± std over runs per epoch", fontsize=11)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def write_curves(collected: Collected, out_dir: str | Path) -> tuple[list[Path], list[str]]:
    """`curves/DATASET_MODEL_SIZE.png` for each dataset, encoder and size with metrics; (paths, notes)."""
    from .report import COLORS, model_display_name, modality_display_name

    grid = collected.grid
    written, notes = [], []
    for dataset in grid.datasets:
        for model in grid.models:
            for size in grid.train_examples:
                by_modality = {}
                for modality in grid.modalities:
                    folders = collected.run_folders.get(Cell(dataset, model, size, modality), {})
                    rows, problems = read_runs(folders)
                    notes += problems
                    if rows:
                        by_modality[modality] = rows
                if by_modality:
                    png = curves_png(f"{dataset} · {model_display_name(model)} · {size} training images", by_modality,
                                     modality_display_name, COLORS)
                    written.append(write_output(Path(out_dir) / CURVES_FOLDER / f"{dataset}_{model}_{size}.png", png))
    return written, notes

