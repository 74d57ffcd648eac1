"""An ABC tune as the segments it plays: a few bars at a time, each written out as a tune of its
own (docs/music.md, "Tunes longer than the context").

A tune is played as abc2midi plays it: its parts in the order of the header's `P:` field, each
repeat twice (`|: ... :|`, with first and second endings `|1 ... :|2 ...`; a repeat without a
start goes back to a double bar after an earlier repeat's end, else to the part's start).
`play_segments` unrolls the body into the bars it plays, in order, and cuts them into segments
of a few bars, each written out as a tune of its own: the tune's canonical header
(`datagen.music.abc_header`, without its `P:` order) with the key, unit length, meter and tempo
the body set before the segment, the bars (each voice's under its `V:` line, for a tune in
voices), and the guitar chord that is sounding where the segment starts. What abc2midi does not
play (comments, layout directives, text lines, an unclosed `!`) is left out. What a segment
cannot carry over (a field changed inside a bar or inside voices, a MIDI directive after the
first notes, endings past the second) makes the tune Unsupported: it is refused, not guessed.

The converter uses the segments to convert tunes longer than a model's context
(`simulator.long_tunes`), and `datagen music --segment-bars` makes them into rows, so that a
model is trained on what it is given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from datagen.music.abc_header import TEXT_FIELDS, bar_length, canonical_header, default_unit

FIELD_LINE = re.compile(r"^[A-Za-z]:")  # a field on a line of its own (`K:D`, `w:`)
_HEADER_ORDER = re.compile(r"^P:\s*([A-Za-z0-9.\s]*)$")
_VOICE = re.compile(r"^(?:\[V:\s*([^\]\s]+)[^\]]*\]|V:\s*(\S+).*$)")  # `[V:1] ...` or `V:1 ...`
_TEXT_LINES = {f"{letter}:" for letter in (TEXT_FIELDS - {"R"}) | {"T", "W", "w"}}
CARRIED_FIELDS = "KLMQ"  # fields a segment carries in its header where the body changes them


class Unsupported(ValueError):
    """The tune has something a segment cannot carry over."""


@dataclass(frozen=True)
class _Mark:
    kind: str  # "start" (|:), "end" (:|), "ending" (|1, |2) or "double" (||, |], [|)
    number: int = 0


# A bar of one voice as written: the header in force there, and its text.
_Written = tuple[str, str]
# A bar as it plays: the header in force there, and its text in each voice.
_Bar = tuple[str, tuple[str, ...]]


@dataclass(frozen=True)
class Segment:
    """A few bars of a tune, written out as a tune of its own under the header in force there."""

    header: str
    voices: tuple[tuple[str, ...], ...]  # each voice's bars; the first opens with its guitar chord
    names: tuple[str, ...] = ()  # the voices' names (`V:`); none for a tune in one voice

    @property
    def bars(self) -> tuple[str, ...]:
        """The (first) voice's bars."""
        return self.voices[0]

    @property
    def text(self) -> str:
        if not self.names:
            return self.header + _line(self.bars)
        return self.header + "".join(f"V:{name}\n{_line(bars)}"
                                     for name, bars in zip(self.names, self.voices))

    def halves(self) -> list[Segment]:
        """The segment cut in two (a tie keeps its bars together; one bar written over several
        lines, as in a tune without bar lines, at its line break nearest the middle); [self]
        where it cannot be."""
        if len(self.bars) == 1 and not self.names:
            return self._lines_halved()
        played = [(self.header, texts) for texts in zip(*self.voices)]
        return _cut(self.names, played, (len(self.bars) + 1) // 2)

    def _lines_halved(self) -> list[Segment]:
        bar = self.bars[0]
        breaks = [k for k in range(len(bar)) if bar[k] == "\n"
                  and not bar[:k].rstrip(" \\").endswith(("-", ">", "<"))
                  and not bar[k:].lstrip().startswith((">", "<"))]
        if not breaks:
            return [self]
        k = min(breaks, key=lambda at: abs(2 * at - len(bar)))
        # (no guitar chord is carried over: abc2midi plays a chord's pattern from bar lines)
        first, second = bar[:k].rstrip(" \\"), bar[k:].strip()
        return [Segment(self.header, ((first,),)), Segment(self.header, ((second,),))]


def _line(bars: tuple[str, ...]) -> str:
    return " | ".join(bars) + " |]\n"


def play_segments(abc: str, bars: int) -> list[Segment]:
    """The tune as the segments it plays, in order (a repeated part's segments repeat), each
    under its canonical header (`datagen.music.abc_header`) with the fields the body changed
    before it."""
    if bars < 1:
        raise ValueError(f"segments need at least one bar; got {bars}")
    header, order, parts, names = _split_tune(canonical_header(abc))
    scanned: dict[str, list[list[_Written | _Mark]]] = {}
    for label, voices in parts.items():  # in the order written: a field holds until changed
        scanned[label] = []
        for lines in voices:
            items, end = _scan(lines, header)
            scanned[label].append(items)
        header = end
    played: list[Segment] = []
    for label in order:
        if label not in scanned:
            raise Unsupported(f"the header's P: field plays part {label}, which the tune lacks")
        unrolled = [_unroll(items) for items in scanned[label]]  # each voice's
        if len({len(bars_played) for bars_played in unrolled}) > 1:
            raise Unsupported(f"the voices of part {label or '(none)'} play different numbers of bars")
        part: list[_Bar] = []
        for written in zip(*unrolled):
            if len({in_force for in_force, _ in written}) > 1:
                raise Unsupported("a segment cannot carry a field that changes in one voice only")
            part.append((written[0][0], tuple(text for _, text in written)))
        # each part on its own: abc2midi starts a part without the guitar chord before it
        played += _cut(names, part, bars)
    if not played:
        raise Unsupported("the tune has no bars")
    return played


def _cut(names: tuple[str, ...], played: list[_Bar], bars: int) -> list[Segment]:
    """Bars played in a row as segments of `bars` bars (fewer where the header changes), each
    voice opening with the guitar chord sounding where it starts."""
    out = []
    chords: list[str | None] = [None] * len(played[0][1]) if played else []
    i = 0
    while i < len(played):
        header, j = played[i][0], i + 1
        while j < len(played) and played[j][0] == header and (
                j - i < bars or any(text.endswith("-") for text in played[j - 1][1])):
            j += 1  # a note tied over the bar line stays in its segment
        voices = []
        for v, chord in enumerate(chords):
            body = [texts[v] for _, texts in played[i:j]]
            if chord and not _opens_with_chord(body[0]):
                body[0] = f'"{chord}"{body[0]}'
            for bar in body:
                chords[v] = _last_chord(bar) or chords[v]
            voices.append(tuple(body))
        out.append(Segment(header, tuple(voices), names))
        i = j
    return out


def _split_tune(abc: str) -> tuple[str, list[str], dict[str, list[list[str]]], tuple[str, ...]]:
    """(the header each segment starts from, the parts in playing order, each part's lines in
    each voice, the voices' names: none for a tune in one voice)."""
    lines = abc.replace("\r\n", "\n").split("\n")
    header: list[str] = []
    order = None
    k = 0
    for k, line in enumerate(lines):
        if line.startswith("P:"):
            order = _expand_order(line)
            continue
        header.append(line)
        if line.startswith("K:"):
            break
    else:
        raise Unsupported("the tune has no K: line")
    parts: dict[str, dict[str, list[str]]] = {"": {}}
    label, voice = "", ""
    for line in lines[k + 1:]:
        switch = _VOICE.match(line)
        if line.startswith("P:"):
            label = line[2:].split("%", 1)[0].strip()
            if label in parts:
                raise Unsupported(f"part {label} is written twice")
            parts[label] = {}
        elif line.startswith("%%MIDI"):
            if any(lines for voices in parts.values() for lines in voices.values()):
                raise Unsupported(f"a segment cannot carry the body line {line[:20]!r}")
            header.insert(len(header) - 1, line)  # before any music: as if in the header
        elif line.startswith("%") or line[:2] in _TEXT_LINES:
            continue  # comments, layout directives and text, which abc2midi does not play
        elif switch:
            voice = switch.group(1) or switch.group(2)
            parts[label].setdefault(voice, [])
            if switch.group(1):  # `[V:1] ...`: the rest of the line is the voice's
                parts[label][voice].append(line[switch.end():])
        elif not line.strip():
            continue
        elif FIELD_LINE.match(line) and line[0] not in CARRIED_FIELDS:
            raise Unsupported(f"a segment cannot carry the body line {line[:20]!r}")
        else:
            parts[label].setdefault(voice, []).append(line)
    if not parts[""]:
        del parts[""]  # nothing before the first P: line
    names = tuple(dict.fromkeys(name for voices in parts.values() for name in voices))
    if names == ("",):
        names = ()
    elif "" in names:
        raise Unsupported("the tune writes music outside its voices")
    if order is None:  # no order in the header: the parts as written
        order = list(parts)
    return ("\n".join(header) + "\n", order,
            {label: [voices.get(name, []) for name in names or ("",)]
             for label, voices in parts.items()}, names)


def _expand_order(line: str) -> list[str]:
    """`P:ABB`, `P:A2B` or `P:A.B.B` as the list of parts played."""
    order_text = line.split("%", 1)[0].strip()  # without a comment
    m = _HEADER_ORDER.match(order_text)
    if not m:
        raise Unsupported(f"the part order {order_text!r} is not plain letters and counts")
    order: list[str] = []
    for letter, count in re.findall(r"([A-Za-z])(\d*)", m.group(1)):
        order += [letter] * int(count or 1)
    return order


BAR_LINE = re.compile(r":*\|[|\]:]*|:*\[\||::+")  # |, ||, |], [|, |:, :|, ::, :|:, :|]
_ENDING = re.compile(r"\[?(\d+)")


_INLINE_FIELD = re.compile(r"\[([A-Za-z]):([^\]\n]*)\]")


def _scan(lines: list[str], header: str) -> tuple[list[_Written | _Mark], str]:
    """A part's lines in one voice as its bars (each with the header in force where it is
    written) and the repeat marks between them; and the header in force after them."""
    items: list[_Written | _Mark] = []
    bar: list[str] = []

    def close() -> None:
        text = "".join(bar).strip()
        if text:
            items.append((header, text))
        bar.clear()

    def change(field: str) -> None:
        nonlocal header
        if "".join(bar).strip():
            raise Unsupported(f"a segment cannot carry {field[:20]!r} inside a bar")
        header = _with_field(header, field)

    for line in lines:
        if FIELD_LINE.match(line):  # K:, L:, M: or Q: (_split_tune refuses the others)
            change(line)
            continue
        i, n = 0, len(line)
        while i < n:
            c = line[i]
            if c in '"!+{':
                j = line.find({"{": "}"}.get(c, c), i + 1)
                if j < 0 and c == "!":  # an old-style line break, which abc2midi ignores
                    i += 1
                    continue
                if j < 0:
                    raise Unsupported(f"an unclosed {c} in the body")
                bar.append(line[i:j + 1])
                i = j + 1
                continue
            field = _INLINE_FIELD.match(line, i) if c == "[" else None
            if field is not None:
                if field.group(1) not in CARRIED_FIELDS:
                    raise Unsupported(f"a segment cannot carry the inline field {field.group()[:8]!r}")
                change(f"{field.group(1)}:{field.group(2)}")
                i = field.end()
                continue
            m = BAR_LINE.match(line, i) if c in "|:[" else None
            if m is not None:
                close()
                token = m.group()
                if token.startswith(":"):
                    items.append(_Mark("end"))
                if token.endswith(":"):
                    items.append(_Mark("start"))
                if token in ("||", "|]", "[|"):
                    items.append(_Mark("double"))
                i = m.end()
            elif c == "[" and i + 1 < n and line[i + 1].isdigit():  # an ending after a space
                close()
            else:
                bar.append(c)
                i += 1
                continue
            ending = _ENDING.match(line, i)
            if ending:
                number = int(ending.group(1))
                if number > 2 or line[ending.end():ending.end() + 1] in (",", "-"):
                    raise Unsupported("endings past the second do not unroll into segments")
                items.append(_Mark("ending", number))
                i = ending.end()
        bar.append("\n")
    close()
    return items, header


def _with_field(header: str, field: str) -> str:
    """`header` (a tune's, up to its `K:` line) with `field` (`K:D`, `L:1/16`) in force: the
    header's own line for it replaced, or the field written before `K:`. A new meter keeps the
    unit length the old one gave: a tune's unit length follows the header's meter only."""
    letter, value = field[0], field[2:].split("%", 1)[0].strip()
    lines = header.rstrip("\n").split("\n")
    if letter == "M" and not any(line.startswith("L:") for line in lines):
        meter = next((line[2:] for line in lines if line.startswith("M:")), None)
        unit = default_unit(bar_length(meter))
        lines.insert(len(lines) - 1, f"L:{unit.numerator}/{unit.denominator}")
    at = [k for k, line in enumerate(lines) if line.startswith(f"{letter}:")]
    if at:
        lines[at[-1]] = f"{letter}:{value}"
    else:
        lines.insert(len(lines) - 1, f"{letter}:{value}")
    return "\n".join(lines) + "\n"


def _unroll(items: list[_Written | _Mark]) -> list[_Written]:
    """The bars of a part in the order they play: each repeat twice, the first ending on the
    first time through only. A repeat without a start goes back to the last double bar after an
    earlier repeat's end, else to the part's start, as abc2midi plays it."""
    out: list[_Written] = []
    section: list[_Written] = []  # the bars since the repeat started, up to a first ending
    in_first_ending = after_end = False
    for item in items:
        if not isinstance(item, _Mark):
            out.append(item)
            if not in_first_ending:
                section.append(item)
        elif item.kind == "start" or item.kind == "double" and after_end:
            section, in_first_ending, after_end = [], False, False
        elif item.kind == "ending":
            in_first_ending = item.number == 1
        elif item.kind == "end":  # its section again, then what follows
            out += section
            section, in_first_ending, after_end = [], False, True
    return out


def _chords(bar: str) -> list[str]:
    """The guitar-chord symbols of a bar: quoted text that starts with a note's letter, as
    abc2midi reads a chord (an annotation, `"^text"`, `"segno"`, `"4"`, is not one)."""
    return [q for q in re.findall(r'"([^"]*)"', bar) if q[:1] and q[0] in "ABCDEFGabcdefg"]


def _last_chord(bar: str) -> str | None:
    chords = _chords(bar)
    return chords[-1] if chords else None


def _opens_with_chord(bar: str) -> bool:
    """Whether the bar opens with a guitar chord."""
    m = re.match(r'\s*"([^"]*)"', bar)
    return bool(m and _chords(m.group()))
