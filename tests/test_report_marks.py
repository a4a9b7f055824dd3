"""What a report marks follows from the numbers as printed (issue 26, class 6).

Every table the suite writes is read back as text (Markdown cells, CSV fields, LaTeX cells), and
every mark is checked against the parsed printed numbers alone: the bold best modality (ties at the
printed precision all bold; a column needs two modalities with results), the paper's mean inside /
outside our interval (printed bounds, bounds included), Δ (printed ours − printed paper or Std),
"missing" cells (never a number, never bold, n=0), n=k/runs while runs are missing, "n/a" without an
interval, and Holm's p against Welch's. The Markdown and LaTeX tables print 2 decimals, the CSV
files 4; each file's marks follow its own numbers.

Hand-picked edge cases go through `grid.py report`'s production path (record files, `write_report`);
a seeded property test renders many random tables (Table 1, its differences, the sweep tables and
the journal comparison) whose values are pushed onto the rounding boundaries.
"""
from __future__ import annotations

import csv
import io
import math
import random
import re
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from suite.gridspec import Cell, frozen, load_grid
from suite.run_files import write_record
from suite.stats import summarize

REPO = Path(__file__).resolve().parents[1]
MODALITIES = ["std", "memory", "encoder_memory"]
JOURNAL_MODALITIES = ["std", "memory", "encoder_memory", "matching", "protonet"]
NUMBER = r"-?\d+\.\d+"


# ---- what a reader sees -------------------------------------------------------------------------
def number(text: str) -> Decimal:
    """A printed number (Markdown prints its signed values with U+2212)."""
    return Decimal(text.replace("\u2212", "-"))


def signed(text: str) -> Decimal:
    """A printed Δ or g: explicitly signed, and a zero carries no minus."""
    assert text[0] in "+-\u2212", text
    value = number(text)
    assert not (value == 0 and text[0] != "+"), f"a zero printed with a minus: {text!r}"
    return value


@dataclass(frozen=True)
class Shown:
    """One table cell as printed (None: not printed)."""

    missing: bool
    bold: bool = False
    mean: Decimal | None = None
    n: int | None = None
    runs: int | None = None  # the "/runs" of n=k/runs
    low: Decimal | None = None
    high: Decimal | None = None
    paper: Decimal | None = None
    delta: Decimal | None = None
    inside: bool | None = None


MARKDOWN_MISSING = re.compile(r"missing(?:; paper (?P<paper>\d+\.\d{2}))?")
MARKDOWN_CELL = re.compile(
    rf"(?P<bold>\*\*)?(?P<mean>{NUMBER}) ± (?P<std>{NUMBER})(?(bold)\*\*) "
    rf"\(n=(?P<n>\d+)(?:/(?P<runs>\d+))?; CI (?:n/a|(?P<low>{NUMBER})–(?P<high>{NUMBER}))\)"
    rf"(?:; paper (?P<paper>{NUMBER}), Δ (?P<delta>[+\u2212]{NUMBER[2:]})(?:, (?P<inside>inside|outside) our CI)?)?")
LATEX_MISSING = re.compile(r"--(?: \{\\scriptsize \(paper (?P<paper>\d+\.\d{2})\)\})?")
LATEX_CELL = re.compile(
    rf"\$(?P<bold>\\mathbf\{{)?(?P<mean>{NUMBER}) \\pm (?P<std>{NUMBER})(?(bold)\}})\$ "
    rf"\{{\\scriptsize \$n\{{=\}}(?P<n>\d+)(?:/(?P<runs>\d+))?\$, CI (?:n/a|(?P<low>{NUMBER})–(?P<high>{NUMBER}))\}}"
    rf"(?: \{{\\scriptsize \(paper (?P<paper>{NUMBER}), \$(?P<delta>[+-]{NUMBER[2:]})\$(?:, (?P<inside>in|outside) CI)?\)\}})?")
SUMMARY_CELL = re.compile(  # Summary.text: the sweep tables and the journal comparison
    rf"(?P<mean>{NUMBER}) ± (?P<std>{NUMBER}) \(n=(?P<n>\d+)(?:/(?P<runs>\d+))?; "
    rf"CI (?:n/a|(?P<low>{NUMBER})–(?P<high>{NUMBER}))\)")


def _optional(match: re.Match, name: str) -> Decimal | None:
    return None if match.group(name) is None else number(match.group(name))


