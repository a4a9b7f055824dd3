"""`grid.py report`: the paper's Table 1 (Markdown, CSV, LaTeX) and a figure, from the run records.

Every run record under the models folder is read (`<run>.json`); a
record counts for a cell of the grid when its dataset, model, modality and size match the cell, its
run is one of the grid's (1..runs) and it was trained with the cell's settings (a record of other
settings, e.g. a 1-epoch trial, is left out and said so). Per cell: mean and population std (numpy's
default, ddof=0, as the original) over its runs, n, and the 95 % confidence interval of the mean
(Student t; "n/a" below 2 runs); for the cells the original states a number for, whether that number
lies inside our interval. Per model, size (and swept values): each modality's difference from Std,
with Welch's p-value, Holm-corrected over the whole table, and Hedges' g. A cell without a finished
run is shown as missing, never as a number. Every mark (bold best, inside / outside the interval, Δ)
follows the numbers as its file prints them: 2 decimals in the Markdown and LaTeX tables, 4 in the
CSV files (suite/stats.py: `printed`). Sweep grids also get a table and a figure per swept key
(suite/sweeps.py).

Model and modality names come from the architectures registry (display names), so adding an
encoder or a head needs no edit here.
"""
from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path

from architectures import modality_display_name, model_display_name  # what tables call them (registries)

from .cli import UserError
from .config import cell_folder, settings_difference
from .gridspec import Cell, Grid, Sweep, frozen, sweep_tag
from .figures import MODALITY_COLORS, figure_png, wrapped
from .run_files import check_output_folder, finished_runs, record_folders, record_path, write_output
from .stats import Comparison, Summary, best_of, compare, holm, printed, printed_difference, summarize

MISSING = "missing"
FILES = {"markdown": "table1.md", "csv": "table1.csv", "latex": "table1.tex", "figure": "accuracy_vs_size.png",
         "differences_csv": "differences.csv"}
REFERENCE = "std"  # every other modality is compared with the plain classifier
TABLE_DIGITS, CSV_DIGITS = 2, 4  # decimals of the Markdown / LaTeX tables and of the CSV files



@dataclass(frozen=True)
class CellStats:
    cell: Cell
    runs: int  # the grid's runs per cell
    accuracies: tuple[float, ...]  # in run order
    subset_sizes: tuple[int, ...] = ()  # train_subset_size of the records (the real size of "full")
    best: bool = False

    @property
    def summary(self) -> Summary:
        return summarize(self.accuracies)

    @property
    def n(self) -> int:
        return len(self.accuracies)

    @property
    def mean(self) -> float | None:
        return self.summary.mean

    @property
    def std(self) -> float | None:
        return self.summary.std  # population std (ddof=0)

    @property
    def paper(self) -> float | None:
        c = self.cell
        return None if c.sweep else paper_accuracy(c.dataset, c.model, c.modality, c.train_examples)

    @property
    def difference(self) -> Decimal | None:
        """Ours − paper as the tables print them (2 decimals); None without runs or a paper number."""
        return self.difference_at(TABLE_DIGITS)

    @property
    def paper_inside(self) -> bool | None:
        """Whether the original's stated mean lies inside our 95 % interval as the tables print them
        (None: no number or no interval)."""
        return self.paper_inside_at(TABLE_DIGITS)

    def difference_at(self, digits: int) -> Decimal | None:
        return None if self.mean is None or self.paper is None else printed_difference(self.mean, self.paper, digits)

    def paper_inside_at(self, digits: int) -> bool | None:
        return self.summary.contains(self.paper, digits)


@dataclass
class Collected:
    grid: Grid
    models_dir: Path
    stats: dict[Cell, CellStats]
    files: int = 0  # record files read (<run>.json)
    notes: list[str] = field(default_factory=list)
    run_folders: dict[Cell, dict[int, Path]] = field(default_factory=dict)  # where each counted run's files are
    differences: list[Difference] = field(default_factory=list)
    records: dict[Cell, dict[int, dict]] = field(default_factory=dict)  # the counted runs' records

    def column_label(self, dataset: str, size: int) -> str:
        """The size, or 'full (N)' where the whole training split (N images) was smaller than asked."""
        sizes = {s for cell, st in self.stats.items() if cell.dataset == dataset and cell.train_examples == size
                 for s in st.subset_sizes}
        if sizes and max(sizes) < size:
            return f"full ({max(sizes)})"
        return str(size)


