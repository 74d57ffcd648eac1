"""The synthetic ABC generator: valid for abc2midi, deterministic, covering the features."""

import re
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bytesim_common.errors import UserError
from datagen.music.abc_notes import plain_notes
from datagen.music.convert import abc2midi
from datagen.music.synthetic import (
    KEYS,
    LADDER,
    METERS,
    REST_RUN,
    WIDE_METERS,
    SynthOptions,
    synthetic_tune,
)
from tests.helpers import needs_abc2midi


def _abc2midi_complaints(abc: str, folder) -> list[str]:
    """The errors and warnings abc2midi prints converting `abc` (to `folder`/t.mid)."""
    (folder / "t.abc").write_text(abc)
    run = subprocess.run(["abc2midi", "t.abc", "-o", "t.mid"], cwd=folder, capture_output=True,
                         text=True, check=False)
    return [m for m in run.stdout.splitlines() if m.startswith(("Error", "Warning"))]


@needs_abc2midi
@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32), index=st.integers(0, 10**6))
def test_abc2midi_converts_synthetic_tunes_without_errors_or_warnings(tmp_path_factory, seed,
                                                                       index):
    abc = synthetic_tune(seed, index)
    d = tmp_path_factory.mktemp("abc")
    assert _abc2midi_complaints(abc, d) == [], abc
    assert (d / "t.mid").stat().st_size > 0


@needs_abc2midi
@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_every_feature_at_full_probability_still_converts(tmp_path_factory, seed):
    everything = SynthOptions(**{name: 1.0 for name in SynthOptions.__dataclass_fields__})
    done = abc2midi(synthetic_tune(seed, 0, everything), str(tmp_path_factory.mktemp("abc")))
    assert done.failure is None and done.errors == 0


def test_same_tunes_in_another_process():
    here = [synthetic_tune(5, i) for i in range(20)]
    code = ("from datagen.music.synthetic import synthetic_tune; import sys; "
            "sys.stdout.write('\\x00'.join(synthetic_tune(5, i) for i in range(20)))")
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, env={"PYTHONHASHSEED": "123", "PATH": ""}).stdout
    assert there.split("\x00") == here
    assert synthetic_tune(5, 0) != synthetic_tune(6, 0) != synthetic_tune(5, 1)


def test_tunes_cover_the_features():
    text = "\n".join(synthetic_tune(11, i) for i in range(400))
    meters = set(re.findall(r"^M:(.+)$", text, re.MULTILINE))
    keys = set(re.findall(r"^K:(.+)$", text, re.MULTILINE))
    assert meters == set(METERS)
    assert len(keys) > 60 and len(KEYS) > 100
    for mode in ("m", "dor", "phr", "lyd", "mix", "loc"):
        assert any(k.endswith(mode) for k in keys), mode
    assert {"L:1/4", "L:1/8", "L:1/16"} <= set(re.findall(r"^L:\S+", text, re.MULTILINE))
    for feature in ("Q:", "P:A", "|:", ":|", "|1", ":|2", "(3", ">", "<", "^", "_", "=", ",",
                    "'", "z", "-", "(", "[", '"', "{", "/"):
        assert feature in text, feature


def test_mix_option_parsing():
    assert SynthOptions.parse("chords=0.5, triplets=0").chords == 0.5
    assert SynthOptions.parse(None) == SynthOptions()
    for bad in ("nosuch=1", "chords=x", "chords=2"):
        with pytest.raises(UserError):
            SynthOptions.parse(bad)
    none = SynthOptions(**{name: 0.0 for name in SynthOptions.__dataclass_fields__})
    plain = "\n".join(synthetic_tune(1, i, none) for i in range(50))
    assert not re.search(r'\[[A-Ga-g]|[{}"]|\(3|\|:', plain)


