"""Run locks that hold across the nodes of a cluster, on file systems that ignore or refuse flock.

A run is locked by creating `<run>.lock` in its cell folder, atomically and with its content (a hard
link, or O_CREAT|O_EXCL where links are missing: both atomic on local disks, NFSv3+ and Lustre),
holding its owner's host, pid, process start and a random token. While
the run trains, a heartbeat thread touches the file every `heartbeat` seconds. Another process
breaks the lock only when it is stale:
- an owner on the same host that no longer runs (checked at once: pid and process start);
- an owner on another host (or a file without a readable owner) whose heartbeat is older than
  `stale_after` (10 missed heartbeats by default), measured on the file system's clock.
Breaking renames the file aside first and puts it back if it turned out to be fresh, so two
processes breaking the same stale lock cannot both win. The owner checks that the lock is still
its own before each write of the run (`RunLock.check`): a process whose lock was broken (paused
for longer than `stale_after`, say) stops without writing.

Hand-written: filelock's leases judge another node's lock stale only by watching it for a whole
lease, which a worker that just asks "is this run busy?" cannot afford.
"""
from __future__ import annotations

import contextlib
import json
import os
import errno
import secrets
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

from .errors import UserError
from .files import STALE_SECONDS, file_age, file_system_now, temporary_prefix
from .owners import host_name, start_token, writer_alive

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


@contextlib.contextmanager
def run_lock(folder: Path, run: int, heartbeat: float = HEARTBEAT_SECONDS,
             stale_after: float = STALE_SECONDS) -> Iterator[RunLock]:
    """Held while run `run` trains, so two processes, on one node or several, never train the same run."""
    lock = acquire(folder, run, heartbeat, stale_after)
    try:
        yield lock
    finally:
        lock.release()
