"""Everything a run leaves on disk, in one place: names, atomic writes, locks, records, checkpoints,
resume files and per-epoch metrics. Training, evaluation, the grid and the report all go through here.

Files of a run `N` in its cell folder (DATASET/MODALITY/MODEL/TRAIN_EXAMPLES):
    N.lock         held while the run trains (host, pid, process start, token; heartbeat)
    N.resume.pt    the run state after the last finished epoch (deleted once the run is recorded)
    N.metrics.csv  one row per finished epoch (and tensorboard/N/ when asked)
    N.pt           the model checkpoint (the original's keys plus run, seed, accuracy, config)
    N.json         the record of the finished run, written once: a run with one is finished

Every file is written to a temporary name in the same folder, flushed and renamed over its target,
so a kill, a full disk or a second node never leaves half of one. Temporary names carry their writer
(`.<name>.<host>~<pid>~<random>.tmp`), so leftovers of killed writes can be removed, and only those.
A failed write is one line (`RunFileError`) that names the file and says that the previous one is intact.

Torch is imported only to read and write `.pt` files, so the grid report reads records without it.
"""
from __future__ import annotations

import contextlib
import csv
import errno
import importlib.util
import io
import json
import math
import os
import re
import secrets
import socket
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from .cli import CheckpointError, ConfigError, UserError

if TYPE_CHECKING:
    import torch



# ---- who writes a file --------------------------------------------------------------------------
def host_name() -> str:
    """This node's name as it appears in file names: letters, digits and '-' only."""
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:60] or "host"


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (Linux), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[-1].split()


def start_token(pid: int) -> str | None:
    """When the process started (clock ticks since boot, Linux): a reused pid gets another token."""
    fields = _stat_fields(pid)
    return fields[19] if fields and len(fields) > 19 else None


def process_alive(pid: int, start: str | None = None) -> bool:
    """Whether process `pid` of this host runs (a zombie does not), and is the one that started at `start`."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    fields = _stat_fields(pid)
    if fields is None:
        return True  # no /proc (not Linux): the signal test is all there is
    if fields and fields[0] in ("Z", "X"):
        return False  # killed, not yet reaped by its parent
    return start is None or start_token(pid) in (None, start)


def writer_alive(host: str, pid: int, start: str | None = None) -> bool | None:
    """True / False for a writer on this host, None for one on another host (cannot be checked)."""
    if host != host_name():
        return None
    return process_alive(pid, start)


# ---- atomic writes and leftovers of killed ones ---------------------------------------------------
# The default age after which a file of another node, or one without a writer's name, counts as
# abandoned: no write of ours takes that long without finishing, and locks are refreshed 10 times in it.
STALE_SECONDS = 600.0
TEMPORARY = re.compile(r"^\..+\.(?P<host>[A-Za-z0-9-]+)~(?P<pid>\d+)~[A-Za-z0-9_]+\.tmp$")
ANY_TEMPORARY = re.compile(r"^\..+\.tmp$")  # ours, including those of versions without a writer's name


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temporary_prefix(path: Path) -> str:
    return f".{path.name}.{host_name()}~{os.getpid()}~"


def _write_all(handle: int, data: bytes) -> None:
    """os.write until every byte is written (it may write fewer)."""
    view = memoryview(data)
    while view:
        view = view[os.write(handle, view):]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically; on any error the temporary file is removed and `path` is unchanged."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=temporary_prefix(path), suffix=".tmp")
    try:
        try:
            _write_all(handle, data)
            os.fsync(handle)
        finally:
            os.close(handle)
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual permissions
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


@contextlib.contextmanager
def write_errors(path: Path, then: str = "") -> Iterator[None]:
    """The one wrapper of file-system errors in writes: one line naming the file (the previous one is
    intact, since writes are atomic) and, in `then`, what happens next."""
    try:
        yield
    except OSError as error:
        raise CheckpointError(f"cannot write '{path}': {error.strerror or error}; the previous file is intact"
                              + (f": {then}" if then else "")) from None


def write_output(path: str | Path, data: bytes) -> Path:
    """Atomic write of a result file (JSON, table, figure) with the one-line error of `write_errors`."""
    path = Path(path)
    with write_errors(path):
        atomic_write_bytes(path, data)
    return path


def check_output_file(path: str | Path | None, flag: str) -> None:
    """Before any work: an output file's name must not be an existing folder."""
    if path and Path(path).is_dir():
        raise UserError(f"{flag}='{path}' is a folder; {flag} takes a file name")


