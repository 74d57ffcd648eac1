"""Does an abc2midi model read a tune's meter, key and tempo whatever its title? Test tunes with a
word or number put after their titles, against abc2midi.

    python examples/abc_titles.py CORPUS [--model PATH] [-n 100] [--after ' 3' ' Reel' ...]

abc2midi's file, normalised as in corpora, does not change with the title, so every variant of a
tune is compared with that tune's reference file. For each text put after the titles the script
counts the outputs whose time signature, key signature or tempo events are not the reference's
and gives their mean note_f1, both scored as `simulator eval` scores them (`meta_exact` and
note_f1 of `simulator.metrics.MusicTally`). A model that reads the header's fields scores alike on
every row; docs/music.md ("Thirty-sixth session") found one that took the meter from a number
ending the title. A model trained with `--abc-header untitled` (as `trained/abc2midi` is since
2026-12-05) never reads `X:` or `T:`: its rows are the same by construction (measured on each
default since: 0 wrong and one note_f1 on every row of M1's first 100; docs/music.md).
"""

import re

from _tunes import converter_and_tunes, tunes_parser

from bytesim_common.cli import cli_entry
from bytesim_common.errors import UserError
from simulator.metrics import MusicTally

AFTER = ["", " 2", " 3", " 6", " 9", " 12", " Reel"]  # "": the titles as they are


def retitled(abc: str, after: str) -> str:
    """`abc` with `after` put at the end of its first title line (unchanged without one)."""
    return re.sub(r"^(T:.*?)[ \t]*$", lambda m: m.group(1) + after, abc, count=1,
                  flags=re.MULTILINE)


@cli_entry("examples/abc_titles.py")
def main(argv: list[str] | None = None) -> None:
    p = tunes_parser(__doc__, 100)
    p.add_argument("--after", nargs="+", default=AFTER, metavar="TEXT",
                   help="texts to put after the titles (default: %(default)s)")
    args = p.parse_args(argv)

    conv, rows = converter_and_tunes(args)
    if not rows:
        raise UserError(f"{args.corpus} has no {args.split} tunes")
    print(f"{'after the title':16s} {'tunes':>5s} {'meta wrong':>10s} {'note_f1':>8s}")
    for after in args.after:
        tally = MusicTally("abc2midi")  # as `simulator eval` scores outputs
        for row in rows:
            try:
                out = conv.abc_to_midi(retitled(row["abc"], after))
            except UserError:  # no file: meta wrong, note_f1 0
                out = b""
            tally.add_output(out, row["midi"], exact_file=out == row["midi"], ends=bool(out))
        wrong = tally.files["meta_exact"].count(False)
        print(f"{after!r:16s} {len(rows):5d} {wrong:10d} {tally.result()['note_f1']:8.4f}")


if __name__ == "__main__":
    main()
