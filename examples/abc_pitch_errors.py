"""Which ABC notes does an abc2midi model give the wrong pitch? Test tunes against abc2midi.

    python examples/abc_pitch_errors.py CORPUS [--model PATH] [-n 150] [--split test]

Converts the first N tunes of a split of a music corpus (default: test) with the model and,
for every output with as many notes as the reference, compares the pitches note by note. Each
note of the ABC is put in one kind by what decides its pitch:

- `explicit accidental`: it carries ^, _ or = itself;
- `carried accidental`: an earlier note of the same bar with the same letter did (abc2midi
  carries an accidental to that letter in every octave until the bar line);
- `key signature`: the key makes it sharp or flat (its pitch is not the letter's natural one);
- `natural`: the letter's natural pitch.

`+octave` marks notes written with `,` or `'`. Tunes with chords, guitar chords, grace notes,
ties or inline fields (the M2 generator's features) are left out, as are outputs whose note
count differs from the reference (listed with a count; `simulator eval` says how they differ).
"""

import collections

from _tunes import converter_and_tunes, tunes_parser

from bytesim_common.cli import cli_entry
from bytesim_common.errors import UserError
from datagen.music.abc_notes import plain_notes
from simulator.metrics import midi_notes


def note_kinds(abc: str) -> list[tuple[str, bool, int]] | None:
    """(kind or "", octave marks?, natural MIDI pitch) for each sounding note of the tune's
    body, or None for a tune this script does not read."""
    notes = plain_notes(abc)
    if notes is None:
        return None
    return [("explicit accidental" if n.accidental else "carried accidental" if n.carried else "",
             bool(n.octave_marks), n.natural_pitch) for n in notes]


@cli_entry("examples/abc_pitch_errors.py")
def main(argv: list[str] | None = None) -> None:
    args = tunes_parser(__doc__, 150).parse_args(argv)

    conv, rows = converter_and_tunes(args)
    wrong: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    skipped: collections.Counter[str] = collections.Counter()
    for row in rows:
        abc = row["abc"]
        kinds = note_kinds(abc)
        if kinds is None:
            skipped["a feature this script does not read"] += 1
            continue
        try:
            out = conv.abc_to_midi(abc)
        except UserError:  # too long for the context, or the output is not a MIDI file
            skipped["no MIDI file"] += 1
            continue
        ref, pred = ([n[1] for n in sorted(midi_notes(m), key=lambda n: (n[0], n[2], n[1]))]
                     for m in (row["midi"], out))
        if len(ref) != len(kinds):
            skipped["abc2midi's notes do not match the ABC's"] += 1
        elif len(pred) != len(ref):
            skipped["the output has another number of notes"] += 1
        else:
            for (kind, octave, natural), want, got in zip(kinds, ref, pred, strict=True):
                kind = kind or ("key signature" if want != natural else "natural")
                kind += " +octave" if octave else ""
                total[kind] += 1
                wrong[kind] += got != want
    for kind in sorted(total, key=lambda k: -total[k]):
        print(f"{kind:28s} {wrong[kind]:4d} of {total[kind]:5d} wrong "
              f"({100 * wrong[kind] / total[kind]:.1f}%)")
    print(f"all notes {sum(wrong.values())} of {sum(total.values())} wrong; tunes left out: "
          + (", ".join(f"{v} ({k})" for k, v in skipped.items()) or "none"))


if __name__ == "__main__":
    main()
