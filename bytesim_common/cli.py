"""Command-line plumbing: a `main(argv)` wrapper and an argument parser, both reporting a user
error as one line `PROG: error: ...` with exit code 2."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable

from bytesim_common.errors import UserError


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


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (exit 2) rather than usage + message."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{message} (see `{self.prog} --help`)")
