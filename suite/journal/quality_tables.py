"""Tables of the explanation-quality experiments: one Markdown and one CSV text per cell, plus JSON.

Kept apart from suite/report.py (Table 1 of the grid) because these tables have a different shape:
rows are methods, columns are scores, each cell is the mean and population std over the runs. A
missing value (None or NaN) is "n/a" in Markdown and an empty cell in CSV, never a number.
"""
from __future__ import annotations

import csv
import io
import math
from typing import Sequence



def missing(value: object) -> bool:
    """None or NaN: a value every table shows as missing ("n/a" in Markdown, an empty CSV cell)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def mean_std_text(mean: float | None, std: float | None, digits: int = 4) -> str:
    if missing(mean):
        return "n/a"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(value) for value in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def csv_text(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(headers)
    for row in rows:
        writer.writerow([_csv_value(value) for value in row])
    return buffer.getvalue()


def _csv_value(value: object) -> object:
    """Missing values (None, NaN) are empty cells; floats get 6 significant digits."""
    if missing(value):
        return ""
    return f"{value:.6g}" if isinstance(value, float) else value
