"""An ABC tune as the segments it plays: a few bars at a time, each written out as a tune of its
own (docs/music.md, "Tunes longer than the context").

A tune is played as abc2midi plays it: its parts in the order of the header's `P:` field, each
repeat twice (`|: ... :|`, with first and second endings `|1 ... :|2 ...`). `play_segments`
unrolls the body into the bars it plays, in order, and cuts them into segments of a few bars,
each written out as a tune of its own: the tune's canonical header (`datagen.music.abc_header`,
without its `P:` order), the bars, and the guitar chord that is sounding where the segment
starts. What a segment cannot carry over (inline fields, voices, MIDI directives, endings past
the second) makes the tune Unsupported: it is refused, not guessed.

The converter uses the segments to convert tunes longer than a model's context
(`simulator.long_tunes`), and `datagen music --segment-bars` makes them into rows, so that a
model is trained on what it is given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from datagen.music.abc_header import canonical_header

_FIELD_LINE = re.compile(r"^[A-Za-z]:")
_HEADER_ORDER = re.compile(r"^P:\s*([A-Za-z0-9.\s]*)$")


class Unsupported(ValueError):
    """The tune has something a segment cannot carry over."""


@dataclass(frozen=True)
class _Mark:
    kind: str  # "start" (|:), "end" (:|) or "ending" (|1, |2)
    number: int = 0


@dataclass(frozen=True)
class Segment:
    """A few bars of a tune, written out as a tune of its own under the tune's header."""

    header: str
    bars: tuple[str, ...]  # the first opens with the guitar chord sounding there, if any

    @property
    def text(self) -> str:
        return self.header + " | ".join(self.bars) + " |]\n"

    def halves(self) -> list[Segment]:
        """The segment cut in two (a tie keeps its bars together); [self] where it cannot be."""
        return _cut(self.header, list(self.bars), (len(self.bars) + 1) // 2)


def play_segments(abc: str, bars: int) -> list[Segment]:
    """The tune as the segments it plays, in order (a repeated part's segments repeat), under
    its canonical header (`datagen.music.abc_header`)."""
    if bars < 1:
        raise ValueError(f"segments need at least one bar; got {bars}")
    header, order, parts = _split_tune(canonical_header(abc))
    played: list[Segment] = []
    for label in order:
        if label not in parts:
            raise Unsupported(f"the header's P: field plays part {label}, which the tune lacks")
        # each part on its own: abc2midi starts a part without the guitar chord before it
        played += _cut(header, [bar.strip() for bar in _unroll(_scan(parts[label]))], bars)
    if not played:
        raise Unsupported("the tune has no bars")
    return played


def _cut(header: str, played: list[str], bars: int) -> list[Segment]:
    """Bars played in a row as segments of `bars` bars, each opening with the guitar chord
    sounding where it starts."""
    out = []
    chord = None  # the guitar chord sounding where the next segment starts
    i = 0
    while i < len(played):
        j = min(i + bars, len(played))
        while j < len(played) and played[j - 1].endswith("-"):
            j += 1  # a note tied over the bar line stays in its segment
        body = played[i:j]
        if chord and not _opens_with_chord(body[0]):
            body[0] = f'"{chord}"{body[0]}'
        for bar in body:
            chord = _last_chord(bar) or chord
        out.append(Segment(header, tuple(body)))
        i = j
    return out


def _split_tune(abc: str) -> tuple[str, list[str], dict[str, str]]:
    """(the header each segment repeats, the parts in playing order, each part's body text)."""
    lines = abc.replace("\r\n", "\n").split("\n")
    header: list[str] = []
    order = None
    k = 0
    for k, line in enumerate(lines):
        if line.startswith("P:"):
            order = _expand_order(line)
            continue
        if line.startswith(("%%", "V:")):
            raise Unsupported(f"a segment cannot carry the header line {line[:20]!r}")
        header.append(line)
        if line.startswith("K:"):
            break
    else:
        raise Unsupported("the tune has no K: line")
    parts: dict[str, str] = {}
    label, body = "", []
    for line in lines[k + 1:]:
        if line.startswith("P:"):
            parts[label] = "\n".join(body)
            label, body = line[2:].strip(), []
            if label in parts:
                raise Unsupported(f"part {label} is written twice")
        elif line.startswith("%%") or _FIELD_LINE.match(line):
            raise Unsupported(f"a segment cannot carry the body line {line[:20]!r}")
        elif not line.startswith("%"):  # comments are dropped
            body.append(line)
    parts[label] = "\n".join(body)
    if order is None:  # no order in the header: the parts as written
        order = list(parts)
    return "\n".join(header) + "\n", order, parts


def _expand_order(line: str) -> list[str]:
    """`P:ABB`, `P:A2B` or `P:A.B.B` as the list of parts played."""
    m = _HEADER_ORDER.match(line.strip())
    if not m:
        raise Unsupported(f"the part order {line.strip()!r} is not plain letters and counts")
    order: list[str] = []
    for letter, count in re.findall(r"([A-Za-z])(\d*)", m.group(1)):
        order += [letter] * int(count or 1)
    return order


_BAR = re.compile(r":*\|[|\]:]*|:*\[\||::+")  # |, ||, |], [|, |:, :|, ::, :|:, :|]
_ENDING = re.compile(r"\[?(\d+)")


def _scan(body: str) -> list[str | _Mark]:
    """A part's body as bars (text) and the repeat marks between them."""
    items: list[str | _Mark] = []
    bar: list[str] = []
    i, n = 0, len(body)

    def close() -> None:
        text = "".join(bar)
        if text.strip():
            items.append(text)
        bar.clear()

    while i < n:
        c = body[i]
        if c in '"!+{':
            j = body.find({"{": "}"}.get(c, c), i + 1)
            if j < 0:
                raise Unsupported(f"an unclosed {c} in the body")
            bar.append(body[i:j + 1])
            i = j + 1
            continue
        if c == "[" and i + 2 < n and body[i + 1].isalpha() and body[i + 2] == ":":
            raise Unsupported(f"a segment cannot carry the inline field {body[i:i + 6]!r}")
        m = _BAR.match(body, i) if c in "|:[" else None
        if m is not None:
            close()
            token = m.group()
            if token.startswith(":"):
                items.append(_Mark("end"))
            if token.endswith(":"):
                items.append(_Mark("start"))
            i = m.end()
        elif c == "[" and i + 1 < n and body[i + 1].isdigit():  # an ending after a space
            close()
        else:
            bar.append(c)
            i += 1
            continue
        ending = _ENDING.match(body, i)
        if ending:
            number = int(ending.group(1))
            if number > 2 or body[ending.end():ending.end() + 1] in (",", "-"):
                raise Unsupported("endings past the second do not unroll into segments")
            items.append(_Mark("ending", number))
            i = ending.end()
    close()
    return items


def _unroll(items: list[str | _Mark]) -> list[str]:
    """The bars of a part in the order they play: each repeat twice, the first ending on the
    first time through only."""
    out: list[str] = []
    section: list[str] = []  # the bars since the repeat started, up to a first ending
    in_first_ending = False
    for item in items:
        if isinstance(item, str):
            out.append(item)
            if not in_first_ending:
                section.append(item)
        elif item.kind == "start":
            section, in_first_ending = [], False
        elif item.kind == "ending":
            in_first_ending = item.number == 1
        else:  # the end of a repeat: its section again, then what follows
            out += section
            section, in_first_ending = [], False
    return out


def _chords(bar: str) -> list[str]:
    """The guitar-chord symbols of a bar (quoted text that is not an annotation)."""
    return [q for q in re.findall(r'"([^"]*)"', bar) if q and q[0] not in "^_<>@"]


def _last_chord(bar: str) -> str | None:
    chords = _chords(bar)
    return chords[-1] if chords else None


def _opens_with_chord(bar: str) -> bool:
    """Whether the bar opens with a guitar chord."""
    m = re.match(r'\s*"([^"]*)"', bar)
    return bool(m and _chords(m.group()))