def shown(text: str, missing: re.Pattern, cell: re.Pattern, inside_words=("inside", "outside")) -> Shown:
    """Parse one printed cell; it must be wholly a missing cell or wholly a numeric one."""
    if match := missing.fullmatch(text):
        return Shown(True, paper=_optional(match, "paper") if "paper" in missing.groupindex else None)
    match = cell.fullmatch(text)
    assert match, f"unparsable cell {text!r}"
    groups = match.groupdict()
    delta = groups.get("delta")
    return Shown(False, bool(groups.get("bold")), number(groups["mean"]), int(groups["n"]),
                 None if groups["runs"] is None else int(groups["runs"]), _optional(match, "low"),
                 _optional(match, "high"), _optional(match, "paper") if "paper" in groups else None,
                 None if delta is None else signed(delta),
                 None if groups.get("inside") is None else groups["inside"] == inside_words[0])


def _cells(line: str) -> list[str]:
    """The cells of a Markdown table line."""
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _latex_cells(line: str) -> list[str]:
    """The cells of a LaTeX tabular line (the first may be empty: the encoder of the line above)."""
    return [c.strip() for c in line.removesuffix("\\\\").split("&")]


def markdown_table1(text: str) -> tuple[dict[tuple, Shown], dict[tuple, list[str]], int | None]:
    """(dataset, encoder, modality, sweep, column) -> cell of table1.md; its differences rows keyed the
    same way -> [Δ, p, p (Holm), g]; and the number of comparisons its legend states."""
    cells, differences, dataset, header, stated = {}, {}, None, None, None
    for line in text.splitlines():
        if line.startswith("## "):
            dataset, header = line[3:], None
        elif line.startswith("| ") and header is None:
            header = _cells(line)
        elif line.startswith("|---") or not line.startswith("| "):
            if found := re.search(r"Holm-corrected over the (\d+) comparisons", line):
                stated = int(found.group(1))
        elif dataset == "Differences from Std":
            row = dict(zip(header, _cells(line)))
            differences[(row["Dataset"], row["Encoder"], row["Modality"], row.get("Sweep", ""), row["Size"])] = [
                row[k] for k in ("Δ vs Std", "p", "p (Holm)", "g")]
        else:
            row = dict(zip(header, _cells(line)))
            for column in header[3 if "Sweep" in header else 2:]:
                cells[(dataset, row["Encoder"], row["Modality"], row.get("Sweep", ""), column)] = shown(
                    row[column], MARKDOWN_MISSING, MARKDOWN_CELL)
    return cells, differences, stated


def _unescape(text: str) -> str:
    for escaped, char in ((r"\textbackslash{}", "\\"), (r"\&", "&"), (r"\%", "%"), (r"\_", "_"), (r"\#", "#")):
        text = text.replace(escaped, char)
    return text


def latex_table1(text: str) -> tuple[dict[tuple, Shown], dict[tuple, list[str]]]:
    """The same two dictionaries from table1.tex (a blank encoder repeats the line above)."""
    cells, differences, dataset, header, encoder = {}, {}, None, None, None
    for line in text.splitlines():
        if found := re.match(r"\\caption\{Test accuracy \(\\%\) on (.+?):", line):
            dataset, header = _unescape(found.group(1)), None
        elif line.startswith("\\caption{Differences from Std"):
            dataset, header = "Differences", None
        elif line.startswith("\\") or not line.strip() or dataset is None:
            continue
        elif header is None:
            header = [_unescape(c) for c in _latex_cells(line)]
        else:
            row = dict(zip(header, _latex_cells(line)))
            if dataset == "Differences":
                key = (row["Dataset"], _unescape(row["Encoder"]), _unescape(row["Modality"]),
                       _unescape(row.get("Sweep", "")), _unescape(row["Size"]))
                differences[key] = [row[k] for k in ("$\\Delta$", "$p$", "$p_{\\mathrm{Holm}}$", "$g$")]
                continue
            encoder = _unescape(row["Encoder"]) or encoder
            for column in header[3 if "Sweep" in header else 2:]:
                cells[(dataset, encoder, _unescape(row["Modality"]), _unescape(row.get("Sweep", "")), column)] = \
                    shown(row[column], LATEX_MISSING, LATEX_CELL, ("in", "outside"))
    return cells, differences


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _optional_csv(text: str) -> Decimal | None:
    return None if text == "" else number(text)


def csv_table1(text: str, runs: int) -> dict[tuple, Shown]:
    """table1.csv as cells keyed (dataset, model, modality, sweep, train_examples); a missing cell prints
    no number and no mark at all (n=0, best 0)."""
    cells = {}
    for row in csv_rows(text):
        n = int(row["n"])
        assert int(row["runs"]) == runs
        key = (row["dataset"], row["model"], row["modality"], row["sweep"], row["train_examples"])
        if n == 0:
            assert [row[k] for k in ("mean", "std", "ci_low", "ci_high", "best", "difference", "paper_inside_ci")] == \
                ["", "", "", "", "0", "", ""], row
            cells[key] = Shown(True, paper=_optional_csv(row["paper_mean"]))
            continue
        delta = row["difference"]
        cells[key] = Shown(False, row["best"] == "1", number(row["mean"]), n, runs if n < runs else None,
                           _optional_csv(row["ci_low"]), _optional_csv(row["ci_high"]),
                           _optional_csv(row["paper_mean"]), None if delta == "" else signed(delta if delta[0] == "-"
                                                                                          else "+" + delta),
                           {"": None, "1": True, "0": False}[row["paper_inside_ci"]])
        assert (row["ci_low"] == "") == (row["ci_high"] == ""), row
    return cells