def check_output_folder(folder: str | Path, flag: str) -> None:
    """Before any work: an output folder (or the first of its parents that exists) must not be a file."""
    for candidate in (Path(folder), *Path(folder).parents):
        if candidate.exists():
            if not candidate.is_dir():
                raise UserError(f"{flag}: '{candidate}' is a file, not a folder" +
                                ("" if candidate == Path(folder) else f" (in the path of '{folder}')"))
            return


def check_writable(folder: Path) -> None:
    """A one-line error unless a file can be created in `folder` (checked before anything is deleted)."""
    try:
        handle, probe = tempfile.mkstemp(dir=folder, prefix=temporary_prefix(Path("probe")), suffix=".tmp")
    except OSError as error:
        raise CheckpointError(f"cannot write in '{folder}': {error.strerror or error}; nothing was changed") from None
    os.close(handle)
    os.unlink(probe)


def append_line(path: Path, line: str) -> None:
    """Append one line and flush it to disk (a single write: a kill never leaves half of it)."""
    handle = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        _write_all(handle, (line.rstrip("\n") + "\n").encode())
        os.fsync(handle)
    finally:
        os.close(handle)


def file_system_now(folder: Path) -> float:
    """The file system's clock (the mtime of a file made now): file ages on NFS or Lustre are measured
    against the server's clock, not this node's, so clock skew between nodes does not matter."""
    try:
        handle, probe = tempfile.mkstemp(dir=folder, prefix=temporary_prefix(Path("clock")), suffix=".tmp")
    except OSError:
        return time.time()
    try:
        os.close(handle)
        return os.stat(probe).st_mtime
    finally:
        with contextlib.suppress(OSError):
            os.unlink(probe)


def file_age(path: Path, now: float) -> float | None:
    try:
        return now - path.stat().st_mtime
    except FileNotFoundError:
        return None


def remove_leftovers(folder: Path, stale_after: float = STALE_SECONDS) -> list[Path]:
    """Remove the temporary files of killed writes in `folder`: those of a dead process of this host
    at once, those of other hosts (or without a writer's name) once older than `stale_after`."""
    folder = Path(folder)
    removed, now = [], None
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return []
    for entry in entries:
        if not ANY_TEMPORARY.match(entry.name) or not entry.is_file(follow_symlinks=False):
            continue
        named = TEMPORARY.match(entry.name)
        alive = writer_alive(named["host"], int(named["pid"])) if named else None
        if alive is None:
            now = now if now is not None else file_system_now(folder)
            age = file_age(Path(entry.path), now)
            dead = age is not None and age > stale_after
        else:
            dead = not alive
        if dead:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


# ---- run locks ----------------------------------------------------------------------------------
HEARTBEAT_SECONDS = 60.0
NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.ENOSYS}


class RunBusy(UserError):
    """Another process is training this run right now."""


class LockLost(RunBusy):
    """This process's lock was broken by another one (it was taken for dead); it must stop writing."""


class LockError(UserError):
    """The folder's file system refuses to create the lock file."""


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    start: str | None
    token: str
    since: float

    def describe(self) -> str:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since))
        return f"host {self.host}, pid {self.pid}, since {started}"


def lock_path(folder: Path, run: int) -> Path:
    return Path(folder) / f"{run}.lock"


