"""Writing files so that a kill, a full disk or a second node never leaves half of one.

Every file is written to a temporary name in the same folder, flushed to disk and renamed over
the target: readers see the old file or the new one. The temporary name carries its writer
(`.<name>.<host>~<pid>~<random>.tmp`), so that leftovers of killed writes can be removed later by
`remove_leftovers`, and only those: a live writer's temporary file is never touched.
"""
from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from pathlib import Path

from .errors import UserError
from .owners import host_name, writer_alive

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


def write_output(path: str | Path, data: bytes) -> Path:
    """Atomic write of a result file (JSON, table, figure); a file system error is a one-line UserError."""
    path = Path(path)
    try:
        atomic_write_bytes(path, data)
    except OSError as error:
        raise UserError(f"cannot write '{path}': {error.strerror or error}") from None
    return path


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