# ---- the marks, from the printed numbers alone --------------------------------------------------
def unswept(sweep: str) -> bool:
    """A row of a sweep table that reads none of the swept keys (Std in a memory sweep): one cell, shown once,
    in every column of its encoder and size."""
    return sweep == "" or sweep.startswith("not swept")


def check_cells(cells: dict[tuple, Shown], runs: int, where: str) -> None:
    """Every mark of a table's cells, keyed (dataset, encoder, modality, sweep, size): the key without
    its modality is the column a best modality is chosen in; an unswept row is in every column of its
    encoder and size, and bold only where it is the best of each."""
    columns: dict[tuple, dict[tuple, Shown]] = defaultdict(dict)
    swept = {key[3] for key in cells if not unswept(key[3])}
    for key, c in cells.items():
        for sweep in (swept or {key[3]}) if unswept(key[3]) else {key[3]}:
            columns[key[:2] + (sweep,) + key[4:]][key] = c
        if c.missing:
            assert not c.bold and c.mean is None and c.n is None and c.delta is None and c.inside is None, (where, key)
            continue
        assert c.n >= 1, (where, key, "a cell without runs must print missing")
        assert c.runs == (runs if c.n < runs else None), (where, key, "n=k/runs exactly while runs are missing")
        assert (c.low is None) == (c.n < 2), (where, key, "an interval needs 2 runs")
        if c.low is not None:
            assert c.low <= c.mean <= c.high, (where, key)
        if c.paper is not None:
            assert c.delta == c.mean - c.paper, (where, key, "Δ must be printed ours − printed paper")
            assert (c.inside is None) == (c.low is None), (where, key)
            if c.low is not None:
                assert c.inside == (c.low <= c.paper <= c.high), (where, key, "inside our CI, as printed")
        else:
            assert c.delta is None and c.inside is None, (where, key)
    verdicts: dict[tuple, list[bool]] = defaultdict(list)
    for column in columns.values():
        means = {k: c.mean for k, c in column.items() if not c.missing}
        if len(means) >= 2:
            for k, m in means.items():
                verdicts[k].append(m == max(means.values()))
    expected = {k for k, wins in verdicts.items() if all(wins)}
    assert {k for k, c in cells.items() if c.bold} == expected, (where, "best = the top printed means")


def _p(text: str) -> Decimal:
    """A printed p-value as a sort key ("<0.0001" below every printed number)."""
    return Decimal(-1) if text == "<0.0001" else number(text)


def reference_key(cells: dict[tuple, Shown], key: tuple, reference: str) -> tuple:
    """The reference's cell of a difference row: the same column, or its encoder's unswept row."""
    same = key[:2] + (reference,) + key[3:]
    if same in cells:
        return same
    shared = [k for k in cells if k[:3] == key[:2] + (reference,) and k[4:] == key[4:] and unswept(k[3])]
    assert len(shared) == 1, (key, shared)
    return shared[0]


def check_differences(rows: dict[tuple, list[str]], cells: dict[tuple, Shown], reference: str, where: str,
                      stated: int | None = None, missing_text: str = "n/a") -> None:
    """Δ vs Std = the two printed means' difference; "n/a" exactly below 2 runs on either side; Holm's
    p is at least Welch's and keeps its order; the sign of g agrees with Δ's."""
    measured = []
    for key, (delta, p, p_holm, g) in rows.items():
        cell, std = cells[key], cells[reference_key(cells, key, reference)]
        if cell.missing or std.missing or cell.n < 2 or std.n < 2:
            assert [delta, p, p_holm, g] == [missing_text] * 4, (where, key)
            continue
        assert signed(delta) == cell.mean - std.mean, (where, key, "Δ vs Std must be the printed means' difference")
        assert (p == missing_text) == (p_holm == missing_text) == (g == missing_text), (where, key)
        if p != missing_text:
            measured.append((_p(p), _p(p_holm)))
            assert _p(p) <= _p(p_holm) <= 1, (where, key, "Holm's p is Welch's p or larger, at most 1")
            if signed(g) != 0 and signed(delta) != 0:
                assert (signed(g) > 0) == (signed(delta) > 0), (where, key, "g and Δ disagree in sign")
    for p_a, holm_a in measured:
        for p_b, holm_b in measured:
            assert not (p_a < p_b and holm_a > holm_b), (where, "Holm's adjusted p-values out of order")
    if stated is not None:
        assert stated == len(measured), (where, "the legend's number of comparisons")


