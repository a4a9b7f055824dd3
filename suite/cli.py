"""What every script shares with its user: one-line errors for mistakes, and progress on long work.

A mistake in flags, config, paths or files raises a `UserError` (or a subclass); scripts wrapped by
`user_errors` print it as `error: ...` on stderr and exit with code 2, without a traceback.
"""
from __future__ import annotations

import functools
import sys
import time
from typing import Callable, Iterable, Iterator, TypeVar

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
T = TypeVar("T")


class UserError(Exception):
    """A mistake in flags, config, paths or files; reported without a traceback, exit code 2."""


class ConfigError(UserError):
    """The config file or a --set override is invalid."""


class DatasetError(UserError):
    """Dataset files are missing, unreadable or the requested sizes cannot work."""


class CheckpointError(UserError):
    """A run's file (checkpoint, resume state, record) is missing, damaged, foreign or cannot be written."""


class TrainingDiverged(UserError):
    """The loss stopped being finite; training stops instead of writing a useless model."""


INTERRUPTED = "interrupted; every file is written whole or not at all: run the same command again"
INTERRUPTED_TRAINING = "interrupted; finished epochs are kept (rerun with --continue_train to resume)"


def user_errors(main: Callable[[list[str]], None] | None = None, *, interrupted: str = INTERRUPTED):
    """Wrap an absl `main`: UserError -> `error: ...` and exit 2; Ctrl-C -> the script's `interrupted` note
    and exit 130. Used bare (`@user_errors`) or with the note (`@user_errors(interrupted=...)`)."""
    if main is None:
        return functools.partial(user_errors, interrupted=interrupted)

    @functools.wraps(main)
    def wrapped(argv: list[str]) -> None:
        try:
            main(argv)
        except UserError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)
        except KeyboardInterrupt:
            print(f"\n{interrupted}", file=sys.stderr)
            sys.exit(EXIT_INTERRUPTED)

    return wrapped


def reject_extra_arguments(argv: list[str]) -> None:
    if len(argv) > 1:
        raise UserError(f"unexpected arguments: {' '.join(argv[1:])} (flags take the form --name=value)")


def on_terminal() -> bool:
    return sys.stderr.isatty()


def clock(seconds: float) -> str:
    """h:mm:ss"""
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def timing(done: int, total: int | None, started: float, now: float | None = None) -> str:
    """`elapsed h:mm:ss | left ~h:mm:ss` of work `done` of `total` items started at `started` (by
    `time.perf_counter`; `now` defaults to its reading)."""
    elapsed = (time.perf_counter() if now is None else now) - started
    text = f"elapsed {clock(elapsed)}"
    if total and done:
        text += f" | left ~{clock(elapsed / done * (total - done))}"
    return text


def track(items: Iterable[T], description: str, total: int | None = None, log_every: int = 0,
          out: Callable[[str], None] | None = None) -> Iterator[T]:
    """Iterate `items` showing progress: a tqdm bar on a terminal; off a terminal (a log, nohup, Slurm, a
    grid worker) a line after every `log_every` items (0: none) with the count, the elapsed time and the
    estimated time left. `out` (default: stdout, flushed) takes the lines."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    if on_terminal():
        from tqdm import tqdm

        yield from tqdm(items, desc=description, total=total, leave=False, dynamic_ncols=True)
        return
    out = out or print_line
    started = time.perf_counter()
    for done, item in enumerate(items, start=1):
        yield item  # the caller's work on the item happens here
        if log_every and done % log_every == 0:
            out(f"{description} | {done}/{total if total is not None else '?'} | {timing(done, total, started)}")


def print_line(line: str) -> None:
    """One line to stdout in one write, flushed (lines of several worker processes stay whole)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
