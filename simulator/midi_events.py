"""The MIDI event stream: what a model writes for a MIDI file under the `events` codec
(docs/formats.md).

A normalised MIDI file (datagen/music/normalize.py: a 6-byte `MThd`, only `MTrk` chunks,
canonical running status, one end-of-track event at the end of each track) is

    MThd 00 00 00 06 <format: 2> <tracks: 2> <division: 2>, then per track: MTrk <length: 4> <events>

The stream keeps only what the rest does not determine:

    <format: 1> <division: 2> <events of track 1> <events of track 2> ...

Each track's events end with its end-of-track event (FF 2F 00), which is what separates the
tracks; the track count, the chunk tags and the chunk lengths follow from the events and are put
back by `events_to_midi`. abc2midi writes format 0 (one track) for one voice and format 1 (a
tempo track, then a track per voice or guitar-chord channel) otherwise; the division is 480.

`EventGrammar` reads a stream byte by byte and says, at every point, which bytes keep it
well-formed and whether it may stop there (only between tracks; a format-0 stream after its one
track). Every stream it accepts and lets stop decodes to a file that mido reads, so generation
constrained by it (`codec.EventConstraint`) writes valid MIDI by construction. It accepts:

- delta times: minimal variable-length quantities of at most 4 bytes;
- channel events: a status 0x80-0xEF, left out exactly when it equals the running status (as
  canonical running status writes it; meta and sysex events clear it), then 1 (0xC0, 0xD0) or 2
  data bytes of 0-127;
- meta events: FF, a type mido knows, its length (the one length of a fixed-size type), its data
  within the ranges mido checks when it reads them (`FIXED_META`: keys, time signatures,
  SMPTE offsets);
- sysex events as mido writes them: F0, a length n >= 1, n - 1 data bytes of 0-127, then F7.

The note-aligned layout (`align_notes`, `NoteAlignedGrammar`) is the same stream with fill bytes
that make every note begin a patch; the fill follows from the events, so it is forced, not
learnt.

The merged layout (`merge_tracks`, `EventGrammar(merged=True)`) writes the tracks of a format-1
file after its first one (abc2midi's tempo track) as one stream in time order, as they sound
together. Each event keeps its delta time (from the event before it in its own track), and an
event of another track than the one before it is preceded by a track switch, `F9 <track>` (0xF9
is a status MIDI files leave undefined), between its delta time and its status. The stream
starts in track 1; a switch clears the running status. `split_tracks` gives the plain stream
back exactly, whatever the order of the tracks' events. A file with fewer than three tracks has
nothing to merge and keeps its plain stream.
"""

from __future__ import annotations

import bisect
import functools
import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from mido.midifiles.meta import _META_SPECS

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self from Python 3.11

HEADER = b"MThd\0\0\0\x06"
PREFIX = 3  # stream bytes before the first event: format (1), division (2)
END_OF_TRACK = 0x2F
FILL = 0x00  # what pads a note-aligned stream (`NoteAlignedGrammar`) to a patch boundary
SWITCH = 0xF9  # a track switch in a merged stream, followed by the track's number
MAX_TRACK = 0x7F  # the highest track number a merged stream can switch to

Ranges = tuple[tuple[int, int], ...]  # inclusive byte ranges
ANY: Ranges = ((0x00, 0xFF),)
DATA: Ranges = ((0x00, 0x7F),)
# Fixed-size meta types: their length, and the ranges of their data bytes.
FIXED_META: dict[int, tuple[int, tuple[Ranges, ...]]] = {
    0x00: (2, (ANY, ANY)),  # sequence number
    0x20: (1, (ANY,)),  # channel prefix
    0x21: (1, (ANY,)),  # MIDI port
    END_OF_TRACK: (0, ()),
    0x51: (3, (ANY, ANY, ANY)),  # tempo
    # SMPTE offset: frame rate code 0-3 in bits 5-6, then minutes, seconds, frames, 1/100s
    0x54: (5, (DATA, ((0, 59),), ((0, 59),), ANY, ((0, 99),))),
    # time signature: numerator, log2 of the denominator (up to 28, where mido's power-of-two
    # check holds), clocks per click, 32nds per beat
    0x58: (4, (ANY, ((0, 28),), ANY, ANY)),
    0x59: (2, (((0x00, 0x07), (0xF9, 0xFF)), ((0x00, 0x01),))),  # key: -7..7, major/minor
}
META_TYPES = sorted(t for t in _META_SPECS if isinstance(t, int))
META_TYPE_RANGES: Ranges = tuple((t, t) for t in META_TYPES)