def check_table1_files(markdown: str, csv_text: str, latex: str, differences_csv: str, runs: int) -> None:
    """Every mark of table1.md / .csv / .tex and differences.csv; the Markdown and LaTeX tables (both 2
    decimals) print the same cells alike, and every format agrees on which cells are missing and their n."""
    from suite.report import REFERENCE, model_display_name, modality_display_name

    md_cells, md_differences, stated = markdown_table1(markdown)
    check_cells(md_cells, runs, "table1.md")
    check_differences(md_differences, md_cells, modality_display_name(REFERENCE), "table1.md", stated)
    tex_cells, tex_differences = latex_table1(latex)
    check_cells(tex_cells, runs, "table1.tex")
    check_differences(tex_differences, tex_cells, modality_display_name(REFERENCE), "table1.tex")
    assert tex_cells.keys() == md_cells.keys() and tex_differences.keys() == md_differences.keys()
    for key, cell in md_cells.items():  # both print 2 decimals: the same numbers, the same marks
        assert tex_cells[key] == cell, key
    assert [[v.replace("\u2212", "-") for v in row] for row in md_differences.values()] == list(
        tex_differences.values())

    csv_cells = csv_table1(csv_text, runs)
    check_cells(csv_cells, runs, "table1.csv")
    assert len(csv_cells) == len(md_cells)
    reading = {}
    for (dataset, model, modality, sweep, size), cell in csv_cells.items():
        md_key = next(k for k in md_cells if k[:3] == (dataset, model_display_name(model),
                                                        modality_display_name(modality))
                      and (k[3] == sweep or (sweep == "" and unswept(k[3]))) and k[4].split(" ")[0] in (size, "full"))
        md = md_cells[md_key]
        assert (md.missing, md.n, md.paper) == (cell.missing, cell.n, cell.paper), (md_key, "formats disagree")
        reading[(dataset, model, modality, sweep, size)] = cell
    rows = {}
    for row in csv_rows(differences_csv):
        key = (row["dataset"], row["model"], row["modality"], row["sweep"], row["train_examples"])
        reference = key[:2] + (row["reference"], row["reference_sweep"]) + key[4:]
        assert (int(row["n"]), int(row["n_reference"])) == (reading[key].n or 0, reading[reference].n or 0)
        rows[key] = [v if v == "" or v[0] == "-" or column not in ("difference", "hedges_g") else "+" + v
                     for column, v in ((c, row[c]) for c in ("difference", "p_welch", "p_holm", "hedges_g"))]
    check_differences(rows, reading, REFERENCE, "differences.csv", missing_text="")


def check_summary_table(cells: list[tuple[str, dict[str, str]]], runs: int, where: str) -> None:
    """A table of Summary.text cells (sweep tables, the journal comparison) against its CSV rows, in
    order: "missing" exactly where the CSV has n=0 and no number; n=k/runs; "n/a" below 2 runs."""
    for text, row in cells:
        n = int(row["n"])
        if text == "missing":
            assert n == 0 and [row[k] for k in ("mean", "std", "ci_low", "ci_high")] == ["", "", "", ""], (where, row)
            continue
        match = SUMMARY_CELL.fullmatch(text)
        assert match, (where, text)
        assert n == int(match["n"]) >= 1, (where, text, row)
        assert (None if match["runs"] is None else int(match["runs"])) == (runs if n < runs else None), (where, text)
        assert (match["low"] is None) == (n < 2) == (row["ci_low"] == "") == (row["ci_high"] == ""), (where, text)
        assert row["mean"] != "" and row["std"] != "", (where, row)


def check_sweep_files(collected, markdown: dict[str, str], csv_texts: dict[str, str]) -> None:
    from suite.report import modality_display_name

    for key, _ in collected.grid.sweep:
        rows, cells = csv_rows(csv_texts[key]), []
        header = None
        for line in markdown[key].splitlines():
            if line.startswith("## "):
                header = None
            elif line.startswith("| ") and header is None:
                header = _cells(line)
            elif line.startswith("| "):
                row = dict(zip(header, _cells(line)))
                cells += [(row[column], (row["Modality"], column)) for column in header[1:]]
            elif f" reads no `{key}`: one cell for every value, " in line:  # an unswept modality: one cell
                modality, text = line.removesuffix(".").split(f" reads no `{key}`: one cell for every value, ")
                cells.append((text, (modality, f"{key}=all")))
        assert len(cells) == len(rows)
        for (_, (modality, column)), row in zip(cells, rows):
            assert (modality, column) == (modality_display_name(row["modality"]), f"{key}={row['value']}")
        check_summary_table([(text, row) for (text, _), row in zip(cells, rows)], collected.grid.runs,
                            f"sweep_{key}")