def collect(grid: Grid, models_dir: str | Path | None = None) -> Collected:
    """Read every run record under the models folder and group the grid's records by cell."""
    names = grid.lenient_dataset_names()
    cells = grid.cells()
    expected, tags = {}, {}
    folder_of_config = None
    for cell in cells:
        settings = grid.cell_settings(cell, names, list(grid.models))  # lenient names: no dataset files read
        expected[cell], tags[cell] = settings.comparable_json(), settings.config["cell_tag"]
        folder_of_config = folder_of_config or Path(settings.config["models_dir"])
    root = Path(models_dir) if models_dir is not None else folder_of_config
    own_folder = {cell: cell_folder(root, cell.dataset, cell.modality, cell.model, cell.train_examples, tags[cell])
                  .resolve() for cell in cells}
    elsewhere: dict[Path, int] = defaultdict(int)  # records of a grid cell found outside its folder: copies
    found: dict[Cell, dict[int, dict]] = defaultdict(dict)
    run_folders: dict[Cell, dict[int, Path]] = defaultdict(dict)
    other_settings: dict[Cell, tuple[int, set[str]]] = {}
    outside, beyond, files = 0, 0, 0
    notes: list[str] = []
    folders = record_folders(root) if root.is_dir() else []
    for folder in folders:
        problems: list[str] = []
        records = finished_runs(folder, problems)
        notes += [f"skipped: {problem}" for problem in problems]
        files += len(records)
        for run, record in records.items():
            path = record_path(folder, run)
            try:
                cell = grid.cell(record["dataset"], record["model"], int(record["train_examples"]), record["modality"],
                                 swept_values(record.get("config") or {}, grid.sweep_keys))
                float(record["accuracy"])
            except (KeyError, TypeError, ValueError):
                notes.append(f"skipped a record of '{path}' without dataset/model/train_examples/modality/accuracy"
                             + (" or a swept key" if grid.sweep else ""))
                continue
            if cell not in expected:
                outside += 1
            elif folder.resolve() != own_folder[cell]:
                elsewhere[folder] += 1
            elif record.get("settings") != expected[cell]:
                count, keys = other_settings.get(cell, (0, set()))
                keys |= set(settings_difference(record.get("settings") or {}, expected[cell]))
                other_settings[cell] = (count + 1, keys)
            elif record["run"] > grid.runs or record["run"] < 1:
                beyond += 1
            else:
                found[cell][record["run"]] = record
                run_folders[cell][record["run"]] = folder
    if not folders:
        notes.append(f"no run records found under '{root}'")
    for cell, (count, keys) in sorted(other_settings.items()):
        notes.append(f"{cell.label}: {count} record(s) left out, trained with other settings "
                     f"(differ in: {', '.join(sorted(keys))})")
    if elsewhere:
        shown = ", ".join(f"'{folder}'" for folder in sorted(elsewhere)[:3]) + (", ..." if len(elsewhere) > 3 else "")
        notes.append(f"{sum(elsewhere.values())} record(s) of this grid's cells left out: they lie outside their "
                     f"cell's folder (copies, or another models folder inside this one): {shown}")
    if outside:
        notes.append(f"{outside} record(s) under '{root}' belong to cells outside this grid")
    if beyond:
        notes.append(f"{beyond} record(s) of runs above the grid's {grid.runs} runs per cell left out")
    stats = {}
    for cell in cells:
        runs = found.get(cell, {})
        ordered = [runs[r] for r in sorted(runs)]
        stats[cell] = CellStats(cell, grid.runs, tuple(float(r["accuracy"]) for r in ordered),
                                tuple(int(r["train_subset_size"]) for r in ordered if "train_subset_size" in r))
    stats = mark_best(stats, columns(grid))
    return Collected(grid, root, stats, files, notes, dict(run_folders), differences(grid, stats),
                     {cell: dict(runs) for cell, runs in found.items()})


