"""The one MIDI normalisation pass (docs/music.md), applied to every converter's output.

`normalize_midi(data)` parses the file with mido and writes it again, which gives:

- a fixed header: an `MThd` chunk of length 6 (format, track count, ticks per beat kept), then
  only `MTrk` chunks (unknown chunks dropped);
- canonical event encoding: running status wherever the status byte repeats (and never across a
  meta or sysex event), minimal variable-length delta times, exactly one end-of-track event, at
  the end of each track;
- by default, no text-like meta events (`DROPPED_META`: text, track and instrument names,
  copyright, markers). abc2midi copies the title (`T:`) and the notes, origin and history
  fields (`N:`, `O:`, ...) of a tune into such events, plus a constant "note track" label.
  Measured on 2,000 music21 tunes (docs/music.md), they are about 12% of the MIDI bytes; they
  are copies of text the model already sees in the ABC, not conversion, and they make a pair's
  bytes depend on a tune's title rather than its music. Lyrics are kept: abc2midi aligns `w:`
  syllables to notes, which is conversion. `keep_text=True` (`datagen music --keep-text`)
  keeps everything.

Removing an event keeps every other event at its absolute time (its delta moves to the next
event). Notes are never touched: `note_events(normalize_midi(x)) == note_events(x)`, and the pass
is idempotent: `normalize_midi(normalize_midi(x)) == normalize_midi(x)`.

The pass is defined as mido's reading and writing (`mido_pass`). mido builds a Python object
per event, which costs more than running abc2midi, so the plain files that converters write
(channel messages and known meta events) go through `_fast_pass`, which does at the byte level
exactly what mido would; anything else (sysex, system messages, unknown meta events, odd chunk
layouts) goes through mido itself. tests/unit/test_music_normalize.py checks the two give the same
bytes on thousands of converter outputs.
"""

from __future__ import annotations

import io

import mido
from mido.midifiles.meta import _META_SPECS, build_meta_message

DROPPED_META = frozenset({"text", "copyright", "track_name", "instrument_name", "marker",
                          "cue_marker", "device_name", "program_name"})
_END_OF_TRACK = b"\xff\x2f\x00"


class BadMidi(ValueError):
    """The bytes are not a MIDI file that mido can read (or write back)."""


class _Unusual(Exception):
    """A file the fast pass leaves to mido."""


def parse_midi(data: bytes) -> mido.MidiFile:
    """mido's reading of `data` (byte-preserving Latin-1 text), or BadMidi."""
    try:
        return mido.MidiFile(file=io.BytesIO(data), charset="latin1")
    except Exception as e:  # noqa: BLE001 - untrusted bytes; mido raises many kinds
        raise BadMidi(f"{type(e).__name__}: {e}") from None


def normalize_midi(data: bytes, keep_text: bool = False) -> bytes:
    """The canonical bytes of the MIDI file `data` (see the module docstring)."""
    try:
        return _fast_pass(data, keep_text)
    except _Unusual:
        return mido_pass(data, keep_text)


def mido_pass(data: bytes, keep_text: bool = False) -> bytes:
    """The normalisation, by definition: mido reads the file, drops text events, writes it."""
    mf = parse_midi(data)
    if not keep_text:
        mf.tracks = [_drop_text(t) for t in mf.tracks]
    out = io.BytesIO()
    try:
        mf.save(file=out)
    except Exception as e:  # noqa: BLE001
        raise BadMidi(f"cannot be written back: {type(e).__name__}: {e}") from None
    return out.getvalue()


def _drop_text(track: mido.MidiTrack) -> mido.MidiTrack:
    kept, carry = mido.MidiTrack(), 0
    for msg in track:
        if msg.is_meta and msg.type in DROPPED_META:
            carry += msg.time
            continue
        kept.append(msg.copy(time=msg.time + carry) if carry else msg)
        carry = 0
    if carry:  # only text was left at the end: keep the track's length on its end event
        kept.append(mido.MetaMessage("end_of_track", time=carry))
    return kept