def _bodies(options: SynthOptions, n: int) -> list[tuple[dict[str, str], str]]:
    """(header fields, body) of tunes 0..n-1 of seed 3."""
    out = []
    for i in range(n):
        lines = synthetic_tune(3, i, options).splitlines()
        head = {ln[0]: ln[2:] for ln in lines if re.match(r"^[A-Z]:", ln)}
        out.append((head, "\n".join(ln for ln in lines if not re.match(r"^[A-Z]:", ln))))
    return out


def test_ladder_m0_is_one_voice_in_c_of_plain_eighths():
    for head, body in _bodies(LADDER["M0"], 60):
        assert head["K"] in ("C", "Cmaj") and (head["M"], head["L"]) == ("4/4", "1/8")
        assert "Q" not in head and "P" not in head
        assert re.fullmatch(r"[A-Ga-g ]+( \| [A-Ga-g ]+){3} \|\]", body), body
        assert len(re.findall(r"[A-Ga-g]", body)) == 32  # 4 bars of 8 eighths


@needs_abc2midi
def test_ladder_m0_converts_to_notes_of_one_length(tmp_path):
    from datagen.music.normalize import normalize_midi, notes

    for i in range(5):
        done = abc2midi(synthetic_tune(3, i, LADDER["M0"]), str(tmp_path))
        assert done.failure is None and done.errors == 0
        found = notes(normalize_midi(done.midi))
        assert len(found) == 32 and {round(d, 2) for _, d, _, _ in found} <= {0.5, 0.49}


def test_ladder_m1_adds_keys_accidentals_octaves_lengths_and_rests_only():
    tunes = _bodies(LADDER["M1"], 150)
    text = "\n".join(body for _, body in tunes)
    assert len({head["K"] for head, _ in tunes}) > 30
    assert {(head["M"], head["L"]) for head, _ in tunes} == {("4/4", "1/8")}
    for feature in ("^", "_", "=", ",", "'", "z", "/", "2"):
        assert feature in text, feature
    assert not re.search(r'\[[A-Ga-g]|[{}"()<>-]|\|:|:\|', text)


def test_ladder_m2_is_the_full_generator_and_the_rungs_are_chosen_by_name():
    from datagen.music.build import music_spec

    assert LADDER["M2"] == SynthOptions()
    assert music_spec(["synthetic"], 0, ladder="M0").synth == LADDER["M0"]
    assert music_spec(["synthetic"], 0, ladder="M0", synth_mix="rests=0.5").synth.rests == 0.5
    assert music_spec(["synthetic"], 0, ladder="M0", synth_mix="rests=0.5").synth.keys == 0.0
    with pytest.raises(UserError, match="--ladder"):
        music_spec(["synthetic"], 0, ladder="M3")


@needs_abc2midi
def test_pickups_open_the_tune_with_one_beat_before_the_first_full_bar(tmp_path):
    """`pickups`: an anacrusis (the demo tune has one); at 0, the default, tunes are as before."""
    from datagen.music.normalize import normalize_midi, notes

    with_pickup = SynthOptions.parse("pickups=1", LADDER["M0"])
    assert _bodies(SynthOptions.parse("pickups=0", LADDER["M0"]), 5) == _bodies(LADDER["M0"], 5)
    for i, (head, body) in enumerate(_bodies(with_pickup, 5)):
        assert re.match(r"[A-Ga-g]{2} \| ", body), body  # one beat: two eighths
        done = abc2midi(synthetic_tune(3, i, with_pickup), str(tmp_path))
        assert done.failure is None and done.errors == 0
        found = notes(normalize_midi(done.midi))
        onsets = [round(onset, 1) for onset, _, _, _ in found]
        assert len(found) == 34 and onsets[:3] == [0.0, 0.5, 1.0]  # bar 1 starts a beat in


