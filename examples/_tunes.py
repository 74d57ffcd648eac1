"""What the music examples share: their command line (a corpus, a model, how many tunes of which
split) and the converter and tunes it names. A helper, not an example: its name starts with `_`."""

import argparse
from collections.abc import Callable
from typing import Any

from bytesim_common.cli import OneLineErrorParser
from datagen.corpus import read_table
from simulator.facade import MusicConverter


def tunes_parser(doc: str, n: int, what: str = "test tunes") -> OneLineErrorParser:
    """`SCRIPT CORPUS [--model PATH] [-n N] [--split SPLIT] [--fast]`, described by the first line
    of `doc`; a script adds its own options before parsing."""
    p = OneLineErrorParser(description=doc.split("\n")[0])
    p.add_argument("corpus", help="a music corpus folder (datagen music)")
    p.add_argument("--model", default=None, help="checkpoint (default: trained/abc2midi)")
    p.add_argument("-n", type=int, default=n, help=f"{what} (default {n})")
    p.add_argument("--split", choices=("train", "valid", "test"), default="test")
    p.add_argument("--fast", action="store_true", help="3 tunes")
    return p


def converter_and_tunes(args: argparse.Namespace,
                        keep: Callable[[str], bool] | None = None,
                        ) -> tuple[MusicConverter, list[dict[str, Any]]]:
    """The `abc2midi` converter of `args.model`, and the first `args.n` rows (3 with `--fast`)
    of the corpus's split whose ABC `keep` keeps (every row without it), with `abc` and `midi`."""
    conv = MusicConverter.from_pretrained(args.model, task="abc2midi")
    rows = read_table(args.corpus, split=args.split, columns=["abc", "midi"]).to_pylist()
    rows = [r for r in rows if keep is None or keep(r["abc"])]
    return conv, rows[:3 if args.fast else args.n]
