"""The journal's comparison table, written by `grid.py report`: per dataset and encoder, one row per
method (Std, both Memory Wrap variants, Matching Networks, ProtoNet) and per majority vote (MVO, MVY),
one column per training size, mean ± population std over runs with n. Markdown and CSV.

Method rows come from the run records the report already collected (a run counts when it
is one of the grid's runs and was trained with the cell's settings). Majority-vote rows come from the
`majority_vote.json` that `eval_dir.py --majority_vote` writes beside a cell; its runs count under the
same two rules (each run carries the settings it was evaluated with). Anything absent is "missing",
never a number, and the notes say which command fills it.

The table is written when the grid holds a journal baseline (matching, protonet) or when majority-vote
results exist for its cells, so Table 1 grids are unchanged.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from ..config import cell_folder, settings_difference
from ..gridspec import Cell, Grid
from ..stats import summarize

MAJORITY_VOTE_FILE = "majority_vote.json"  # written by eval_dir.py --majority_vote
FILES = {"comparison_markdown": "comparison.md", "comparison_csv": "comparison.csv"}
JOURNAL_BASELINES = ("matching", "protonet")
# Sparse attention: the journal's majority votes are about these two, so their rows are shown even
# while missing; the rows of another modality appear only where its votes were computed.
VOTED_MODALITIES = ("memory", "encoder_memory")
MEASURES = {"accuracy": "", "mvo": "majority vote of predictions (MVO)", "mvy": "majority vote of labels (MVY)"}
MISSING = "missing"


@dataclass(frozen=True)
class Row:
    """One line of the table for one training size: a method's accuracies or a majority vote's."""

    dataset: str
    model: str
    train_examples: int
    modality: str
    measure: str  # a key of MEASURES
    values: tuple[float, ...]  # per run, in run order
    runs: int  # the grid's runs per cell

    @property
    def method(self) -> str:
        from architectures import modality_display_name  # the head's registered name

        name = modality_display_name(self.modality)
        return f"{name}: {MEASURES[self.measure]}" if self.measure != "accuracy" else name

    @property
    def n(self) -> int:
        return len(self.values)


def read_votes(path: Path, runs: int, expected: dict,
               recorded: Mapping[int, float] | None = None) -> tuple[dict[int, dict], list[str]]:
    """Runs 1..`runs` of a majority_vote.json evaluated with the `expected` settings and, given `recorded`
    (run -> the accuracy of its record), on the checkpoint of that record: a vote computed before the run
    was trained again (another recorded accuracy) or of a run without a record is left out. And notes."""
    if not path.is_file():
        return {}, []
    try:
        records = [r | {"run": int(r["run"]), "mvo_accuracy": float(r["mvo_accuracy"]),
                        "mvy_accuracy": float(r["mvy_accuracy"])} for r in json.loads(path.read_text())["runs"]]
    except (OSError, ValueError, KeyError, TypeError) as error:
        return {}, [f"skipped '{path}': unreadable ({error.__class__.__name__})"]
    kept, other, beyond, stale = {}, set(), 0, []
    for record in records:
        run = record["run"]
        if record.get("settings") != expected:
            other |= set(settings_difference(record.get("settings") or {}, expected))
        elif not 1 <= run <= runs:
            beyond += 1
        elif recorded is not None and (run not in recorded or record.get("recorded_accuracy") != recorded[run]):
            stale.append(run)
        else:
            kept[run] = record
    notes = []
    if stale:
        notes.append(f"'{path}': run(s) {', '.join(map(str, stale))} left out: voted with a checkpoint that the "
                     "cell's records no longer hold (trained again, or deleted); recompute with "
                     f"python3 eval_dir.py --majority_vote --path={path.parent}")
    if other:
        notes.append(f"'{path}': runs evaluated with other settings left out (differ in: {', '.join(sorted(other))})")
    if beyond:
        notes.append(f"'{path}': {beyond} run(s) above the grid's {runs} runs left out")
    return kept, notes


def collect_votes(grid: Grid, accuracies: Mapping[Cell, Sequence[float]], models_dir: Path,
                  recorded: Mapping[Cell, Mapping[int, float]] | None = None
                  ) -> tuple[dict[Cell, dict[int, dict]], list[str]]:
    """The usable majority-vote runs of every memory cell of the grid (`recorded`: each cell's run ->
    recorded accuracy, see `read_votes`), and notes."""
    names = grid.lenient_dataset_names()
    votes: dict[Cell, dict[int, dict]] = {}
    notes: list[str] = []
    for cell in grid.cells():
        if cell.modality == "std":
            continue
        settings = grid.cell_settings(cell, names, list(grid.models))
        expected = settings.comparable_json()
        folder = cell_folder(models_dir, cell.dataset, cell.modality, cell.model, cell.train_examples,
                             settings.config["cell_tag"])
        votes[cell], found_notes = read_votes(folder / MAJORITY_VOTE_FILE, grid.runs, expected,
                                              None if recorded is None else recorded.get(cell, {}))
        notes += found_notes
        if cell.modality in VOTED_MODALITIES and accuracies.get(cell) and not votes[cell]:
            notes.append(f"{cell.label}: no majority votes yet; compute them with "
                         f"`python3 eval_dir.py --majority_vote --path={folder}`")
    return votes, notes


def comparison_rows(grid: Grid, accuracies: Mapping[Cell, Sequence[float]], models_dir: Path,
                    recorded: Mapping[Cell, Mapping[int, float]] | None = None) -> tuple[list[Row], list[str]]:
    """The rows of every (dataset, model) of the grid: methods first, then majority votes; and notes."""
    votes, notes = collect_votes(grid, accuracies, models_dir, recorded)
    rows: list[Row] = []
    sizes = grid.train_examples
    for dataset in grid.datasets:
        for model in grid.models:
            for modality in grid.modalities:
                rows += [Row(dataset, model, size, modality, "accuracy",
                             tuple(accuracies.get(Cell(dataset, model, size, modality), ())), grid.runs)
                         for size in sizes]
            for modality in grid.modalities:
                cells = [Cell(dataset, model, size, modality) for size in sizes]
                if modality == "std" or not (modality in VOTED_MODALITIES or any(votes.get(c) for c in cells)):
                    continue
                for measure in ("mvo", "mvy"):
                    rows += [Row(dataset, model, cell.train_examples, modality, measure,
                                 tuple(votes[cell][run][f"{measure}_accuracy"] for run in sorted(votes[cell])),
                                 grid.runs) for cell in cells]
    return rows, notes


def wanted(grid: Grid, rows: list[Row]) -> bool:
    """Write the comparison only for grids with a journal baseline or with majority votes."""
    return any(m in JOURNAL_BASELINES for m in grid.modalities) or any(r.measure != "accuracy" and r.n for r in rows)


# ---- text formats ---------------------------------------------------------------------------------
def cell_text(row: Row) -> str:
    """mean ± population std (n; 95 % CI of the mean), as every report prints a group of runs."""
    return summarize(row.values).text(row.runs)


def _grouped(rows: list[Row]) -> dict[tuple[str, str], dict[str, list[Row]]]:
    """(dataset, model) -> method label -> its rows in size order (insertion order kept)."""
    groups: dict[tuple[str, str], dict[str, list[Row]]] = {}
    for row in rows:
        groups.setdefault((row.dataset, row.model), {}).setdefault(row.method, []).append(row)
    return groups


def markdown(grid: Grid, rows: list[Row], notes: list[str]) -> str:
    lines = [f"# Journal comparison: grid {grid.name}", "",
             f"Test accuracy (%) of grid `{grid.path}`: mean ± population std over the n finished runs of each "
             f"cell (n=k/{grid.runs} while runs are missing), and the 95 % confidence interval of the mean "
             f"(Student t; n/a below 2 runs); \"{MISSING}\": no result. Majority votes: for each "
             "test input, the memory samples with positive weight vote with the class the model predicts for "
             "them (MVO) or with their true label (MVY), one vote each, ties to the smallest class; "
             "computed by `eval_dir.py --majority_vote` with the same passes and memory draws as the "
             "model's own accuracy.", ""]
    sizes = [str(size) for size in grid.train_examples]
    for (dataset, model), methods in _grouped(rows).items():
        lines += [f"## {dataset}, {model}", "", "| Method | " + " | ".join(sizes) + " |",
                  "|---|" + "---|" * len(sizes)]
        lines += [f"| {method} | " + " | ".join(cell_text(r) for r in method_rows) + " |"
                  for method, method_rows in methods.items()]
        lines.append("")
    lines += [f"- note: {note}" for note in notes]
    return "\n".join(lines).rstrip("\n") + "\n"


CSV_COLUMNS = ("dataset", "model", "train_examples", "method", "modality", "measure", "n", "runs", "mean", "std",
               "ci_low", "ci_high")


def csv_text(rows: list[Row]) -> str:
    """One row per table cell (tidy); empty where missing (mean, std) or below 2 runs (the interval)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        summary = summarize(row.values)
        writer.writerow([row.dataset, row.model, row.train_examples, row.method, row.modality, row.measure, row.n,
                         row.runs, *("" if v is None else f"{v:.4f}" for v in
                                     (summary.mean, summary.std, summary.ci_low, summary.ci_high))])
    return buffer.getvalue()


def comparison_files(grid: Grid, accuracies: Mapping[Cell, Sequence[float]], models_dir: str | Path,
                     recorded: Mapping[Cell, Mapping[int, float]] | None = None) -> dict[str, tuple[str, bytes]]:
    """kind -> (file name, content) of comparison.md and comparison.csv when `wanted` (else nothing); the
    report writes them with its other files."""
    rows, notes = comparison_rows(grid, accuracies, Path(models_dir), recorded)
    if not wanted(grid, rows):
        return {}
    contents = {"comparison_markdown": markdown(grid, rows, notes), "comparison_csv": csv_text(rows)}
    return {kind: (FILES[kind], text.encode()) for kind, text in contents.items()}