def swept_values(config: dict, keys: tuple[str, ...]) -> Sweep:
    """The values a record's config holds for the grid's swept keys (dotted keys reach sections)."""
    values = []
    for key in keys:
        node = config
        for part in key.split("."):
            node = node[part]
        values.append((key, frozen(node)))
    return tuple(values)


@dataclass(frozen=True)
class Difference:
    """One modality against Std in one column of the table (same dataset, model, size, swept values)."""

    cell: Cell
    reference: Cell
    comparison: Comparison | None  # None below 2 runs on either side
    means: tuple[float, float] | None = None  # (the cell's, Std's) means, where compared

    def difference_at(self, digits: int) -> Decimal | None:
        """The cell's mean − Std's as a table with `digits` decimals prints them (None below 2 runs)."""
        return None if self.comparison is None else printed_difference(*self.means, digits)


def differences(grid: Grid, stats: dict[Cell, CellStats]) -> list[Difference]:
    """Every modality of the grid against Std, with Welch's p-values Holm-corrected over the whole list."""
    found = []
    for cell, st in stats.items():
        reference = grid.cell(cell.dataset, cell.model, cell.train_examples, REFERENCE, cell.sweep)
        if cell.modality != REFERENCE and reference in stats:
            found.append(Difference(cell, reference, compare(st.accuracies, stats[reference].accuracies)))
    adjusted = holm([d.comparison.p if d.comparison else None for d in found])
    return [replace(d, comparison=replace(d.comparison, p_holm=p) if d.comparison else None,
                    means=(stats[d.cell].mean, stats[d.reference].mean) if d.comparison else None)
            for d, p in zip(found, adjusted)]


def columns(grid: Grid) -> list[list[Cell]]:
    """The cells compared for the bold mark: per dataset, model, size and combination of swept values, each
    modality's cell. A cell that reads none of the swept keys (Std in a memory sweep) is in every column of
    its model and size."""
    return [list(dict.fromkeys(grid.cell(d, m, n, modality, sweep) for modality in grid.modalities))
            for d in grid.datasets for m in grid.models for n in grid.train_examples for sweep in grid.sweeps()]


def best_cells(stats: dict[Cell, CellStats], groups: list[list[Cell]], digits: int) -> set[Cell]:
    """The best modality of each column of `groups`, on the means printed with `digits` decimals (ties all
    best); a column needs two modalities with results to have a best one, and a cell in several columns
    is best only where it is the best of each."""
    verdicts: dict[Cell, list[bool]] = defaultdict(list)
    for group in groups:
        means = {cell: stats[cell].mean for cell in group if cell in stats and stats[cell].n}
        best = best_of(means, digits)
        if best:
            for cell in means:
                verdicts[cell].append(cell in best)
    return {cell for cell, wins in verdicts.items() if all(wins)}


def mark_best(stats: dict[Cell, CellStats], groups: list[list[Cell]]) -> dict[Cell, CellStats]:
    """Bold the best modality of each column of the tables (on their 2 decimals)."""
    best = best_cells(stats, groups, TABLE_DIGITS)
    return {cell: replace(st, best=cell in best) for cell, st in stats.items()}


# ---- text formats ---------------------------------------------------------------------------------
def _signed(value: float | Decimal) -> str:
    return f"{printed(value, TABLE_DIGITS):+.{TABLE_DIGITS}f}".replace("-", "\u2212")


def _paper_text(st: CellStats) -> str:
    if st.paper is None:
        return ""
    inside = {True: ", inside our CI", False: ", outside our CI", None: ""}[st.paper_inside]
    return f"; paper {st.paper:.2f}" + (f", Δ {_signed(st.difference)}{inside}" if st.n else "")


