"""Tunes longer than the context, in segments: unrolling repeats and parts, carrying guitar
chords, joining MIDI files, and (with abc2midi) that the segments' files joined are the whole
tune's file."""

import io

import mido
import pytest
from helpers import needs_abc2midi

from datagen.music.segments import Segment, Unsupported, play_segments
from datagen.music.synthetic import LADDER, SynthOptions, synthetic_tune
from simulator.long_tunes import TAIL, convert_in_segments, convert_tune, cut_short, join_midi
from simulator.metrics import midi_notes

HEAD = "X:1\nT:t\nM:2/4\nL:1/8\nK:C\n"


def bodies(abc: str, bars: int = 4) -> list[str]:
    """The bodies of the segments in playing order."""
    return [" | ".join(s.bars) for s in play_segments(abc, bars)]


def test_repeats_and_endings_unroll():
    assert bodies(HEAD + "|: A B | c d :| e f |]\n", 8) == ["A B | c d | A B | c d | e f"]
    assert bodies(HEAD + "|: A B |1 c d :|2 e f |]\n", 8) == ["A B | c d | A B | e f"]
    assert bodies(HEAD + "A B | c d :| e f |]\n", 8) == ["A B | c d | A B | c d | e f"]
    assert bodies(HEAD + "|: A B :: c d :| [2 e f |]\n", 8) == [
        "A B | A B | c d | c d | e f"]


def test_segments_cut_every_n_bars_and_repeat_parts_in_order():
    abc = HEAD.replace("K:C", "P:ABA\nK:C") + "P:A\nA B | c d | e f |]\nP:B\nG A |]\n"
    segments = play_segments(abc, 2)
    assert [s.text.split("\n")[5] for s in segments] == [
        "A B | c d |]", "e f |]", "G A |]", "A B | c d |]", "e f |]"]
    assert segments[0] == segments[3] and all("P:" not in s.text for s in segments)


def test_guitar_chord_sounding_at_a_cut_opens_the_next_segment():
    assert bodies(HEAD + '"G"A B | c d | "D7"e f | g a | b c |]\n', 2) == [
        '"G"A B | c d', '"D7"e f | g a', '"D7"b c']
    assert bodies(HEAD + '"G"A B | "^text"c d |]\n', 1) == ['"G"A B', '"G""^text"c d']
    # abc2midi reads a chord only where the text starts with a note's letter
    assert bodies(HEAD + '"G"A B | "segno"c "4"d | e f |]\n', 1)[2] == '"G"e f'


def test_a_tie_over_a_cut_keeps_its_bars_together():
    assert bodies(HEAD + "A B | c d- | d e | f g |]\n", 2) == ["A B | c d- | d e", "f g"]


def test_a_repeat_without_a_start_goes_back_to_a_double_bar_after_a_repeat():
    """As abc2midi plays it: a double bar starts a repeat only after an earlier one has ended."""
    assert bodies(HEAD + "C D || E F :|\n", 8) == ["C D | E F | C D | E F"]
    assert bodies(HEAD + "|: C D :| E F || G A :| B c |]\n", 8) == [
        "C D | C D | E F | G A | G A | B c"]
    assert bodies(HEAD + "|: C D || E F :| G A |]\n", 8) == ["C D | E F | C D | E F | G A"]


def test_fields_the_body_changes_head_the_segments_after_them():
    abc = HEAD + "A B | c d |]\nK:G\nf g | [L:1/16] a b |]\n"
    assert [(s.header, s.bars) for s in play_segments(abc, 4)] == [
        (HEAD, ("A B", "c d")), (HEAD.replace("K:C", "K:G"), ("f g",)),
        (HEAD.replace("L:1/8", "L:1/16").replace("K:C", "K:G"), ("a b",))]
    # a new meter keeps the unit length the header's meter gave (1/16 under 2/4)
    no_unit = "X:1\nT:t\nM:2/4\nK:C\nC D |\nM:3/4 % waltz\nE F G |]\n"
    assert play_segments(no_unit, 4)[1].header == "X:1\nT:t\nM:3/4\nL:1/16\nK:C\n"


