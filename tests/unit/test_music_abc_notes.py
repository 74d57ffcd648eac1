"""The plain-ABC note reader: which notes take a carried accidental."""

import pytest

from datagen.music.abc_notes import plain_notes
from tests.helpers import needs_abc2midi

HEAD = "X:1\nT:t\nM:4/4\nL:1/8\nK:C\n"


def test_an_accidental_carries_to_its_letter_in_every_octave_until_the_bar_line():
    notes = plain_notes(HEAD + "^c c c' C d z c|c\n")
    assert notes is not None
    assert [(n.accidental, n.letter, n.octave_marks, n.carried) for n in notes] == [
        ("^", "c", "", False), ("", "c", "", True), ("", "c", "'", True), ("", "C", "", True),
        ("", "d", "", False), ("", "c", "", True), ("", "c", "", False)]
    assert [n.natural_pitch for n in notes] == [72, 72, 84, 60, 74, 72, 72]


def test_a_natural_sign_carries_too_and_a_later_accidental_is_its_own():
    notes = plain_notes(HEAD + "=F F _F F,|\n")
    assert notes is not None
    assert [(n.accidental, n.carried) for n in notes] == [
        ("=", False), ("", True), ("_", False), ("", True)]
    assert notes[3].natural_pitch == 53


@pytest.mark.parametrize("body", ['"C"CDEF|', "[CE]DEF|", "{g}CDEF|", "C-CDEF|", "C[K:D]DEF|"])
def test_features_it_does_not_follow_leave_the_tune_unread(body):
    assert plain_notes(HEAD + body + "\n") is None


def test_a_tune_without_a_key_line_has_no_body():
    assert plain_notes("X:1\nT:t\nCDEF|\n") is None


@needs_abc2midi
def test_carried_notes_are_what_abc2midi_plays(tmp_path):
    """The rule checked against abc2midi itself: each note's pitch, from the reader's
    accidentals, matches the file abc2midi writes."""
    from datagen.music.convert import abc2midi
    from datagen.music.normalize import normalize_midi, notes

    abc = HEAD + "^c c c' C d _B B b|c =F F ^F|\n"
    read = plain_notes(abc)
    assert read is not None
    shift: dict[str, int] = {}  # the last accidental's shift of each letter
    want = []
    for n in read:
        if n.accidental:
            shift[n.letter.upper()] = {"^": 1, "_": -1, "=": 0}[n.accidental]
        want.append(n.natural_pitch + (shift[n.letter.upper()]
                                       if n.accidental or n.carried else 0))
    done = abc2midi(abc, str(tmp_path))
    assert done.failure is None
    assert [pitch for _, _, pitch, _ in notes(normalize_midi(done.midi))] == want
