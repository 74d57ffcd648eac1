"""How long an ABC tune plays, added up from the lengths its notes and rests are written with.

The converter uses this to tell a model's output that plays too long or too short from one that
may be right (`simulator.long_tunes.wrong_length`): one wrong note length moves every note after
it, and the end of the file with them. It never writes a note; it only rejects outputs.

`body_ticks` reads one tune's body as written (repeats not unrolled) and adds up, in MIDI ticks
at TICKS_PER_BEAT a quarter note (abc2midi's division):
- notes (`^c'2`), rests (`z3/2`, the invisible `x`) and chords (`[CEG]2`: the first note's length
  times the chord's), each a unit length (`L:`, else 1/8, or 1/16 under a meter below 3/4) times
  its length marks (`3`, `/`, `//`, `3/2`);
- tuplets (`(3abc`, `(3:2:3`; the ABC standard's default q), and broken rhythm (`a>b`: 3/2 and
  1/2 of each note's own length, `>>` 7/4 and 1/4);
- whole-bar rests (`Z`, `Z4`), a bar of the meter each;
- twice the length of a note under a fermata (`H`, `!fermata!`), as abc2midi holds it;
- nothing for guitar chords and annotations (`"Am"`), decorations (`!trill!`, `+f+`), grace
  notes (`{g}`: abc2midi takes their time from the note after them), ties, slurs, bar lines,
  ending marks and field lines that do not change lengths (`P:`, `w:`).
Where a tune changes its unit length or meter inside the body (`L:`, `M:`, inline or on a line of
its own), or has voices (`V:`, `&`) or no meter for a whole-bar rest, the reader does not follow
it and says so (None).

On the generator's tunes the sum is abc2midi's length exactly, repeats unrolled (the end of
track less the tail abc2midi writes after the music): every test tune of the ladder's synthetic
sets (docs/music.md, forty-sixth session).
"""

from __future__ import annotations

import re
from fractions import Fraction

from datagen.music.abc_header import bar_length, default_unit
from datagen.music.segments import FIELD_LINE

TICKS_PER_BEAT = 480  # abc2midi's MIDI division (ticks a quarter note)

TOKEN = re.compile(r"""
    (?P<fermata>H|!fermata!)
  | (?P<skip>"[^"]*"|![^!\n]*!|\+[^+\n]*\+|\{[^}]*\}|\[[A-Za-z]:[^\]]*\]|%[^\n]*)
  | (?P<tuplet>\((?P<p>[2-9])(?::(?P<q>\d*))?(?::(?P<r>\d*))?)
  | (?P<chord>\[(?P<inner>[^\]|\d:][^\]]*)\](?P<chord_length>\d*(?:/+\d*)*))
  | (?P<note>[_^=]*[A-Ga-gzx][,']*(?P<length>\d*(?:/+\d*)*))
  | (?P<bar_rest>Z(?P<bars>\d*))
  | (?P<broken>[<>]+)
""", re.VERBOSE)
_FIRST_NOTE = re.compile(r"[_^=]*[A-Ga-g][,']*(\d*(?:/+\d*)*)")
UNFOLLOWED = re.compile(r"^[LMV]:|\[[LMV]:|&", re.MULTILINE)


def _multiplier(text: str) -> Fraction:
    """A length mark as a multiple of the unit length: '' 1, '3' 3, '/' 1/2, '//' 1/4,
    '/4' 1/4, '3/2' 3/2."""
    number = text.split("/", 1)[0]
    value = Fraction(int(number)) if number else Fraction(1)
    for slashes, digits in re.findall(r"(/+)(\d*)", text[len(number):]):
        value /= int(digits) * 2 ** (len(slashes) - 1) if digits else 2 ** len(slashes)
    return value


def field(header: str, letter: str) -> str | None:
    """The value of a header's `letter:` field (without a comment), or None."""
    m = re.search(rf"^{letter}:[ \t]*([^\n%]*)", header, re.MULTILINE)
    return m.group(1).strip() if m else None


def unit_length(header: str, meter: Fraction | None) -> Fraction | None:
    """The header's unit length (`L:`, else the default of the meter's bar), or None where
    `L:` is not a fraction."""
    text = field(header, "L")
    if text is None:
        return default_unit(meter)
    m = re.fullmatch(r"(\d+)/(\d+)", text)
    return Fraction(int(m.group(1)), int(m.group(2))) if m else None


def body_ticks(abc: str) -> int | None:
    """How long the tune's body plays as written, in ticks (module docstring); None where this
    reader does not follow it or the tune has no body."""
    header, found, rest = abc.partition("\nK:")
    if not found or "\n" not in rest:
        return None
    body = rest.split("\n", 1)[1]
    if UNFOLLOWED.search(body) or re.search(r"^V:", header, re.MULTILINE):
        return None
    meter = bar_length(field(header, "M"))
    unit = unit_length(header, meter)
    if unit is None:
        return None
    body = "\n".join(line for line in body.split("\n") if not FIELD_LINE.match(line))
    times = timeline(body, meter, unit)
    if times is None:
        return None
    ticks = (times[-1][1] if times else 0) * 4 * TICKS_PER_BEAT
    return int(ticks) if ticks.denominator == 1 else None


def timeline(body: str, meter: Fraction | None, unit: Fraction) -> list[tuple[int, Fraction]] | None:
    """Where each note, rest or chord of `body` ends (its index in the text, after its length
    mark) and how long the body has played there, in whole notes; None where a whole-bar rest
    has no meter to fill. The first note of a broken-rhythm pair is listed at its written
    length: the time is right after the pair."""
    compound = meter is not None and meter.numerator % 3 == 0 and meter.numerator > 3
    total = last = Fraction(0)
    times: list[tuple[int, Fraction]] = []
    tuplet_left, tuplet_factor = 0, Fraction(1)
    next_factor = Fraction(1)  # the second note of a broken-rhythm pair
    held = 1  # 2 for the note after a fermata
    for m in TOKEN.finditer(body):
        if m.group("fermata"):
            held = 2
            continue
        if m.group("skip"):
            continue
        if m.group("tuplet"):
            p = int(m.group("p"))
            q = int(m.group("q") or {2: 3, 3: 2, 4: 3, 6: 2, 8: 3}.get(p, 3 if compound else 2))
            tuplet_left, tuplet_factor = int(m.group("r") or p), Fraction(q, p)
            continue
        if m.group("broken"):
            n, longer = len(m.group("broken")), m.group("broken")[0] == ">"
            shorter = Fraction(1, 2 ** n)
            first, next_factor = (2 - shorter, shorter) if longer else (shorter, 2 - shorter)
            total += last * (first - 1)
            continue
        if m.group("bar_rest") is not None:
            if meter is None:
                return None
            total += int(m.group("bars") or 1) * meter
            times.append((m.end(), total))
            continue
        if m.group("chord"):
            first_note = _FIRST_NOTE.search(m.group("inner"))
            length = (_multiplier(first_note.group(1) if first_note else "")
                      * _multiplier(m.group("chord_length")))
        else:
            length = _multiplier(m.group("length"))
        last = length * unit
        if tuplet_left:
            last *= tuplet_factor
            tuplet_left -= 1
        last *= next_factor * held
        next_factor, held = Fraction(1), 1
        total += last
        times.append((m.end(), total))
    return times
