"""Every script in examples/ runs (in its fast mode, on the tiny test checkpoints), is referenced
from the README, and answers bad input in one line with exit code 2."""

import importlib.util
import os
import subprocess
import sys

import pytest
from helpers import ROOT

# A file whose name starts with "_" is a helper the examples share, not an example.
EXAMPLES = sorted(p.name for p in (ROOT / "examples").glob("[!_]*.py"))


def _run(script: str, *args: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "examples" / script), "--fast", *args],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _load(script: str):
    """The example `script` (a file name in examples/) as a module, to test its functions."""
    spec = importlib.util.spec_from_file_location(script.removesuffix(".py"),
                                                  ROOT / "examples" / script)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(ROOT / "examples"))  # as `python examples/...` finds their helpers
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "examples"))
    return module


def test_every_example_is_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    assert EXAMPLES == ["abc_accompaniment.py", "abc_features.py", "abc_pitch_errors.py",
                        "abc_titles.py", "compare_own_program.py",
                        "convert_tune.py", "demo_variants.py",
                        "predict_program.py", "register_moves.py", "train_tiny.py",
                        "uniform_shifts.py", "worst_tunes.py"]
    assert all(f"examples/{name}" in readme for name in EXAMPLES)


@pytest.mark.parametrize("script, arg", [
    ("abc_titles.py", "no-such-corpus"), ("abc_features.py", "no-such-corpus"),
    ("abc_pitch_errors.py", "no-such-corpus"), ("abc_accompaniment.py", "no-such-corpus"),
    ("worst_tunes.py", "no-such-corpus"), ("convert_tune.py", "no-such-tune.abc"),
    ("compare_own_program.py", "no-such-program.s")])
def test_an_example_given_bad_input_says_so_in_one_line(script, arg, tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "examples" / script), str(tmp_path / arg)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(f"examples/{script}: error: ") and done.stderr.count("\n") == 1


def test_predict_program(tiny_cpu):
    out = _run("predict_program.py", "--model", str(tiny_cpu.run))
    assert "0x1000: addi ra, zero, 0xa" in out and "state 0: pc=0x1000" in out


def test_compare_own_program(tiny_cpu, tmp_path):
    (tmp_path / "mine.s").write_text("li x1, 9\naddi x2, x1, 1\n")
    out = _run("compare_own_program.py", str(tmp_path / "mine.s"), "--init", "x3=4",
               "--model", str(tiny_cpu.checkpoint), "--profile", "rv32e-mini")
    assert "0x1004: addi sp, ra, 1" in out and '"byte_accuracy"' in out
    assert "0x0000000a" in out  # Unicorn's x2 = 10


def test_register_moves(tiny_cpu):
    out = _run("register_moves.py", "--model", str(tiny_cpu.checkpoint), "--imm", "random")
    lines = out.splitlines()
    assert len(lines) == 5 and lines[-2].endswith("of 3 destination registers right")
    assert all(line.startswith("addi x") and "unicorn 0x" in line for line in lines[:3])
    routes = lines[-1].removeprefix("by route: ").split(", ")  # "x2<-x1 0/1", ...
    assert sum(int(r.split()[1].split("/")[1]) for r in routes) == 3


def test_uniform_shifts(tiny_cpu):
    lines = _run("uniform_shifts.py", "--model", str(tiny_cpu.checkpoint)).splitlines()
    assert len(lines) == 4 and lines[0].startswith("all ") and lines[0].endswith("/3")
    by_op = [int(part.split("/")[1]) for part in lines[1].split()[1::2]]  # "slli 0/1 srai 0/2"
    assert sum(by_op) == 3


def test_convert_tune(tiny_abc2midi):
    out = _run("convert_tune.py", "--model", str(tiny_abc2midi.checkpoint))
    assert "reference (" in out and ("model (" in out or "model: the model's" in out)


def test_demo_variants(tiny_abc2midi):
    lines = _run("demo_variants.py", "--model", str(tiny_abc2midi.checkpoint)).splitlines()
    assert lines[-2].removeprefix("demo tune byte-identical to abc2midi's: ") in ("yes", "no")
    right = int(lines[-1].removeprefix("variants right: ").removesuffix(" of 2"))
    assert len(lines) == 2 + (2 - right)  # one line for each variant not right