class StreamError(ValueError):
    """Bytes that are not a well-formed event stream (or a file that has none)."""


@dataclass(frozen=True)
class Event:
    """One event of a stream: positions are stream offsets."""

    track: int
    start: int  # its delta time's first byte
    delta_end: int  # the byte after its delta time
    status: int  # its status, running status resolved; 0xFF meta, 0xF0 sysex
    data: int  # its first data byte (a meta event: its type byte)
    delta: int  # its delta time's value, in ticks


@functools.cache
def ranges_mask(ranges: Ranges, stop: bool, stop_id: int, vocab: int) -> torch.Tensor:
    """(vocab,) bool: the bytes in `ranges`, and `stop_id` when `stop`."""
    mask = torch.zeros(vocab, dtype=torch.bool)
    for lo, hi in ranges:
        mask[lo: hi + 1] = True
    mask[stop_id] = stop
    return mask


def _inside(byte: int, ranges: Ranges) -> bool:
    return any(lo <= byte <= hi for lo, hi in ranges)


def _without(ranges: Ranges, byte: int) -> Ranges:
    out: list[tuple[int, int]] = []
    for lo, hi in ranges:
        out += [r for r in ((lo, min(hi, byte - 1)), (max(lo, byte + 1), hi)) if r[0] <= r[1]]
    return tuple(out)


class StreamGrammar:
    """Reads a stream byte by byte (`feed`, counting `pos`); `allowed()` gives what may come
    next, as byte ranges and whether the stream may stop there."""

    pos: int

    def allowed(self) -> tuple[Ranges, bool]:
        raise NotImplementedError

    def feed(self, byte: int) -> None:
        raise NotImplementedError

    def feed_all(self, data: Iterable[int]) -> Self:
        """`feed` each byte of `data`; returns the grammar."""
        for byte in data:
            self.feed(byte)
        return self

    def done(self) -> bool:
        """Whether the stream may end here."""
        return self.allowed()[1]

    def mask(self, stop_id: int, vocab: int) -> torch.Tensor:
        """(vocab,) bool: `allowed()` as ids, with `stop_id` standing for stopping."""
        ranges, stop = self.allowed()
        return ranges_mask(ranges, stop, stop_id, vocab)


