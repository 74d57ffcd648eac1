"""An ABC body with its notes grouped by beats (simulator/abc_beats.py): the generator's own
spacing, and (with abc2midi) the same file as the body written otherwise."""

import pytest
from helpers import needs_abc2midi

from datagen.music.synthetic import LADDER, SynthOptions, synthetic_tune
from simulator.abc_beats import beat_spaced
from simulator.codec import MusicCodec

HEAD = "X:1\nT:t\nM:4/4\nL:1/8\nK:G\n"


@pytest.mark.parametrize("head, body, spaced", [
    (HEAD, '|:GABc dedB|d2 g2 B2 d2|"Am"c>B (3ABc d2-d2:|',
     '|:GA Bc de dB | d2 g2 B2 d2 | "Am"c>B (3ABc d2-d2 :|'),
    (HEAD.replace("4/4", "6/8"), "AFA dfa|{g}f2e dcB|\nA3 z3|]", "AFA dfa | {g}f2e dcB |\nA3 z3 |]"),
    (HEAD.replace("4/4", "C|"), "GABc dedB|g4 f4|]", "GABc dedB | g4 f4 |]"),  # half-note beats
    (HEAD, "G A B c d e f g|]", "GA Bc de fg |]"),  # spaces inside a beat go
    (HEAD, 'G "D7"A B c|\nP:B\nd4 d4|]', 'G"D7"A Bc |\nP:B\nd4 d4 |]'),  # a part's label stays
    (HEAD, "G2 | A2B2 c4\nd4 | e8 \\\n| f8 |]", "G2 | A2 B2 c4 d4 | e8 | f8 |]"),  # a bar goes on
])
def test_notes_are_grouped_by_the_beats_of_the_meter(head, body, spaced):
    assert beat_spaced(head + body + "\n") == head + spaced + "\n"


@pytest.mark.parametrize("abc", [
    HEAD.replace("4/4", "5/4") + "GABcd efgab|]\n",  # a meter the generator does not write
    HEAD + "GABc dedB|\nL:1/16\nGABc dedB|]\n",  # the unit length changes
    HEAD + "[V:1] GABc dedB|]\n",
    "X:1\nT:no key\nGABc|\n",
])
def test_what_it_does_not_follow_is_left_as_written(abc):
    assert beat_spaced(abc) == abc


def test_a_beamed_generator_tune_comes_out_as_the_generator_spaces_it():
    """The same tune with `beamed_bars` and without it: beat_spaced gives the spaced one back;
    and it leaves the spaced one as it is."""
    mix = ("beamed_bars={},bar_ties=0.5,triplets=0.3,broken=0.3,meters=1,units=1,pickups=0.5,"
           "grace=0.3,chords=0.3,gchords=0.7,parts=0.5,"
           "endings=0.5,rest_runs=0.5,wide_meters=0.5")
    for i in range(30):
        beamed = synthetic_tune(5, i, SynthOptions.parse(mix.format(1), LADDER["M2"]))
        spaced = synthetic_tune(5, i, SynthOptions.parse(mix.format(0), LADDER["M2"]))
        assert beat_spaced(beamed) == spaced
        assert beat_spaced(spaced) == spaced


def test_the_codec_reads_the_body_grouped_by_beats_only_where_asked():
    tune = HEAD + "GABc dedB|]\n"
    beats = MusicCodec("abc2midi", abc="note-slots", body="beats")
    written = MusicCodec("abc2midi", abc="note-slots")
    assert beats.abc_content(tune) == written.abc_content(beat_spaced(tune))
    assert beats.abc_content(tune) != written.abc_content(tune)
    assert beats.options()["body"] == "beats" and "body" not in written.options()
    with pytest.raises(ValueError, match="abc2midi"):
        MusicCodec("midi2abc", body="beats")


@needs_abc2midi
def test_abc2midi_plays_the_body_grouped_by_beats_as_written():
    from simulator.facade import MusicConverter

    convert = MusicConverter.reference_abc_to_midi
    for body in ['|:GABc dedB|"D7"d2 g2 B2 d2|c>BAG (3ABc d2-|d4 z4:|', "GABc dedB|]",
                 "A/B/c/d/ e>f g2 G,B,DG|]"]:
        tune = HEAD + body + "\n"
        assert beat_spaced(tune) != tune
        assert convert(beat_spaced(tune)) == convert(tune)
