"""Tunes longer than a model's context, converted a few bars at a time (docs/music.md).

`datagen.music.segments` cuts a tune into the segments it plays, each a tune of its own; a
segment whose input or output does not fit the context is cut in half and tried again.
`join_midi` puts the segments' MIDI files end to end: each one's events move by the length of
the music before it, which is its file's end-of-track time less the TAIL abc2midi leaves after
the music.

So a model trained on short tunes converts a long one, and repeats and parts are written out
before the model sees them.
"""

from __future__ import annotations

import io
from collections.abc import Callable

from datagen.music.segments import Segment, Unsupported, play_segments

TAIL = 26  # ticks abc2midi writes after a tune's last beat, before each track's end (at 480/beat)
DEFAULT_SEGMENT_BARS = 4  # the length of the tunes the shipped models were trained on


class UnreadableSegment(ValueError):
    """A segment's converted file is not MIDI that mido reads."""


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