def markdown_cell(st: CellStats) -> str:
    if not st.n:
        return MISSING + _paper_text(st)
    summary = st.summary
    value = f"{summary.mean:.2f} ± {summary.std:.2f}"
    return (f"**{value}**" if st.best else value) + (f" ({summary.count_text(st.runs)}; CI "
                                                       f"{summary.interval_text()})") + _paper_text(st)


def _rows(collected: Collected, dataset: str) -> list[tuple[str, str, str, list[CellStats]]]:
    """(model, modality, swept values as shown, its cells in size order) of every line of a dataset's table;
    a modality that reads none of the swept keys has one line, first (one cell for every swept value)."""
    grid, rows, seen = collected.grid, [], set()
    for model in grid.models:
        for sweep in grid.sweeps():
            for modality in grid.modalities:
                cell = grid.cell(dataset, model, grid.train_examples[0], modality, sweep)
                if (model, modality, cell.sweep) in seen:
                    continue
                seen.add((model, modality, cell.sweep))
                rows.append((model, modality, sweep_text(grid, modality, cell.sweep),
                             [collected.stats[grid.cell(dataset, model, size, modality, sweep)]
                              for size in grid.train_examples]))
    return rows


def sweep_text(grid: Grid, modality: str, sweep: Sweep) -> str:
    """A row's swept values, and the swept keys its modality does not read (one cell for all their values)."""
    unread = grid.unread(modality)
    text = sweep_tag(sweep)
    if unread:
        text += ("; " if text else "") + f"not swept (reads no {', '.join(unread)})"
    return text


def _legend(collected: Collected) -> list[str]:
    bold = ("the best modality of a model in a column" if not collected.grid.sweep else
            "the best modality of a model in a column for one combination of swept values (a row that reads "
            "none of the swept keys is one cell for all of them, bold where it is the best of every combination)")
    lines = [
        f"Test accuracy (%) of grid `{collected.grid.path}`: mean ± population std over the n finished runs "
        f"(seeds 0..n-1) of each cell, and the 95 % confidence interval of the mean (Student t; n/a below 2 "
        f"runs); n shown as n=k/{collected.grid.runs} while runs are missing. "
        f"**Bold**: {bold}; every mark follows the printed numbers (2 decimals): two means printed alike are "
        f"both bold. \"{MISSING}\": no finished run.",
    ]
    if any(st.paper is not None for st in collected.stats.values()):
        lines.append("Paper: the mean the original repository states (MobileNetV2 only, docs/protocol.md, Reference "
                     "numbers), Δ = ours − paper as printed here, and whether it lies inside our interval as printed "
                     "(bounds included).")
    return lines


def _sweep_column(collected: Collected) -> tuple[str, str]:
    return (" Sweep |", "---|") if collected.grid.sweep else ("", "")


def markdown(collected: Collected) -> str:
    grid = collected.grid
    lines = [f"# Table 1: grid {grid.name}", ""] + _legend(collected) + [""]
    head, rule = _sweep_column(collected)
    for dataset in grid.datasets:
        labels = [collected.column_label(dataset, size) for size in grid.train_examples]
        lines += [f"## {dataset}", "", "| Encoder | Modality |" + head + " " + " | ".join(labels) + " |",
                  "|---|---|" + rule + "---|" * len(labels)]
        for model, modality, sweep, row in _rows(collected, dataset):
            swept = f" {sweep} |" if grid.sweep else ""
            lines.append(f"| {model_display_name(model)} | {modality_display_name(modality)} |{swept} "
                         + " | ".join(markdown_cell(st) for st in row) + " |")
        lines.append("")
    lines += differences_markdown(collected)
    complete = sum(st.n >= st.runs for st in collected.stats.values())
    missing = sum(not st.n for st in collected.stats.values())
    lines.append(f"{complete} of {len(collected.stats)} cells complete, {missing} missing; "
                 f"read {collected.files} record file(s) under `{collected.models_dir}`.")
    lines += [f"- note: {note}" for note in collected.notes]
    return "\n".join(lines) + "\n"


def _p_text(p: float | None) -> str:
    return "n/a" if p is None else ("<0.0001" if p < 1e-4 else f"{p:.4f}")


