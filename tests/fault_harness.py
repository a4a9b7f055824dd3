"""Fault harness of tests/test_cluster_faults.py: cluster nodes and kills, with torch imported once.

    python tests/fault_harness.py nodes GRID OUT.json          # two "nodes" share one grid
    python tests/fault_harness.py kills GRID OUT.json SEED N [REFERENCE]
        # N+ SIGKILLs, each followed by a restart; REFERENCE: a grid trained first, without kills

Each trainer is a process forked from this one (so a restart costs no import of torch) that does
what a Slurm array task does: plan the grid from the files, then `SubmititRun` over its runs. In
every trainer flock and lockf fail (ENOLCK, as on NFS without a lock daemon or Lustre mounted
`noflock`), and `nodes` gives the two trainers different host names, so their locks can only be
judged across hosts (by heartbeat age), never by pid.

`kills` kills each trainer with SIGKILL, either at a random moment or half-way through its n-th
write of a kind drawn at random, each kind once first: a checkpoint, a record, a metrics row, the
metrics file rewritten at a (re)start, a resume file. Then it restarts, and so on until N kills are
done; then it lets the grid finish. It never lets the grid finish before the N kills: near the end,
a trainer killed at a random moment is also set to die in its first record write, at the latest.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import random
import re
import signal
import socket
import sys
import time
from pathlib import Path

from suite import run_files
from suite.grid import SubmititRun, make_plan
from suite.gridspec import load_grid


def _refuse_flock(*args, **kwargs):
    raise OSError(errno.ENOLCK, "No locks available")


def _trainer(grid_path: str, host: str | None = None, die_at: tuple[str, int] | None = None,
             writes_log: Path | None = None, outcomes_log: Path | None = None) -> None:
    """The body of a forked trainer; never returns."""
    code = 0
    try:
        fcntl.flock = fcntl.lockf = _refuse_flock
        if host:
            socket.gethostname = lambda: host
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        if die_at:
            _die_at_write(*die_at, writes_log)
        plan = make_plan(load_grid(grid_path))
        outcomes = SubmititRun()(plan.todo)
        if outcomes_log is not None:
            with open(outcomes_log, "w") as stream:
                json.dump({outcome.label: outcome.status for outcome in outcomes}, stream)
    except BaseException as error:  # noqa: BLE001 - reported through the exit code
        print(f"trainer failed: {error.__class__.__name__}: {error}", file=sys.stderr)
        code = 1
    os._exit(code)


# What a write is, from its file name: a row appended to 1.metrics.csv, or .1.KIND.HOST~PID~X.tmp.
WRITE = re.compile(r"^\.?\d+\.(?P<kind>.+?)(?P<temporary>\.[A-Za-z0-9-]+~\d+~\w+\.tmp)?$")
KINDS = {("metrics.csv", False): "metrics row", ("metrics.csv", True): "metrics file", ("resume.pt", True): "resume file",
         ("pt", True): "checkpoint", ("json", True): "record"}


def write_kind(path: str) -> str:
    match = WRITE.match(os.path.basename(path))
    return KINDS.get((match["kind"], bool(match["temporary"])), "other") if match else "other"


def _die_at_write(kind: str, number: int, log: Path | None) -> None:
    """SIGKILL this process half-way through its `number`-th write of `kind` (a checkpoint, a record...)."""
    original, count = run_files._write_all, [0]

    def write(handle: int, data: bytes) -> None:
        path = os.readlink(f"/proc/self/fd/{handle}")
        if write_kind(path) == kind:
            count[0] += 1
            if count[0] == number:
                original(handle, data[: len(data) // 2])
                if log is not None:
                    with open(log, "a") as stream:
                        stream.write(f"{kind}\t{path}\n")
                os.kill(os.getpid(), signal.SIGKILL)
        original(handle, data)

    run_files._write_all = write


def _fork(*args, **kwargs) -> int:
    pid = os.fork()
    if pid == 0:
        _trainer(*args, **kwargs)
    return pid


def warm_up(grid_path: str) -> None:
    """Import and load here what every trainer needs (the dataset, torch's optimiser machinery), so
    that each forked trainer starts training at once: a restart then costs a fork, not 4 s of imports."""
    import sklearn.datasets  # noqa: F401 - DIGITS
    import torch._dynamo  # noqa: F401 - imported by the first optimiser

    from suite.datasets import open_images

    for task in make_plan(load_grid(grid_path)).todo[:1]:
        config = task.settings.config
        for train in (True, False):
            open_images(config["dataset_name"], config["dataset_dir"], train, config["download"])


def nodes(grid_path: str, out: Path) -> None:
    started = time.perf_counter()
    logs = {host: out.with_name(f"{host}.json") for host in ("node-a", "node-b")}
    pids = {host: _fork(grid_path, host, outcomes_log=log) for host, log in logs.items()}
    codes = {host: os.waitpid(pid, 0)[1] for host, pid in pids.items()}
    out.write_text(json.dumps({"codes": codes, "seconds": time.perf_counter() - started,
                               "outcomes": {host: json.loads(log.read_text()) if log.exists() else None
                                            for host, log in logs.items()}}))


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def kills(grid_path: str, out: Path, seed: int, wanted: int) -> None:
    rng = random.Random(seed)
    writes_log = out.with_name("killed_writes.txt")
    started = time.perf_counter()
    killed = at_random_moments = restarts = cycles = 0
    first = rng.sample(list(KINDS.values()), len(KINDS))
    while True:
        remaining = len(make_plan(load_grid(grid_path)).todo)
        if not remaining:
            break
        cycles += 1
        die_at, moment = None, None
        if killed < wanted:
            choice = first.pop() if first else rng.choice(["moment"] * len(KINDS) + list(KINDS.values()))
            if choice == "moment":
                moment = rng.uniform(0.0, 0.4)
            if remaining <= 2:  # near the end: a write that every trainer makes before its first record
                die_at = ("record", 1) if choice == "moment" else (rng.choice(["metrics file", "checkpoint", "record"]), 1)
            elif choice != "moment":
                die_at = (choice, 1 if choice in ("checkpoint", "record") else rng.randint(1, 3))
        logged = _lines(writes_log)
        pid = _fork(grid_path, die_at=die_at, writes_log=writes_log)
        if moment is not None:
            time.sleep(moment)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        status = os.waitpid(pid, 0)[1]
        if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
            killed += 1
            at_random_moments += _lines(writes_log) == logged  # the timer, not a write, killed it
            restarts += 1  # the next cycle restarts the grid
        elif status != 0:
            raise SystemExit(f"a trainer failed (status {status}); see its stderr above")
    hit = [line.split("\t")[0] for line in writes_log.read_text().splitlines()] if writes_log.exists() else []
    out.write_text(json.dumps({"kills": killed, "at_random_moments": at_random_moments, "restarts": restarts,
                               "cycles": cycles, "killed_writes": {kind: hit.count(kind) for kind in sorted(set(hit))},
                               "seconds": time.perf_counter() - started}))


if __name__ == "__main__":
    mode, grid, target = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    warm_up(grid)
    if mode == "nodes":
        nodes(grid, target)
    else:
        for reference in sys.argv[6:]:  # grids to train first without kills, for comparison
            os.waitpid(_fork(reference), 0)
        kills(grid, target, int(sys.argv[4]), int(sys.argv[5]))