def read_owner(path: Path) -> Owner | None:
    """The lock's owner, or None if the file is gone or not a lock of ours."""
    try:
        data = json.loads(path.read_text())
        return Owner(str(data["host"]), int(data["pid"]), data.get("start"), str(data["token"]), float(data["since"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


class RunLock:
    """A held run lock: `check()` before each write, released by the context manager."""

    def __init__(self, path: Path, owner: Owner, heartbeat: float):
        self.path, self.owner = path, owner
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(heartbeat,), name=f"heartbeat {path}", daemon=True)
        self._thread.start()

    def held(self) -> bool:
        current = read_owner(self.path)
        return current is not None and current.token == self.owner.token

    def refresh(self) -> None:
        """Touch the lock file (the heartbeat), if it is still ours."""
        if self.held():
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def check(self) -> None:
        """Raise LockLost unless the lock file is still this process's."""
        if not self.held():
            raise LockLost(f"the lock '{self.path}' was taken over by another process (this one was taken for "
                           "dead: no heartbeat for too long); stopping without writing this run's files")

    def _beat(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.refresh()

    def release(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        if self.held():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)


def _is_stale(path: Path, owner: Owner | None, stale_after: float) -> bool:
    if owner is not None:
        alive = writer_alive(owner.host, owner.pid, owner.start)
        if alive is not None:
            return not alive
    age = file_age(path, file_system_now(path.parent))
    return age is not None and age > stale_after


def _break(path: Path, judged: os.stat_result) -> None:
    """Remove a stale lock; if it was refreshed or replaced since it was judged, put it back. `judged` is
    its stat taken before its owner was read: a stat taken here could already be of a lock that another
    process broke and re-created meanwhile, which would then be removed."""
    aside = path.with_name(f"{temporary_prefix(path)}{secrets.token_hex(4)}.tmp")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return  # another process broke it first
    try:
        moved = aside.stat()
        if (moved.st_ino, moved.st_mtime_ns) != (judged.st_ino, judged.st_mtime_ns):
            with contextlib.suppress(OSError):
                os.link(aside, path)  # not the file judged stale: restore it (fails if a new lock exists)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(aside)


def _write_owner(handle: int, owner: Owner) -> None:
    """Write the owner into an open lock file, reach the disk, close it."""
    try:
        os.write(handle, json.dumps(asdict(owner)).encode())
        os.fsync(handle)
    finally:
        os.close(handle)


def _create(path: Path, owner: Owner) -> bool:
    """Create the lock file with its content in one step; False if it exists.

    The content is written to a temporary file first and hard-linked to the lock's name, so that no
    process ever sees (or, killed, leaves) a lock without its owner; success is read from the link
    count, which stays right where NFS reports a retried link() as failed. File systems without hard
    links get O_CREAT|O_EXCL.
    """
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=temporary_prefix(path), suffix=".tmp")
    try:
        _write_owner(handle, owner)
        try:
            os.link(temporary, path)
        except OSError as error:
            if os.stat(temporary).st_nlink == 2:
                return True  # linked after all: NFS reports a retried link() that the server made as failed
            if isinstance(error, FileExistsError):
                return False
            if error.errno not in NO_HARD_LINKS:
                raise
            return _create_exclusive(path, owner)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def _create_exclusive(path: Path, owner: Owner) -> bool:
    try:
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    try:
        _write_owner(handle, owner)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)  # a lock without its owner would block the run until it is stale
        raise
    return True


def acquire(folder: Path, run: int, heartbeat: float = HEARTBEAT_SECONDS,
            stale_after: float = STALE_SECONDS) -> RunLock:
    """Take run `run`'s lock; RunBusy if a live process holds it, LockError if the file system refuses."""
    folder, path = Path(folder), lock_path(folder, run)
    owner = Owner(host_name(), os.getpid(), start_token(os.getpid()), secrets.token_hex(16), time.time())
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for _ in range(3):  # a lock broken or released meanwhile: try again
            if _create(path, owner):
                return RunLock(path, owner, heartbeat)
            try:
                judged = path.stat()  # before the owner is read: only the file judged stale may be broken
            except FileNotFoundError:
                continue  # released or broken meanwhile
            current = read_owner(path)
            if not _is_stale(path, current, stale_after):
                holder = (current.describe() if current is not None
                          else f"lock file unreadable: taken as abandoned {stale_after / 60:g} minutes after its last change")
                raise RunBusy(f"run {run} in '{folder}' is being trained by another process ({holder})")
            _break(path, judged)
    except OSError as error:
        raise LockError(f"cannot lock run {run} in '{folder}': {error.strerror or error} on '{error.filename or path}'; "
                        "the models folder must be writable and allow exclusive file creation (O_EXCL): set "
                        "models_dir to such a folder") from None
    raise RunBusy(f"run {run} in '{folder}' is being trained by another process (its lock keeps changing hands)")


LOCK_FILE = re.compile(r"^(\d+)\.lock$")


def live_locks(folder: Path, stale_after: float = STALE_SECONDS) -> dict[int, Owner | None]:
    """Run -> owner of every lock in `folder` that a live process holds (by the rules `acquire` uses to
    break a lock: None for an unreadable lock that is not yet stale)."""
    found = {}
    for path in sorted(Path(folder).glob("*.lock")) if Path(folder).is_dir() else []:
        match = LOCK_FILE.match(path.name)
        if match is None:
            continue
        owner = read_owner(path)
        if not _is_stale(path, owner, stale_after):
            found[int(match.group(1))] = owner
    return found


@contextlib.contextmanager
def run_lock(folder: Path, run: int, heartbeat: float = HEARTBEAT_SECONDS,
             stale_after: float = STALE_SECONDS) -> Iterator[RunLock]:
    """Held while run `run` trains, so two processes, on one node or several, never train the same run."""
    lock = acquire(folder, run, heartbeat, stale_after)
    try:
        yield lock
    finally:
        lock.release()


# ---- checkpoints and resume files (.pt) ----------------------------------------------------------
# The original checkpoint keys; ours add metadata beside them.
CHECKPOINT_KEYS = ("model_state_dict", "train_examples", "mem_examples", "model_name", "num_classes", "modality",
                   "dataset_name")
RUN_FILE = re.compile(r"^(\d+)\.pt$")


def checkpoint_path(folder: Path, run: int) -> Path:
    return Path(folder) / f"{run}.pt"


def resume_path(folder: Path, run: int) -> Path:
    return Path(folder) / f"{run}.resume.pt"


def save_torch_file(content: dict, path: Path, then: str = "free space (or fix the mount) and run again to resume"
                    ) -> None:
    """torch.save, atomically, with the one-line error of `write_errors` (torch imported here, so that
    reading records, as the grid report does, never loads it)."""
    import torch

    buffer = io.BytesIO()
    torch.save(content, buffer)
    with write_errors(path, then):
        atomic_write_bytes(path, buffer.getvalue())


def load_torch_file(path: Path, map_location: str | torch.device = "cpu") -> dict:
    """Safe load (weights_only) with one-line errors for missing, truncated or foreign files."""
    import torch

    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"'{path}' is a folder, not a checkpoint file: give one run's checkpoint, such as "
                              f"'{path / '1.pt'}' (eval_dir.py and the other folder scripts take a cell's folder)")
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' not found")
    kind = file_kind(path)
    if kind != "torch":
        raise CheckpointError(f"'{path}' is not a PyTorch checkpoint ({kind}); a run's checkpoint is its <N>.pt, "
                              "beside its record <N>.json")
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


