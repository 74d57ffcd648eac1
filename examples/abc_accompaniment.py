"""Does an abc2midi model play the guitar chords a tune writes? Test tunes against abc2midi.

    python examples/abc_accompaniment.py CORPUS [--model PATH] [-n 100] [--split test]

abc2midi plays a tune's guitar chords ("Am", "D7") as an accompaniment beside the melody: a bass
note and a chord on the meter's beats, on channels of their own. For each of the first N tunes
of a split (default: test) that write guitar chords, converted as a user converts them
(`MusicConverter.abc_to_midi`), this prints the note_f1 of the melody (the notes on the channel
of the reference's first note) and of the accompaniment (every other note), and how many of the
accompaniment's beats (the notes abc2midi starts at one time) the model plays exactly: the
tune's first beat apart from the later ones, and by the bar of its eight-bar phrase (the bar's
number in the tune, from 0, modulo 8; a pickup bar shifts the count). A model that has not
learnt to read the symbols still plays the first chord (most tunes open on their key's chord)
and then guesses; one that guesses the end of a four-bar segment (the tonic) misses the fourth
bar of a longer part, whose chord is V.
"""

import collections
import re
from fractions import Fraction

from _tunes import converter_and_tunes, tunes_parser

from bytesim_common.cli import cli_entry
from bytesim_common.errors import UserError
from simulator.metrics import Notes, midi_notes, notes_f1


def split_tracks(notes: Notes, melody_channel: int) -> tuple[Notes, Notes]:
    """(melody, accompaniment): the notes on `melody_channel`, and the others."""
    return ([n for n in notes if n[0] == melody_channel],
            [n for n in notes if n[0] != melody_channel])


def beats_right(predicted: Notes, reference: Notes) -> list[tuple[float, bool]]:
    """For each onset of the reference's accompaniment, in time order: the onset, and whether the
    prediction starts exactly the same notes there."""
    def by_onset(notes: Notes) -> dict[float, collections.Counter]:
        out: dict[float, collections.Counter] = collections.defaultdict(collections.Counter)
        for n in notes:
            out[n[2]][n] += 1
        return out

    got, want = by_onset(predicted), by_onset(reference)
    return [(onset, got.get(onset) == want[onset]) for onset in sorted(want)]


def beats_by_bar(right: list[tuple[float, bool]], bar: Fraction) -> collections.Counter:
    """(bar of the eight-bar phrase, 0-7; right or not) -> beats, from `beats_right`'s
    (onset, right) pairs and the bar's length, both in quarter notes."""
    return collections.Counter((int(Fraction(onset).limit_denominator(96) // bar) % 8, ok)
                               for onset, ok in right)


def bar_length(abc: str) -> Fraction:
    """A bar of the tune's meter (`M:`), in quarter notes (`C` and `C|`: 4; none: 4/4)."""
    meter = re.search(r"^M:\s*(\S+)", abc, re.MULTILINE)
    text = meter.group(1) if meter else "4/4"
    return Fraction(4) if text in ("C", "C|") else Fraction(text) * 4


@cli_entry("examples/abc_accompaniment.py")
def main(argv: list[str] | None = None) -> None:
    args = tunes_parser(__doc__, 100, "tunes with guitar chords").parse_args(argv)

    conv, rows = converter_and_tunes(args, keep=lambda abc: '"' in abc.split("\nK:", 1)[-1])
    melody_f1, accompaniment_f1, entirely, first, later = [], [], 0, [], []
    no_file = 0
    by_bar: collections.Counter[tuple[int, bool]] = collections.Counter()
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
        first += [ok for _, ok in right[:1]]
        later += [ok for _, ok in right[1:]]
        by_bar.update(beats_by_bar(right, bar_length(row["abc"])))
    print(f"tunes with guitar chords: {len(melody_f1)} (left out, no MIDI file: {no_file})")
    if not melody_f1:
        return
    print(f"melody note_f1 {sum(melody_f1) / len(melody_f1):.3f}  accompaniment note_f1 "
          f"{sum(accompaniment_f1) / len(accompaniment_f1):.3f}  accompaniment entirely right "
          f"{entirely}")
    print(f"accompaniment beats right: the first {sum(first)} of {len(first)}, later ones "
          f"{sum(later)} of {len(later)} ({100 * sum(later) / max(1, len(later)):.1f}%)")
    print("by the bar of the eight-bar phrase: " + "  ".join(
        f"{b + 1}: {by_bar[b, True]}/{by_bar[b, True] + by_bar[b, False]}" for b in range(8)
        if by_bar[b, True] + by_bar[b, False]))


if __name__ == "__main__":
    main()
