"""Does an abc2midi model play the guitar chords a tune writes? Test tunes against abc2midi.

    python examples/abc_accompaniment.py CORPUS [--model PATH] [-n 100] [--split test]

abc2midi plays a tune's guitar chords ("Am", "D7") as an accompaniment beside the melody: a bass
note and a chord on the meter's beats, on channels of their own. For each of the first N tunes
of a split (default: test) that write guitar chords, converted as a user converts them
(`MusicConverter.abc_to_midi`), this prints the note_f1 of the melody (the notes on the channel
of the reference's first note) and of the accompaniment (every other note), and how many of the
accompaniment's beats (the notes abc2midi starts at one time) the model plays exactly: the
tune's first beat apart from the later ones. A model that has not learnt to read the symbols
still plays the first chord (most tunes open on their key's chord) and then guesses.
"""

import collections

from _tunes import converter_and_tunes, tunes_parser

from bytesim_common.cli import cli_entry
from bytesim_common.errors import UserError
from simulator.metrics import Notes, midi_notes, notes_f1


def split_tracks(notes: Notes, melody_channel: int) -> tuple[Notes, Notes]:
    """(melody, accompaniment): the notes on `melody_channel`, and the others."""
    return ([n for n in notes if n[0] == melody_channel],
            [n for n in notes if n[0] != melody_channel])


def beats_right(predicted: Notes, reference: Notes) -> list[bool]:
    """For each onset of the reference's accompaniment, in time order: does the prediction start
    exactly the same notes there?"""
    def by_onset(notes: Notes) -> dict[float, collections.Counter]:
        out: dict[float, collections.Counter] = collections.defaultdict(collections.Counter)
        for n in notes:
            out[n[2]][n] += 1
        return out

    got, want = by_onset(predicted), by_onset(reference)
    return [got.get(onset) == want[onset] for onset in sorted(want)]


@cli_entry("examples/abc_accompaniment.py")
def main(argv: list[str] | None = None) -> None:
    args = tunes_parser(__doc__, 100, "tunes with guitar chords").parse_args(argv)

    conv, rows = converter_and_tunes(args, keep=lambda abc: '"' in abc.split("\nK:", 1)[-1])
    melody_f1, accompaniment_f1, entirely, first, later = [], [], 0, [], []
    no_file = 0
    for row in rows:
        try:
            out = conv.abc_to_midi(row["abc"])
        except UserError:  # the output is not a MIDI file, or a bar does not fit the context
            no_file += 1
            continue
        ref = midi_notes(row["midi"])
        channel = min(ref, key=lambda n: (n[2], n[0]))[0] if ref else 0
        (ref_mel, ref_acc), (mel, acc) = (split_tracks(ns, channel)
                                          for ns in (ref, midi_notes(out)))
        melody_f1.append(notes_f1(mel, ref_mel))
        accompaniment_f1.append(notes_f1(acc, ref_acc))
        entirely += accompaniment_f1[-1] == 1.0
        right = beats_right(acc, ref_acc)
        first += right[:1]
        later += right[1:]
    print(f"tunes with guitar chords: {len(melody_f1)} (left out, no MIDI file: {no_file})")
    if not melody_f1:
        return
    print(f"melody note_f1 {sum(melody_f1) / len(melody_f1):.3f}  accompaniment note_f1 "
          f"{sum(accompaniment_f1) / len(accompaniment_f1):.3f}  accompaniment entirely right "
          f"{entirely}")
    print(f"accompaniment beats right: the first {sum(first)} of {len(first)}, later ones "
          f"{sum(later)} of {len(later)} ({100 * sum(later) / max(1, len(later)):.1f}%)")


if __name__ == "__main__":
    main()
