"""The note-slot layout of ABC: exact round trips, every note on a slot, the codec option that
uses it for abc2midi's prompt and midi2abc's target, and the fill a target's writer must keep."""

import re
from dataclasses import replace

import numpy as np
import pytest
from helpers import needs_abc2midi

from datagen.music.build import make_pair, music_spec
from datagen.music.synthetic import LADDER, SynthOptions, synthetic_tune
from simulator.abc_slots import FILL, SLOT, fewest_notes_played, fill_due, slot_abc, unslot_abc
from simulator.codec import PAD, MusicCodec, MusicPair, codec_from_options, make_codec
from simulator.facade import MusicConverter
from simulator.metrics import midi_notes

RUNGS = {"M0": LADDER["M0"], "M1": LADDER["M1"], "M2": LADDER["M2"],
         "M2+": SynthOptions(gchords=1.0, chords=0.5, grace=0.5, parts=1.0, titles=1.0)}


def _tunes(options: SynthOptions, n: int = 40) -> list[bytes]:
    return [synthetic_tune(5, i, options).encode() for i in range(n)]


def _header_end(abc: bytes) -> int:
    """Where the text after a tune's `K:` line starts."""
    return abc.index(b"\n", abc.index(b"\nK:") + 1) + 1


@pytest.mark.parametrize("gchords_apart", [False, True])
@pytest.mark.parametrize("rung", sorted(RUNGS))
def test_slotting_round_trips_and_puts_the_body_on_a_patch_boundary(rung, gchords_apart):
    for abc in _tunes(RUNGS[rung]):
        slotted = slot_abc(abc, 16, gchords_apart)
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


def test_guitar_chords_start_a_slot_of_their_own_in_the_gchord_layout():
    abc = b'X:1\nT:t\nK:G\n"Am"[ceg]2 !trill!c {g}A |"D7" B"^up" [d"G"g]2|]\n'
    units = [b'"Am"', b"[ceg]2 !trill!", b"c {g}", b"A |", b'"D7" ', b"B", b'"^up" ',
             b'[d"G"g]2|]\n']  # a quote inside a chord stays in it
    slotted = slot_abc(abc, 16, gchords_apart=True)
    assert slotted[16:] == b"".join(u + bytes(-len(u) % SLOT) for u in units)
    assert unslot_abc(slotted) == abc
    assert slot_abc(abc, 16)[16:].startswith(b'"Am"[ceg]2 !trill!')  # note-slots: one unit


