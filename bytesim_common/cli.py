"""Command-line plumbing: a `main(argv)` wrapper and an argument parser, both reporting a user
error as one line `PROG: error: ...` with exit code 2, and the options of a parser built from
the fields of a typed config dataclass (one definition of each option and its default)."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from dataclasses import MISSING, Field, field, fields
from typing import Any, get_args, get_type_hints

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
    """argparse, but a usage error is one line (exit 2) rather than usage + message.

    options_from: a function returning a dataclass whose fields become this parser's options
    (`add_dataclass_options`), called when the parser is first used, so that a subcommand whose
    config lives in a heavy module costs nothing to the others."""

    def __init__(self, *args: Any, options_from: Callable[[], type] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._options_from = options_from

    def _add_deferred_options(self) -> None:
        if self._options_from is not None:
            cls, self._options_from = self._options_from(), None
            add_dataclass_options(self, cls)

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        self._add_deferred_options()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._add_deferred_options()
        return super().format_help()

    def format_usage(self) -> str:
        self._add_deferred_options()
        return super().format_usage()

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{message} (see `{self.prog} --help`)")


def option(default: Any = MISSING, *, help: str, **argparse_kwargs: Any) -> Any:
    """A dataclass field that is also a command-line option (see `add_dataclass_options`):
    `help` and any argparse keywords (choices, metavar, flag="--other-name", aliases=(...) of
    deprecated spellings that still work, const_flags={"--old-switch": value} of hidden switches
    that set a value) go in the field's metadata."""
    return field(default=default, metadata={"help": help, **argparse_kwargs})


def flag_of(f: Field) -> str:
    """The command-line spelling of a dataclass field: `--field-name` unless metadata names one."""
    return f.metadata.get("flag", "--" + f.name.replace("_", "-"))


def add_dataclass_options(parser: argparse.ArgumentParser, cls: type) -> None:
    """One option per field of the dataclass `cls`, typed from its annotation (a bool is a switch),
    required where the field has no default, with the help, choices, metavar and deprecated
    aliases of its metadata; the option's dest is the field's name."""
    hints = get_type_hints(cls)
    for f in fields(cls):
        meta = dict(f.metadata)
        kwargs: dict[str, Any] = {"dest": f.name, "help": meta.pop("help", None)}
        aliases = tuple(meta.pop("aliases", ()))
        const_flags = meta.pop("const_flags", {})
        meta.pop("flag", None)
        kwargs.update(meta)
        kind = _scalar_type(hints[f.name])
        if kind is bool:
            kwargs["action"] = "store_true"
        else:
            kwargs["type"] = kind
        if f.default is not MISSING:
            kwargs["default"] = f.default
        elif f.default_factory is not MISSING:
            kwargs["default"] = f.default_factory()
        else:
            kwargs["required"] = True
        if aliases:
            kwargs["help"] = f"{kwargs['help']} ({', '.join(aliases)}: deprecated spelling)"
            kwargs["action"] = _deprecated_alias(flag_of(f), aliases, kwargs.pop("action", None))
        parser.add_argument(flag_of(f), *aliases, **kwargs)
        for flag, value in const_flags.items():  # former switches that set a value; not shown
            parser.add_argument(flag, dest=f.name, action="store_const", const=value,
                                help=argparse.SUPPRESS)


def _scalar_type(hint: Any) -> type:
    """int for `int` and `int | None`, and so on."""
    args = [a for a in get_args(hint) if a is not type(None)]
    return args[0] if args else hint


def _deprecated_alias(flag: str, aliases: tuple[str, ...], action: str | None) -> type:
    if action is not None:
        raise ValueError(f"{flag}: deprecated aliases are for options that take a value")

    class DeprecatedAlias(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):  # type: ignore[override]
            if option_string in aliases:
                print(f"{parser.prog}: warning: {option_string} is deprecated, use {flag}",
                      file=sys.stderr)
            setattr(namespace, self.dest, values)

    return DeprecatedAlias
