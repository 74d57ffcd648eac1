"""Tunes longer than a model's context, converted a few bars at a time (docs/music.md).

A tune is played as abc2midi plays it: its parts in the order of the header's `P:` field, each
repeat twice (`|: ... :|`, with first and second endings `|1 ... :|2 ...`). `play_segments`
unrolls the body into the bars it plays, in order, and cuts them into segments of a few bars,
each written out as a tune of its own: the tune's header (without its `P:` order), the bars, and
the guitar chord that is sounding where the segment starts; a segment whose input or output does
not fit the context is cut in half and tried again. `join_midi` puts the segments' MIDI
files end to end: each one's events move by the length of the music before it, which is its
file's end-of-track time less the TAIL abc2midi leaves after the music.

So a model trained on short tunes converts a long one, and repeats and parts are written out
before the model sees them. What a segment cannot carry over (inline fields, voices, MIDI
directives, endings past the second) makes the tune Unsupported: it is refused, not guessed.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass

from simulator.abc_header import canonical_header

TAIL = 26  # ticks abc2midi writes after a tune's last beat, before each track's end (at 480/beat)
DEFAULT_SEGMENT_BARS = 4  # the length of the tunes the shipped models were trained on

_FIELD_LINE = re.compile(r"^[A-Za-z]:")
_HEADER_ORDER = re.compile(r"^P:\s*([A-Za-z0-9.\s]*)$")


class Unsupported(ValueError):
    """The tune has something a segment cannot carry over."""


class UnreadableSegment(ValueError):
    """A segment's converted file is not MIDI that mido reads."""


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


def play_segments(abc: str, bars: int = DEFAULT_SEGMENT_BARS) -> list[Segment]:
    """The tune as the segments it plays, in order (a repeated part's segments repeat), under
    its canonical header (`simulator.abc_header`)."""
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


def convert_in_segments(abc: str, convert: Callable[[list[str]], list[bytes | None]],
                        bars: int = DEFAULT_SEGMENT_BARS) -> bytes:
    """The MIDI file of a tune converted in segments by `convert` (ABC tunes -> MIDI files, in
    one batch; None for a tune whose input or output does not fit the context). A segment that
    does not fit is cut in half and converted again; each distinct segment is converted once."""
    played = play_segments(abc, bars)
    files: dict[Segment, bytes] = {}
    halves: dict[Segment, list[Segment]] = {}
    todo = list(dict.fromkeys(played))
    while todo:
        again = []
        for segment, out in zip(todo, convert([s.text for s in todo])):
            if out is not None:
                files[segment] = out
                continue
            halves[segment] = segment.halves()
            if halves[segment] == [segment]:
                raise Unsupported("one of its bars does not fit the model's context")
            again += [h for h in halves[segment] if h not in files and h not in halves]
        todo = list(dict.fromkeys(again))

    def files_of(segment: Segment) -> list[bytes]:
        if segment in files:
            return [files[segment]]
        return [f for half in halves[segment] for f in files_of(half)]

    return join_midi([f for segment in played for f in files_of(segment)])


def join_midi(files: list[bytes]) -> bytes:
    """MIDI files (abc2midi's layout) end to end, as one file in the corpora's normal form; the
    first one's meta events (tempo, key, meter) stand for all."""
    import mido

    from datagen.music.normalize import normalize_midi
    from simulator.metrics import MIDI_ERRORS

    try:
        mids = [mido.MidiFile(file=io.BytesIO(f)) for f in files]
    except MIDI_ERRORS as e:
        raise UnreadableSegment(f"a segment's MIDI file is unreadable ({e})") from None
    n_tracks = max(len(m.tracks) for m in mids)
    tracks: list[list[tuple[int, mido.Message | mido.MetaMessage]]] = [[] for _ in range(n_tracks)]
    offset = 0
    for k, mid in enumerate(mids):
        end = last = 0  # the end-of-track time; the last other event's
        for t, track in enumerate(mid.tracks):
            now = 0
            for msg in track:
                now += msg.time
                if msg.type == "end_of_track":
                    end = max(end, now)
                    continue
                last = max(last, now)
                if msg.is_meta and k > 0:
                    continue
                # a one-track file holds its metas and its notes; a several-track file, the
                # metas in track 0 and the notes after it
                to = t if n_tracks == 1 or len(mid.tracks) > 1 else (0 if msg.is_meta else 1)
                tracks[to].append((offset + now, msg))
        offset += max(end - TAIL, last)  # (a model's file may end its track too early)
    out = mido.MidiFile(type=0 if n_tracks == 1 else 1, ticks_per_beat=mids[0].ticks_per_beat)
    for events in tracks:
        track, now = mido.MidiTrack(), 0
        for at, msg in events:
            track.append(msg.copy(time=at - now))
            now = at
        track.append(mido.MetaMessage("end_of_track", time=offset + TAIL - now))
        out.tracks.append(track)
    buf = io.BytesIO()
    out.save(file=buf)
    return normalize_midi(buf.getvalue())


# ---------------------------------------------------------------------------------------------
# Reading the tune


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