def test_train_tiny(tmp_path):
    out = _run("train_tiny.py", "--out", str(tmp_path))
    assert (tmp_path / "checkpoint" / "model.safetensors").exists()
    assert "unicorn end after 3 steps" in out


def test_abc_pitch_errors(tiny_abc2midi):
    out = _run("abc_pitch_errors.py", str(tiny_abc2midi.corpus), "--split", "train",
               "--model", str(tiny_abc2midi.checkpoint))
    assert out.splitlines()[-1].startswith("all notes ")


def test_abc_accompaniment(tiny_abc2midi):
    out = _run("abc_accompaniment.py", str(tiny_abc2midi.corpus), "--split", "train",
               "--model", str(tiny_abc2midi.checkpoint))
    assert out.startswith("tunes with guitar chords: ")


def test_abc_accompaniment_bar_length_and_beats_by_bar():
    """A bar in quarter notes, from the tune's meter; beats counted by the bar of the eight-bar
    phrase their onset falls in (onsets a little late, as abc2midi's are, stay in their bar)."""
    mod = _load("abc_accompaniment.py")
    right = [(0.002, True), (4.002, False), (12.002, False), (13.002, True),
             (30.002, True)]  # in 3/4: bars 0, 1, 4, 4 and 10, the third of its second phrase
    assert mod.beats_by_bar(right, mod.bar_length("X:1\nM:3/4\nK:C\n")) == {
        (0, True): 1, (1, False): 1, (4, False): 1, (4, True): 1, (2, True): 1}
    assert [mod.bar_length(f"X:1\nM:{m}\nK:C\n") for m in ("6/8", "C", "C|", "3/4", "2/2")] == \
        [3, 4, 4, 3, 4]
    assert mod.bar_length("X:1\nK:C\nC |]\n") == 4


def test_abc_features(tiny_abc2midi):
    lines = _run("abc_features.py", str(tiny_abc2midi.corpus), "--split", "train",
                 "--model", str(tiny_abc2midi.checkpoint)).splitlines()
    rows = {}
    for line in lines[1:]:  # "feature  tunes  right  share"
        name, tunes, right, _ = line.rsplit(None, 3)
        rows[name] = (int(tunes), int(right))
    n = rows["all tunes"][0]  # the first 3 tunes of the split, or all it has
    assert 1 <= n <= 3 and sum(t for name, (t, _) in rows.items() if name.startswith("M:")) == n
    assert all(right <= tunes <= n for tunes, right in rows.values())


def test_abc_titles(tiny_abc2midi):
    lines = _run("abc_titles.py", str(tiny_abc2midi.corpus), "--split", "train",
                 "--model", str(tiny_abc2midi.checkpoint), "--after", "", " 3").splitlines()
    assert lines[0].split() == ["after", "the", "title", "tunes", "meta", "wrong", "note_f1"]
    rows = [line.rsplit(None, 3) for line in lines[1:]]
    assert [r[0] for r in rows] == ["''", "' 3'"]
    for _, tunes, wrong, f1 in rows:
        assert 1 <= int(tunes) <= 3 and 0 <= int(wrong) <= int(tunes) and 0 <= float(f1) <= 1


def test_abc_titles_retitled():
    """Only the first title line changes, its trailing blanks dropped."""
    script = _load("abc_titles.py")
    tune = "X:1\nT:Tune 3 \nT:second\nM:4/4\nK:C\nC D |]\n"
    assert script.retitled(tune, " 9") == "X:1\nT:Tune 3 9\nT:second\nM:4/4\nK:C\nC D |]\n"
    assert script.retitled("X:1\nK:C\nC |]\n", " 9") == "X:1\nK:C\nC |]\n"