def difference_columns(d: Difference) -> list[str]:
    """Δ (of the printed means), p, Holm-corrected p and Hedges' g of one comparison as the tables print them."""
    c = d.comparison
    if c is None:
        return ["n/a"] * 4
    return [_signed(d.difference_at(TABLE_DIGITS)), _p_text(c.p), _p_text(c.p_holm),
            "n/a" if c.hedges_g is None else _signed(c.hedges_g)]


def differences_markdown(collected: Collected) -> list[str]:
    if not collected.differences:
        return []
    head, rule = _sweep_column(collected)
    lines = ["## Differences from Std", "",
             "Each modality against Std in the same column (dataset, encoder, size"
             + (", swept values" if collected.grid.sweep else "") + "): difference of the means as Table 1 "
             "prints them (points), "
             "Welch's two-sided p-value, the same Holm-corrected over the "
             f"{sum(d.comparison is not None and d.comparison.p is not None for d in collected.differences)} "
             "comparisons of this table, and Hedges' g (the difference in pooled standard deviations, "
             "small-sample corrected); n/a below 2 runs on either side, or when neither side varies across "
             "its runs.", "",
             "| Dataset | Encoder | Size |" + head + " Modality | Δ vs Std | p | p (Holm) | g |",
             "|---|---|---|" + rule + "---|---|---|---|---|"]
    for d in collected.differences:
        c = d.cell
        swept = f" {sweep_tag(c.sweep)} |" if collected.grid.sweep else ""
        lines.append(f"| {c.dataset} | {model_display_name(c.model)} | {collected.column_label(c.dataset, c.train_examples)} |"
                     f"{swept} {modality_display_name(c.modality)} | " + " | ".join(difference_columns(d)) + " |")
    return lines + [""]


CSV_COLUMNS = ("dataset", "model", "modality", "modality_name", "sweep", "train_examples", "n", "runs", "mean", "std",
               "ci_low", "ci_high", "best", "paper_mean", "difference", "paper_inside_ci", "train_subset_size")


def _number(value: float | Decimal | None) -> str:
    return "" if value is None else f"{printed(value, CSV_DIGITS):.{CSV_DIGITS}f}"


def _flag(value: bool | None) -> str:
    return "" if value is None else str(int(value))