def test_voices_are_cut_at_the_same_bars():
    abc = HEAD + "[V:1] A B | c d :|\n[V:2] C D | E F :|\n"
    segments = play_segments(abc, 2)
    assert [s.voices for s in segments] == [(("A B", "c d"), ("C D", "E F"))] * 2
    assert segments[0].text == HEAD + "V:1\nA B | c d |]\nV:2\nC D | E F |]\n"
    assert play_segments(HEAD + "V:1\nA B |\nV:2\nC D |\n", 4)[0].names == ("1", "2")


def test_text_layout_and_old_line_breaks_are_not_played():
    abc = (HEAD.replace("K:C", "P:AB % a da capo\nK:C") + "%%MIDI transpose -12\nP:A\n"
           "%%vskip 10\nA !B |]\nw: la la\nP:B\nT:Second\nN:a note\nc d |]\n")
    segments = play_segments(abc, 4)
    assert [s.bars for s in segments] == [("A B",), ("c d",)]
    assert segments[0].header == HEAD.replace("K:C", "%%MIDI transpose -12\nK:C")


@pytest.mark.parametrize("abc", [
    HEAD + "[V:1] A B | c d |]\n[V:2] C D |]\n",
    HEAD + "[V:1] A B |]\nK:G\nc d |]\n[V:2] C D | E F |]\n",
    HEAD + "A [K:G] B | c d |]\n",
    HEAD + "A B | [V:2] c d |]\n",
    HEAD + "|: A B |1 c d :|2 e f :|3 g a |]\n",
    HEAD + "A B |]\n%%MIDI program 2\nc d |]\n",
    HEAD.replace("K:C", "P:(AB)2\nK:C") + "P:A\nA B |]\nP:B\nc d |]\n",
    HEAD.replace("K:C", "P:AC\nK:C") + "P:A\nA B |]\n",
    "X:1\nT:no key\nA B |]\n",
])
def test_what_a_segment_cannot_carry_is_refused(abc):
    with pytest.raises(Unsupported):
        play_segments(abc, 4)


def test_segments_repeat_the_canonical_header():
    """Comments and text fields are dropped first (datagen.music.abc_header), so a `%%` comment in a
    real header does not refuse the tune."""
    real = "X: 7\nT: t\nN: notes\n%% ^F G A (a comment)\nM: 2/4\nL:1/8\nK: C\nA B | c d |]\n"
    assert [s.header for s in play_segments(real, 1)] == ["X:7\nT:t\nM:2/4\nL:1/8\nK:C\n"] * 2


def _file(notes: list[tuple[int, int]], end: int, n_tracks: int = 1) -> bytes:
    """A file of quarter notes (onset ticks, pitch) ending at `end` + TAIL."""
    mid = mido.MidiFile(type=0 if n_tracks == 1 else 1, ticks_per_beat=480)
    meta = [mido.MetaMessage("set_tempo", tempo=500000, time=0)]
    events, now = [], 0
    for at, pitch in notes:
        events += [mido.Message("note_on", note=pitch, velocity=80, time=at - now),
                   mido.Message("note_off", note=pitch, velocity=0, time=480)]
        now = at + 480
    tracks = [meta + events] if n_tracks == 1 else [meta, events]
    for t in tracks:
        at = sum(m.time for m in t)
        mid.tracks.append(mido.MidiTrack(t + [mido.MetaMessage("end_of_track",
                                                               time=end + TAIL - at)]))
    buf = io.BytesIO()
    mid.save(file=buf)
    return buf.getvalue()


def test_join_moves_each_file_by_the_music_before_it():
    a = _file([(0, 60), (480, 62)], end=960)
    b = _file([(0, 64)], end=960)
    joined = join_midi([a, b, a])
    assert midi_notes(joined) == [(0, 60, 0.0, 1.0), (0, 62, 1.0, 1.0), (0, 64, 2.0, 1.0),
                                  (0, 60, 4.0, 1.0), (0, 62, 5.0, 1.0)]
    mid = mido.MidiFile(file=io.BytesIO(joined))
    assert mid.type == 0 and sum(m.time for m in mid.tracks[0]) == 3 * 960 + TAIL
    assert sum(m.type == "set_tempo" for m in mid.tracks[0]) == 1


