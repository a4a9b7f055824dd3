"""The record of a finished run: `<run>.json` beside `<run>.pt`, written once, atomically, by the
process that holds the run's lock.

No file is shared between writers, so nothing is read-modified-written by two processes (which on
NFS without working locks, or across nodes, lost records). Earlier versions kept every run of a cell
in one `results.jsonl`; such a file is still read (a `<run>.json` of the same run takes precedence),
never written. `migrate_results` turns it into per-run files.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from .errors import CheckpointError
from .files import atomic_write_bytes

RECORD_FILE = re.compile(r"^(\d+)\.json$")
RESULTS_FILE = "results.jsonl"  # the former per-cell log: read, never written


def record_path(folder: Path, run: int) -> Path:
    return Path(folder) / f"{run}.json"


def record_bytes(record: dict) -> bytes:
    return (json.dumps(record, sort_keys=True, indent=1) + "\n").encode()


def write_record(folder: Path, record: dict) -> Path:
    """Record a finished run (atomic; the run's lock holder is its only writer)."""
    path = record_path(folder, record["run"])
    atomic_write_bytes(path, record_bytes(record))
    return path


def read_record(path: Path) -> dict:
    """One `<run>.json`; a damaged file is a one-line error naming it and what to do."""
    path = Path(path)
    run = int(RECORD_FILE.match(path.name).group(1))
    advice = (f"delete it to train run {run} again (or restore it from a backup); "
              "records are written atomically, so the file was damaged after it was written")
    try:
        record = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CheckpointError(f"run record '{path}' is not valid JSON; {advice}") from None
    except OSError as error:
        raise CheckpointError(f"cannot read run record '{path}': {error.strerror or error}") from None
    if not isinstance(record, dict) or record.get("run") != run:
        raise CheckpointError(f"'{path}' is not the record of run {run}; {advice}")
    return record


def read_legacy_results(path: Path) -> list[dict]:
    """The records of a former `results.jsonl`, in file order."""
    records = []
    advice = "fix or delete that line (its run is then trained again)"
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise CheckpointError(f"'{path}' line {number} is not valid JSON; {advice}") from None
        if not isinstance(record, dict) or not isinstance(record.get("run"), int):
            raise CheckpointError(f"'{path}' line {number} is not a run record; {advice}")
        records.append(record)
    return records


def record_files(folder: Path) -> dict[int, Path]:
    """Run number -> its `<run>.json` in `folder`."""
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    found = {}
    for path in folder.iterdir():
        match = RECORD_FILE.match(path.name)
        if match:
            found[int(match.group(1))] = path
    return found


class RunLog:
    """The finished runs of a cell folder: its `<run>.json` files plus any former `results.jsonl`."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.path = self.folder / RESULTS_FILE  # the former log, if any

    def sources(self) -> dict[int, tuple[dict, Path]]:
        """Run -> (record, file it was read from); a per-run file wins over the former log."""
        return read_sources(self.folder)

    def read(self) -> list[dict]:
        """Every finished run's record, in run order."""
        return [record for record, _ in self.sources().values()]

    def finished(self) -> dict[int, dict]:
        """Run number (1-based) -> its record."""
        return {run: record for run, (record, _) in self.sources().items()}

    def clear(self) -> None:
        """Forget every finished run (--overwrite)."""
        for path in record_files(self.folder).values():
            path.unlink(missing_ok=True)
        self.path.unlink(missing_ok=True)


def read_sources(folder: Path, problems: list[str] | None = None) -> dict[int, tuple[dict, Path]]:
    """Run -> (record, file it was read from) of a cell folder; a per-run file wins over the former log.

    A damaged file raises its one-line CheckpointError, or, given `problems` (the report), is left out
    and its error appended there. A results.jsonl that is gone counts as none: `grid.py migrate` in
    another process renames it only after writing its per-run files, which are listed after it is read.
    """
    found: dict[int, tuple[dict, Path]] = {}
    legacy = Path(folder) / RESULTS_FILE
    try:
        found.update({record["run"]: (record, legacy) for record in read_legacy_results(legacy)})
    except FileNotFoundError:
        pass
    except CheckpointError as error:
        if problems is None:
            raise
        problems.append(str(error))
    for run, path in record_files(folder).items():
        try:
            found[run] = (read_record(path), path)
        except CheckpointError as error:
            if problems is None:
                raise
            problems.append(str(error))
    return dict(sorted(found.items()))


def record_folders(root: Path) -> list[Path]:
    """Folders under `root` that hold run records (`<run>.json` or a former results.jsonl)."""
    folders = []
    for folder, _, names in os.walk(root):
        if any(name == RESULTS_FILE or RECORD_FILE.match(name) for name in names):
            folders.append(Path(folder))
    return sorted(folders)


def migrate_results(folder: Path) -> int:
    """Write a `<run>.json` for each run of a former results.jsonl that has none, then rename the log
    to results.jsonl.migrated. Returns the number of records written. Run it once, by one process."""
    log = RunLog(folder)
    if not log.path.is_file():
        return 0
    existing = record_files(folder)
    written = 0
    latest = {record["run"]: record for record in read_legacy_results(log.path)}  # a run's last line, as read
    for run, record in sorted(latest.items()):
        if run not in existing:
            write_record(folder, record)
            written += 1
    log.path.rename(log.path.with_name(RESULTS_FILE + ".migrated"))
    return written