def csv_text(collected: Collected) -> str:
    """One row per cell (tidy); empty values where a cell has none (missing runs, no interval, no paper).
    Its marks (best, difference, paper_inside_ci) follow its own 4 decimals."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    best = best_cells(collected.stats, columns(collected.grid), CSV_DIGITS)
    for cell, st in collected.stats.items():
        subset, summary = sorted(set(st.subset_sizes)), st.summary
        writer.writerow([cell.dataset, cell.model, cell.modality, modality_display_name(cell.modality), cell.tag,
                         cell.train_examples, st.n, st.runs, _number(summary.mean), _number(summary.std),
                         _number(summary.ci_low), _number(summary.ci_high), int(cell in best), _number(st.paper),
                         _number(st.difference_at(CSV_DIGITS)), _flag(st.paper_inside_at(CSV_DIGITS)),
                         subset[0] if len(subset) == 1 else ""])
    return buffer.getvalue()


def differences_csv(collected: Collected) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["dataset", "model", "train_examples", "sweep", "modality", "reference", "reference_sweep", "n",
                     "n_reference", "difference", "p_welch", "p_holm", "hedges_g"])
    for d in collected.differences:
        c, comparison = d.cell, d.comparison
        values = ([_number(d.difference_at(CSV_DIGITS)), _number(comparison.p), _number(comparison.p_holm),
                   _number(comparison.hedges_g)] if comparison else ["", "", "", ""])
        writer.writerow([c.dataset, c.model, c.train_examples, c.tag, c.modality, d.reference.modality, d.reference.tag,
                         collected.stats[c].n, collected.stats[d.reference].n, *values])
    return buffer.getvalue()


def _latex_escape(text: str) -> str:
    for char, escaped in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#")):
        text = text.replace(char, escaped)
    return text


def latex_cell(st: CellStats) -> str:
    if not st.n:
        text = "--"
    else:
        summary = st.summary
        value = f"{summary.mean:.2f} \\pm {summary.std:.2f}"
        text = f"$\\mathbf{{{value}}}$" if st.best else f"${value}$"
        count = summary.count_text(st.runs).replace("=", "{=}")  # n=k/runs while runs are missing
        text += f" {{\\scriptsize ${count}$, CI {summary.interval_text()}}}"
    if st.paper is not None:
        inside = {True: ", in CI", False: ", outside CI", None: ""}[st.paper_inside]
        text += f" {{\\scriptsize (paper {st.paper:.2f}" + (f", ${st.difference:+.2f}${inside})}}" if st.n else ")}")
    return text


def latex(collected: Collected) -> str:
    grid = collected.grid
    lines = [f"% Table 1 of grid {_latex_escape(str(grid.path))}, written by `grid.py report`. "
             "Needs \\usepackage{booktabs}.",
             "% Mean $\\pm$ population std over n runs (n=k/runs while runs are missing), 95 % CI of the mean "
             "(Student t); bold: best modality of a model per column; -- : no finished run; paper: the original's "
             "stated mean (MobileNetV2), ours - paper and whether it lies in our CI, all on the printed numbers."]
    for dataset in grid.datasets:
        labels = [_latex_escape(collected.column_label(dataset, size)) for size in grid.train_examples]
        extra = 1 if grid.sweep else 0
        lines += ["\\begin{table}[t]", "\\centering",
                  f"\\caption{{Test accuracy (\\%) on {_latex_escape(dataset)}: mean $\\pm$ std over "
                  f"{grid.runs} runs.}}",
                  "\\begin{tabular}{ll" + "l" * extra + "c" * len(labels) + "}", "\\toprule",
                  "Encoder & Modality & " + ("Sweep & " if extra else "") + " & ".join(labels) + " \\\\",
                  "\\midrule"]
        previous = None
        for model, modality, sweep, row in _rows(collected, dataset):
            if previous is not None and model != previous:
                lines.append("\\midrule")
            name = _latex_escape(model_display_name(model)) if model != previous else ""
            swept = f"{_latex_escape(sweep)} & " if extra else ""
            lines.append(f"{name} & {_latex_escape(modality_display_name(modality))} & {swept}"
                         + " & ".join(latex_cell(st) for st in row) + " \\\\")
            previous = model
        lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}", ""]
    if collected.differences:
        lines += ["\\begin{table}[t]", "\\centering",
                  "\\caption{Differences from Std: $\\Delta$ of the means, Welch's $p$, Holm-corrected $p$ over "
                  "the table, Hedges' $g$; n/a below 2 runs or when neither side varies.}",
                  "\\begin{tabular}{lll" + "l" * (1 if grid.sweep else 0) + "lrrrr}", "\\toprule",
                  "Dataset & Encoder & Size & " + ("Sweep & " if grid.sweep else "")
                  + "Modality & $\\Delta$ & $p$ & $p_{\\mathrm{Holm}}$ & $g$ \\\\", "\\midrule"]
        for d in collected.differences:
            c = d.cell
            swept = f"{_latex_escape(c.tag)} & " if grid.sweep else ""
            columns = [v.replace("\u2212", "-") for v in difference_columns(d)]
            lines.append(f"{_latex_escape(c.dataset)} & {_latex_escape(model_display_name(c.model))} & "
                         f"{_latex_escape(collected.column_label(c.dataset, c.train_examples))} & {swept}"
                         f"{_latex_escape(modality_display_name(c.modality))} & "
                         + " & ".join(_latex_escape(v) for v in columns) + " \\\\")
        lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}", ""]
    return "\n".join(lines)


# ---- figure ---------------------------------------------------------------------------------------
def _size_tick(collected: Collected, dataset: str, size: int) -> str:
    label = collected.column_label(dataset, size)
    if label.startswith("full"):
        return "full\n" + label[6:-1]
    return f"{size // 1000}k" if size >= 1000 and size % 1000 == 0 else str(size)


def accuracy_figure(collected: Collected):
    """Accuracy against training-set size: a row of panels per dataset, a panel per encoder, a line
    per modality (mean, with population-std error bars); the paper's MobileNetV2 means as hollow marks."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    grid = collected.grid
    sweep = grid.sweeps()[0]  # a sweep grid draws its first combination here, and every one per swept key
    rows, columns = len(grid.datasets), len(grid.models)
    figure = Figure(figsize=(3.2 * columns + 0.6, 2.9 * rows + 1.0), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, columns, squeeze=False)
    sizes = sorted(grid.train_examples)
    positions = {size: i for i, size in enumerate(sizes)}  # evenly spaced: sizes span 1k to 100k
    any_paper = False
    for r, dataset in enumerate(grid.datasets):
        values = [st.mean - st.std for c, st in collected.stats.items() if c.dataset == dataset and st.n]
        values += [st.mean + st.std for c, st in collected.stats.items() if c.dataset == dataset and st.n]
        values += [st.paper for c, st in collected.stats.items() if c.dataset == dataset and st.paper is not None]
        for c, model in enumerate(grid.models):
            axis = axes[r][c]
            drawn = False
            for k, modality in enumerate(grid.modalities):
                color = MODALITY_COLORS.get(modality, f"C{k + 3}")
                points = [(positions[s], collected.stats[grid.cell(dataset, model, s, modality, sweep)]) for s in sizes]
                points = [(x, st) for x, st in points if st.n]
                if points:
                    drawn = True
                    shift = (k - (len(grid.modalities) - 1) / 2) * 0.06  # keep error bars apart
                    axis.errorbar([x + shift for x, _ in points], [st.mean for _, st in points],
                                  yerr=[st.std for _, st in points], color=color, marker="o", markersize=4,
                                  linewidth=1.6, capsize=3, label=modality_display_name(modality))
                paper = [(positions[s], paper_accuracy(dataset, model, modality, s)) for s in sizes]
                paper = [(x, v) for x, v in paper if v is not None]
                if paper:
                    any_paper = True
                    axis.plot([x for x, _ in paper], [v for _, v in paper], color=color, marker="o",
                              markerfacecolor="white", markersize=5, linestyle=":", linewidth=1.0)
            if not drawn:
                axis.text(0.5, 0.5, "no results yet", transform=axis.transAxes, ha="center", va="center",
                          color="0.5")
            if values:
                low, high = min(values), max(values)
                pad = max(2.0, 0.08 * (high - low))
                axis.set_ylim(max(0.0, low - pad), min(100.0, high + pad))
            axis.set_xticks(range(len(sizes)))
            axis.set_xticklabels([_size_tick(collected, dataset, s) for s in sizes])
            axis.set_xlim(-0.4, len(sizes) - 0.6)
            axis.grid(True, alpha=0.3)
            axis.set_title(f"{dataset} · {model_display_name(model)}", fontsize=10)
            if c == 0:
                axis.set_ylabel("test accuracy (%)")
            if r == rows - 1:
                axis.set_xlabel("training images")
    handles = [Line2D([], [], color=MODALITY_COLORS.get(m, f"C{k + 3}"), marker="o", label=modality_display_name(m))
               for k, m in enumerate(grid.modalities)]
    if any_paper:
        handles.append(Line2D([], [], color="0.3", marker="o", markerfacecolor="white", linestyle=":",
                              label="paper (MobileNetV2 means)"))
    figure.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False)
    title = wrapped(f"Grid {grid.name}{f' ({sweep_tag(sweep)})' if sweep else ''}: test accuracy vs. "
                    "training-set size, mean ± std over runs. "
                    "The paper's claim: Memory Wrap above Std with few training images, the gap closing "
                    "on the full training set", figure, 11)
    figure.suptitle(title, fontsize=11)
    return figure