def test_join_of_a_file_that_ends_its_track_too_early_stays_in_time_order():
    early = _file([(0, 60), (480, 62)], end=960 - TAIL)  # its track ends at its last note-off
    notes = midi_notes(join_midi([early, _file([(0, 64)], end=480)]))
    assert notes[-1] == (0, 64, 2.0, 1.0)  # after the last event of the file before


def test_join_puts_one_track_files_notes_beside_several_track_files():
    joined = mido.MidiFile(file=io.BytesIO(join_midi([_file([(0, 60)], 480),
                                                      _file([(0, 62)], 480, n_tracks=2)])))
    assert joined.type == 1 and len(joined.tracks) == 2
    assert [m.note for m in joined.tracks[1] if m.type == "note_on"] == [60, 62]
    assert all(not m.is_meta or m.type == "end_of_track" for m in joined.tracks[1])


def test_a_segment_that_does_not_fit_is_cut_in_half_and_each_distinct_one_converted_once():
    abc = HEAD + '|: "G"A B | c d | e f | g a- | a b :|\n'
    asked = []

    def convert(texts):  # a stand-in model that takes at most two bars, one beat a bar
        asked.append(len(texts))
        return [None if t.count("|") > 2 else _file([(0, 60)], 480 * t.count("|"))
                for t in texts]

    midi = mido.MidiFile(file=io.BytesIO(convert_in_segments(abc, convert, 4)))
    # the ten bars played: [AB cd ef ga- ab] twice (a tie extends the segment), converted once;
    # then its halves [AB cd ef] and [ga- ab], then [AB cd] and ["G"ef]
    assert asked == [1, 2, 2]
    assert sum(m.time for m in midi.tracks[0]) == 10 * 480 + TAIL
    assert Segment(HEAD, (("A B", "c d"),)).halves() == [Segment(HEAD, (("A B",),)),
                                                          Segment(HEAD, (("c d",),))]
    tied = Segment(HEAD, (("A B", "c d"), ("C D-", "D E")), ("1", "2"))
    assert tied.halves() == [tied]  # a tie in either voice
    # one bar over several lines (a tune without bar lines): at the line break nearest the middle
    assert Segment(HEAD, (("A B\nc d\ne f",),)).halves() == [Segment(HEAD, (("A B\nc d",),)),
                                                            Segment(HEAD, (("e f",),))]
    assert Segment(HEAD, (("A B-\nB d",),)).halves() == [Segment(HEAD, (("A B-\nB d",),))]
    with pytest.raises(Unsupported, match="does not fit the model's context"):
        convert_in_segments(abc, lambda texts: [None] * len(texts), 4)


@needs_abc2midi
def test_segments_converted_by_abc2midi_join_into_the_whole_tunes_file():
    """abc2midi on each segment, joined, is abc2midi on the whole tune, byte for byte (the full
    generator: repeats, endings, parts, guitar chords, ties, triplets, chords)."""
    from simulator.facade import MusicConverter

    convert = MusicConverter.reference_abc_to_midi
    options = SynthOptions.parse("gchords=0.8,parts=0.6", LADDER["M2"])
    for i in range(6):
        abc = synthetic_tune(5, i, options)
        segments = play_segments(abc, 4)
        assert join_midi([convert(s.text) for s in segments]) == convert(abc), abc


@needs_abc2midi
@pytest.mark.parametrize("abc", [
    HEAD + "|: CDEF GABc :| cBAG FEDC || DEFG ABcd | dcBA GFED :|\n",  # back to the double bar
    HEAD + "CDEF GABc | cBAG FEDC |]\nK:G\nDEFG ABcd | [L:1/16] dcBA GFED dcBA GFED |]\n",
    "X:1\nT:t\nM:2/4\nK:C\nCDEF GABc | cBAG FEDC |\nM:3/4\nCDEF GABc cBAG | FEDC CDEF GABc |]\n",
    HEAD + "[V:1] CDEF GABc | cBAG FEDC :|\n[V:2] C,8 | G,8 :|\n",
    HEAD.replace("K:C", "%%MIDI transpose -12\nK:C") + "%%vskip 4\nCDEF !GABc | cBAG FEDC |\n"
    "w: la la\nN:a note\nDEFG ABcd | dcBA GFED |]\n",
])
def test_fields_voices_and_text_lines_play_in_segments_as_in_the_whole_tune(abc):
    """abc2midi on each segment, joined, plays the notes abc2midi plays from the whole tune."""
    from simulator.facade import MusicConverter

    convert = MusicConverter.reference_abc_to_midi
    joined = join_midi([convert(s.text) for s in play_segments(abc, 2)])
    assert midi_notes(joined) == midi_notes(convert(abc))


