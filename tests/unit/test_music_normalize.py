"""The MIDI normalisation pass: equal to mido's read+write, idempotent, keeps every note."""

import io

import mido
import pytest

from datagen.music.build import _tune_of, music_spec
from datagen.music.convert import convert
from datagen.music.normalize import (
    BadMidi,
    _fast_pass,
    mido_pass,
    normalize_midi,
    note_events,
    notes,
)
from datagen.music.synthetic import synthetic_tune
from tests.helpers import needs_abc2midi


@pytest.fixture(scope="module")
def raw_midis() -> list[bytes]:
    """abc2midi's own output for synthetic tunes and music21 corpus tunes."""
    spec = music_spec(["music21"], seed=3, converter="abc2midi")
    tunes = [synthetic_tune(3, i) for i in range(120)] + [_tune_of(spec, i)[3] for i in range(120)]
    return [c.midi for c in (convert(t, "abc2midi") for t in tunes) if c.midi]


@needs_abc2midi
@pytest.mark.parametrize("keep_text", [False, True])
def test_fast_pass_equals_mido(raw_midis, keep_text):
    assert len(raw_midis) > 230
    for raw in raw_midis:
        assert _fast_pass(raw, keep_text) == mido_pass(raw, keep_text)


@needs_abc2midi
def test_idempotent_and_keeps_every_note(raw_midis):
    for raw in raw_midis:
        once = normalize_midi(raw)
        assert normalize_midi(once) == once
        assert note_events(once) == note_events(raw)
        assert notes(once) == notes(raw)


@needs_abc2midi
def test_text_events_dropped_unless_kept(raw_midis):
    def metas(data):
        return {m.type for t in mido.MidiFile(file=io.BytesIO(data)).tracks for m in t
                if m.is_meta}

    raw = raw_midis[0]
    assert "track_name" in metas(raw)
    assert not {"text", "track_name"} & metas(normalize_midi(raw))
    assert metas(normalize_midi(raw, keep_text=True)) == metas(raw)
    assert len(normalize_midi(raw)) < len(normalize_midi(raw, keep_text=True))


def _file(track: list, fmt: int = 0) -> bytes:
    out = io.BytesIO()
    mido.MidiFile(type=fmt, tracks=[mido.MidiTrack(track)]).save(file=out)
    return out.getvalue()


def test_unusual_files_go_through_mido_and_keep_timing():
    sysex = _file([mido.Message("sysex", data=[1, 2, 3]),
                   mido.MetaMessage("text", text="title", time=10),
                   mido.Message("note_on", note=60, velocity=64, time=5),
                   mido.Message("note_off", note=60, time=96)])
    out = normalize_midi(sysex)
    assert out == mido_pass(sysex)
    # the text event's 10 ticks move onto the note: the note still starts at tick 15
    assert note_events(out) == [(15, 0, 0, 60, 64), (111, 0, 0, 60, 0)]


def test_running_status_is_canonical():
    # the same two notes written without and with running status normalise to the same bytes
    head = b"MThd\0\0\0\x06\0\0\0\x01\x00\x60"
    plain = b"\x00\x90\x3c\x40\x60\x90\x3c\x00\x00\xff\x2f\x00"
    running = b"\x00\x90\x3c\x40\x60\x3c\x00\x00\xff\x2f\x00"
    a = normalize_midi(head + b"MTrk" + len(plain).to_bytes(4, "big") + plain)
    b = normalize_midi(head + b"MTrk" + len(running).to_bytes(4, "big") + running)
    assert a == b and b"\x60\x3c\x00" in a


@pytest.mark.parametrize("data", [b"", b"not midi at all", b"MThd\0\0\0\x06\0\0\0\x01\0\x60MTr"])
def test_garbage_is_bad_midi(data):
    with pytest.raises(BadMidi):
        normalize_midi(data)