def test_titles_move_the_notes_against_the_patch_grid():
    """`titles`: the title goes on with 0-15 random letters, so the notes start at every offset
    modulo a 16-byte patch; at 0, the default, tunes are as before."""
    assert _bodies(SynthOptions.parse("titles=0", LADDER["M0"]), 5) == _bodies(LADDER["M0"], 5)
    titled = SynthOptions.parse("titles=1", LADDER["M0"])
    offsets = set()
    for i in range(200):
        text = synthetic_tune(3, i, titled)
        title = re.search(r"^T:(.*)$", text, re.MULTILINE).group(1)
        assert re.fullmatch(rf"Synthetic tune {i + 1}( [a-z]{{1,15}})?", title), title
        offsets.add(text.index("\nK:") % 16)
    assert offsets == set(range(16))


def test_free_titles_are_short_words_that_put_the_header_lines_anywhere_on_the_grid():
    """`free_titles`: 1-3 random words replace "Synthetic tune N", so headers as short as a
    real tune's occur and each header line starts at every offset modulo a 16-byte patch; at 0,
    the default, tunes are as before."""
    m1 = LADDER["M1"]
    assert [synthetic_tune(3, i, SynthOptions.parse("free_titles=0", m1)) for i in range(5)] \
        == [synthetic_tune(3, i, m1) for i in range(5)]
    free = SynthOptions.parse("free_titles=1", m1)
    offsets: dict[str, set[int]] = {"M": set(), "L": set(), "K": set()}
    lengths = set()
    for i in range(300):
        text = synthetic_tune(3, i, free)
        title = re.search(r"^T:(.*)$", text, re.MULTILINE).group(1)
        assert re.fullmatch(r"[A-Z][a-z]{0,9}( [A-Z][a-z]{0,9}){0,2}", title), title
        lengths.add(len(title))
        for field, found in offsets.items():
            found.add(text.index(f"\n{field}:") % 16)
    assert min(lengths) <= 2 and max(lengths) >= 25
    assert all(found == set(range(16)) for found in offsets.values())


def test_plain_lengths_spell_halves_and_quarters_one_way():
    """`plain_lengths`: a half unit is always `/2` and a quarter `/4` (the default draws `/` or
    `/2`, `//` or `/4`, which no MIDI file tells apart); at 0, the default, tunes are as before."""
    m2 = LADDER["M2"]  # every unit length: quarter units occur
    assert [synthetic_tune(3, i, SynthOptions.parse("plain_lengths=0", m2)) for i in range(5)] \
        == [synthetic_tune(3, i, m2) for i in range(5)]
    bare_slash = re.compile(r"/(?![0-9])")  # `/` or `//`: a length spelt without its denominator

    def bodies(options: SynthOptions) -> list[str]:
        return [synthetic_tune(3, i, options).split("\nK:", 1)[1] for i in range(200)]
    assert any(bare_slash.search(body) for body in bodies(m2))
    plain = bodies(SynthOptions.parse("plain_lengths=1", m2))
    assert not any(bare_slash.search(body) for body in plain)
    assert sum("/2" in body for body in plain) > 50 and sum("/4" in body for body in plain) > 5


def _carried_notes(options: SynthOptions, n: int) -> int:
    """Unmarked notes whose letter was given an accidental earlier in the bar, in tunes
    0..n-1 of seed 3."""
    return sum(note.carried for i in range(n)
               for note in plain_notes(synthetic_tune(3, i, options)) or ())


@needs_abc2midi
def test_carried_accidentals_reach_later_notes_of_the_bar(tmp_path):
    """`carried`: after a note with an accidental, later notes of its bar take its letter
    unmarked (abc2midi plays them altered); at 0, the default, tunes are as before."""
    from datagen.music.normalize import normalize_midi, notes

    m1 = SynthOptions.parse("accidentals=0.3", LADDER["M1"])
    assert _bodies(SynthOptions.parse("carried=0", m1), 5) == _bodies(m1, 5)
    carried = SynthOptions.parse("carried=0.5", m1)
    assert _carried_notes(carried, 20) > 2 * _carried_notes(m1, 20)
    for i in range(5):
        done = abc2midi(synthetic_tune(3, i, carried), str(tmp_path))
        assert done.failure is None and done.errors == 0 and notes(normalize_midi(done.midi))


