"""The canonical header a music model reads (datagen/music/abc_header.py)."""

from pathlib import Path

import pytest

from datagen.music.abc_header import canonical_header
from datagen.music.synthetic import LADDER, SynthOptions, synthetic_tune
from simulator.codec import MusicCodec
from tests.helpers import needs_abc2midi

REAL = """X: 1585
T: Big Dan O'Mahony
T: (second title)
N:"Collected by F.O'Neill."
O: Ireland
Z:Transcribed by someone, 9/29/98
% a comment
%% ^F  G  A  B (a comment too)
%%MIDI program 41
I: :: ::
M: C
L: 1/8  
R: Hornpipe
K: A
(GB)|AGAB A2 (Bd)|edBA G2 (Bd)|
N: a note in the body stays
e^def gfea|edBA G3 B|]
"""


def test_the_header_keeps_what_decides_the_midi_in_the_generators_form():
    assert canonical_header(REAL) == """X:1585
T:Big Dan O'Mahony
%%MIDI program 41
M:C
L:1/8
R:Hornpipe
K:A
(GB)|AGAB A2 (Bd)|edBA G2 (Bd)|
N: a note in the body stays
e^def gfea|edBA G3 B|]
"""
    assert canonical_header(canonical_header(REAL)) == canonical_header(REAL)
    assert "R:" not in canonical_header(REAL.replace("R: Hornpipe", "R: reel"))
    assert canonical_header("no key line\nabc") == "no key line\nabc"


def test_the_untitled_header_drops_the_tunes_number_and_titles_only():
    assert canonical_header(REAL, titled=False) == canonical_header(REAL).replace(
        "X:1585\nT:Big Dan O'Mahony\n", "")
    renamed = REAL.replace("X: 1585", "X: 3").replace("T: Big Dan O'Mahony", "T: Reel 633")
    codec = MusicCodec("abc2midi", abc="note-slots", header="untitled")
    assert codec.abc_content(renamed) == codec.abc_content(REAL)
    assert MusicCodec("abc2midi", abc="note-slots").abc_content(renamed) != codec.abc_content(REAL)
    assert codec.options()["header"] == "untitled"
    assert "header" not in MusicCodec("abc2midi").options()  # as before the option
    with pytest.raises(ValueError, match="midi2abc writes must start with its X: and T:"):
        MusicCodec("midi2abc", header="untitled")


def test_the_generators_tunes_are_already_canonical():
    everything = SynthOptions(**{name: 1.0 for name in SynthOptions.__dataclass_fields__})
    for options in (LADDER["M0"], LADDER["M2"], everything):
        for i in range(50):
            tune = synthetic_tune(9, i, options)
            assert canonical_header(tune) == tune


def test_the_codec_reads_a_tune_through_its_canonical_header():
    codec = MusicCodec("abc2midi", abc="note-slots")
    assert codec.abc_content(REAL) == codec.abc_content(canonical_header(REAL))


def _normalized_midi(abc: str, folder: Path) -> bytes:
    from datagen.music.convert import abc2midi
    from datagen.music.normalize import normalize_midi

    return normalize_midi(abc2midi(abc, str(folder)).midi)


@needs_abc2midi
@pytest.mark.parametrize("rhythm", ["reel", "Hornpipe"])
def test_abc2midi_writes_the_same_midi_for_the_canonical_header(tmp_path, rhythm):
    """What is dropped changes nothing in the normalized MIDI; a hornpipe's `R:` would, so it
    stays."""
    tune = REAL.replace("R: Hornpipe", f"R: {rhythm}")
    midi = _normalized_midi(tune, tmp_path)
    assert _normalized_midi(canonical_header(tune), tmp_path) == midi
    without_rhythm = tune.replace(f"R: {rhythm}\n", "")
    assert (_normalized_midi(without_rhythm, tmp_path) == midi) == (rhythm == "reel")


@needs_abc2midi
def test_abc2midi_writes_the_same_midi_whatever_the_number_and_title(tmp_path):
    """What the untitled header leaves out changes nothing in the normalized MIDI either: a
    title that names a meter and ends in a number, another number, no second title."""
    renamed = (REAL.replace("X: 1585", "X: 3").replace("T: Big Dan O'Mahony", "T: Waltz 3/4 633")
               .replace("T: (second title)\n", ""))
    assert _normalized_midi(renamed, tmp_path) == _normalized_midi(REAL, tmp_path)
