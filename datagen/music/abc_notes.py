"""The notes of a plain one-voice ABC tune, each with what decides its pitch.

abc2midi carries an accidental (`^`, `_`, `=`) to every later note of the same letter, in every
octave, until the bar line: in `^c c c' C|c` the first four notes are sharp and the fifth is
not. `plain_notes` reads a tune's body note by note and marks the notes whose pitch comes from
such a carried accidental. It reads the M0-M1 generator's features (keys, accidentals, octave
marks, lengths, rests, bar lines); a body with chords, guitar chords, grace notes, ties or
inline fields (`[`, `"`, `{`, `-`) is left unread (None).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from datagen.music.synthetic import LETTER_PC

_NOTE_OR_BAR = re.compile(r"\||([_^=]*)([A-Ga-gzZx])([,']*)")
_UNREAD = re.compile(r'[\["{}\-]')


@dataclass(frozen=True)
class AbcNote:
    """One sounding note of the body, as written."""

    accidental: str  # its own accidental ("^", "__", "=", ...) or ""
    letter: str  # A-G or a-g
    octave_marks: str  # the `,` and `'` after the letter
    carried: bool  # unmarked, but an earlier note of its bar with its letter had an accidental

    @property
    def natural_pitch(self) -> int:
        """The MIDI pitch of the letter with no accidental and no key (C = 60, c = 72)."""
        return (60 + LETTER_PC[self.letter.upper()] + 12 * self.letter.islower()
                + 12 * self.octave_marks.count("'") - 12 * self.octave_marks.count(","))


def plain_notes(abc: str) -> list[AbcNote] | None:
    """The sounding notes of the tune's body (after its first `K:` line) in order, rests left
    out; None for a tune without a body or with a feature this reader does not follow."""
    _, found, rest = abc.partition("\nK:")
    body = rest.split("\n", 1)[1] if "\n" in rest else ""
    if not found or _UNREAD.search(body):
        return None
    notes, altered = [], set()  # letters given an accidental earlier in this bar
    for m in _NOTE_OR_BAR.finditer(body):
        if m.group(0) == "|":
            altered.clear()
            continue
        accidental, letter, octave = m.groups()
        if letter in "zZx":
            continue
        notes.append(AbcNote(accidental, letter, octave,
                             not accidental and letter.upper() in altered))
        if accidental:
            altered.add(letter.upper())
    return notes