@needs_abc2midi
def test_phrase_lines_break_each_line_a_beat_before_its_bar_ends(tmp_path):
    """`phrase_lines`: the Essen collection's layout (a line ends a beat before its bar does, the
    beat opens the next line); abc2midi still plays every bar whole. At 0, the default, tunes
    are as before."""
    from datagen.music.normalize import normalize_midi, notes

    m0 = LADDER["M0"]
    assert _bodies(SynthOptions.parse("phrase_lines=0", m0), 5) == _bodies(m0, 5)
    phrased = SynthOptions.parse("phrase_lines=1,short_parts=0", m0)
    cut = 0
    for i, (_, body) in enumerate(_bodies(phrased, 8)):
        lines = body.splitlines()
        assert lines[0].startswith(" | ") and not lines[-1].endswith("|"), body
        for line in lines[1:]:  # each opens with the beat cut from the line before
            assert re.match(r"[A-Ga-g]{2} \| ", line), body
        cut += len(lines) - 1
        done = abc2midi(synthetic_tune(3, i, phrased), str(tmp_path))
        assert done.failure is None and done.errors == 0
        onsets = [onset for onset, _, _, _ in notes(normalize_midi(done.midi))]
        assert onsets == pytest.approx([onsets[0] + 0.5 * k for k in range(len(onsets))])
    assert cut >= 8


@needs_abc2midi
def test_beamed_bars_drop_the_spaces_between_beats_and_change_no_note(tmp_path):
    """`beamed_bars`: a bar's beat groups written without spaces; at 1 the tune draws what it
    draws at 0, so abc2midi writes the same MIDI for both. At 0, the default, tunes are as
    before."""
    from datagen.music.normalize import normalize_midi

    m2 = LADDER["M2"]
    assert _bodies(SynthOptions.parse("beamed_bars=0", m2), 5) == _bodies(m2, 5)
    beamed = SynthOptions.parse("beamed_bars=1", m2)
    dropped = 0
    for i in range(5):
        plain, joined = synthetic_tune(3, i, m2), synthetic_tune(3, i, beamed)
        assert joined.split("K:")[0] == plain.split("K:")[0] and "| " in joined
        dropped += plain.count(" ") - joined.count(" ")
        midi = [normalize_midi(abc2midi(t, str(tmp_path)).midi) for t in (plain, joined)]
        assert midi[0] == midi[1]
    assert dropped > 20


@needs_abc2midi
def test_bare_line_ends_leave_out_the_bar_line_at_a_line_end(tmp_path):
    """`bare_line_ends`: a line that ends with a bar ends without its bar line. Without
    accidentals (which a missing bar line carries on) the notes are those of the tune with it;
    their loudness is not, since abc2midi accents the first note after a bar line. At 0, the
    default, tunes are as before."""
    from datagen.music.normalize import normalize_midi, notes

    m0 = SynthOptions.parse("short_parts=0", LADDER["M0"])
    assert _bodies(SynthOptions.parse("bare_line_ends=0", m0), 5) == _bodies(m0, 5)
    bare = SynthOptions.parse("bare_line_ends=1", m0)
    changed = 0
    for i in range(6):
        plain, ended = synthetic_tune(3, i, m0), synthetic_tune(3, i, bare)
        assert ended == plain.replace(" |\n", "\n")
        if ended != plain:  # a tune of two lines or more
            changed += 1
            midi = [normalize_midi(abc2midi(t, str(tmp_path)).midi) for t in (plain, ended)]
            assert notes(midi[0]) == notes(midi[1]) and midi[0] != midi[1]
    assert changed >= 2