def check_comparison_files(markdown: str, csv_text: str, runs: int) -> None:
    rows = {(r["dataset"], r["model"], r["method"], r["train_examples"]): r for r in csv_rows(csv_text)}
    cells, section, header = [], None, None
    for line in markdown.splitlines():
        if line.startswith("## "):
            section, header = line[3:].split(", "), None
        elif line.startswith("| ") and header is None:
            header = _cells(line)
        elif line.startswith("| "):
            row = dict(zip(header, _cells(line)))
            cells += [(row[size], rows.pop((*section, row["Method"], size))) for size in header[1:]]
    assert not rows, "CSV rows the Markdown table does not show"
    for _, row in cells:
        assert int(row["runs"]) == runs
    check_summary_table(cells, runs, "comparison")


# ---- hand-picked edge cases through `grid.py report` ---------------------------------------------
def _grid(folder: Path, name: str, modalities=MODALITIES, **extra):
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "base_config": str(REPO / "config" / "train.yaml"), "modalities": list(modalities), "runs": 3,
        "overrides": [f"models_dir={folder / 'models'}"]} | extra))
    return load_grid(path)


def _write_runs(grid, cell: Cell, accuracies: list[float]) -> None:
    settings = grid.cell_settings(cell, ["SVHN", "CIFAR10", "CINIC10", "DIGITS"])
    for run, accuracy in enumerate(accuracies, start=1):
        write_record(settings.cell_folder, {
            "run": run, "seed": run - 1, "accuracy": accuracy, "loss": 1.0, "dataset": cell.dataset,
            "model": cell.model, "modality": cell.modality, "train_examples": cell.train_examples,
            "train_subset_size": cell.train_examples, "settings": settings.comparable_json()})


EDGE_CASES = {  # (dataset, model, size, modality) -> the accuracies of runs 1..k (3 runs per cell)
    # The paper's 42.71 sits on the printed lower bound (42.71, 42.7100), the unrounded one (42.71003) excludes it.
    ("SVHN", "mobilenet", 1000, "std"): [43.8, 44.63, 45.3],
    # The paper's 66.93 sits on the printed upper bound at 2 decimals (66.927 prints 66.93), not at 4 (66.9271).
    ("SVHN", "mobilenet", 1000, "encoder_memory"): [60.06, 62.04, 64.0],
    # Two runs (n=2/3), mean 69.515 printed 69.52: Δ to the paper's 70.87 is −1.35 as printed (unrounded −1.355
    # printed −1.36).
    ("SVHN", "mobilenet", 2000, "std"): [69.5, 69.53],
    ("SVHN", "mobilenet", 2000, "encoder_memory"): [81.0],  # one run: no interval, no inside / outside mark
    # 50.0100 and 50.0067 tie at 2 decimals (both bold) but not at 4 (the CSV's best is Std alone).
    ("SVHN", "shufflenet", 1000, "std"): [50.0, 50.01, 50.02],
    ("SVHN", "shufflenet", 1000, "encoder_memory"): [50.0, 50.0, 50.02],
    # 50.0049 and 50.0051 differ by 0.0002 but print 50.00 and 50.01: Memory Wrap alone bold, Δ vs Std +0.01.
    ("SVHN", "shufflenet", 2000, "std"): [50.0, 50.0098],
    ("SVHN", "shufflenet", 2000, "encoder_memory"): [50.0, 50.0102],
    ("SVHN", "shufflenet", 2000, "memory"): [49.0],
    ("CIFAR10", "mobilenet", 1000, "std"): [38.0, 39.0, 40.0],  # a column with one modality: nothing bold
    # Means 50.00 and 49.9967 print alike (both bold); Δ vs Std and Hedges' g (−0.0004) print +0.00, not −0.00.
    ("CIFAR10", "shufflenet", 1000, "std"): [40.0, 50.0, 60.0],
    ("CIFAR10", "shufflenet", 1000, "encoder_memory"): [40.0, 50.0, 59.99],
    ("CIFAR10", "shufflenet", 2000, "std"): [59.0, 60.0, 61.0],  # Welch's p far below Holm's
    ("CIFAR10", "shufflenet", 2000, "memory"): [70.0, 70.5, 71.0],
    ("CIFAR10", "shufflenet", 2000, "encoder_memory"): [60.1, 61.2, 59.9],
}