# ---- writing ----------------------------------------------------------------------------------------
def write_report(grid: Grid, out_dir: str | Path, models_dir: str | Path | None = None) -> tuple[Collected, dict]:
    """Collect, then compute every file before writing any (a failure leaves the previous report as it
    was): table1.md / .csv / .tex, the figure, the differences, the training curves (suite/curves.py),
    for a sweep the per-key tables and figures (suite/sweeps.py), for the journal's grids the comparison;
    returns what was collected and the paths (`curves`: the list of curve figures)."""
    from .curves import curve_files
    from .journal.comparison import comparison_files
    from .sweeps import sweep_files

    out_dir = Path(out_dir)
    check_output_folder(out_dir, "--out")
    collected = collect(grid, models_dir)
    curves, curve_notes = curve_files(collected)
    collected.notes += [f"curves: {note}" for note in curve_notes]
    contents = {kind: (FILES[kind], data) for kind, data in (
        ("markdown", markdown(collected).encode()), ("csv", csv_text(collected).encode()),
        ("latex", latex(collected).encode()), ("figure", figure_png(accuracy_figure(collected))),
        ("differences_csv", differences_csv(collected).encode()))}
    if grid.sweep:
        contents |= sweep_files(collected)
    else:  # the journal's comparison has no swept values
        contents |= comparison_files(grid, {c: st.accuracies for c, st in collected.stats.items()},
                                     collected.models_dir,
                                     {c: {r: float(record["accuracy"]) for r, record in runs.items()}
                                      for c, runs in collected.records.items()})
    previous = report_files(out_dir)
    if not any(st.accuracies for st in collected.stats.values()):  # nothing to report: write nothing, keep nothing
        found = (f"{collected.files} run record(s) under '{collected.models_dir}', none of this grid's cells"
                 if collected.files else f"no run records under '{collected.models_dir}'")
        raise UserError(f"{found}: nothing to report" + (f"; the report in '{out_dir}' is kept" if previous else "")
                        + " (check the grid's models_dir, or --models_dir; `grid.py --dry_run` lists the cells)")
    paths = {kind: write_output(out_dir / name, data) for kind, (name, data) in contents.items()}
    paths["curves"] = [write_output(out_dir / name, data) for name, data in curves.items()]
    names = sorted([name for name, _ in contents.values()] + list(curves))
    manifest = {"grid": str(grid.path), "files": names}
    write_output(out_dir / REPORT_MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())
    for stale in sorted(set(previous) - set(names)):  # files of an earlier report this one no longer has
        (out_dir / stale).unlink(missing_ok=True)
    return collected, paths