class EventGrammar(StreamGrammar):
    """Reads an event stream byte by byte (`feed`); `allowed()` gives what may come next.
    It may stop between tracks, after at least one.

    A varint is read in state "varint" (its purpose in `varint_for`: "delta", "meta", "sysex");
    fixed bytes (division, data bytes, meta data) are queued as (ranges, count) runs.

    With `merged`, a format-1 stream is read in the merged layout after its first track: an
    event may be preceded by a switch to any track that has not ended (state "track" reads its
    number); an event of a track that has ended is refused, and the stream may stop only when
    every track up to the highest one used has ended.
    """

    def __init__(self, merged: bool = False) -> None:
        self.merged = merged
        self.merging = False  # in the merged part of a merged stream
        self.track = 0  # the track of the event being read
        self.ended: set[int] = set()  # tracks of the merged part that have ended
        self.highest = 0  # the highest track the merged part has used
        self.switched = False  # the event being read has had its switch
        self.pos = 0  # bytes fed
        self.format: int | None = None
        self.running: int | None = None  # running status
        self.state = "format"
        self.varint_for, self.varint_len, self.varint_value = "delta", 0, 0
        self.queue: list[tuple[Ranges, int]] = []  # byte runs still to come
        self.after = "delta"  # the state once the queue is empty
        self.status = self.meta_type = 0  # of the event being read
        self.data_pos = 0  # offset of its first data byte
        self.event_start = self.delta_end = self.delta = 0
        self.events: list[Event] = []
        self.track_ends: list[int] = []  # the offset after each finished track

    def allowed(self) -> tuple[Ranges, bool]:
        """(byte ranges that may come next, whether the stream may stop here)."""
        if self.state == "format":
            return ((0, 2),), False
        if self.state == "queue":
            return self.queue[0][0], False
        if self.state == "varint":
            if self.varint_len == 3:
                return DATA, False
            if self.varint_len:
                return ANY, False
            low = 1 if self.varint_for == "sysex" else 0
            first: Ranges = ((low, 0x7F), (0x81, 0xFF))  # minimal: no leading 0x80
            if self.varint_for != "delta" or not self.track_ends or self.track_ends[-1] < self.pos:
                return first, False
            if self.merging and self.ended != set(range(1, self.highest + 1)):
                return first, False  # a track of the merged part is still open
            return (() if self.format == 0 else first), True  # between tracks
        if self.state == "status":
            switch: Ranges = ((SWITCH, SWITCH),) if self.merging and not self.switched else ()
            if self.merging and self.track in self.ended:
                return switch, False
            ranges = _without(((0x80, 0xEF),), self.running) if self.running else ((0x80, 0xEF),)
            return ((DATA if self.running else ()) + ranges + ((0xF0, 0xF0),) + switch
                    + ((0xFF, 0xFF),)), False
        if self.state == "meta_type":
            return META_TYPE_RANGES, False
        if self.state == "track":
            return tuple((t, t) for t in range(1, MAX_TRACK + 1)
                         if t != self.track and t not in self.ended), False
        raise AssertionError(self.state)

    def feed(self, byte: int) -> None:
        """Read one byte; StreamError if it is not allowed here."""
        if not _inside(byte, self.allowed()[0]):
            raise StreamError(f"byte {byte:#04x} at stream offset {self.pos} is not allowed "
                              f"({self.state})")
        self.pos += 1
        if self.state == "format":
            self.format = byte
            self._queue([(ANY, 2)], then="delta")
        elif self.state == "queue":
            ranges, count = self.queue[0]
            self.queue[0] = (ranges, count - 1)
            if count == 1:
                self.queue.pop(0)
            if not self.queue:
                self._finished_run()
        elif self.state == "varint":
            self.varint_len += 1
            self.varint_value = (self.varint_value << 7) | (byte & 0x7F)
            if byte < 0x80:
                self._varint_read()
        elif self.state == "status":
            self._status(byte)
        elif self.state == "track":
            self.track, self.running, self.switched, self.state = byte, None, True, "status"
        else:  # meta_type
            self.meta_type = byte
            if byte in FIXED_META:
                length, data = FIXED_META[byte]
                self._queue([(((length, length),), 1)] + [(r, 1) for r in data], then="event")
            else:
                self._varint("meta")

    # -- transitions ----------------------------------------------------------------------------

    def _queue(self, runs: list[tuple[Ranges, int]], then: str) -> None:
        self.queue = [r for r in runs if r[1] > 0]
        self.after = then
        if self.queue:
            self.state = "queue"
        else:
            self._finished_run()

    def _varint(self, purpose: str) -> None:
        self.state, self.varint_for, self.varint_len, self.varint_value = "varint", purpose, 0, 0

    def _finished_run(self) -> None:
        if self.after == "delta":
            self.event_start = self.pos
            self._varint("delta")
        else:
            self._event_done()

    def _varint_read(self) -> None:
        if self.varint_for == "delta":
            self.delta, self.delta_end, self.state = self.varint_value, self.pos, "status"
        elif self.varint_for == "meta":
            self._queue([(ANY, self.varint_value)], then="event")
        else:  # sysex: the data, then F7
            self._queue([(DATA, self.varint_value - 1), (((0xF7, 0xF7),), 1)], then="event")

    def _status(self, byte: int) -> None:
        if byte == SWITCH:
            self.state = "track"
            return
        if byte < 0x80:  # running status: this is the first data byte
            self.status, self.data_pos = self.running or 0, self.pos - 1
        else:
            self.status, self.data_pos = byte, self.pos
        if byte == 0xFF:
            self.running = None
            self.state = "meta_type"
            return
        if byte == 0xF0:
            self.running = None
            self._varint("sysex")
            return
        self.running = self.status
        n_data = 1 if self.status & 0xF0 in (0xC0, 0xD0) else 2
        self._queue([(DATA, n_data - (byte < 0x80))], then="event")

    def _event_done(self) -> None:
        self.events.append(Event(self.track, self.event_start, self.delta_end, self.status,
                                 self.data_pos, self.delta))
        self.switched = False
        if self.merging:
            self.highest = max(self.highest, self.track)
        if self.status == 0xFF and self.meta_type == END_OF_TRACK:
            self.track_ends.append(self.pos)
            if self.merging:
                self.ended.add(self.track)
            elif self.merged and self.format == 1:  # the first track: the merged part follows
                self.merging, self.track = True, 1
            else:
                self.track += 1
        self.event_start = self.pos
        self._varint("delta")