@pytest.fixture(scope="module")
def edge_report(tmp_path_factory):
    from suite.report import write_report

    folder = tmp_path_factory.mktemp("marks")
    grid = _grid(folder, "paper", datasets=["SVHN", "CIFAR10"], models=["mobilenet", "shufflenet"],
                 train_examples=[1000, 2000])
    for (dataset, model, size, modality), accuracies in EDGE_CASES.items():
        _write_runs(grid, Cell(dataset, model, size, modality), accuracies)
    collected, paths = write_report(grid, folder / "report")
    return collected, {kind: path.read_text() for kind, path in paths.items() if kind not in ("figure", "curves")}


def test_edge_cases_are_what_they_claim_unrounded():
    """The premises of EDGE_CASES: the unrounded numbers and the printed ones disagree."""
    std = summarize(EDGE_CASES[("SVHN", "mobilenet", 1000, "std")])
    assert 42.71 < std.ci_low and f"{std.ci_low:.2f}" == "42.71" and f"{std.ci_low:.4f}" == "42.7100"
    wrap = summarize(EDGE_CASES[("SVHN", "mobilenet", 1000, "encoder_memory")])
    assert wrap.ci_high < 66.93 and f"{wrap.ci_high:.2f}" == "66.93" and float(f"{wrap.ci_high:.4f}") < 66.93
    two = summarize(EDGE_CASES[("SVHN", "mobilenet", 2000, "std")])
    assert (f"{two.mean:.2f}", f"{two.mean - 70.87:+.2f}") == ("69.52", "-1.36")
    a, b = (summarize(EDGE_CASES[("SVHN", "shufflenet", 1000, m)]).mean for m in ("std", "encoder_memory"))
    assert a != b and f"{a:.2f}" == f"{b:.2f}" and f"{a:.4f}" != f"{b:.4f}"
    a, b = (summarize(EDGE_CASES[("SVHN", "shufflenet", 2000, m)]).mean for m in ("std", "encoder_memory"))
    assert (f"{a:.2f}", f"{b:.2f}", f"{b - a:+.2f}") == ("50.00", "50.01", "+0.00")


def test_every_mark_of_table1_follows_its_printed_numbers(edge_report):
    collected, texts = edge_report
    check_table1_files(texts["markdown"], texts["csv"], texts["latex"], texts["differences_csv"], 3)
    markdown, latex = texts["markdown"], texts["latex"]
    # The boundary cases, as a reader sees them (the unrounded comparisons said "outside" and −1.36).
    assert "| MobileNetV2 | Std | 44.58 ± 0.61 (n=3; CI 42.71–46.44); paper 42.71, Δ +1.87, inside our CI | " \
           "69.52 ± 0.02 (n=2/3; CI 69.32–69.71); paper 70.87, Δ −1.35, outside our CI |" in markdown
    assert "| MobileNetV2 | Memory Wrap | **62.03 ± 1.61** (n=3; CI 57.14–66.93); paper 66.93, Δ −4.90, inside our CI" \
        in markdown
    assert "**81.00 ± 0.00** (n=1/3; CI n/a); paper 81.44, Δ −0.44 |" in markdown
    assert "| MobileNetV2 | Memory Wrap | missing; paper 43.87 | missing; paper 57.12 |" in markdown
    assert "| ShuffleNetV2 | Memory Wrap | **50.01 ± 0.01** (n=3; CI " in markdown  # tied with Std at 2 decimals
    assert "| ShuffleNetV2 | Std | **50.01 ± 0.01** (n=3; CI " in markdown
    assert "| SVHN | ShuffleNetV2 | 2000 | Memory Wrap | +0.01 |" in markdown
    assert re.search(r"\| CIFAR10 \| ShuffleNetV2 \| 1000 \| Memory Wrap \| \+0\.00 \| \S+ \| \S+ \| \+0\.00 \|",
                     markdown)
    assert "(paper 42.71, $+1.87$, in CI)" in latex and "(paper 66.93, $-4.90$, in CI)" in latex
    assert "$69.52 \\pm 0.02$ {\\scriptsize $n{=}2/3$, CI 69.32–69.71} {\\scriptsize (paper 70.87, $-1.35$, " \
           "outside CI)}" in latex
    rows = {(r["dataset"], r["model"], r["modality"], r["train_examples"]): r for r in csv_rows(texts["csv"])}
    assert [rows[("SVHN", "mobilenet", m, "1000")]["paper_inside_ci"] for m in ("std", "encoder_memory")] == ["1", "0"]
    assert [rows[("SVHN", "shufflenet", m, "1000")]["best"] for m in MODALITIES] == ["1", "0", "0"]
    assert rows[("SVHN", "mobilenet", "std", "2000")]["difference"] == "-1.3550"
    differences = {(r["dataset"], r["model"], r["modality"], r["train_examples"]): r
                   for r in csv_rows(texts["differences_csv"])}
    assert differences[("SVHN", "shufflenet", "encoder_memory", "2000")]["difference"] == "0.0002"
    assert differences[("CIFAR10", "shufflenet", "encoder_memory", "1000")]["hedges_g"] == "-0.0003"


