"""The note-slot layout of ABC prompts: exact round trips, every note on a slot, and the codec
option that uses it."""

import re
from dataclasses import replace

import numpy as np
import pytest

from datagen.music.build import make_pair, music_spec
from datagen.music.synthetic import LADDER, SynthOptions, synthetic_tune
from simulator.abc_slots import FILL, SLOT, slot_abc, unslot_abc
from simulator.codec import PAD, MusicCodec, MusicPair, codec_from_options, make_codec

RUNGS = {"M0": LADDER["M0"], "M1": LADDER["M1"], "M2": LADDER["M2"],
         "M2+": SynthOptions(gchords=1.0, chords=0.5, grace=0.5, parts=1.0, titles=1.0)}


def _tunes(options: SynthOptions, n: int = 40) -> list[bytes]:
    return [synthetic_tune(5, i, options).encode() for i in range(n)]


def _header_end(abc: bytes) -> int:
    """Where the text after a tune's `K:` line starts."""
    return abc.index(b"\n", abc.index(b"\nK:") + 1) + 1


@pytest.mark.parametrize("rung", sorted(RUNGS))
def test_slotting_round_trips_and_puts_the_body_on_a_patch_boundary(rung):
    for abc in _tunes(RUNGS[rung]):
        slotted = slot_abc(abc, 16)
        assert unslot_abc(slotted) == abc
        header_end = _header_end(abc)
        assert slotted[:header_end] == abc[:header_end]
        body_at = -(-header_end // 16) * 16  # the header's fill ends on the patch grid
        assert set(slotted[header_end:body_at]) <= {FILL}
        assert slotted[body_at] != FILL


def test_every_note_of_a_plain_tune_starts_a_slot():
    for abc in _tunes(RUNGS["M1"]):
        slotted = slot_abc(abc, 16)
        body = slotted[-(-_header_end(abc) // 16) * 16:]
        notes = [m.start() for m in re.finditer(rb"[\^_=]*[A-Ga-gz]", body)]
        assert len(notes) == len(re.findall(rb"[\^_=]*[A-Ga-gz]", abc[_header_end(abc):]))
        assert notes and all(at % SLOT == 0 for at in notes)


def test_chords_quotes_decorations_and_fields_start_no_note():
    abc = b'X:1\nT:t\nK:G\n"Am"[ceg]2 !trill!c {g}A [K:D] B|[1 d:|\nw: la la\nf|]\n'
    slotted = slot_abc(abc, 16)
    units = [b'"Am"', b"[ceg]2 !trill!", b"c {g}", b"A [K:D] ", b"B|[1 ", b"d:|\nw: la la\n",
             b"f|]\n"]
    assert slotted[:16] == abc[:12] + bytes(4)
    assert slotted[16:] == b"".join(u + bytes(-len(u) % SLOT) for u in units)
    assert unslot_abc(slotted) == abc


def test_text_with_a_fill_byte_has_no_slot_layout():
    with pytest.raises(ValueError, match="NUL"):
        slot_abc(b"X:1\nK:C\nC\x00D|\n", 16)


def test_codec_option_encodes_slotted_prompts_and_decodes_the_text():
    codec = make_codec("abc2midi", 16, midi="events", abc="note-slots")
    assert codec.options() == {"task": "abc2midi", "align": 16, "midi": "events",
                               "abc": "note-slots"}
    assert "abc" not in make_codec("abc2midi", 16, midi="events").options()
    assert isinstance(codec_from_options(codec.options()), MusicCodec)
    assert codec_from_options(codec.options()).abc == "note-slots"
    spec = replace(music_spec(["synthetic"], seed=5, converter="abc2midi"), synth=LADDER["M1"])
    for row in (make_pair(spec, i) for i in range(4)):
        pair = MusicPair(row["abc"], row["midi"])
        ids, mask = codec.encode(pair)
        content = ids[16:]
        content = bytes(content[: np.flatnonzero(content == PAD)[0]].astype(np.uint8))
        assert content == slot_abc(pair.abc.encode(), 16)
        assert codec.decode(ids) == pair
        plain_ids, plain_mask = make_codec("abc2midi", 16, midi="events").encode(pair)
        assert np.array_equal(ids[mask], plain_ids[plain_mask])  # the same target, scored alike


def test_slots_are_refused_where_the_abc_is_the_target():
    with pytest.raises(ValueError, match="abc2midi"):
        make_codec("midi2abc", 16, midi="events", abc="note-slots")
    with pytest.raises(ValueError, match="unknown ABC layout"):
        make_codec("abc2midi", 16, abc="slots")