@needs_abc2midi
def test_wide_meters_bring_half_note_beats_and_a_half_note_unit(tmp_path):
    """`wide_meters`: 2/2 3/2 4/2 6/4 (and L:1/2), which real tunes use; abc2midi converts them
    without a complaint and plays every bar whole. At 0, the default, tunes are as before."""
    from datagen.music.normalize import normalize_midi, notes

    assert _bodies(SynthOptions.parse("wide_meters=0"), 5) == _bodies(SynthOptions(), 5)
    wide = SynthOptions.parse("wide_meters=1,meters=1,units=1,pickups=0,parts=0,repeats=0,rests=0,"
                              "gchords=1")
    tunes = [synthetic_tune(9, i, wide) for i in range(40)]
    assert {re.search(r"^M:(.+)$", t, re.MULTILINE).group(1) for t in tunes} == set(WIDE_METERS)
    assert any("\nL:1/2\n" in t for t in tunes)
    for t in tunes:  # guitar chords where abc2midi has an accompaniment for the meter
        meter = re.search(r"^M:(.+)$", t, re.MULTILINE).group(1)
        assert ('"' in t.split("\nK:", 1)[1]) == (meter in ("2/2", "6/4")), t
    for i, abc in enumerate(tunes[:16]):
        assert _abc2midi_complaints(abc, tmp_path) == []
        done = abc2midi(abc, str(tmp_path))
        beats, beat, _ = WIDE_METERS[re.search(r"^M:(.+)$", abc, re.MULTILINE).group(1)]
        bars = abc.split("\nK:", 1)[1].count("|")  # "... | ... |]": a bar line ends each bar
        ends = [onset + length for onset, length, *_ in notes(normalize_midi(done.midi))]
        assert max(ends) == pytest.approx(bars * beats * float(beat) * 4), abc  # in quarters


@needs_abc2midi
def test_free_chords_are_read_not_guessed(tmp_path):
    """`free_chords`: a part's guitar chords drawn from the key's seven, not from a four-bar
    progression that opens on I; at 0, the default, tunes are as before."""
    assert _bodies(SynthOptions.parse("free_chords=0"), 5) == _bodies(SynthOptions(), 5)
    plain = SynthOptions.parse("gchords=1,parts=0,repeats=0,pickups=0,wide_meters=0")
    free = SynthOptions.parse("free_chords=1", plain)

    def opening_chords(opt):  # the first chord of each tune, against its key's tonic
        tunes = [synthetic_tune(11, i, opt) for i in range(40)]
        return [(re.search(r'"([A-G][#b]?)', t.split("\nK:", 1)[1]).group(1),
                 re.search(r"^K:([A-G][#b]?)", t, re.MULTILINE).group(1)) for t in tunes
                if '"' in t.split("\nK:", 1)[1]]

    assert all(chord == tonic for chord, tonic in opening_chords(plain))
    assert sum(chord != tonic for chord, tonic in opening_chords(free)) >= 20
    for i in range(6):  # abc2midi accompanies them without a complaint
        assert _abc2midi_complaints(synthetic_tune(12, i, free), tmp_path) == []


