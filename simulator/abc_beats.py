"""An ABC tune's body with its notes grouped by beats, as the synthetic generator writes them.

A space between two notes only says where a beam breaks on the page: abc2midi plays `GABc dedB`
and `GA Bc de dB` the same (docs/music.md, forty-seventh session: the same file for every one
of music21's validation and test tunes this spacing changes). The generator writes one group of notes per beat,
a space where a beat ends and none inside one, and a model trained on its tunes reads a group
as a beat: it plays `GABc` written in 4/4 as four sixteenths (forty-third session).
`beat_spaced(abc)` writes the body in the generator's way, so that such a model reads a tune
written with other beams as it reads its own.

The beat is the generator's for the meter (a quarter note in 2/4, 3/4, 4/4 and C; a half note
in C|, 2/2, 3/2 and 4/2; a dotted quarter in 3/8, 6/8, 9/8 and 12/8; a dotted half in 6/4), and
a beat ends where the notes since the bar line add up to a whole number of beats
(`simulator.abc_length.timeline`). Bar lines are written with a space on each side; a line
that ends inside a bar goes on with the next one (the generator ends its lines at bar lines, and
abc2midi plays a line break as nothing); nothing inside quotes, decorations, grace notes or
chords changes. Field lines (a part's `P:`) and comment lines are kept as they are; a tune in
another meter, or one whose body changes its unit length, meter or voice, is returned as it is.
"""

from __future__ import annotations

import re
from fractions import Fraction

from datagen.music.abc_header import bar_length
from datagen.music.segments import BAR_LINE, FIELD_LINE
from datagen.music.synthetic import METERS, WIDE_METERS
from simulator.abc_length import TOKEN, UNFOLLOWED, field, timeline, unit_length

ABC_BODIES = ("as-written", "beats")  # how a codec reads an ABC prompt's body (simulator.codec)
# A bar line (the segmenter's), with the ending that may follow it (`|1`, `:|2`, `[2`).
_BAR = re.compile(rf"(?:{BAR_LINE.pattern})(?:\[?\d+(?:[,-]\d+)*)?|\[\d+(?:[,-]\d+)*")
_BEATS = {meter: beat for meter, (_, beat, _) in {**METERS, **WIDE_METERS}.items()}
_SUFFIX = "-)"  # what closes a note: a tie, the end of a slur


def beat_spaced(abc: str) -> str:
    """`abc` with its body's notes grouped by beats (module docstring)."""
    header, found, rest = abc.partition("\nK:")
    if not found or "\n" not in rest:
        return abc
    key_line, body = rest.split("\n", 1)
    meter_text = field(header, "M")
    if meter_text not in _BEATS or UNFOLLOWED.search(body):
        return abc
    meter = bar_length(meter_text)
    unit = unit_length(header, meter)
    if meter is None or unit is None:
        return abc
    spaced = _spaced_body(body, _BEATS[meter_text], meter, unit)
    return abc if spaced is None else f"{header}\nK:{key_line}\n{spaced}"


def _spaced_body(body: str, beat: Fraction, meter: Fraction, unit: Fraction) -> str | None:
    """The body's lines with their notes grouped by beats, a line that ends inside a bar joined
    to the next; None where a bar cannot be read."""
    lines: list[str] = []
    played = Fraction(0)  # since the last bar line (a bar may go on over a line break)
    open_bar = False  # the line before ended inside a bar: this one goes on with it
    for line in body.split("\n"):
        if line.startswith("%") or FIELD_LINE.match(line):  # a part's label, a comment
            lines.append(line)
            open_bar = False
            continue
        line = line.rstrip().removesuffix("\\")  # a line continued
        pieces: list[str] = []
        at = 0
        for bar in [*_BAR.finditer(line), None]:
            end = bar.start() if bar else len(line)
            music, played = _spaced_music(line[at:end], played, beat, meter, unit)
            if music is None:
                return None
            pieces += [music] if music else []
            if bar:
                pieces.append(bar.group())
                played, at = Fraction(0), bar.end()
        text = " ".join(pieces).replace("|: ", "|:")  # a repeat opens on its notes
        if open_bar and lines:
            lines[-1] += " " + text
        else:
            lead = line[:len(line) - len(line.lstrip())]  # a phrase's line may open with " | "
            lines.append(lead + text)
        open_bar = bool(pieces) and not _BAR.fullmatch(pieces[-1])
    return "\n".join(lines)


def _spaced_music(text: str, played: Fraction, beat: Fraction, meter: Fraction,
                  unit: Fraction) -> tuple[str | None, Fraction]:
    """The notes between two bar lines grouped by beats, and the time played since the bar
    line after them; None where the text cannot be read."""
    times = timeline(text, meter, unit)
    if times is None:
        return None, played
    tokens = [(m.start(), m.end()) for m in TOKEN.finditer(text)]
    breaks = set()  # where a space goes: after a note that ends a beat (and what closes it)
    for end, time in times:
        if (played + time) % beat:
            continue
        after = end
        while end < len(text) and (text[end] in _SUFFIX or text[end].isspace()):
            end += 1
        if text[end:end + 1] not in ("<", ">") and "-" not in text[after:end]:
            breaks.add(end)  # (a tied note stays with the note it is tied to, as generated)
    out: list[str] = []
    k = 0
    for i, c in enumerate(text):
        if i in breaks:
            out.append(" ")
        while k < len(tokens) and tokens[k][1] <= i:
            k += 1
        inside = k < len(tokens) and tokens[k][0] <= i
        if inside or not c.isspace():
            out.append(c)
    return "".join(out).strip(), played + (times[-1][1] if times else 0)
