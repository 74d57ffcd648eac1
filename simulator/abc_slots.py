"""The note-slot layout of ABC text (`simulator train --abc-layout note-slots`; docs/formats.md).

A 16-byte patch of plain ABC holds four or five notes at offsets that move with every space,
bar line and length mark before them, and a patch's embedding (a sum of one vector per slot and
byte) can say which bytes sit where but not which note is the third. In the note-slot layout
the tune's header (up to and including its first `K:` line) is padded with FILL to a patch
boundary, and every note of the body then starts a SLOT-byte slot: the text from one note to the
next (accidentals, letter, octave marks, length, then spaces and bar lines) is followed by FILL
up to the next multiple of SLOT. A note that needs more than SLOT bytes spans two slots. So a
patch of the body holds up to four notes, each at a fixed offset, and the notes start where the
patch grid starts whatever the title's length.

A note starts at a letter A-G or a-g, a rest (z, Z, x) or a chord's `[`, or at the accidentals
(^, _, =) before one; letters inside a chord, a quoted guitar chord or annotation, a decoration
(`!...!`, `+...+`), a grace group (`{...}`), an inline field (`[K:...]`) or a field line (`w:`,
`P:`, ...) start nothing, and neither do an ending (`[1`) or a bar (`[|`). FILL (0x00) never
occurs in ABC text, so dropping it gives the text back exactly (`unslot_abc`).

The note-gchord-slot layout (`note-gchord-slots`) is the same but for quoted strings (guitar
chords such as `"Am"`, and annotations), which start a slot of their own as notes do: in
note-slots a guitar chord trails the note before it, at an offset that moves with that note's
length marks and bar lines; here it always starts a slot, and the note it sounds with starts
the next one.

As a target (midi2abc), the layout is written byte by byte: where a run of FILL starts is the
writer's choice (it ends the header or a note), and the rest of the run, up to the patch or
slot boundary, follows from the bytes before it (`fill_due`), so it is forced and not scored.
"""

from __future__ import annotations

import re
from itertools import pairwise

FILL = 0x00
SLOT = 4  # bytes per note slot: a 16-byte patch holds four
ABC_LAYOUTS = ("text", "note-slots", "note-gchord-slots")

_LETTERS = frozenset(b"ABCDEFGabcdefg")
_NOTE = _LETTERS | frozenset(b"zZx")
_ACCIDENTAL = frozenset(b"^_=")
_KEY_LINE = re.compile(rb"^K:[^\n]*\n?", re.MULTILINE)
_CLOSE = {ord('"'): ord('"'), ord("!"): ord("!"), ord("+"): ord("+"), ord("{"): ord("}")}


def slot_abc(abc: bytes, align: int, gchords_apart: bool = False) -> bytes:
    """`abc` in the note-slot layout, its header padded to a multiple of `align` (ValueError if
    it holds a FILL byte); with `gchords_apart`, the note-gchord-slot layout."""
    if FILL in abc:
        raise ValueError("ABC text with a NUL byte has no note-slot layout")
    body_at = _body_start(abc)
    out = bytearray(abc[:body_at])
    out += bytes(-len(out) % align)
    for unit in _units(abc[body_at:], gchords_apart):
        out += unit
        out += bytes(-len(out) % SLOT)
    return bytes(out)


def unslot_abc(content: bytes) -> bytes:
    """The ABC text of note-slot `content` (its FILL dropped)."""
    return content.replace(bytes([FILL]), b"")


def fill_due(prefix: bytes, align: int) -> tuple[int, bool]:
    """What the layout asks of the byte after `prefix`, the start of note-slot content: (FILL
    bytes still due, so that the next must be FILL; whether a FILL may come if none is due).

    A run of FILL at the end of the header (its first whole `K:` line) runs to a multiple of
    `align`; one after a note, to a multiple of SLOT. No run is empty or starts at a boundary,
    and none starts before the header ends."""
    n = len(prefix)
    key = _KEY_LINE.search(prefix)
    body_at = key.end() if key and key.group().endswith(b"\n") else None  # the line is whole
    run = n - len(prefix.rstrip(bytes([FILL])))
    if run:
        unit = align if n - run == body_at else SLOT
        return -n % unit, False
    if body_at is None:
        return 0, False
    return 0, n % (align if n == body_at else SLOT) != 0


def fewest_notes_played(abc: bytes) -> int:
    """A lower bound on the notes abc2midi plays for a tune: the notes its body writes that
    start a sound (a letter or a chord; rests, and a note after a tie, start none). Repeats,
    parts played twice, a chord's other notes, grace notes and guitar chords only add to it.
    Every unit after a `-` anywhere in the unit before it counts as tied, and comments are left
    out, so the bound errs low."""
    body = re.sub(rb"%[^\n]*", b"", abc[_body_start(abc):])
    count, tied = 0, False
    for unit in _units(body):
        head = unit.lstrip(b"^_=")
        if head and (head[0] == ord("[") or head[0] in _LETTERS):
            count += not tied
        tied = b"-" in unit
    return count


def _body_start(abc: bytes) -> int:
    """Where the body starts: after the first `K:` line (the end: no body without one)."""
    key = _KEY_LINE.search(abc)
    return key.end() if key else len(abc)


def _units(body: bytes, gchords_apart: bool = False) -> list[bytes]:
    """The body cut before every note, and before every quoted string with `gchords_apart` (the
    module docstring's rules)."""
    starts, closer, chord, line_start = [0], None, False, True
    for i, c in enumerate(body):
        prev, after = body[i - 1:i], body[i + 1:i + 2]
        if closer is not None:  # inside a quote, decoration, grace group or field
            closer = None if c == closer else closer
        elif line_start and chr(c).isalpha() and after == b":":
            closer = ord("\n")  # a field line runs to its end
        elif c in _CLOSE:
            closer = _CLOSE[c]
            if gchords_apart and c == ord('"') and not chord:
                starts.append(i)
        elif c == ord("[") and body[i + 2:i + 3] == b":":
            closer = ord("]")  # an inline field
        elif c == ord("[") and after not in (b"|", b"") and not after.isdigit():
            chord = True
            starts.append(i)
        elif c == ord("]"):
            chord = False
        elif not chord and (c in _NOTE or c in _ACCIDENTAL) and not (
                prev and prev[0] in _ACCIDENTAL):  # accidentals and their note: one start
            starts.append(i)
        line_start = c == ord("\n")
    cuts = sorted(set(starts)) + [len(body)]
    return [body[a:b] for a, b in pairwise(cuts) if b > a]
