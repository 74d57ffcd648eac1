"""How long an ABC tune plays, from its written lengths (simulator/abc_length.py), and the
converter's length test of an output (`wrong_length`)."""

import pytest
from helpers import needs_abc2midi

from datagen.music.synthetic import LADDER, SynthOptions, synthetic_tune
from simulator.abc_length import TICKS_PER_BEAT, body_ticks
from simulator.long_tunes import wrong_length

HEAD = "X:1\nT:t\nM:4/4\nL:1/8\nK:C\n"
EIGHTH = TICKS_PER_BEAT // 2


@pytest.mark.parametrize("body, eighths", [
    ("CDEF GABc |]", 8),
    ("C2 D/ D// D/4 z3/2 x |", 2 + 0.5 + 0.25 + 0.25 + 1.5 + 1),
    ("(3CDE F2 | (3:2:2G4A2 |", 2 + 2 + 4),  # three in the time of two; two notes so
    ("C>D E<F G>>A |", 2 + 2 + 2),  # broken rhythm keeps equal pairs' time
    ("C2>D |", 3 + 0.5),  # and takes 3/2 and 1/2 of each note's own length
    ("[CEG]2 [C2E2]3 |", 2 + 6),  # a chord: its first note's length times the chord's
    ('"Am"{ga}!trill!c2 +f+d (e-e) |1 f :|2 g |]', 2 + 1 + 1 + 1 + 1 + 1),
    ("Z2 | C |", 16 + 1),  # whole-bar rests: a bar of the meter each
    ("HC2 !fermata!D C |", 4 + 2 + 1),  # abc2midi holds a note under a fermata twice as long
    ("CD\nP:B\nw: la la\nEF |", 4),  # field lines take no time
])
def test_written_lengths_add_up(body, eighths):
    assert body_ticks(HEAD + body + "\n") == eighths * EIGHTH


def test_the_unit_length_and_the_meter_come_from_the_header():
    assert body_ticks("X:1\nM:3/4\nL:1/4\nK:C\nCDE|\n") == 3 * TICKS_PER_BEAT
    assert body_ticks("X:1\nM:2/4\nK:C\nCDEF|\n") == TICKS_PER_BEAT  # no L: under 3/4: 1/16
    assert body_ticks("X:1\nM:6/8\nK:C\n(2CD|\n") == 3 * EIGHTH  # two in the time of three


@pytest.mark.parametrize("abc", [
    HEAD + "CD [L:1/4] EF|\n",  # the unit length changes inside the body
    HEAD + "CD|\nM:3/4\nEFG|\n",  # so does the meter
    HEAD.replace("K:C", "V:1\nK:C") + "CD|\n",  # voices
    "X:1\nM:none\nK:C\nZ2|\n",  # a whole-bar rest without a meter
    "X:1\nM:4/4\nK:C",  # no body
])
def test_what_the_reader_does_not_follow_is_none(abc):
    assert body_ticks(abc) is None


@needs_abc2midi
def test_abc2midis_files_play_as_long_as_the_notes_add_up_to():
    """On the full generator's tunes (repeats, endings, parts, guitar chords, ties, triplets,
    chords, grace notes, broken rhythm), abc2midi's file passes; a file that plays a note too long
    or too short, or is not MIDI, does not."""
    from simulator.facade import MusicConverter

    convert = MusicConverter.reference_abc_to_midi
    options = SynthOptions.parse("gchords=0.8,parts=0.6,broken=0.3,grace=0.3,triplets=0.3",
                                 LADDER["M2"])
    for i in range(8):
        abc = synthetic_tune(6, i, options)
        assert not wrong_length(abc, convert(abc)), abc
    tune = HEAD + "CDEF GABc | cBAG FEDC |]\n"
    assert not wrong_length(tune, convert(tune))
    assert wrong_length(tune, convert(HEAD + "CDEF GABc | cBAG FED |]\n"))  # too short
    assert wrong_length(tune, convert(HEAD + "CDEF GABc | cBAG FEDC | C |]\n"))  # too long
    assert wrong_length(tune, b"MThd junk")
    repeated = HEAD + "|: CDEF GABc :| cBAG FEDC |]\n"  # as the tune plays: the repeat
    assert wrong_length(repeated, convert(tune)) and not wrong_length(repeated, convert(repeated))
    assert not wrong_length(HEAD + "CD [L:1/4] EF|\n", b"MThd junk")  # unread: no test
