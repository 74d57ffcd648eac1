"""A seeded generator of valid, musically plausible ABC tunes.

Each tune is a pure function of `(seed, index, options)`. It covers every key (tonic x mode with
at most 7 sharps or flats), common and compound meters (2/4 3/4 4/4 6/8 9/8 12/8 3/8 C C|;
with `wide_meters`, 2/2 3/2 4/2 6/4), unit note lengths 1/4 1/8 1/16 (and 1/2), tempo,
note-length multipliers and fractions, broken rhythm, accidentals, octave marks, rests, ties,
slurs, triplets, chords, guitar-chord symbols, repeats with first and second endings, parts
(P:) and grace notes. Every bar is filled exactly, so abc2midi converts the tunes without
errors or warnings (tested in tests/unit/test_music_synthetic.py).

The melody is a random walk on the scale of the key (mostly steps, some leaps) that favours
chord tones on downbeats and ends each part on the tonic; guitar chords follow a plain
I-IV-V-vi vocabulary built from the key's own scale.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import asdict, dataclass, fields, replace
from fractions import Fraction as F

from bytesim_common.errors import UserError
from datagen.weights import parse_weights

LETTERS = "CDEFGAB"
LETTER_PC = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
SHARP_ORDER, FLAT_ORDER = "FCGDAEB", "BEADGCF"
# Sharps (+) or flats (-) of the major key on each tonic spelling.
MAJOR_SHARPS = {"C": 0, "G": 1, "D": 2, "A": 3, "E": 4, "B": 5, "F#": 6, "C#": 7, "F": -1,
                "Bb": -2, "Eb": -3, "Ab": -4, "Db": -5, "Gb": -6, "Cb": -7, "G#": 8, "D#": 9,
                "A#": 10, "E#": 11, "B#": 12, "Fb": -8}
# Mode -> (offset of its signature from the major key's on the same tonic, spellings used).
MODES = {"maj": (0, ["", "maj"]), "min": (-3, ["m", "min"]), "dor": (-2, ["dor", "Dor"]),
         "phr": (-4, ["phr"]), "lyd": (1, ["lyd"]), "mix": (-1, ["mix", "Mix"]),
         "loc": (-5, ["loc"]), "aeo": (-3, ["aeo"]), "ion": (0, ["ion"])}
# Every (tonic, mode) whose signature has at most 7 sharps or flats.
KEYS = [(t, m) for t in MAJOR_SHARPS for m in MODES if abs(MAJOR_SHARPS[t] + MODES[m][0]) <= 7]

# Meter text -> (beats per bar, beat length as a fraction of a whole note, compound?).
METERS = {"2/4": (2, F(1, 4), False), "3/4": (3, F(1, 4), False), "4/4": (4, F(1, 4), False),
          "C": (4, F(1, 4), False), "C|": (2, F(1, 2), False), "3/8": (1, F(3, 8), True),
          "6/8": (2, F(3, 8), True), "9/8": (3, F(3, 8), True), "12/8": (4, F(3, 8), True)}
UNIT_LENGTHS = [F(1, 4), F(1, 8), F(1, 16)]
# Meters of half-note and dotted-half beats (`wide_meters`), and their unit lengths.
WIDE_METERS = {"2/2": (2, F(1, 2), False), "3/2": (3, F(1, 2), False),
               "4/2": (4, F(1, 2), False), "6/4": (2, F(3, 4), True)}
WIDE_UNIT_LENGTHS = [F(1, 2), F(1, 4), F(1, 8)]
NO_GCHORD_METERS = ("3/2", "4/2")  # abc2midi has no default accompaniment for them

# One beat's rhythms, as fractions of the beat (plain notes; triplets/broken rhythm apart).
SIMPLE_BEATS = [[F(1)], [F(1, 2), F(1, 2)], [F(1, 4)] * 4, [F(1, 2), F(1, 4), F(1, 4)],
                [F(1, 4), F(1, 4), F(1, 2)], [F(3, 4), F(1, 4)]]
COMPOUND_BEATS = [[F(1, 3)] * 3, [F(2, 3), F(1, 3)], [F(1)], [F(1, 6), F(1, 6), F(1, 3), F(1, 3)],
                  [F(1, 2), F(1, 6), F(1, 3)], [F(1, 3), F(2, 3)]]
# Scale degrees of the guitar chords of a four-bar phrase (ending on V; a part ends on I).
PROGRESSIONS = [[0, 3, 4, 4], [0, 5, 3, 4], [0, 4, 5, 4], [0, 3, 0, 4], [0, 1, 4, 4]]


# A run of rests in ABC text, what `rest_runs` makes common: a rest, then (over a space or a bar
# line) another. For tallies of tunes (`examples/abc_features.py`) and the option's test.
REST_RUN = r"z[\d/]*\s*\|?\s*z"


@dataclass(frozen=True)
class SynthOptions:
    """The mix of features: per-tune or per-event probabilities (`--synth-mix name=p,...`)."""

    gchords: float = 0.5  # tune has guitar-chord symbols
    tempo: float = 0.6  # tune has a Q: field
    repeats: float = 0.6  # a part is repeated (|: ... :|)
    endings: float = 0.5  # a repeated part has first and second endings
    parts: float = 0.25  # tune has two parts with P: fields
    long_notes: float = 0.15  # a note held over two or more beats
    triplets: float = 0.08  # a beat is a triplet (simple meters)
    broken: float = 0.1  # a beat is a broken-rhythm pair (> or <)
    accidentals: float = 0.06  # a note carries ^, _ or =
    carried: float = 0.0  # after a note with an accidental, a later note of its bar takes its
    #                       letter unmarked, so the accidental carries to it (abc2midi carries it
    #                       to that letter in every octave until the bar line)
    rests: float = 0.05  # a note is a rest
    rest_runs: float = 0.0  # a note after a rest is a rest too (`z2 z4`, `z2 | z`): the MIDI
    #                         file has one wait for the run, the sum of its rests
    chords: float = 0.05  # a note is a chord [ceg]
    ties: float = 0.05  # a note is tied to the next
    slurs: float = 0.08  # a beat's notes are slurred
    grace: float = 0.04  # a note has a grace note
    # The breadth of the tunes (1: all of it; below 1, a tune or beat keeps to the plain case
    # otherwise; 0 and 1 draw nothing, so the default tunes are the same with or without them).
    keys: float = 1.0  # a tune has a random key (otherwise C major)
    meters: float = 1.0  # a tune has a random meter (otherwise 4/4)
    wide_meters: float = 0.0  # a tune with a random meter has one of WIDE_METERS instead
    #                           (2/2 3/2 4/2 6/4), with a unit length of 1/2, 1/4 or 1/8;
    #                           3/2 and 4/2 tunes have no guitar chords (abc2midi has no
    #                           accompaniment pattern for them)
    units: float = 1.0  # a tune has a random unit note length (otherwise L:1/8)
    lengths: float = 1.0  # a beat may have notes of other lengths than the unit; the last
    #                       note of a part may be held (otherwise every note is one unit long)
    octaves: float = 1.0  # a tune's range may need octave marks (otherwise C to b)
    short_parts: float = 0.0  # a part has 4 bars (otherwise 4 or 8)
    pickups: float = 0.0  # the tune opens with a pickup (anacrusis): one beat before bar 1
    titles: float = 0.0  # the title goes on with 0-15 random letters, which moves the notes
    #                      against a model's patch grid (the MIDI does not keep titles)
    free_titles: float = 0.0  # the title is instead 1-3 random words of 1-10 letters (about 1-32
    #                           bytes), so headers are as short as real tunes' and the M:, L:
    #                           and K: lines fall anywhere on the patch grid
    phrase_lines: float = 0.0  # the tune is laid out in phrases, as the Essen collection writes
    #                            its songs: a line ends a beat before its last bar does (no bar
    #                            line; the beat opens the next line, before its " | "), lines
    #                            hold 2-4 bars, a tune without a pickup opens with " | " and a
    #                            part without repeats ends without a closing bar line
    bare_line_ends: float = 0.0  # a line of the tune that ends where a bar does ends without its
    #                              bar line (the Essen collection again: `FAc2cB | A2B2c2` and
    #                              the next bar on the next line)
    beamed_bars: float = 0.0  # the tune writes a bar's beat groups without spaces between them,
    #                           as the Essen collection does (`GF2dc3B`), so that spaces do
    #                           not mark where beats start
    plain_lengths: float = 0.0  # the tune spells half and quarter units one way (`/2`, `/4`),
    #                             not `/` or `/2`, `//` or `/4` at random: a MIDI file cannot
    #                             tell the spellings apart, so a MIDI -> ABC model cannot learn them
    free_chords: float = 0.0  # a part with guitar chords takes each bar's chord from the key's
    #                           seven at random, not from a four-bar progression (which opens on
    #                           I and closes on V, a part on I): a progression can be guessed
    #                           from the key, a chord drawn at random only read
    # Marks of real tunes that change what abc2midi plays (music21's corpus writes them):
    staccato: float = 0.0  # a note carries a staccato dot (`.c`): abc2midi plays it for half
    #                        its length, less a quarter unit for each grace note before it
    #                        (not in triplets or broken-rhythm pairs)
    grace_runs: float = 0.0  # a grace group before a note of a beat or more has two or three
    #                          notes (`{gfe}d`), not one; each takes its time from the note
    grace_anywhere: float = 0.0  # a note shorter than half a beat may have a grace note too
    #                              (`{B}AGAB`), and a triplet may open with one (`{c}(3BAB`)
    bar_ties: float = 0.0  # a bar's last note is tied over the bar line into the next bar's
    #                        first one or two beats or the whole bar (`c2- | c2`, `d4- | d8`),
    #                        where no repeat or ending mark comes between (and not in a
    #                        tune with `bare_line_ends`)
    slurred_triplets: float = 0.0  # a triplet is slurred, `((3cde)` or `(3(cde)`
    half_cadences: float = 0.0  # a part of 4 bars is written as the first four bars of an
    #                             8-bar part, the segment the converter cuts from one: its last
    #                             bar keeps the progression's chord (V) and a bar's plain notes,
    #                             not the tonic held, and it has no repeat

    # Options added after corpora were made with every option in their arguments: in a
    # corpus's arguments only where set, so that a corpus made (or half made) before one of
    # them resumes unchanged.
    RECORDED_WHEN_SET = ("plain_lengths", "phrase_lines", "beamed_bars", "bare_line_ends",
                         "wide_meters", "free_chords", "staccato", "grace_runs", "grace_anywhere",
                         "bar_ties", "slurred_triplets", "half_cadences", "rest_runs")

    def recorded(self) -> dict[str, float]:
        """The options as a corpus's arguments record them."""
        return {name: p for name, p in asdict(self).items()
                if p or name not in self.RECORDED_WHEN_SET}

    @classmethod
    def parse(cls, text: str | None, base: SynthOptions | None = None) -> SynthOptions:
        """Options from `name=p,name=p` (each p in [0, 1]) over `base` (default: the
        defaults); None changes nothing."""
        base = base or cls()
        if not text:
            return base
        values = parse_weights(text, "--synth-mix", {f.name for f in fields(cls)}, "feature")
        for name, p in values.items():
            if p > 1.0:
                raise UserError(f"--synth-mix: {name}={p} must be between 0 and 1")
        return replace(base, **values)


