"""What `grid.py report` adds for a grid with a `sweep:`: per swept key, a table and a figure of the
accuracy against the key's values.

For a key, every other swept key keeps one value per panel (and per table block): the table has a
line per modality and a column per value of the key, each cell the runs' mean ± std (n; 95 % CI);
the figure has a panel per dataset, model, size and combination of the other keys, a line per
modality (mean) and its confidence band. A value without runs is "missing" and leaves a gap.
"""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from .gridspec import Cell, Sweep, frozen, sweep_tag, value_text
from .run_files import write_output

COLORS = {"std": "#1f77b4", "memory": "#7f7f7f", "encoder_memory": "#d62728"}


def _file_stem(key: str) -> str:
    return "sweep_" + re.sub(r"[^A-Za-z0-9_-]", "_", key)


def _panels(collected, key: str) -> list[tuple[str, str, int, Sweep]]:
    """(dataset, model, size, the other keys' values) of every panel of key's figure, in grid order."""
    grid, others = collected.grid, []
    for sweep in grid.sweeps():
        rest = tuple((k, v) for k, v in sweep if k != key)
        if rest not in others:
            others.append(rest)
    return [(d, m, n, rest) for d in grid.datasets for m in grid.models for n in grid.train_examples
            for rest in others]


def _cell(collected, key: str, panel: tuple, modality: str, value) -> Cell:
    dataset, model, size, rest = panel
    sweep = tuple((k, value if k == key else dict(rest)[k]) for k in collected.grid.sweep_keys)
    return Cell(dataset, model, size, modality, sweep)


def sweep_markdown(collected, key: str, values: tuple) -> str:
    from .report import model_display_name, modality_display_name

    grid = collected.grid
    lines = [f"# Sweep of `{key}`: grid {grid.name}", "",
             f"Test accuracy (%) against `{key}`: mean ± population std (n; 95 % CI of the mean, Student t, n/a "
             f"below 2 runs), one line per modality.", ""]
    for panel in _panels(collected, key):
        dataset, model, size, rest = panel
        others = f", {sweep_tag(rest)}" if rest else ""
        lines += [f"## {dataset} · {model_display_name(model)} · {size} training images{others}", "",
                  "| Modality | " + " | ".join(f"{key}={value_text(v)}" for v in values) + " |",
                  "|---|" + "---|" * len(values)]
        for modality in grid.modalities:
            cells = [collected.stats[_cell(collected, key, panel, modality, v)] for v in values]
            lines.append(f"| {modality_display_name(modality)} | "
                         + " | ".join(st.summary.text(st.runs) for st in cells) + " |")
        lines.append("")
    return "\n".join(lines)


def sweep_csv(collected, key: str, values: tuple) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["key", "value", "dataset", "model", "train_examples", "other_swept", "modality", "n", "mean",
                     "std", "ci_low", "ci_high"])
    for panel in _panels(collected, key):
        for modality in collected.grid.modalities:
            for value in values:
                summary = collected.stats[_cell(collected, key, panel, modality, value)].summary
                writer.writerow([key, value_text(value), panel[0], panel[1], panel[2], sweep_tag(panel[3]), modality,
                                 summary.n, *("" if v is None else f"{v:.4f}" for v in
                                              (summary.mean, summary.std, summary.ci_low, summary.ci_high))])
    return buffer.getvalue()


def sweep_figure(collected, key: str, values: tuple) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .report import model_display_name, modality_display_name

    grid, panels = collected.grid, _panels(collected, key)
    columns = min(len(panels), 3)
    rows = -(-len(panels) // columns)
    figure = Figure(figsize=(4.0 * columns + 0.4, 3.2 * rows + 0.9), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False).flatten()
    x = list(range(len(values)))
    for axis, panel in zip(axes, panels):
        for k, modality in enumerate(grid.modalities):
            summaries = [collected.stats[_cell(collected, key, panel, modality, v)].summary for v in values]
            color = COLORS.get(modality, f"C{k + 3}")
            means = [s.mean if s.n else float("nan") for s in summaries]
            axis.plot(x, means, color=color, marker="o", markersize=4, linewidth=1.6,
                      label=modality_display_name(modality))
            band = [(i, s.ci_low, s.ci_high) for i, s in zip(x, summaries) if s.ci_low is not None]
            if band:
                axis.fill_between([b[0] for b in band], [b[1] for b in band], [b[2] for b in band], color=color,
                                  alpha=0.18, linewidth=0)
        dataset, model, size, rest = panel
        axis.set_title(f"{dataset} · {model_display_name(model)} · {size}" + (f"\n{sweep_tag(rest)}" if rest else ""),
                       fontsize=9)
        axis.set_xticks(x)
        axis.set_xticklabels([value_text(v) for v in values])
        axis.set_xlabel(key)
        axis.set_ylabel("test accuracy (%)")
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8)
    for axis in axes[len(panels):]:
        axis.set_visible(False)
    figure.suptitle(f"Grid {grid.name}: accuracy against {key}, mean and 95 % CI over runs", fontsize=11)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def write_sweep_report(collected, out_dir: str | Path) -> dict[str, Path]:
    """sweep_<key>.md / .csv / .png for every swept key; returns their paths."""
    paths = {}
    for key, values in collected.grid.sweep:
        values = tuple(frozen(v) for v in values)
        stem = Path(out_dir) / _file_stem(key)
        for suffix, data in (("md", sweep_markdown(collected, key, values).encode()),
                             ("csv", sweep_csv(collected, key, values).encode()),
                             ("png", sweep_figure(collected, key, values))):
            paths[f"{stem.name}_{suffix}"] = write_output(stem.with_suffix(f".{suffix}"), data)
    return paths