class NoteAlignedGrammar(StreamGrammar):
    """Reads a note-aligned stream (`align_notes`) byte by byte, like `EventGrammar`.

    A note-aligned stream is an event stream with FILL bytes after every event but a sounding
    note-on (velocity > 0) and an end-of-track, up to the next multiple of `align` bytes: each
    note-on that follows another event begins a patch, so a monophonic tune is one note per
    patch (its note-on and note-off, then fill). Where the fill goes follows from the events
    before it, so the fill carries no information; `offsets` maps the stream back.
    """

    def __init__(self, align: int) -> None:
        self.align = align
        self.events = EventGrammar()
        self.pos = 0  # bytes fed, fill included
        self.fill = 0  # fill bytes still to come
        self.offsets: list[int] = []  # the offset of each stream byte among the bytes fed

    def allowed(self) -> tuple[Ranges, bool]:
        return (((FILL, FILL),), False) if self.fill else self.events.allowed()

    def feed(self, byte: int) -> None:
        """Read one byte; StreamError if it is not allowed here."""
        if self.fill:
            if byte != FILL:
                raise StreamError(f"byte {byte:#04x} at offset {self.pos} is not the fill byte")
            self.pos, self.fill = self.pos + 1, self.fill - 1
            return
        finished = len(self.events.events)
        self.events.feed(byte)
        self.offsets.append(self.pos)
        self.pos += 1
        if len(self.events.events) > finished:
            status = self.events.events[-1].status
            sounding = status & 0xF0 == 0x90 and byte > 0  # byte: its velocity
            track_end = status == 0xFF and self.events.meta_type == END_OF_TRACK
            if not (sounding or track_end):
                self.fill = -self.pos % self.align


def align_notes(stream: bytes, align: int) -> bytes:
    """The note-aligned form of a finished event stream (`NoteAlignedGrammar`; StreamError, as
    `read_stream` gives, if it is not one)."""
    return bytes(_aligning(stream, align)[1])


def aligned_offsets(stream: bytes, align: int) -> list[int]:
    """Where each byte of a finished event stream lands in its note-aligned form."""
    return _aligning(stream, align)[0].offsets


def _aligning(stream: bytes, align: int) -> tuple[NoteAlignedGrammar, bytearray]:
    """The grammar after writing `stream` note-aligned, and what it wrote."""
    grammar, out = NoteAlignedGrammar(align), bytearray()
    for byte in stream:
        while grammar.fill:
            grammar.feed(FILL)
            out.append(FILL)
        grammar.feed(byte)
        out.append(byte)
    _check_finished(grammar, len(stream))
    return grammar, out


def read_aligned(content: bytes, align: int) -> NoteAlignedGrammar:
    """The grammar after reading all of a note-aligned `content` (StreamError if malformed)."""
    return NoteAlignedGrammar(align).feed_all(content)