def test_the_legends_say_how_marks_are_decided(edge_report):
    _, texts = edge_report
    assert "Δ = ours − paper as printed here, and whether it lies inside our interval as printed (bounds included)" \
        in texts["markdown"]
    assert "two means printed alike are both bold" in texts["markdown"]
    assert "difference of the means as Table 1 prints them" in texts["markdown"]
    assert "(n=k/runs while runs are missing)" in texts["latex"] and "on the printed numbers" in texts["latex"]


def test_the_report_counts_the_cells_it_prints_missing_and_complete(edge_report):
    _, texts = edge_report
    cells, _, _ = markdown_table1(texts["markdown"])
    missing = sum(c.missing for c in cells.values())
    complete = sum(not c.missing and c.runs is None for c in cells.values())
    assert (missing, complete) == (24 - len(EDGE_CASES), 10)
    assert f"{complete} of 24 cells complete, {missing} missing;" in texts["markdown"]


# ---- many seeded random tables -------------------------------------------------------------------
def _random_accuracies(rng: random.Random, cells: list[Cell], paper) -> dict[Cell, list[float]]:
    """Accuracies per cell that often tie at 2 decimals, put the paper's number on a printed interval
    bound, and end in a 5 at the third decimal: the boundaries of every mark."""
    step = rng.choice([0.01, 100 / 26032, 100 / 10000, 0.005])
    columns: dict[tuple, float] = {}
    found = {}
    for cell in cells:
        column = (cell.dataset, cell.model, cell.train_examples, cell.sweep)
        centre = columns.setdefault(column, (paper(cell) or rng.uniform(30, 90)) + rng.choice([0, 0, 1, 3]))
        n = rng.choices([0, 1, 2, 3], weights=[2, 2, 3, 6])[0]
        offset = rng.choice([0.0, 0.0, rng.uniform(-2, 2)])
        spread = rng.choice([0.0, 0.01, 0.05, 0.5, 2.0])
        values = [round((centre + offset + rng.uniform(-spread, spread)) / step) * step for _ in range(n)]
        target = paper(cell)
        if target is not None and rng.random() < 0.3:  # two runs at 0.01 whose mean ends in 5 (x.xx5)
            low = round(centre + offset, 2)
            values = [low, low + 0.01 * rng.choice([1, 3, 5, 7])]
        elif target is not None and n >= 2 and rng.random() < 0.6:
            summary = summarize(values)
            if summary.std > 0:  # shift the runs so that a bound lands within half a printed digit of the paper
                side = rng.choice(["low", "high"])
                bound = summary.ci_low if side == "low" else summary.ci_high
                shift = target - bound + (1 if side == "low" else -1) * rng.choice([1e-9, 4e-5, 0.003, 0.0049])
                values = [v + shift for v in values]
        found[cell] = values
    return found


def _collected(grid, accuracies):
    """What `collect` makes of these runs: the production CellStats, best marks and differences."""
    from suite.report import CellStats, Collected, columns, differences, mark_best

    stats = mark_best({cell: CellStats(cell, grid.runs, tuple(accuracies[cell])) for cell in grid.cells()},
                      columns(grid))
    return Collected(grid, Path("models"), stats, differences=differences(grid, stats))


@pytest.fixture(scope="module")
def random_grids(tmp_path_factory):
    folder = tmp_path_factory.mktemp("random_grids")
    plain = _grid(folder, "plain", datasets=["SVHN", "CIFAR10"], models=["mobilenet", "shufflenet"],
                  train_examples=[1000, 2000])
    swept = _grid(folder, "swept", datasets=["SVHN"], models=["mobilenet"], train_examples=[1000],
                  sweep={"SVHN.mem_examples": [50, 100], "memory_sampling": ["uniform", "class_balanced"]})
    journal = _grid(folder, "journal", modalities=JOURNAL_MODALITIES, datasets=["SVHN"], models=["wrn28_2"],
                    train_examples=[1000, 2000])
    return plain, swept, journal, folder