def file_kind(path: Path) -> str:
    """"torch" for what torch.save writes (a zip archive, or the legacy pickle format), else what the
    file looks like: "an empty file", "JSON text", "text" or "an unknown format"."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(512)
    except OSError as error:
        raise CheckpointError(f"cannot read '{path}': {error.strerror or error}") from None
    if head.startswith(b"PK\x03\x04") or head.startswith(b"\x80"):
        return "torch"
    if not head:
        return "an empty file"
    text = head.lstrip()
    if text[:1] in (b"{", b"["):
        return "it holds JSON text"
    try:
        head.decode("utf-8")
        return "it holds text"
    except UnicodeDecodeError:
        return "an unknown format"


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict:
    """A model checkpoint of this suite or of the original one (same keys)."""
    checkpoint = load_torch_file(path, map_location)
    missing = [key for key in CHECKPOINT_KEYS if key not in checkpoint]
    if missing and {"state", "settings"} <= set(checkpoint):
        raise CheckpointError(f"'{path}' is the resume file of an interrupted run (its training state, not a model "
                              "checkpoint): finish the run with train.py --continue_train, then use its <N>.pt")
    if missing:
        raise CheckpointError(f"'{path}' is not a Memory Wrap checkpoint (missing {', '.join(missing)})")
    return checkpoint


def run_checkpoints(folder: Path) -> tuple[list[tuple[int, Path]], list[Path]]:
    """(run number, path) of `<N>.pt` files sorted numerically, and the other `.pt` files (skipped)."""
    folder = Path(folder)
    if folder.is_file():
        raise UserError(f"'{folder}' is a file, not a cell's folder: give the folder of the runs, such as "
                        f"'{folder.parent}' (eval.py and the figure scripts take one checkpoint)")
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


# ---- results computed from a cell's runs (by eval_dir.py and the explanation scripts) ------------------
# Their names (suite/commands.py, suite/journal/): a cell trained again with --overwrite drops them with its runs,
# so no result describes runs that are gone. The autoencoders stay: they depend on the split, not the model.
RESULT_PATTERNS = ("eval_dir*.json", "majority_vote*.json", "explanation_accuracy_*.json", "example_quality*.md",
                   "example_quality*.csv", "example_quality*.json", "counterfactual_quality*.md",
                   "counterfactual_quality*.csv", "counterfactual_quality*.json", "counterfactuals_run*.png")


def result_files(folder: Path) -> list[Path]:
    """The result files of the folder commands beside a cell's runs."""
    folder = Path(folder)
    return sorted({path for pattern in RESULT_PATTERNS for path in folder.glob(pattern) if path.is_file()})


