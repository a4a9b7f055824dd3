"""What every script shares: user mistakes become one line on stderr and a non-zero exit."""
from __future__ import annotations

import functools
import sys
from typing import Callable

from .errors import UserError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def user_errors(main: Callable[[list[str]], None]) -> Callable[[list[str]], None]:
    """Wrap an absl `main`: UserError -> `error: ...` and exit 2; Ctrl-C -> a short note and exit 130."""

    @functools.wraps(main)
    def wrapped(argv: list[str]) -> None:
        try:
            main(argv)
        except UserError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)
        except KeyboardInterrupt:
            print("\ninterrupted; finished epochs are kept (rerun with --continue_train to resume)", file=sys.stderr)
            sys.exit(EXIT_INTERRUPTED)

    return wrapped


def reject_extra_arguments(argv: list[str]) -> None:
    if len(argv) > 1:
        raise UserError(f"unexpected arguments: {' '.join(argv[1:])} (flags take the form --name=value)")
