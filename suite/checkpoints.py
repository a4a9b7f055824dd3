"""Everything a run writes to disk: checkpoints, resume state, the results log, and run locks.

Every file is written atomically (temporary file, fsync, rename), so a killed process leaves either
the old file or the new one, never half of one. Checkpoints hold only tensors and plain values, so
they load with `torch.load(weights_only=True)`.
"""
from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from .errors import CheckpointError, UserError

if TYPE_CHECKING:
    import torch

# The original checkpoint keys; ours add metadata beside them.
CHECKPOINT_KEYS = ("model_state_dict", "train_examples", "mem_examples", "model_name", "num_classes", "modality",
                   "dataset_name")
RUN_FILE = re.compile(r"^(\d+)\.pt$")
RESULTS_FILE = "results.jsonl"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual permissions
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def write_output(path: str | Path, data: bytes) -> Path:
    """Atomic write of a result file (JSON, table, figure); a file system error is a one-line UserError."""
    path = Path(path)
    try:
        atomic_write_bytes(path, data)
    except OSError as error:
        raise UserError(f"cannot write '{path}': {error.strerror or error}") from None
    return path


def atomic_torch_save(obj: object, path: Path) -> None:
    import torch  # imported here so that reading results.jsonl (the grid report) does not load torch

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


# ---- results log --------------------------------------------------------------------------------
@contextlib.contextmanager
def _locked(lock_path: Path, blocking: bool = True) -> Iterator[bool]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class RunLog:
    """`results.jsonl`: one JSON line per finished run; shared safely by concurrent workers."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / RESULTS_FILE
        self._lock = Path(folder) / ".results.lock"

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        records = []
        for number, line in enumerate(self.path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise CheckpointError(f"'{self.path}' line {number} is not valid JSON") from None
            if not isinstance(record, dict) or not isinstance(record.get("run"), int):
                raise CheckpointError(f"'{self.path}' line {number} is not a run record")
            records.append(record)
        return records

    def finished(self) -> dict[int, dict]:
        """Run number (1-based) -> its latest record."""
        return {record["run"]: record for record in self.read()}

    def append(self, record: dict) -> None:
        with _locked(self._lock):
            kept = [r for r in self.read() if r["run"] != record["run"]]
            lines = [json.dumps(r, sort_keys=True) for r in kept + [record]]
            atomic_write_bytes(self.path, ("\n".join(lines) + "\n").encode())

    def clear(self) -> None:
        with _locked(self._lock):
            self.path.unlink(missing_ok=True)


class RunBusy(UserError):
    """Another process is training this run right now."""


class RunFinished(UserError):
    """The run is already in results.jsonl (another worker finished it meanwhile)."""


@contextlib.contextmanager
def run_lock(folder: Path, run: int) -> Iterator[None]:
    """Held while run `run` trains, so two workers never train the same run at once."""
    with _locked(Path(folder) / f".{run}.lock", blocking=False) as acquired:
        if not acquired:
            raise RunBusy(f"run {run} in '{folder}' is being trained by another process")
        yield
