"""Which features do the tunes an abc2midi model gets wrong have? Test tunes against abc2midi.

    python examples/abc_features.py CORPUS [--model PATH] [-n 200] [--split test]

Converts the first N tunes of a split of a music corpus (default: test) with the model, as
`simulator abc2midi` does (a tune of more than 4 bars in segments), and counts the tunes whose
notes are exactly abc2midi's. Each tune is sorted by what its ABC writes: its meter (`M:`) and
unit length (`L:`), and each of the generator's marks it holds anywhere (triplets, ties, chords,
guitar chords...). One row a feature: the tunes that have it, how many of them are right, and
the share right, lowest first, so the features to teach come first. A tune has many features,
so one hard feature lowers the rows of the others it appears with; the rows "no marks" (none of
the body's marks) and "all tunes" set the scale.
"""

import collections
import re

from _tunes import converter_and_tunes, tunes_parser

from bytesim_common.cli import cli_entry
from bytesim_common.errors import UserError
from datagen.music.synthetic import REST_RUN
from simulator.metrics import notes_exact

# The body's marks besides guitar chords, searched for with the guitar chords' text taken out.
MARKS = {
    "chords": r"\[[_^=]*[A-Ga-g]",
    "triplets": r"\(\d",
    "ties": r"-",
    "broken rhythm": r"[<>]",
    "slurs": r"\((?!\d)",
    "grace notes": r"\{",
    "repeats": r"\|:|:\|",
    "endings": r"\[\d|\|\d",
    "inline fields": r"\[[A-Z]:",
    "accidentals": r"[_^=]",
    "octave marks": r"[,']",
    "rests": r"z",
    "rest runs": REST_RUN,
    "note lengths": r"[A-Ga-gz][,']*[\d/]",
}


def features(abc: str) -> list[str]:
    """The features of one tune: `M:...`, `L:...` (from its header) and the body's marks."""
    header, _, body = abc.partition("\nK:")
    body = body.partition("\n")[2]
    fields = dict(re.findall(r"^([ML]):(.*)$", header, flags=re.MULTILINE))
    found = [f"M:{fields.get('M', '(none)').strip()}", f"L:{fields.get('L', '(default)').strip()}"]
    unquoted = re.sub(r'"[^"]*"', "", body)
    marks = (["guitar chords"] if '"' in body else []) + \
        [name for name, pattern in MARKS.items() if re.search(pattern, unquoted)]
    return found + (marks or ["no marks"])


@cli_entry("examples/abc_features.py")
def main(argv: list[str] | None = None) -> None:
    args = tunes_parser(__doc__, 200).parse_args(argv)

    conv, rows = converter_and_tunes(args)
    tunes: collections.Counter[str] = collections.Counter()
    right: collections.Counter[str] = collections.Counter()
    for row in rows:
        try:
            ok = notes_exact(conv.abc_to_midi(row["abc"]), row["midi"])
        except UserError:  # no MIDI file, or a bar that does not fit the context
            ok = False
        for name in features(row["abc"]) + ["all tunes"]:
            tunes[name] += 1
            right[name] += ok
    print(f"{'feature':<16} {'tunes':>6} {'right':>6} {'share':>6}")
    for name in sorted(tunes, key=lambda k: (right[k] / tunes[k], -tunes[k], k)):
        print(f"{name:<16} {tunes[name]:>6} {right[name]:>6} {right[name] / tunes[name]:>6.1%}")


if __name__ == "__main__":
    main()
