"""Checkpoints: the model file `<run>.pt` and the resume state, read with one-line errors.

Checkpoints hold only tensors and plain values, so they load with `torch.load(weights_only=True)`,
and are written atomically (suite.files). The names other modules imported from here before the
records, locks and atomic writes got modules of their own are re-exported.
"""
from __future__ import annotations

import io
import re
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import CheckpointError, UserError
from .files import atomic_write_bytes, write_output  # noqa: F401 - re-exported
from .locks import LockLost, RunBusy, run_lock  # noqa: F401 - re-exported
from .records import RESULTS_FILE, RunLog  # noqa: F401 - re-exported

if TYPE_CHECKING:
    import torch

# The original checkpoint keys; ours add metadata beside them.
CHECKPOINT_KEYS = ("model_state_dict", "train_examples", "mem_examples", "model_name", "num_classes", "modality",
                   "dataset_name")
RUN_FILE = re.compile(r"^(\d+)\.pt$")


def atomic_torch_save(obj: object, path: Path) -> None:
    import torch  # imported here so that reading records (the grid report) does not load torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_torch_file(path: Path, map_location: str | torch.device = "cpu") -> dict:
    """Safe load (weights_only) with one-line errors for missing, truncated or foreign files."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' not found")
    try:
        content = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, KeyError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else error.__class__.__name__
        raise CheckpointError(f"cannot read checkpoint '{path}': corrupted, truncated or unsafe ({first_line[:160]})") from None
    except Exception as error:  # weights_only refusals surface as pickle errors of several types
        raise CheckpointError(f"cannot read checkpoint '{path}': {error.__class__.__name__}") from None
    if not isinstance(content, dict):
        raise CheckpointError(f"checkpoint '{path}' does not hold a dictionary")
    return content


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict:
    """A model checkpoint of this suite or of the original one (same keys)."""
    checkpoint = load_torch_file(path, map_location)
    missing = [key for key in CHECKPOINT_KEYS if key not in checkpoint]
    if missing:
        raise CheckpointError(f"'{path}' is not a Memory Wrap checkpoint (missing {', '.join(missing)})")
    return checkpoint


def run_files(folder: Path) -> tuple[list[tuple[int, Path]], list[Path]]:
    """(run number, path) of `<N>.pt` files sorted numerically, and the other `.pt` files (skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"folder '{folder}' not found")
    runs, others = [], []
    for path in folder.iterdir():
        match = RUN_FILE.match(path.name)
        if match:
            runs.append((int(match.group(1)), path))
        elif path.suffix == ".pt":
            others.append(path)
    return sorted(runs), sorted(others)


class RunFinished(UserError):
    """The run is already recorded (another worker finished it meanwhile)."""