def test_every_guitar_chord_of_a_synthetic_tune_starts_a_slot():
    for abc in _tunes(RUNGS["M2+"]):
        slotted = slot_abc(abc, 16, gchords_apart=True)
        body = slotted[-(-_header_end(abc) // 16) * 16:]
        opening = [m.start() for m in re.finditer(rb'"[^"]*"', body)]
        assert opening and all(at % SLOT == 0 for at in opening)


def test_the_fewest_notes_played_leave_out_rests_tied_notes_and_comments():
    abc = b'X:1\nT:CDE\nK:G\n"Am"[ceg]2 z c- c {g}A |: B2 :| % ABC\nw: la la\n^f-|f2 x2|]\n'
    assert fewest_notes_played(abc) == 5  # [ceg] c A B ^f
    assert fewest_notes_played(b"X:1\nT:t\nK:C\n") == 0


@needs_abc2midi
@pytest.mark.parametrize("rung", sorted(RUNGS))
def test_abc2midi_plays_at_least_the_fewest_notes_and_exactly_them_on_plain_tunes(rung):
    """The bound holds on every rung (repeats, chords, grace notes, guitar chords add notes) and
    is exact where the tune has none of them."""
    for i in range(20):
        abc = synthetic_tune(7, i, RUNGS[rung])
        played = len(midi_notes(MusicConverter.reference_abc_to_midi(abc)))
        assert played >= fewest_notes_played(abc.encode()), abc
        if rung in ("M0", "M1"):
            assert played == fewest_notes_played(abc.encode()), abc


def test_text_with_a_fill_byte_has_no_slot_layout():
    with pytest.raises(ValueError, match="NUL"):
        slot_abc(b"X:1\nK:C\nC\x00D|\n", 16)


@pytest.mark.parametrize("layout", ["note-slots", "note-gchord-slots"])
def test_codec_option_encodes_slotted_prompts_and_decodes_the_text(layout):
    codec = make_codec("abc2midi", 16, midi="events", abc=layout)
    assert codec.options() == {"task": "abc2midi", "align": 16, "midi": "events", "abc": layout}
    assert "abc" not in make_codec("abc2midi", 16, midi="events").options()
    assert isinstance(codec_from_options(codec.options()), MusicCodec)
    assert codec_from_options(codec.options()).abc == layout
    spec = replace(music_spec(["synthetic"], seed=5, converter="abc2midi"), synth=RUNGS["M2+"])
    for row in (make_pair(spec, i) for i in range(4)):
        pair = MusicPair(row["abc"], row["midi"])
        ids, mask = codec.encode(pair)
        content = ids[16:]
        content = bytes(content[: np.flatnonzero(content == PAD)[0]].astype(np.uint8))
        assert content == slot_abc(pair.abc.encode(), 16, layout == "note-gchord-slots")
        assert codec.decode(ids) == pair
        plain_ids, plain_mask = make_codec("abc2midi", 16, midi="events").encode(pair)
        assert np.array_equal(ids[mask], plain_ids[plain_mask])  # the same target, scored alike


def test_an_unknown_abc_layout_is_refused():
    with pytest.raises(ValueError, match="unknown ABC layout"):
        make_codec("abc2midi", 16, abc="slots")


@pytest.mark.parametrize("gchords_apart", [False, True])
@pytest.mark.parametrize("rung", sorted(RUNGS))
def test_as_a_target_each_fill_run_is_decided_by_its_first_byte(rung, gchords_apart):
    """Written byte by byte, the layout leaves one choice per FILL run (where it starts); the
    rest of the run is due (`fill_due`), and no FILL comes where the layout has none."""
    for abc in _tunes(RUNGS[rung], 20):
        slotted = slot_abc(abc, 16, gchords_apart)
        for i, byte in enumerate(slotted):
            due, may_fill = fill_due(slotted[:i], 16)
            if due:
                assert byte == FILL, (i, slotted)
            elif byte == FILL:
                assert may_fill and slotted[i - 1] != FILL, (i, slotted)
        assert fill_due(slotted, 16)[0] == 0  # a whole layout ends with no fill due


def test_no_fill_before_the_key_line_ends_nor_at_a_slot_boundary():
    assert fill_due(b"X:1\nK:C", 16) == (0, False)
    assert fill_due(b"X:1\nK:C\n", 16) == (0, True)  # the header ends: fill to the patch
    assert fill_due(b"X:1\nK:C\n\x00", 16) == (7, False)
    assert fill_due(b"X:1\nK:C\n" + bytes(8) + b"C2", 16) == (0, True)
    assert fill_due(b"X:1\nK:C\n" + bytes(8) + b"C2\x00", 16) == (1, False)
    assert fill_due(b"X:1\nK:C\n" + bytes(8) + b"C2 |", 16) == (0, False)  # at a boundary


@pytest.mark.parametrize("layout", ["note-slots", "note-gchord-slots"])
def test_midi2abc_writes_slotted_abc_scoring_only_each_runs_first_fill(layout):
    codec = make_codec("midi2abc", 16, midi="events", abc=layout)
    assert codec_from_options(codec.options()).abc == layout
    spec = replace(music_spec(["synthetic"], seed=5, converter="abc2midi"), synth=RUNGS["M2+"])
    for row in (make_pair(spec, i) for i in range(4)):
        pair = MusicPair(row["abc"], row["midi"])
        ids, mask = codec.encode(pair)
        assert codec.decode(ids) == pair
        start = len(codec.prompt(pair))
        target = ids[start:]
        end = int(np.flatnonzero(target == PAD)[0])
        content = bytes(target[:end].astype(np.uint8))
        assert content == slot_abc(pair.abc.encode(), 16, layout == "note-gchord-slots")
        assert codec.output_file(content) == pair.abc.encode()
        scored = mask[start:start + end]
        fill = np.frombuffer(content, np.uint8) == FILL
        first = fill & ~np.r_[False, fill[:-1]]
        assert scored[~fill].all() and scored[first].all() and not scored[fill & ~first].any()
        allowed = codec.constraint(pair).allowed
        for i, byte in enumerate(content):  # the true target is always allowed
            assert allowed(list(content[:i]))[byte], i
        assert allowed(list(content))[PAD]