@needs_abc2midi
def test_a_tune_without_bar_lines_is_halved_at_line_breaks_as_abc2midi_plays_it():
    from simulator.facade import MusicConverter

    convert = MusicConverter.reference_abc_to_midi
    abc = HEAD.replace("K:C", "%%MIDI nobarlines\nK:C") + "CDEF GABc ^cBAG FEDC\n" * 6
    joined = convert_in_segments(abc, lambda texts: [
        convert(t) if len(t) < 120 else None for t in texts], 4)  # two lines at most
    assert midi_notes(joined) == midi_notes(convert(abc))


@needs_abc2midi
def test_an_output_with_fewer_notes_than_the_tune_plays_is_cut_short():
    """Counted as the tune plays, where it can be cut into segments."""
    from simulator.facade import MusicConverter

    convert = MusicConverter.reference_abc_to_midi
    tune = HEAD + "CDEF GABc | cBAG FEDC |]\n"
    assert not cut_short(tune, convert(tune))
    assert cut_short(tune, convert(HEAD + "CDEF GABc | cBAG FED2 |]\n"))  # a note short
    assert cut_short(tune, b"MThd junk")
    repeated = HEAD + "|: CDEF GABc :| cBAG FEDC |]\n"  # the notes as played: the repeat
    assert cut_short(repeated, convert(tune)) and not cut_short(repeated, convert(repeated))
    uncut = repeated.replace(":| ", ":|\n%%MIDI program 2\n")  # cannot be cut: as written
    assert not cut_short(uncut, convert(tune))


def test_the_policy_converts_long_tunes_in_segments_and_short_ones_whole(monkeypatch):
    """convert_tune: a tune of more than N bars in segments first (whole only where they fail);
    a shorter one whole, and in segments after all where that does not fit or is cut short."""
    from simulator import long_tunes

    calls: list[str] = []

    def whole(result):
        return lambda: calls.append("whole") or result

    def segments(texts):
        calls.append("segments")
        return [b"seg"] * len(texts)

    monkeypatch.setattr(long_tunes, "join_midi", lambda files: b"joined")
    monkeypatch.setattr(long_tunes, "cut_short", lambda abc, midi: midi == b"short")
    short, long = HEAD + "CDEF GABc | cBAG FEDC |]\n", HEAD + "CDEF GABc | cBAG FEDC |]\n" * 3
    assert long_tunes.plays_more_than(long, 4) and not long_tunes.plays_more_than(short, 4)
    assert not long_tunes.plays_more_than(HEAD + "C2 |" + "CDEF GABc | cBAG FEDC |" * 2, 4)
    assert long_tunes.plays_more_than(HEAD + "|: CDEF GABc | cBAG FEDC :|" * 2, 4)  # 8 bars
    assert convert_tune(long, whole(b"w"), segments, 4) == b"joined" and calls == ["segments"]
    calls.clear()
    assert convert_tune(short, whole(b"w"), segments, 4) == b"w" and calls == ["whole"]
    for result in (None, b"short"):
        calls.clear()
        assert convert_tune(short, whole(result), segments, 4) == b"joined"
        assert calls == ["whole", "segments"]
    calls.clear()
    assert convert_tune(long, whole(None), segments, None) is None and calls == ["whole"]
    assert convert_tune(long, whole(b"w"), lambda texts: [None] * len(texts), 4) == b"w"
    with pytest.raises(Unsupported, match="does not fit"):  # neither way
        convert_tune(long, whole(None), lambda texts: [None] * len(texts), 4)
