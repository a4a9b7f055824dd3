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

from .gridspec import Cell, Sweep, frozen, sweep_tag, value_text
from .figures import MODALITY_COLORS, figure_png, wrapped



PANEL_INCHES = 4.0  # width of a panel of a sweep figure


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
    return collected.grid.cell(dataset, model, size, modality, sweep)


def _split(collected, key: str) -> tuple[list[str], list[str]]:
    """(modalities that read `key`: a line against its values, those that do not: one reference cell)."""
    unread = [m for m in collected.grid.modalities if key in collected.grid.unread(m)]
    return [m for m in collected.grid.modalities if m not in unread], unread


def sweep_markdown(collected, key: str, values: tuple) -> str:
    from architectures import model_display_name, modality_display_name

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
        swept, unread = _split(collected, key)
        for modality in swept:
            cells = [collected.stats[_cell(collected, key, panel, modality, v)] for v in values]
            lines.append(f"| {modality_display_name(modality)} | "
                         + " | ".join(st.summary.text(st.runs) for st in cells) + " |")
        lines.append("")
        for modality in unread:
            st = collected.stats[_cell(collected, key, panel, modality, values[0])]
            lines += [f"{modality_display_name(modality)} reads no `{key}`: one cell for every value, "
                      f"{st.summary.text(st.runs)}.", ""]
    return "\n".join(lines)


def sweep_csv(collected, key: str, values: tuple) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["key", "value", "dataset", "model", "train_examples", "other_swept", "modality", "n", "mean",
                     "std", "ci_low", "ci_high"])
    for panel in _panels(collected, key):
        swept, unread = _split(collected, key)
        for modality in swept + unread:
            for value in values if modality in swept else [None]:
                cell = _cell(collected, key, panel, modality, values[0] if value is None else value)
                summary = collected.stats[cell].summary
                writer.writerow([key, "all" if value is None else value_text(value), panel[0], panel[1], panel[2],
                                 sweep_tag(panel[3]), modality, summary.n,
                                 *("" if v is None else f"{v:.4f}" for v in
                                   (summary.mean, summary.std, summary.ci_low, summary.ci_high))])
    return buffer.getvalue()


def sweep_figure(collected, key: str, values: tuple):
    """The figure (matplotlib) of one swept key: a panel per dataset, model, size and other keys' values."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from architectures import model_display_name, modality_display_name

    grid, panels = collected.grid, _panels(collected, key)
    columns = min(len(panels), 3)
    rows = -(-len(panels) // columns)
    figure = Figure(figsize=(PANEL_INCHES * columns + 0.4, 3.2 * rows + 0.9), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False).flatten()
    x = list(range(len(values)))
    swept, unread = _split(collected, key)
    for axis, panel in zip(axes, panels):
        for k, modality in enumerate(grid.modalities):
            color = MODALITY_COLORS.get(modality, f"C{k + 3}")
            if modality in unread:  # one cell for every value: a reference line across the panel
                summary = collected.stats[_cell(collected, key, panel, modality, values[0])].summary
                if summary.n:
                    axis.axhline(summary.mean, color=color, linestyle="--", linewidth=1.4,
                                 label=f"{modality_display_name(modality)} (reads no {key})")
                    if summary.ci_low is not None:
                        axis.axhspan(summary.ci_low, summary.ci_high, color=color, alpha=0.12, linewidth=0)
                continue
            summaries = [collected.stats[_cell(collected, key, panel, modality, v)].summary for v in values]
            means = [s.mean if s.n else float("nan") for s in summaries]
            axis.plot(x, means, color=color, marker="o", markersize=4, linewidth=1.6,
                      label=modality_display_name(modality))
            band = [(i, s.ci_low, s.ci_high) for i, s in zip(x, summaries) if s.ci_low is not None]
            if band:
                axis.fill_between([b[0] for b in band], [b[1] for b in band], [b[2] for b in band], color=color,
                                  alpha=0.18, linewidth=0)
        dataset, model, size, rest = panel
        title = f"{dataset} · {model_display_name(model)} · {size}" + (f"\n{sweep_tag(rest)}" if rest else "")
        axis.set_title(wrapped(title, PANEL_INCHES, 9), fontsize=9)
        axis.set_xticks(x)
        axis.set_xticklabels([value_text(v) for v in values])
        axis.set_xlabel(key)
        axis.set_ylabel("test accuracy (%)")
        axis.grid(True, alpha=0.3)
    for axis in axes[len(panels):]:
        axis.set_visible(False)
    figure.suptitle(wrapped(f"Grid {grid.name}: accuracy against {key}, mean and 95 % CI over runs", figure, 11),
                    fontsize=11)
    legend = {}  # one legend under the panels, so that none covers a line; every modality any panel drew
    for axis in axes[:len(panels)]:
        legend.update(zip(*reversed(axis.get_legend_handles_labels())))
    if legend:
        figure.legend(list(legend.values()), list(legend), loc="outside lower center", ncols=len(legend), fontsize=9,
                      frameon=False)
    return figure


def sweep_files(collected) -> dict[str, tuple[str, bytes]]:
    """kind -> (file name, content) of sweep_<key>.md / .csv / .png for every swept key; the report
    writes them with its other files."""
    files = {}
    for key, values in collected.grid.sweep:
        values = tuple(frozen(v) for v in values)
        stem = _file_stem(key)
        for suffix, data in (("md", sweep_markdown(collected, key, values).encode()),
                             ("csv", sweep_csv(collected, key, values).encode()),
                             ("png", figure_png(sweep_figure(collected, key, values)))):
            files[f"{stem}_{suffix}"] = (f"{stem}.{suffix}", data)
    return files