# ---- records (N.json) ----------------------------------------------------------------------------
RECORD_FILE = re.compile(r"^(\d+)\.json$")


def record_path(folder: Path, run: int) -> Path:
    return Path(folder) / f"{run}.json"


def write_record(folder: Path, record: dict) -> Path:
    """Record a finished run, once (atomic; the run's lock holder is its only writer)."""
    path = record_path(folder, record["run"])
    with write_errors(path, "the run resumes and is evaluated again"):
        atomic_write_bytes(path, (json.dumps(record, sort_keys=True, indent=1) + "\n").encode())
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


def record_files(folder: Path) -> dict[int, Path]:
    """Run number -> its `<run>.json` in `folder`, in run order."""
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    found = {int(m.group(1)): path for path in folder.iterdir() if (m := RECORD_FILE.match(path.name))}
    return dict(sorted(found.items()))


def finished_runs(folder: Path, problems: list[str] | None = None) -> dict[int, dict]:
    """Run number -> record of every finished run of a cell folder, in run order. A damaged record
    raises its one-line CheckpointError or, given `problems` (the report), is left out and named there."""
    found = {}
    for run, path in record_files(folder).items():
        try:
            found[run] = read_record(path)
        except CheckpointError as error:
            if problems is None:
                raise
            problems.append(str(error))
    return found


def record_folders(root: Path) -> list[Path]:
    """Folders under `root` that hold run records."""
    return sorted(Path(folder) for folder, _, names in os.walk(root) if any(RECORD_FILE.match(n) for n in names))


# ---- per-epoch metrics (N.metrics.csv, TensorBoard) -----------------------------------------------
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
