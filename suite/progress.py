"""Progress on long work: a tqdm bar on a terminal, a plain line every `log_every` steps otherwise."""
from __future__ import annotations

import sys
from typing import Iterable, Iterator, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def on_terminal() -> bool:
    return sys.stderr.isatty()


def track(items: Iterable[T], description: str, total: int | None = None, log_every: int = 0) -> Iterator[T]:
    """Iterate `items`, showing progress. `log_every` 0 means no plain lines (only the bar on a tty)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    if on_terminal():
        yield from tqdm(items, desc=description, total=total, leave=False, dynamic_ncols=True)
        return
    for index, item in enumerate(items):
        if log_every and index % log_every == 0:
            print(f"{description} [{index}/{total if total is not None else '?'}]", flush=True)
        yield item
