"""Which tunes does an abc2midi model lose most notes on, and where does each first go wrong?

    python examples/worst_tunes.py CORPUS [--model PATH] [-n 200] [--split test] [--show 10]

Converts the first N tunes of a split of a music corpus (default: test) with the model, as
`simulator abc2midi` does (3 branches; a tune of more than 4 bars in segments), scores each
one's note_f1 against abc2midi's MIDI, and prints the SHOW lowest: the tune's index in the
split, its note_f1, where it first goes wrong (`simulator.metrics.first_error`), the first note
that differs in time order (the model's and abc2midi's: channel, pitch, onset and length in beats) and the
tune's features (`abc_features.py`). The last line sums what is lost: the tunes' worth of
note_f1 (the sum of 1 - note_f1) and how much of it the shown tunes lose. One wrong length
early in a tune moves every later note, so a few tunes often lose most of a split's note_f1.
"""

from _tunes import converter_and_tunes, tunes_parser
from abc_features import features

from bytesim_common.cli import cli_entry
from bytesim_common.errors import UserError
from simulator.metrics import first_difference, midi_notes, notes_f1, notes_first_error


def describe(got: list, want: list) -> str:
    """The first note where the model's notes and abc2midi's differ, in time order
    (`simulator.metrics.first_difference`): `note K: model ... | abc2midi ...`."""
    difference = first_difference(got, want)
    if difference is None:
        return "none"
    k, a, b = difference
    return f"note {k}: model {a or 'none'} | abc2midi {b or 'none'}"


@cli_entry("examples/worst_tunes.py")
def main(argv: list[str] | None = None) -> None:
    p = tunes_parser(__doc__, 200)
    p.add_argument("--show", type=int, default=10, help="tunes to list (default 10)")
    args = p.parse_args(argv)

    conv, rows = converter_and_tunes(args)
    scored = []  # (note_f1, index, first error, first difference, features)
    for i, row in enumerate(rows):
        try:
            midi = conv.abc_to_midi(row["abc"])
        except UserError as e:  # no MIDI file, or a bar that does not fit the context
            scored.append((0.0, i, "no file", str(e), features(row["abc"])))
            continue
        got, want = midi_notes(midi), midi_notes(row["midi"])  # each file read once
        scored.append((notes_f1(got, want), i, notes_first_error(got, want) or "none",
                       describe(got, want), features(row["abc"])))
    scored.sort(key=lambda s: (s[0], s[1]))
    shown = scored[:args.show]
    for f1, i, error, difference, marks in shown:
        print(f"tune {i}: note_f1 {f1:.3f}, first error {error}; {difference}")
        print(f"    {', '.join(marks)}")
    lost = sum(1 - s[0] for s in scored)
    print(f"{len(scored)} tunes, {sum(s[0] == 1 for s in scored)} right; note_f1 lost: "
          f"{lost:.2f} tunes' worth, {sum(1 - s[0] for s in shown):.2f} of it in the "
          f"{len(shown)} shown")


if __name__ == "__main__":
    main()
