"""`datagen show` for music corpora: a pair's ABC beside a compact listing of its MIDI notes."""

from __future__ import annotations

import textwrap
from itertools import zip_longest

from datagen.music.normalize import BadMidi, notes

PITCH_NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
ABC_WIDTH, NOTES_WIDTH = 46, 60


def pitch_name(midi_note: int) -> str:
    """60 -> C4 (scientific pitch notation)."""
    return f"{PITCH_NAMES[midi_note % 12]}{midi_note // 12 - 1}"


def _number(x: float) -> str:
    return f"{round(x, 2):g}"


def note_listing(midi: bytes) -> list[str]:
    """The notes as `pitch@onset:length` (quarter notes), channel-tagged when there are several,
    wrapped to NOTES_WIDTH."""
    found = notes(midi)
    several = len({ch for *_, ch in found}) > 1
    words = [(f"{ch + 1}/" if several else "") + f"{pitch_name(p)}@{_number(t)}:{_number(d)}"
             for t, d, p, ch in found]
    return textwrap.wrap(" ".join(words), NOTES_WIDTH) or ["(no notes)"]


def format_music_row(row: dict, manifest: dict | None = None) -> str:
    """A pair: one line about it, then its ABC (left) beside its MIDI notes (right).
    (`manifest` is unused: it is part of `datagen.show`'s formatter signature.)"""
    head = (f"{row['id']}  X:{row['tune']}  {row['converter']} {row['converter_version']}  "
            f"split {row['split']}  abc {len(row['abc'].encode())} B  midi {len(row['midi'])} B"
            + (f"  converter errors {row['converter_errors']}" if row['converter_errors'] else ""))
    left = [piece for line in row["abc"].rstrip("\n").split("\n")
            for piece in (textwrap.wrap(line, ABC_WIDTH, drop_whitespace=False) or [""])]
    try:
        right = note_listing(row["midi"])
    except BadMidi as e:
        right = [f"(unreadable MIDI: {e})"]
    title = f"{'ABC':<{ABC_WIDTH}} | MIDI notes: pitch@onset:length (quarter notes)"
    body = [f"{a:<{ABC_WIDTH}} | {b}" for a, b in zip_longest(left, right, fillvalue="")]
    return "\n".join([head, title, *body])
