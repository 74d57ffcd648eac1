"""Tunes longer than a model's context, converted a few bars at a time (docs/music.md).

`datagen.music.segments` cuts a tune into the segments it plays, each a tune of its own; a
segment whose input or output does not fit the context is cut in half and tried again.
`join_midi` puts the segments' MIDI files end to end: each one's events move by the length of
the music before it, which is its file's end-of-track time less the TAIL abc2midi leaves after
the music.

So a model trained on short tunes converts a long one, and repeats and parts are written out
before the model sees them.

`convert_tune` is the converter's policy, which `MusicConverter.abc_to_midi` and `simulator
eval --segment-bars` share: a tune that plays more than N bars beside a pickup bar
(`plays_more_than`) is converted N bars at a time (the models are most accurate on tunes as
long as those they were trained on; docs/music.md, "Tunes longer than the context"); a shorter
one whole, and in segments after all where its output does not end inside the context, or ends
with fewer notes than the tune plays at the least (`cut_short`).
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable

from datagen.music.segments import Segment, Unsupported, play_segments
from simulator.abc_length import body_ticks
from simulator.abc_slots import fewest_notes_played
from simulator.metrics import MIDI_ERRORS, midi_notes

TAIL = 26  # ticks abc2midi writes after a tune's last beat, before each track's end (at 480/beat)
DEFAULT_SEGMENT_BARS = 4  # the length of the tunes the shipped models were trained on
WHOLE_PARTS = 1 << 20  # bars per segment that leave each part played whole


class UnreadableSegment(ValueError):
    """A segment's converted file is not MIDI that mido reads."""


def convert_tune(abc: str, whole: Callable[[], bytes | None],
                 segments: Callable[[list[str]], list[bytes | None]], bars: int | None) -> bytes | None:
    """The MIDI file of a tune by the converter's policy (module docstring), from `whole` (the
    whole tune's file, or None where its input or output does not fit the context) and
    `segments` (as for `convert_in_segments`); `bars` None: whole only. Where segments fail
    (Unsupported, UnreadableSegment), the whole tune's output, even cut short; where that is
    None too, the segments' exception, or None if there were none."""
    failed: Unsupported | UnreadableSegment | None = None
    segments_first = bool(bars) and plays_more_than(abc, bars or 0)
    if segments_first:
        try:
            return convert_in_segments(abc, segments, bars or 0)
        except (Unsupported, UnreadableSegment) as e:
            failed = e
    out = whole()
    if out is None and failed is not None:
        raise failed
    if not bars or segments_first or (out is not None and not cut_short(abc, out)):
        return out
    try:
        return convert_in_segments(abc, segments, bars)
    except (Unsupported, UnreadableSegment):
        if out is not None:
            return out  # cut short, but what the model wrote
        raise


def plays_more_than(abc: str, bars: int) -> bool:
    """Whether the tune plays more than `bars` bars beside a pickup (more than `bars` + 1 in
    all), repeats and parts written out (False for a tune that cannot be cut into segments):
    a tune of `bars` bars after a pickup bar is as long as those the models were trained on."""
    try:
        return sum(len(segment.bars) for segment in play_segments(abc, bars)) > bars + 1
    except Unsupported:
        return False


@functools.lru_cache(maxsize=256)
def _played(abc: str) -> tuple[str, ...] | None:
    """The tune's text as it plays, repeats and parts written out (`play_segments`, whole
    parts), or None where it cannot be cut into segments. Kept for the last tunes asked: the
    converter tests each of a tune's branched outputs against it."""
    try:
        return tuple(segment.text for segment in play_segments(abc, WHOLE_PARTS))
    except Unsupported:
        return None


def cut_short(abc: str, midi: bytes) -> bool:
    """Whether a MIDI file converted from `abc` holds fewer notes than the tune plays at the
    least, or cannot be read: the output ended before the tune did. The notes are counted
    (`fewest_notes_played`) over the bars as the tune plays them, repeats and parts written
    out, where the tune can be cut into segments, and over its body as written otherwise."""
    played = _played(abc) or (abc,)
    least = sum(fewest_notes_played(text.encode("utf-8", "surrogateescape")) for text in played)
    try:
        return len(midi_notes(midi)) < least
    except MIDI_ERRORS:
        return True


def wrong_length(abc: str, midi: bytes) -> bool:
    """Whether a MIDI file converted from `abc` plays longer or shorter than the tune's notes and
    rests add up to (`body_ticks`, over the bars as the tune plays them): its end of track less
    TAIL is not there, or it cannot be read. False where the ABC's length cannot be read (or the
    tune cannot be cut into segments)."""
    import mido

    played = _played(abc)
    if played is None:
        return False
    total = 0
    for length in map(body_ticks, played):
        if length is None:
            return False
        total += length
    try:
        mid = mido.MidiFile(file=io.BytesIO(midi))
    except MIDI_ERRORS:
        return True
    return max(sum(msg.time for msg in track) for track in mid.tracks) - TAIL != total


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