def test_abc_features_of_a_tune():
    """A tune's meter, unit length and the marks its body holds, guitar chords' text aside."""
    script = _load("abc_features.py")
    tune = 'X:1\nT:t\nM:6/8\nL:1/8\nK:G\n"D7-(b9)"(3ABc d2-d [DF]>G |: z2 e :|\n'
    assert script.features(tune) == ["M:6/8", "L:1/8", "guitar chords", "chords", "triplets",
                                     "ties", "broken rhythm", "repeats", "rests", "note lengths"]
    assert script.features("X:1\nT:t\nK:C\nC D E F |]\n") == ["M:(none)", "L:(default)",
                                                                  "no marks"]
    assert "rest runs" in script.features("X:1\nT:t\nK:C\nC z2 | z D |]\n")
    assert "rest runs" not in script.features("X:1\nT:t\nK:C\nC z D z |]\n")


def test_worst_tunes(tiny_abc2midi):
    """The lowest tunes first, each with its first error; the last line sums what is lost."""
    lines = _run("worst_tunes.py", str(tiny_abc2midi.corpus), "--split", "train",
                 "--model", str(tiny_abc2midi.checkpoint), "--show", "2").splitlines()
    n = int(lines[-1].split()[0])  # the first 3 tunes of the split, or all it has
    tunes = [line for line in lines if line.startswith("tune ")]
    assert 1 <= n <= 3 and len(tunes) == min(n, 2) and len(lines) == 2 * len(tunes) + 1
    f1s = [float(line.split("note_f1 ")[1].split(",")[0]) for line in tunes]
    assert f1s == sorted(f1s) and all(0 <= f <= 1 for f in f1s)
    assert all("first error" in line for line in tunes)
    assert "note_f1 lost: " in lines[-1]


def test_worst_tunes_describes_the_first_difference():
    """The first note where the model's notes and abc2midi's differ, or none."""
    script = _load("worst_tunes.py")
    ref = [(0, 60, 0.0, 1.0), (0, 62, 1.0, 1.0)]
    assert script.describe(ref, ref) == "none"
    assert script.describe([(0, 60, 0.0, 1.0), (0, 62, 1.5, 1.0)], ref) == \
        "note 1: model (0, 62, 1.5, 1.0) | abc2midi (0, 62, 1.0, 1.0)"
    assert script.describe(ref[:1], ref) == "note 1: model none | abc2midi (0, 62, 1.0, 1.0)"


def test_abc_accompaniment_beats():
    """A beat is right where the model starts exactly the reference's notes at its onset."""
    mod = _load("abc_accompaniment.py")
    ref = [(0, 69, 0.0, 1.0), (1, 45, 0.0, 1.0), (2, 57, 1.0, 1.0), (2, 61, 1.0, 1.0),
           (1, 50, 2.0, 1.0), (2, 62, 3.0, 1.0)]
    got = [(0, 69, 0.0, 1.0), (1, 45, 0.0, 1.0), (2, 57, 1.0, 1.0),  # one chord note missing
           (1, 50, 2.0, 1.0), (2, 62, 3.0, 1.0), (2, 66, 3.0, 1.0)]  # one too many
    (ref_mel, ref_acc), (mel, acc) = mod.split_tracks(ref, 0), mod.split_tracks(got, 0)
    assert ref_mel == mel == [(0, 69, 0.0, 1.0)] and len(ref_acc) == 5
    assert mod.beats_right(acc, ref_acc) == [(0.0, True), (1.0, False), (2.0, True),
                                             (3.0, False)]
    precision = recall = 4 / 5  # note_f1, the metric the script prints, of the same notes
    assert mod.notes_f1(acc, ref_acc) == 2 * precision * recall / (precision + recall)
    assert mod.notes_f1([], []) == 1.0


def test_abc_pitch_errors_note_kinds():
    """What decides each note's pitch, as abc2midi reads it: an accidental carries to its letter
    in every octave until the bar line."""
    script = _load("abc_pitch_errors.py")
    kinds = script.note_kinds("X:1\nT:t\nM:4/4\nL:1/8\nK:D\n^G g G, z =F f c | G F2 |]\n")
    assert kinds == [("explicit accidental", False, 67), ("carried accidental", False, 79),
                     ("carried accidental", True, 55), ("explicit accidental", False, 65),
                     ("carried accidental", False, 77), ("", False, 72), ("", False, 67),
                     ("", False, 65)]
    assert script.note_kinds("X:1\nT:t\nK:C\n[CEG] C |]\n") is None  # a chord