@needs_abc2midi
def test_half_cadences_end_a_short_part_as_an_eight_bar_part_s_first_half(tmp_path):
    """`half_cadences`: a part of 4 bars ends on its progression's fourth chord, not the tonic,
    and has no repeat, as the converter's first segment of an 8-bar part; at 0, the default,
    tunes are as before; abc2midi converts them without a complaint."""
    assert _bodies(SynthOptions.parse("half_cadences=0"), 5) == _bodies(SynthOptions(), 5)
    short = SynthOptions.parse("gchords=1,short_parts=1,parts=0,pickups=0,wide_meters=0")

    def last_chords(opt):  # the last bar's chord of each tune, against its key's tonic
        tunes = [synthetic_tune(13, i, opt) for i in range(40)]
        return [(re.findall(r'"([A-G][#b]?)[^"]*"', t.split("\nK:", 1)[1])[-1],
                 re.search(r"^K:([A-G][#b]?)", t, re.MULTILINE).group(1), t) for t in tunes
                if '"' in t.split("\nK:", 1)[1]]

    assert all(chord == tonic for chord, tonic, _ in last_chords(short))
    half = last_chords(SynthOptions.parse("half_cadences=1", short))
    assert len(half) == 40 and all(chord != tonic for chord, tonic, _ in half)  # on V
    assert not any("|:" in t or ":|" in t for *_, t in half)
    long_parts = SynthOptions.parse("half_cadences=1,short_parts=0", short)
    assert any(abc.count("|") > 6 for abc in (synthetic_tune(13, i, long_parts)
                                                for i in range(10)))  # 8-bar parts stay
    for i in range(6):
        assert _abc2midi_complaints(half[i][2], tmp_path) == []


@needs_abc2midi
def test_rest_runs_follow_a_rest_with_another(tmp_path):
    """`rest_runs`: a note after a rest is a rest too, so runs of rests (`z2 z4`, `z2 | z`) are
    common; at 0, the default, tunes are as before; abc2midi converts them without a
    complaint."""
    assert _bodies(SynthOptions.parse("rest_runs=0"), 5) == _bodies(SynthOptions(), 5)
    run = re.compile(REST_RUN)

    def runs(opt):
        return sum(len(run.findall(synthetic_tune(14, i, opt).split("\nK:", 1)[1]))
                   for i in range(40))

    base = SynthOptions.parse("rests=0.1")
    with_runs = SynthOptions.parse("rest_runs=0.6", base)
    assert runs(with_runs) >= 3 * max(runs(base), 1)
    for i in range(4):
        assert _abc2midi_complaints(synthetic_tune(14, i, with_runs), tmp_path) == []


@needs_abc2midi
def test_real_tunes_marks_staccato_graces_bar_ties_slurred_triplets(tmp_path):
    """The marks music21's tunes write that change what abc2midi plays: at 0, the default,
    tunes are as before; set, each appears, abc2midi converts them without a complaint, and a
    staccato dot shortens its note without moving any onset."""
    from datagen.music.normalize import normalize_midi, notes

    marks = ("staccato", "grace_runs", "grace_anywhere", "bar_ties", "slurred_triplets")
    assert _bodies(SynthOptions.parse(",".join(f"{m}=0" for m in marks)), 5) == \
        _bodies(SynthOptions(), 5)
    opt = SynthOptions.parse("staccato=0.3,grace_runs=1,grace_anywhere=1,bar_ties=1,"
                             "slurred_triplets=1,grace=0.3,triplets=0.3,wide_meters=0.3")
    tunes = [synthetic_tune(13, i, opt) for i in range(40)]
    bodies = "".join(t.split("\nK:", 1)[1] for t in tunes)
    staccato = re.compile(r"\.[\^_=]*[A-Ga-g]")  # a dot before a note
    assert staccato.search(bodies)
    assert re.search(r"\{[\^_=A-Ga-g,']{2,}\}", bodies)
    assert re.search(r"-\s*\|", bodies)
    assert "((3" in bodies and "(3(" in bodies and re.search(r"\}\(\(?3", bodies)
    for abc in tunes[:12]:
        assert _abc2midi_complaints(abc, tmp_path) == [], abc
    dotted = next(t for t in tunes if staccato.search(t.split("\nK:", 1)[1]))
    head, body = dotted.split("\nK:", 1)
    played = [notes(normalize_midi(abc2midi(abc, str(tmp_path)).midi))
              for abc in (dotted, head + "\nK:" + body.replace(".", ""))]
    assert [n[0] for n in played[0]] == [n[0] for n in played[1]]  # the same onsets
    assert sum(n[1] for n in played[0]) < sum(n[1] for n in played[1])  # shorter notes
