"""Who writes a file: host, process id and process start, and whether that writer still runs.

Run locks and temporary files carry their writer's identity, so that a later process can tell a
dead writer's leftovers from a live writer's work. Only a writer on this host can be checked
directly; a writer on another node of a cluster is judged by the age of its files (see locks.py).
"""
from __future__ import annotations

import os
import re
import socket
from pathlib import Path


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