def unalign_notes(content: bytes, align: int) -> bytes:
    """The event stream of note-aligned `content`, without its fill (StreamError if the
    fill is not where it belongs or the events are not well-formed)."""
    return bytes(content[i] for i in read_aligned(content, align).offsets)


def read_stream(stream: bytes, merged: bool = False) -> EventGrammar:
    """The grammar after reading all of `stream` (in the merged layout with `merged`);
    StreamError if it is not a finished stream."""
    grammar = EventGrammar(merged).feed_all(stream)
    _check_finished(grammar, len(stream))
    return grammar


def _check_finished(grammar: StreamGrammar, n: int) -> None:
    """StreamError unless the `n` stream bytes `grammar` has read may end there."""
    if not grammar.done():
        raise StreamError(f"the event stream ends inside a track, after {n} bytes")


def events_to_midi(stream: bytes) -> bytes:
    """The MIDI file of a finished event stream (StreamError otherwise)."""
    grammar = read_stream(stream)
    bounds = [PREFIX, *grammar.track_ends]
    out = bytearray(HEADER + bytes([0, stream[0]]) + len(grammar.track_ends).to_bytes(2, "big")
                    + stream[1:PREFIX])
    for a, b in itertools.pairwise(bounds):
        out += b"MTrk" + (b - a).to_bytes(4, "big") + stream[a:b]
    return bytes(out)


def midi_to_events(midi: bytes) -> bytes:
    """The event stream of a normalised MIDI file; StreamError if the file has none (another
    header, chunks other than MTrk, events the grammar does not accept, trailing bytes)."""
    if len(midi) < 14 or midi[:8] != HEADER or midi[8] != 0 or midi[9] > 2:
        raise StreamError("not a MIDI file with a 6-byte header of format 0, 1 or 2")
    stream, pos = bytearray([midi[9]]) + midi[12:14], 14
    for k in range(int.from_bytes(midi[10:12], "big")):
        size = int.from_bytes(midi[pos + 4: pos + 8], "big")
        if midi[pos: pos + 4] != b"MTrk" or pos + 8 + size > len(midi):
            raise StreamError(f"track {k} is not a whole MTrk chunk")
        stream += midi[pos + 8: pos + 8 + size]
        pos += 8 + size
    if events_to_midi(bytes(stream)) != midi:
        raise StreamError("the file is not in the canonical form of the event stream "
                          "(tracks that do not end at their one end-of-track event, a track "
                          "count that does not match, non-canonical running status or delta times)")
    return bytes(stream)


@dataclass(frozen=True)
class _Timed:
    """An event of a stream on its track's clock, its status written out."""

    track: int
    time: int  # ticks from the start of its track
    body: bytes  # status and data, without delta time or track switch


def _varint_bytes(n: int) -> bytes:
    """`n` as a minimal MIDI variable-length quantity."""
    out = [n & 0x7F]
    while n := n >> 7:
        out.append(0x80 | (n & 0x7F))
    return bytes(reversed(out))


def _timed(stream: bytes, grammar: EventGrammar) -> list[_Timed]:
    """The events of a finished stream (plain or merged) `grammar` has read, each with its time
    on its track's clock."""
    events, out = grammar.events, []
    clock: dict[int, int] = {}  # track -> ticks
    for e, end in zip(events, [e.start for e in events[1:]] + [len(stream)]):
        clock[e.track] = clock.get(e.track, 0) + e.delta
        body = stream[e.delta_end + 2 if stream[e.delta_end] == SWITCH else e.delta_end: end]
        out.append(_Timed(e.track, clock[e.track], body if body[0] >= 0x80
                          else bytes([e.status]) + body))
    return out


def _written(events: list[_Timed], switches: bool) -> bytes:
    """`events` as stream bytes: delta times from the event before in the same track,
    canonical running status, and (with `switches`) a track switch before an event of another
    track than the last one's, the first being in track 1."""
    out, running, track = bytearray(), None, 1
    time: dict[int, int] = {}  # track -> the time of its last event
    for e in events:
        out += _varint_bytes(e.time - time.get(e.track, 0))
        time[e.track] = e.time
        if switches and e.track != track:
            out += bytes([SWITCH, e.track])
            track, running = e.track, None
        status = e.body[0]
        out += e.body[1:] if status == running else e.body
        running = status if status < 0xF0 else None
    return bytes(out)