def _varint(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def _read_varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    value = 0
    while pos < end:
        byte = data[pos]
        pos += 1
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, pos
    raise _Unusual


def _fast_pass(data: bytes, keep_text: bool) -> bytes:
    """`mido_pass` at the byte level, for files of channel messages and known meta events."""
    if data[:4] != b"MThd" or len(data) < 14:
        raise _Unusual
    size = int.from_bytes(data[4:8], "big")
    fmt = int.from_bytes(data[8:10], "big", signed=True)
    n_tracks = int.from_bytes(data[10:12], "big", signed=True)
    if size < 6 or fmt not in (0, 1, 2) or n_tracks < 0 or (fmt == 0 and n_tracks != 1):
        raise _Unusual
    out = bytearray(b"MThd\0\0\0\x06" + data[8:14])
    pos = 8 + size
    for _ in range(n_tracks):
        if data[pos:pos + 4] != b"MTrk" or pos + 8 > len(data):
            raise _Unusual
        end = pos + 8 + int.from_bytes(data[pos + 4:pos + 8], "big")
        if end > len(data):
            raise _Unusual
        pos += 8
        body = bytearray()
        read_status = write_status = None  # running status, as read and as written
        carry = 0  # delta time of removed events, moved onto the next event
        while pos < end:
            delta, pos = _read_varint(data, pos, end)
            if pos >= end:
                raise _Unusual
            status = data[pos]
            if status >= 0x80:
                pos += 1
                if status != 0xFF:
                    read_status = status
            elif read_status is None:
                raise _Unusual
            else:
                status = read_status
            if status == 0xFF:
                if pos >= end or data[pos] not in _META_SPECS:
                    raise _Unusual
                length, start = _read_varint(data, pos + 1, end)
                if start + length > end:
                    raise _Unusual
                try:
                    msg = build_meta_message(data[pos], data[start:start + length])
                    encoded = bytes(msg.bytes())
                except Exception:  # noqa: BLE001 - let mido itself decide about it
                    raise _Unusual from None
                pos = start + length
                if msg.type == "end_of_track" or (not keep_text and msg.type in DROPPED_META):
                    carry += delta
                    continue
                body += _varint(delta + carry) + encoded
                write_status = None
            elif status >= 0xF0:
                raise _Unusual
            else:
                n_data = 1 if status & 0xF0 in (0xC0, 0xD0) else 2
                payload = data[pos:pos + n_data]
                pos += n_data
                if pos > end or max(payload) > 0x7F:
                    raise _Unusual
                body += _varint(delta + carry)
                if status != write_status:
                    body.append(status)
                body += payload
                write_status = status
            carry = 0
        body += _varint(carry) + _END_OF_TRACK
        out += b"MTrk" + len(body).to_bytes(4, "big") + body
    return bytes(out)


def note_events(data: bytes) -> list[tuple[int, int, int, int, int]]:
    """Every note event as (absolute tick, track, channel, note, velocity; 0 = note off),
    sorted; the notes of a file, whatever its encoding."""
    events = []
    for k, track in enumerate(parse_midi(data).tracks):
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type == "note_on":
                events.append((tick, k, msg.channel, msg.note, msg.velocity))
            elif msg.type == "note_off":
                events.append((tick, k, msg.channel, msg.note, 0))
    return sorted(events)


def notes(data: bytes) -> list[tuple[float, float, int, int]]:
    """The notes of a file as (onset, duration, pitch, channel), in quarter notes, sorted."""
    mf = parse_midi(data)
    tpb = mf.ticks_per_beat or 480
    found, sounding = [], {}
    for tick, track, channel, pitch, velocity in note_events(data):
        key = (track, channel, pitch)
        if key in sounding:  # a note ends at its off, or at a new on of the same key
            start = sounding.pop(key)
            found.append((start / tpb, (tick - start) / tpb, pitch, channel))
        if velocity:
            sounding[key] = tick
    return sorted(found)