@pytest.mark.filterwarnings("ignore:Precision loss occurred:RuntimeWarning")  # scipy on near-equal runs
def test_every_mark_follows_the_printed_numbers_in_random_tables(random_grids):
    """60 seeded random tables in every format: Table 1 (plain and swept), its differences, the sweep
    tables and the journal comparison; the edges must actually have been hit (counted unrounded)."""
    from suite import report, sweeps
    from suite.journal import comparison
    from suite.report import paper_accuracy

    plain, swept, journal, folder = random_grids
    rng = random.Random(26)
    hits = defaultdict(int)
    for round_ in range(60):
        grid = [plain, swept][round_ % 2]
        accuracies = _random_accuracies(rng, grid.cells(), lambda c: None if c.sweep else paper_accuracy(
            c.dataset, c.model, c.modality, c.train_examples))
        collected = _collected(grid, accuracies)
        check_table1_files(report.markdown(collected), report.csv_text(collected), report.latex(collected),
                           report.differences_csv(collected), grid.runs)
        if grid.sweep:
            values = {key: tuple(frozen(v) for v in values) for key, values in grid.sweep}
            check_sweep_files(collected, {k: sweeps.sweep_markdown(collected, k, v) for k, v in values.items()},
                              {k: sweeps.sweep_csv(collected, k, v) for k, v in values.items()})
        for st in collected.stats.values():  # which edges this table reached, unrounded against printed
            if st.paper is not None and st.n >= 2:
                hits["inside"] += (st.summary.ci_low <= st.paper <= st.summary.ci_high) != st.paper_inside
            if st.paper is not None and st.n:
                hits["paper Δ"] += Decimal(f"{st.mean - st.paper:.2f}") != st.difference
        for d in collected.differences:
            if d.comparison is not None:
                hits["Δ vs Std"] += Decimal(f"{d.comparison.difference:.2f}") != d.difference_at(2)
        means = defaultdict(list)
        for cell, st in collected.stats.items():
            if st.n:
                means[(cell.dataset, cell.model, cell.train_examples, cell.sweep)].append(st.mean)
        hits["tie"] += sum(len(set(m)) > len({f"{v:.2f}" for v in m}) for m in means.values())
        hits["one modality"] += sum(len(m) == 1 for m in means.values())
    for round_ in range(20):
        accuracies = _random_accuracies(rng, journal.cells(), lambda c: None)
        rows, notes = comparison.comparison_rows(journal, accuracies, folder / "no_models")
        check_comparison_files(comparison.markdown(journal, rows, notes), comparison.csv_text(rows), journal.runs)
    assert min(hits[k] for k in ("inside", "paper Δ", "Δ vs Std", "tie", "one modality")) >= 10, dict(hits)


# ---- the explanation-quality tables --------------------------------------------------------------
def test_quality_tables_print_missing_scores_as_na_never_as_numbers():
    """A score without any value (no counterfactual found in any run) is "n/a" in Markdown and an empty
    CSV cell, a NaN alike; the others print their numbers in both."""
    from suite.journal import quality_tables as tables
    from suite.journal.counterfactual_quality import METHODS, SCORES
    from suite.journal.quality_commands import _counterfactual_tables

    methods = list(METHODS)
    empty = {s: {"mean": None, "std": None} for s in SCORES}
    full = {s: {"mean": 0.5 + i, "std": 0.25} for i, s in enumerate(SCORES)}
    summary = {methods[0]: full | {"found": 3, "inputs": 4, "not_found": {"no memory": 1}},
               methods[1]: empty | {"found": 0, "inputs": 4, "not_found": {"no solution": 4}}}
    runs = [{"run": 1, "methods": {methods[0]: {"inputs": 4, "found": 3} | {s: full[s]["mean"] for s in SCORES},
                                   methods[1]: {"inputs": 4, "found": 0} | {s: None for s in SCORES}}}]
    payload = {"summary": summary, "runs": runs, "batch_size_test": 64,
               "settings": {"max_inputs": 4, "target": "memory", "search": {}}}
    texts = _counterfactual_tables("cell", payload, [])
    table = [_cells(line) for line in texts["md"].splitlines() if line.startswith("| ")][1:]
    assert [row[0] for row in table] == [METHODS[m] for m in methods]
    assert table[1][2:] == ["n/a"] * len(SCORES)
    for text, score in zip(table[0][2:], SCORES):
        assert text == f"{full[score]['mean']:.{4 if score == 'im2' else 3}f} ± " \
                       f"{full[score]['std']:.{4 if score == 'im2' else 3}f}"
    rows = csv_rows(texts["csv"])
    assert sorted(row["run"] for row in rows) == ["1", "1", "mean", "mean", "std", "std"]
    for row in rows:
        values = [row[s] for s in SCORES]
        if row["method"] == methods[1]:
            assert values == [""] * len(SCORES), row
        else:
            assert all(float(v) > 0 for v in values), row
    assert tables.mean_std_text(math.nan, math.nan) == tables.mean_std_text(None, None) == "n/a"
    assert tables.csv_text(["a", "b", "c"], [[None, math.nan, 0.0]]) == "a,b,c\n,,0\n"