REPORT_MANIFEST = "report.json"  # the files the last report wrote: the next one removes those it does not write


def report_files(out_dir: Path) -> list[str]:
    """The files an earlier report listed in its manifest (none without one); names inside the folder only."""
    try:
        listed = json.loads((Path(out_dir) / REPORT_MANIFEST).read_text()).get("files", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [name for name in listed if isinstance(name, str) and ".." not in Path(name).parts
            and not Path(name).is_absolute()]


# ---- the original's stated accuracies ----------------------------------------------------------------
SIZES = (1000, 2000, 5000, 100000)
_TABLE = {
    ("SVHN", "std"): (42.71, 70.87, 85.52, 95.95),
    ("SVHN", "encoder_memory"): (66.93, 81.44, 88.68, 95.63),
    ("CIFAR10", "std"): (38.57, 50.36, 72.77, 88.78),
    ("CIFAR10", "encoder_memory"): (43.87, 57.12, 75.33, 88.49),
    ("CINIC10", "std"): (29.61, 36.40, 50.41, 78.85),
    ("CINIC10", "encoder_memory"): (32.34, 39.48, 52.18, 78.88),
}
MODEL = "mobilenet"
PAPER_MEAN: dict[tuple[str, str, str, int], float] = {
    (dataset, MODEL, modality, size): value
    for (dataset, modality), values in _TABLE.items()
    for size, value in zip(SIZES, values)
}


def paper_accuracy(dataset: str, model: str, modality: str, train_examples: int) -> float | None:
    """The stated mean accuracy of a cell, or None where the original states none."""
    return PAPER_MEAN.get((dataset, model, modality, train_examples))
