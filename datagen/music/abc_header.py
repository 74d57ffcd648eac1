"""The header a music model reads: an ABC tune's header in the form the synthetic generator
writes (docs/music.md, "Real headers").

Real tunes carry header lines that decide nothing in the normalized MIDI file: notes, origin,
rhythm, source, history and transcription fields (abc2midi copies some of them into text
events, which the MIDI normalization drops), comments, and instruction fields without a
directive (the Essen collection's `I: :: ::`, its repeat structure). They also write a space
after a field's colon (`K: G`). The synthetic generator writes none of this, so a model trained
on its tunes meets them first in a real tune and misreads what follows.

`canonical_header(abc)` keeps the body as it is and, in the header (the lines up to and
including the first `K:` line):
- drops the lines of TEXT_FIELDS (but a rhythm `R:` that names a hornpipe), every `T:` line
  after the first, comments (`%`, and `%%` not followed by a directive's name: `%% ^F G A`)
  and `I:` lines whose value does not start with a letter;
- writes every field kept as `F:value`, without the spaces after the colon or at the end.

abc2midi writes the same normalized MIDI for a tune and its canonical header: measured on the
1,999 tunes of `datagen music --source music21 -n 2000` (docs/music.md), and on each test tune in
tests/unit/test_abc_header.py. On the generator's own tunes it changes nothing.

`canonical_header(abc, titled=False)` also drops the header's `X:` and `T:` lines (the untitled
header, `simulator train --abc-header untitled`): the tune's number and title only name it, and
a model that reads them can take a number at a title's end for a meter (docs/music.md,
"Thirty-sixth session"). What is left is the fields that can change abc2midi's file.
"""

from __future__ import annotations

import re
from fractions import Fraction

# Information fields that carry text only: area, book, composer, discography, file, group,
# history, notes, origin, rhythm, source, transcription.
# `R:` is one of them except where it names a hornpipe: abc2midi then plays pairs of notes of
# equal length long-short, as if written `>`.
TEXT_FIELDS = frozenset("ABCDFGHNORSZ")

_FIELD = re.compile(r"^([A-Za-z]):[ \t]*(.*?)[ \t]*$")


def canonical_header(abc: str, titled: bool = True) -> str:
    """`abc` with its header in canonical form, without its `X:` and `T:` lines unless `titled`
    (see the module docstring); a text without a `K:` line is returned as it is."""
    lines = abc.split("\n")
    key = next((i for i, line in enumerate(lines) if line.startswith("K:")), None)
    if key is None:
        return abc
    header: list[str] = []
    title_kept = False
    for line in lines[:key + 1]:
        field = _FIELD.match(line)
        if field is None:
            if _directive(line) or not line.startswith("%"):
                header.append(line)
            continue
        letter, value = field.groups()
        if not _kept(letter, value, title_kept) or (letter in "XT" and not titled):
            continue
        title_kept = title_kept or letter == "T"
        header.append(f"{letter}:{value}")
    return "\n".join(header + lines[key + 1:])


def _directive(line: str) -> bool:
    """Whether `line` is a `%%` directive (`%%MIDI program 41`), not a comment written `%% ...`."""
    return line.startswith("%%") and line[2:3].isalpha()


def _kept(letter: str, value: str, title_kept: bool) -> bool:
    """Whether the header field `letter:value` stays in the canonical header (`title_kept`: a
    `T:` line was kept)."""
    if letter == "R":
        return "hornpipe" in value.lower()
    if letter == "T":
        return not title_kept
    if letter == "I":
        return value[:1].isalpha()
    return letter not in TEXT_FIELDS


def bar_length(meter: str | None) -> Fraction | None:
    """The bar of a meter (an `M:` field's value) in whole notes: `3/4` 3/4, `C` and `C|` 1;
    None for `none`, no meter or one that is not a fraction."""
    if meter in ("C", "C|"):
        return Fraction(1)
    m = re.fullmatch(r"(\d+)/(\d+)", meter or "")
    return Fraction(int(m.group(1)), int(m.group(2))) if m else None


def default_unit(bar: Fraction | None) -> Fraction:
    """The unit length of a tune without an `L:` field: 1/16 under a bar shorter than 3/4, else
    1/8 (the ABC standard)."""
    return Fraction(1, 16) if bar is not None and bar < Fraction(3, 4) else Fraction(1, 8)