# The ladder of tunes (docs/music.md), each rung a SynthOptions; M3 is music21's corpus.
_PLAIN = dict.fromkeys(["gchords", "tempo", "repeats", "endings", "parts", "long_notes",
                        "triplets", "broken", "accidentals", "rests", "chords", "ties", "slurs",
                        "grace", "keys", "meters", "units", "lengths", "octaves"], 0.0)
LADDER = {
    # one voice, C major, 4/4, L:1/8, every note an eighth, one octave, 4 bars
    "M0": SynthOptions(**_PLAIN, short_parts=1.0),
    # M0 with every key, accidentals, octave marks, note lengths and rests
    "M1": SynthOptions(**{**_PLAIN, "keys": 1.0, "octaves": 1.0, "lengths": 1.0,
                          "long_notes": SynthOptions.long_notes,
                          "accidentals": SynthOptions.accidentals, "rests": SynthOptions.rests},
                       short_parts=1.0),
    "M2": SynthOptions(),  # everything
}


def row_rng(seed: int, index: int, salt: str) -> random.Random:
    """A generator seeded from (seed, index) alone: the same in every process."""
    digest = hashlib.sha256(f"{salt}:{seed}:{index}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "little"))


def synthetic_tune(seed: int, index: int, options: SynthOptions = SynthOptions()) -> str:
    """The ABC text of synthetic tune `index` of `seed`."""
    return _Tune(row_rng(seed, index, "synthetic-abc"), options, index).text()


def length_text(x: F, rng: random.Random, plain: bool = False) -> str:
    """ABC length suffix for `x` unit lengths: '' 2 3/2 / /2 /4 // 3/4 ... (`plain`: half and
    quarter always `/2` and `/4`, with no draw)."""
    if x == 1:
        return ""
    if x.denominator == 1:
        return str(x.numerator)
    if x.numerator == 1:
        if x.denominator == 2:
            return "/2" if plain else rng.choice(["/", "/2"])
        if x.denominator == 4:
            return "/4" if plain else rng.choice(["/4", "//"])
        return f"/{x.denominator}"
    return f"{x.numerator}/{x.denominator}"


class _Tune:
    """Builds one tune; `rng` is its only source of randomness."""

    def __init__(self, rng: random.Random, opt: SynthOptions, index: int):
        self.rng, self.opt, self.index = rng, opt, index
        self.tonic, self.mode = rng.choice(KEYS) if self.chance(opt.keys) else ("C", "maj")
        wide = False
        self.meter = "4/4"
        if self.chance(opt.meters):
            wide = self.chance(opt.wide_meters)
            self.meter = rng.choice(list(WIDE_METERS if wide else METERS))
        self.beats, self.beat, self.compound = (WIDE_METERS if wide else METERS)[self.meter]
        units = WIDE_UNIT_LENGTHS if wide else (
            UNIT_LENGTHS[:2] if self.beat == F(1, 2) else UNIT_LENGTHS)
        self.unit = rng.choice(units) if self.chance(opt.units) else F(1, 8)
        sharps = MAJOR_SHARPS[self.tonic] + MODES[self.mode][0]
        letters = SHARP_ORDER[:sharps] if sharps > 0 else FLAT_ORDER[:-sharps]
        self.key_acc = {c: (1 if sharps > 0 else -1) if c in letters else 0 for c in LETTERS}
        # Diatonic pitch index: 7 * octave + letter; 28 = middle C ("C"), 35 = "c".
        self.home = 28 + LETTERS.index(self.tonic[0])
        self.home += 7 * rng.choice([-1, 0, 0, 0]) if self.home > 31 else 7 * rng.choice([0, 0, 1])
        self.lo, self.hi = self.home - rng.randint(2, 5), self.home + rng.randint(7, 11)
        if not self.chance(opt.octaves):  # C..b: no octave marks
            self.lo, self.hi = max(self.lo, 28), min(self.hi, 41)
        self.pitch = self.home
        self.gchords = rng.random() < opt.gchords and self.meter not in NO_GCHORD_METERS
        self.tie_text: str | None = None  # pitch text of the last note, for a tie
        self.after_rest = False  # the last note was a rest
        self.tie_out: str | None = None  # pitch text of the last bar's last note, for a tie
        self.altered: list[int] = []  # pitches given an accidental in the bar so far
        self.plain_lengths = self.chance(opt.plain_lengths)
        self.phrased = self.chance(opt.phrase_lines)
        self.beamed = self.chance(opt.beamed_bars)
        self.bare_ends = self.chance(opt.bare_line_ends)

    def length(self, length: F) -> str:
        """The ABC length suffix of a note of `length` whole notes."""
        return length_text(length / self.unit, self.rng, self.plain_lengths)

    def chance(self, p: float) -> bool:
        """True with probability p; draws only when 0 < p < 1."""
        return p >= 1 or (p > 0 and self.rng.random() < p)

    # -- pitches and chords -----------------------------------------------------------------

    def note_name(self, d: int) -> str:
        octave, letter = divmod(d, 7)
        name = LETTERS[letter]
        if octave >= 5:
            return name.lower() + "'" * (octave - 5)
        return name + "," * (4 - octave)

    def chord_symbol(self, degree: int) -> str:
        letter = (LETTERS.index(self.tonic[0]) + degree) % 7

        def pc(step: int) -> int:
            c = LETTERS[(letter + step) % 7]
            return LETTER_PC[c] + self.key_acc[c]

        root = LETTERS[letter]
        quality = {(4, 7): "", (3, 7): "m", (3, 6): "dim", (4, 8): "aug"}[
            ((pc(2) - pc(0)) % 12, (pc(4) - pc(0)) % 12)]
        if degree == 4 and quality == "" and self.rng.random() < 0.4:
            quality = "7"
        return root + {1: "#", -1: "b", 0: ""}[self.key_acc[root]] + quality

    def step(self, chord_root: int | None) -> int:
        """Move the melody; on a downbeat under a chord, prefer the chord's tones."""
        rng = self.rng
        if chord_root is not None and rng.random() < 0.6:
            tones = [d for d in range(self.lo, self.hi + 1)
                     if (d - self.home - chord_root) % 7 in (0, 2, 4)]
            self.pitch = min(tones, key=lambda d: (abs(d - self.pitch), d))
            return self.pitch
        move = rng.choice([-2, -1, -1, -1, 0, 1, 1, 1, 2, -3, 3, -4, 4, 5, -5])
        self.pitch += move
        if not self.lo <= self.pitch <= self.hi:
            self.pitch -= 2 * move
        self.pitch = min(max(self.pitch, self.lo), self.hi)
        return self.pitch

    # -- notes --------------------------------------------------------------------------------

    def note(self, length: F, chord_root: int | None = None, plain: bool = False) -> str:
        """One note (or rest, or chord) of `length` whole notes, with its decorations.
        `self.tie_text` is set to the note's pitch text when a tie may follow it."""
        rng, opt = self.rng, self.opt
        lt = self.length(length)
        self.tie_text = None
        rest = not plain and (rng.random() < opt.rests
                              or (self.after_rest and self.chance(opt.rest_runs)))
        self.after_rest = rest
        if rest:
            return "z" + lt
        if not plain and self.altered and self.chance(opt.carried):
            return self.carried_note(lt)
        d = self.step(chord_root)
        if not plain and length >= self.beat / 2 and rng.random() < opt.chords:
            top = min(d, self.hi - 4)
            return "[" + "".join(self.note_name(top + k) for k in (0, 2, 4)) + "]" + lt
        acc = ""
        if not plain and rng.random() < opt.accidentals:
            acc = rng.choice(["^", "_", "=", "^", "_", "=", "^^", "__"])
            self.altered.append(d)
        self.tie_text = acc + self.note_name(d)
        grace, run = "", []
        may_grace = length >= self.beat / 2 or (self.unit / 4 < length
                                                 and self.chance(opt.grace_anywhere))
        if not plain and may_grace and rng.random() < opt.grace:
            run = self.grace_group(d, length >= self.beat)
            grace = "{" + "".join(map(self.note_name, run)) + "}"
        # A staccato note sounds for half its length, and abc2midi takes a quarter unit for
        # each grace note from what is left; no tie follows it.
        if not plain and len(run) * self.unit / 4 < length / 2 and self.chance(opt.staccato):
            note, self.tie_text = "." + self.tie_text, None
            return grace + note + lt
        return grace + self.tie_text + lt

    def grace_group(self, d: int, may_run: bool) -> list[int]:
        """The pitches of a grace group before a note of pitch `d`: a neighbour of it, and
        where `may_run`, sometimes (`grace_runs`) a run of two or three stepping on from it."""
        rng = self.rng
        run = [d + rng.choice([1, 2, -1])]
        if may_run and self.chance(self.opt.grace_runs):
            way = rng.choice([1, -1])
            run += [run[0] + way * k for k in range(1, rng.choice([2, 3]))]
        return run

    def carried_note(self, length_text: str) -> str:
        """A note with the letter of one given an accidental earlier in the bar (in its octave
        or the next one up or down, within the tune's range), unmarked."""
        a = self.rng.choice(self.altered)  # within the range, as every melody pitch is
        d = self.rng.choice([a + 7 * k for k in (-1, 0, 0, 1) if self.lo <= a + 7 * k <= self.hi])
        self.pitch = d
        self.tie_text = self.note_name(d)
        return self.tie_text + length_text

    def tied(self, length: F) -> str:
        """A note tied from the previous one: same pitch, `length` whole notes."""
        return str(self.tie_text) + self.length(length)

    def beat_group(self, chord_root: int | None) -> str:
        """One beat of music: plain notes, a triplet or a broken-rhythm pair."""
        rng, opt, beat = self.rng, self.opt, self.beat
        units = beat / self.unit
        if units.denominator == 1 and not self.chance(opt.lengths):  # one unit each
            return "".join(self.note(self.unit, chord_root if k == 0 else None)
                           for k in range(units.numerator))
        if not self.compound and rng.random() < opt.triplets:
            notes = self.note(beat / 2, chord_root, True)
            grace = "{" + self.note_name(self.grace_group(self.pitch, False)[0]) + "}" \
                if self.chance(opt.grace_anywhere) and rng.random() < opt.grace else ""
            notes += "".join(self.note(beat / 2, None, True) for k in range(2))
            self.tie_text = None  # no tie out of a triplet
            if self.chance(opt.slurred_triplets):
                return grace + rng.choice(["((3" + notes, "(3(" + notes]) + ")"
            return grace + "(3" + notes
        if not self.compound and rng.random() < opt.broken:
            pair = self.note(beat / 2, chord_root, True) + rng.choice([">", "<"])
            pair += self.note(beat / 2, None, True)
            self.tie_text = None  # no tie out of a broken-rhythm pair
            return pair
        pattern = rng.choice(COMPOUND_BEATS if self.compound else SIMPLE_BEATS)
        notes: list[str] = []
        for k, f in enumerate(pattern):
            if k and self.tie_text and rng.random() < opt.ties:
                notes[-1] += "-"
                notes.append(self.tied(beat * f))
            else:
                notes.append(self.note(beat * f, chord_root if k == 0 else None))
        if len(notes) >= 2 and not any(n.startswith("z") for n in notes) \
                and rng.random() < opt.slurs:
            notes[0], notes[-1] = "(" + notes[0], notes[-1] + ")"
            self.tie_text = None  # no tie out of a slur
        return "".join(notes)

    def held(self, k: int, chord_root: int | None) -> str:
        """A note held for `k` beats; sometimes written as two tied notes."""
        beat = self.beat
        if self.rng.random() < self.opt.ties:
            first = self.note(beat, chord_root)
            if self.tie_text:
                return first + "-" + self.tied(beat * (k - 1))
            return first + " " + self.note(beat * (k - 1))
        return self.note(beat * k, chord_root)

    def bar(self, chord_root: int | None, last: bool, tie_in: str | None = None) -> list[str]:
        """One bar's beat groups, filling it exactly; the last bar of a part ends on a held
        tonic. `tie_in`: the pitch text of the previous bar's last note, tied over the bar line
        into this bar's first beat. Leaves `self.tie_out` the pitch text of this bar's last
        note where a tie may follow it."""
        beats, rng = self.beats, self.rng
        self.altered = []
        held_end = last and self.chance(self.opt.lengths)
        end_beats = 0 if not held_end else (beats if beats <= 2 or rng.random() < 0.5
                                             else beats - 1)
        groups, b = [], 0
        if tie_in is not None:
            end_beats = min(end_beats, beats - 1)
            self.tie_text = tie_in
            b = min(rng.choice([1, 1, 2, beats]), beats - end_beats)
            groups.append(self.tied(self.beat * b))
        while b < beats - end_beats:
            root = chord_root if b == 0 else None
            left = beats - end_beats - b
            if left >= 2 and rng.random() < self.opt.long_notes:
                k = rng.choice([2, 3]) if left >= 3 and not self.compound else 2
                groups.append(self.held(k, root))
                b += k
            else:
                groups.append(self.beat_group(root))
                b += 1
        self.tie_out = None if end_beats else self.tie_text
        if end_beats:
            self.pitch, self.after_rest = self.home, False
            groups.append(self.note_name(self.home)
                          + self.length(self.beat * end_beats))
        return groups

    # -- structure ----------------------------------------------------------------------------

    def part(self, n_bars: int, pickup: bool = False) -> str:
        """A part of `n_bars` full bars, after a one-beat pickup bar if `pickup`."""
        rng = self.rng
        out = self.beat_group(None) + " |" if pickup else ""
        progression = rng.choice(PROGRESSIONS)
        free = self.gchords and self.chance(self.opt.free_chords)
        repeat = rng.random() < self.opt.repeats
        endings = repeat and rng.random() < self.opt.endings
        closes = not (n_bars == 4 and self.chance(self.opt.half_cadences))  # on the tonic
        repeat, endings = repeat and closes, endings and closes
        bars: list[list[str]] = []
        for b in range(n_bars + (1 if endings else 0)):
            last = closes and b >= n_bars - 1
            degree = rng.randrange(7) if free else 0 if last else progression[b % 4]
            root = degree if self.gchords else None
            # a tie over the bar line before, where no ending mark comes between (nor a line
            # end without its bar line, which abc2midi then counts into one bar with the next)
            tie_in = (self.tie_out if bars and self.tie_out and not (endings and last)
                      and not self.bare_ends and self.chance(self.opt.bar_ties) else None)
            if tie_in:
                bars[-1][-1] += "-"
            groups = self.bar(root, last, tie_in)
            if self.gchords:
                groups[0] = f'"{self.chord_symbol(degree)}"' + groups[0]
            bars.append(groups)
        out += ":" if pickup and repeat else " " if pickup else "|:" if repeat else ""
        if self.phrased and not pickup and not repeat:
            out += " | "
        line_bars = rng.choice([2, 3, 4]) if self.phrased else 4
        join = "".join if self.beamed else " ".join
        line_end = "\n" if self.bare_ends else " |\n"
        cut = False  # the bar before ended its line a beat early (a phrased tune)
        for b, groups in enumerate(bars):
            if endings and b == n_bars - 1:
                out += " |1 "
            elif endings and b == n_bars:
                out += " :|2 "
            elif b and not cut:
                out += line_end if b % line_bars == 0 else " | "
            breaks = (b + 1) % line_bars == 0 and b + 1 < (n_bars - 1 if endings else n_bars)
            cut = self.phrased and breaks and len(groups) > 1
            out += join(groups[:-1]) + "\n" + groups[-1] + " | " if cut else join(groups)
        if repeat and not endings:
            return out + " :|"
        return out if self.phrased else out + " |]"

    def text(self) -> str:
        rng = self.rng
        title = f"Synthetic tune {self.index + 1}"
        if self.chance(self.opt.free_titles):
            title = " ".join("".join(rng.choice("abcdefghijklmnopqrstuvwxyz")
                                     for _ in range(rng.randint(1, 10))).capitalize()
                             for _ in range(rng.randint(1, 3)))
        elif self.chance(self.opt.titles):
            title += " " + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz")
                                   for _ in range(rng.randrange(16)))
        head = [f"X:{self.index + 1}", f"T:{title.rstrip()}", f"M:{self.meter}",
                f"L:{self.unit.numerator}/{self.unit.denominator}"]
        if rng.random() < self.opt.tempo:
            q = self.beat
            head.append(f"Q:{q.numerator}/{q.denominator}={rng.randrange(60, 181, 4)}")
        n_parts = 2 if rng.random() < self.opt.parts else 1
        if n_parts == 2:
            head.append("P:" + rng.choice(["AB", "ABA", "AAB", "ABB"]))
        head.append(f"K:{self.tonic}{rng.choice(MODES[self.mode][1])}")
        pickup = self.chance(self.opt.pickups)
        body = []
        for p in range(n_parts):
            if n_parts == 2:
                body.append("P:" + "AB"[p])
            body.append(self.part(4 if self.chance(self.opt.short_parts)
                                  else rng.choice([4, 8, 8]), pickup and p == 0))
        return "\n".join(head + body) + "\n"
