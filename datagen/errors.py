"""User errors: one line, exit code 2, never a traceback."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable


class UserError(Exception):
    """A problem with what the user asked for or gave us (bad argument, bad file)."""


def cli_entry(prog: str) -> Callable[[Callable[[list[str] | None], int | None]], Callable]:
    """Wrap a CLI `main(argv)` so that a UserError prints `prog: error: ...` and exits 2."""

    def wrap(main: Callable[[list[str] | None], int | None]) -> Callable:
        @functools.wraps(main)
        def run(argv: list[str] | None = None) -> None:
            try:
                code = main(argv)
            except UserError as e:
                print(f"{prog}: error: {e}", file=sys.stderr)
                sys.exit(2)
            except KeyboardInterrupt:
                print(f"{prog}: interrupted", file=sys.stderr)
                sys.exit(130)
            except BrokenPipeError:
                sys.exit(0)
            sys.exit(code or 0)

        return run

    return wrap