def merge_tracks(stream: bytes) -> bytes:
    """The merged layout of a finished plain stream (StreamError if it is not one): a format-1
    stream of three tracks or more has those after the first merged in time order (at the
    same time, the lower track first); others come back as they are."""
    grammar = read_stream(stream)
    if stream[0] != 1 or len(grammar.track_ends) < 3:
        return stream
    timed = _timed(stream, grammar)
    rest = sorted((e for e in timed if e.track), key=lambda e: (e.time, e.track))  # stable
    merged = stream[:grammar.track_ends[0]] + _written(rest, True)
    if split_tracks(merged) != stream:  # cannot happen for a canonical stream; nothing is lost
        raise StreamError("the merged stream does not give the plain stream back")
    return merged


def split_tracks(merged: bytes) -> bytes:
    """The plain stream of a finished merged stream (`merge_tracks`; StreamError if it is not
    one)."""
    grammar = read_stream(merged, merged=True)
    if not grammar.merging:
        return merged
    timed = sorted(_timed(merged, grammar), key=lambda e: e.track)  # stable: keeps each order
    tracks = itertools.groupby(timed, key=lambda e: e.track)
    return merged[:PREFIX] + b"".join(_written(list(events), False) for _, events in tracks)


@dataclass(frozen=True)
class NoteSpan:
    """Where one note of a stream is decided, as stream offsets."""

    pitch: int  # its note-on's key byte
    onset: tuple[int, ...]  # the delta-time bytes from the previous note-on of its track
    duration: tuple[int, ...]  # the delta-time bytes from its note-on to its note-off


def _delta_bytes(events: list[Event]) -> tuple[int, ...]:
    """The offsets of the delta-time bytes of `events`."""
    return tuple(p for e in events for p in range(e.start, e.delta_end))


def _note_key(stream: bytes, e: Event) -> tuple[int, int, int] | None:
    """(track, channel, key) of a note-on or note-off event; None for other events."""
    if e.status < 0xF0 and e.status & 0xF0 in (0x80, 0x90):
        return e.track, e.status & 0x0F, stream[e.data]
    return None


def note_spans(stream: bytes, in_file: bool = False, merged: bool = False) -> list[NoteSpan]:
    """Every note of a finished stream (a note-on of velocity > 0, ended by the next note-off
    or note-on of its track, channel and key), in stream order; with `in_file`, the offsets are
    into `events_to_midi(stream)` instead; with `merged`, the stream is in the merged layout."""
    grammar = read_stream(stream, merged)
    events = grammar.events
    spans: list[NoteSpan] = []
    since: dict[int, int] = {}  # track -> index of the first event after its last note-on
    for i, e in enumerate(events):
        since.setdefault(e.track, i)
        key = _note_key(stream, e)
        if key is None or e.status & 0xF0 != 0x90 or stream[e.data + 1] == 0:
            continue
        end = next((j for j in range(i + 1, len(events)) if _note_key(stream, events[j]) == key),
                   i)
        # its track's events only: in a merged stream, other tracks' come between, on their clocks
        own = [x for x in events[since[e.track]: end + 1] if x.track == e.track]
        k = own.index(e) + 1
        spans.append(NoteSpan(e.data, _delta_bytes(own[:k]), _delta_bytes(own[k:])))
        since[e.track] = i + 1
    if not in_file:
        return spans

    def at(p: int) -> int:  # the file has 14 header bytes, not 3, and 8 per chunk header
        return p - PREFIX + len(HEADER) + 6 + 8 * (bisect.bisect_right(grammar.track_ends, p) + 1)

    return [NoteSpan(at(s.pitch), tuple(map(at, s.onset)), tuple(map(at, s.duration)))
            for s in spans]
