"""Every epoch on record: `<run>.metrics.csv` beside `<run>.pt`, and TensorBoard events when asked.

One row per finished epoch: epoch, the learning rate it trained with, its mean training loss, its
training accuracy (%), its training seconds and, every `eval_every` epochs, the test accuracy (%)
with the run's seeded evaluation memories (empty otherwise).

Exactly one row per epoch, even across kills: the rows of the finished epochs also travel in the
run's resume file, and when a run starts or resumes its CSV is rewritten (atomically) to exactly
those rows; then each epoch appends its row (one fsync'ed write, by the run's lock holder only)
before the resume file that counts the epoch is written. TensorBoard events are written under
`tensorboard/<run>/`; on resume, events of epochs past the resume state are purged (`purge_step`).
"""
from __future__ import annotations

import csv
import importlib.util
import io
import math
from pathlib import Path

from .errors import ConfigError, UserError
from .files import append_line, atomic_write_bytes

COLUMNS = ("epoch", "learning_rate", "loss", "train_accuracy", "seconds", "test_accuracy")
TENSORBOARD_TAGS = {"loss": "train/loss", "train_accuracy": "train/accuracy", "test_accuracy": "test/accuracy",
                    "learning_rate": "learning_rate", "seconds": "epoch_seconds"}


class MetricsError(UserError):
    """A metrics file is damaged."""


def metrics_path(folder: Path, run: int) -> Path:
    return Path(folder) / f"{run}.metrics.csv"


def tensorboard_dir(folder: Path, run: int) -> Path:
    return Path(folder) / "tensorboard" / str(run)


def epoch_row(epoch: int, learning_rate: float, loss: float, train_accuracy: float, seconds: float,
              test_accuracy: float | None = None) -> dict:
    return {"epoch": epoch, "learning_rate": learning_rate, "loss": loss, "train_accuracy": train_accuracy,
            "seconds": seconds, "test_accuracy": test_accuracy}


def _line(row: dict) -> str:
    values = [str(row["epoch"])] + [("" if row[k] is None else repr(float(row[k]))) for k in COLUMNS[1:]]
    return ",".join(values)


def csv_text(rows: list[dict]) -> str:
    return "\n".join([",".join(COLUMNS)] + [_line(row) for row in rows]) + "\n"


def require_tensorboard(config: dict) -> None:
    """With `tensorboard: true`, the package must be installed: checked before a run writes anything."""
    if config.get("tensorboard") and importlib.util.find_spec("tensorboard") is None:
        raise ConfigError("config key 'tensorboard' is true but the tensorboard package is not installed; "
                          "pip install tensorboard, or set tensorboard: false")


class EpochLog:
    """The per-epoch record of one run while it trains (its lock holder is the only writer)."""

    def __init__(self, folder: Path, run: int, history: list[dict], tensorboard: bool = False):
        self.path = metrics_path(folder, run)
        self.history = [dict(row) for row in history]
        atomic_write_bytes(self.path, csv_text(self.history).encode())
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as error:
                raise ConfigError(f"config key 'tensorboard' is true but TensorBoard cannot be loaded ({error}); "
                                  "pip install tensorboard, or set tensorboard: false") from None
            # Events of epochs after the resume state (written before a kill) are hidden.
            self.writer = SummaryWriter(str(tensorboard_dir(folder, run)), purge_step=len(self.history) + 1)

    def append(self, row: dict) -> None:
        self.history.append(dict(row))
        append_line(self.path, _line(row))
        if self.writer is not None:
            for key, tag in TENSORBOARD_TAGS.items():
                if row[key] is not None:
                    self.writer.add_scalar(tag, row[key], row["epoch"])
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def resumed_history(saved: list | None, epochs_done: int) -> list[dict]:
    """The rows of a resume file, cut to the epochs its state holds (older resume files have none)."""
    rows = [row for row in (saved or []) if isinstance(row, dict) and set(COLUMNS) <= set(row)]
    return [row for row in rows if row["epoch"] <= epochs_done]


def read_metrics(path: Path) -> list[dict]:
    """A run's metrics CSV; a damaged file is a one-line MetricsError naming it and what to do."""
    path = Path(path)
    advice = ("delete it (its curves are then missing; a run in progress rewrites it when it resumes)")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise MetricsError(f"cannot read metrics file '{path}': {getattr(error, 'strerror', None) or error}") from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or tuple(header) != COLUMNS:
        raise MetricsError(f"metrics file '{path}' does not start with the header {','.join(COLUMNS)}; {advice}")
    if text and not text.endswith("\n"):
        raise MetricsError(f"metrics file '{path}' ends in a truncated line; {advice}")
    rows, previous = [], 0
    for number, values in enumerate(reader, start=2):
        try:
            if len(values) != len(COLUMNS):
                raise ValueError
            row = {"epoch": int(values[0])}
            for key, value in zip(COLUMNS[1:], values[1:]):
                row[key] = float(value) if value != "" else None
            if any(row[k] is None or not math.isfinite(row[k]) for k in COLUMNS[1:5]):
                raise ValueError
        except ValueError:
            raise MetricsError(f"metrics file '{path}' line {number} is not a metrics row; {advice}") from None
        if row["epoch"] <= previous:
            raise MetricsError(f"metrics file '{path}' line {number} repeats or reorders epoch {row['epoch']}; "
                               f"{advice}")
        previous = row["epoch"]
        rows.append(row)
    return rows
