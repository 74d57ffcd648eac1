"""Evaluation: the pipeline can learn (overfit to 100% free-running), metrics, eval/export CLI."""

import io
import json

import mido
import numpy as np
import pytest

from bytesim_common.errors import UserError
from datagen.cli import build_parser as datagen_parser
from datagen.cpu.build import build_cpu_corpus
from datagen.music.build import build_music_corpus
from simulator.checkpoint import load_pretrained, resolve_model_path
from simulator.cli import main
from simulator.codec import MusicPair, codec_from_options
from simulator.evaluate import evaluate, evaluate_rows, format_table
from simulator.long_tunes import join_midi
from simulator.metrics import (
    CpuTally,
    MusicTally,
    StepTally,
    first_difference,
    first_error,
    midi_meta,
    midi_notes,
    note_f1,
    notes_exact,
    state_matches,
    valid_midi,
)
from simulator.train import TrainArgs, train


def _datagen(*argv):
    args = datagen_parser().parse_args([*argv, "--quiet"])
    {"cpu": build_cpu_corpus, "music": build_music_corpus}[args.command](args)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def few(tmp_path_factory):
    out = tmp_path_factory.mktemp("few") / "few"
    _datagen("cpu", "--profile", "rv32e-mini", "-n", "8", "--seed", "3", "--max-len", "4",
             "--out", str(out))
    return out


def _overfit(data, out, ir_word="none"):
    """A tiny model trained on 7 short rv32e-mini traces until it knows them by heart
    (ir_word "records" or "decoded-records": that commit-record layout instead of full
    states; followed by " header": with `--record-prompt header`)."""
    name, _, prompt = ir_word.partition(" ")
    layout = ({"cpu_layout": name, "record_prompt": prompt or "full"}
              if name.endswith("records") else {"ir_word": name})
    train(TrainArgs(task="cpu", data=str(data), out=str(out), steps=150, batch_size=8, lr=3e-3,
                    save_every=150, eval_every=150, quiet=True, **layout))
    return data, out


@pytest.fixture(scope="module")
def overfit(few, tmp_path_factory):
    return _overfit(few, tmp_path_factory.mktemp("overfit") / "run")


@pytest.mark.parametrize("ir_word", ["none", "fetched", "given", "executed", "executed-patch",
                                     "executed-operands", "records", "decoded-records",
                                     "decoded-records header"])
def test_tiny_model_learns_traces_to_full_free_running_accuracy(overfit, ir_word, tmp_path):
    data, run = overfit if ir_word == "none" else _overfit(overfit[0], tmp_path / "ir", ir_word)
    r = evaluate(run, data, split="train", show_progress=False)
    assert r["n"] == 7 and r["bpb"] < 0.5
    assert r["byte_accuracy"] == r["state_exact"] == r["final_exact"] == 1.0
    assert r["step_exact"] == 1.0 and r["write_exact"] == 1.0
    assert r["stop_rule"] == (ir_word != "none" and ir_word != "fetched")
    one = r["one_step"]
    assert one["copy_previous"]["step_exact"] == 0.0  # the pc always moves
    assert one["model"]["steps"] == sum(v["steps"] for v in one["model"]["by_mnemonic"].values())
    assert r["byte_accuracy_tf"] == 1.0
    assert set(r["free_running"]["by_register"]) == {"pc", "x1", "x2", "x3"}
    steps = sum(v["steps"] for v in r["free_running"]["by_class"].values())
    assert steps == int(r["state_exact"] * steps) > 0
    untrained = evaluate(run, data, split="test", show_progress=False)  # an unseen trace
    assert untrained["n"] == 1 and untrained["bpb"] > r["bpb"]


def test_eval_and_export_commands(overfit, tmp_path, capsys):
    data, run = overfit
    with pytest.raises(SystemExit) as e:
        main(["eval", "--model", str(run), "--data", str(data), "--split", "train", "--json",
              "--quiet", "--plot", str(tmp_path / "cls.png")])
    assert e.value.code == 0
    out = capsys.readouterr().out.strip().splitlines()
    result = json.loads(out[-1])
    assert {"loss", "bpb", "byte_accuracy", "state_exact", "final_exact"} <= set(result)
    assert "| byte_accuracy |" in "\n".join(out)
    assert (tmp_path / "cls.png").read_bytes()[:4] == b"\x89PNG"
    (tmp_path / "eval.json").write_text("\n".join(out))
    with pytest.raises(SystemExit) as e:
        main(["export", str(run), str(tmp_path / "trained" / "mini"), "--eval-json",
              str(tmp_path / "eval.json")])
    assert e.value.code == 0
    dest = tmp_path / "trained" / "mini"
    assert sorted(p.name for p in dest.iterdir()) == ["README.md", "config.json",
                                                      "model.safetensors"]
    card = (dest / "README.md").read_text()
    assert "simulator train" in card and "| byte_accuracy |" in card and "ours" in card
    _, meta = load_pretrained(dest)
    assert meta["codec"]["task"] == "cpu"


@pytest.mark.parametrize(("midi_codec", "abc_layout"),
                         [("file", "text"), ("events", "text"), ("events", "note-slots")])
def test_music_pipeline_runs(tmp_path, midi_codec, abc_layout):
    """midi2abc trains and evaluates with each layout, its ABC target in note slots too."""
    _datagen("music", "--source", "synthetic", "-n", "6", "--seed", "2", "--out",
             str(tmp_path / "mus"))
    train(TrainArgs(task="midi2abc", data=str(tmp_path / "mus"), out=str(tmp_path / "run"),
                    steps=2, batch_size=2, max_len=4096, midi_codec=midi_codec,
                    abc_layout=abc_layout, quiet=True))
    r = evaluate(tmp_path / "run", tmp_path / "mus", split="train", limit=1,
                 show_progress=False)
    assert r["task"] == "midi2abc" and r["n"] == 1 and 4 < r["bpb"] < 12
    assert r["exact_file"] == 0.0 and r["notes_exact"] == 0.0 and "valid_midi" not in r


@pytest.mark.parametrize(("midi_codec", "abc_layout"),
                         [("events", "text"), ("note-aligned", "text"), ("events", "note-slots")])
def test_events_codec_eval_leads_with_note_metrics(tmp_path, midi_codec, abc_layout):
    """abc2midi with an event-stream codec on M0 tunes (the ABC as text or in note slots):
    every output that ends is valid MIDI (by construction), and the teacher-forced note
    diagnostic covers every reference note."""
    _datagen("music", "--source", "synthetic", "--ladder", "M0", "-n", "8", "--seed", "2",
             "--out", str(tmp_path / "m0"))
    train(TrainArgs(task="abc2midi", data=str(tmp_path / "m0"), out=str(tmp_path / "run"),
                    steps=30, batch_size=4, lr=3e-3, max_len=1024, midi_codec=midi_codec,
                    abc_layout=abc_layout, quiet=True))
    r = evaluate(tmp_path / "run", tmp_path / "m0", split="train", limit=3, batch_size=3,
                 show_progress=False)
    assert r["n"] == 3 and r["tf_notes"] == 3 * 32
    assert r["valid_midi"] == r["ends"]
    for k in ("note_f1", "notes_exact", "note_tf", "pitch_tf", "onset_tf", "duration_tf"):
        assert 0.0 <= r[k] <= 1.0, k
    assert r["note_tf"] <= min(r["pitch_tf"], r["onset_tf"], r["duration_tf"])
    table = format_table(r).splitlines()
    assert table[4].startswith("| note_f1 |") and table[5].startswith("| notes_exact |")
    assert "bpb" not in "\n".join(table[:10])


def test_eval_scores_tunes_longer_than_the_context_in_segments(tiny_abc2midi):
    """With segment_bars, the tunes too long for the context are converted in segments and
    scored beside the rest (a tune that cannot be cut counts as wrong); the teacher-forced
    figures stay on the tunes that fit."""
    model, meta = load_pretrained(tiny_abc2midi.checkpoint)
    codec = codec_from_options(meta["codec"])
    fits = tiny_abc2midi.rows[0]
    long = {"abc": "X:1\nT:long\nM:4/4\nL:1/8\nK:C\n" + "CDEF GABc | cBAG FEDC |\n" * 30,
            "midi": fits["midi"]}
    # a MIDI directive after the first notes: it cannot be cut (datagen.music.segments)
    uncut = {"abc": long["abc"] + "%%MIDI program 2\nCDEF GABc |\n", "midi": fits["midi"]}
    rows = [fits, long, uncut]
    r = evaluate_rows(model, codec, rows, "three tunes", segment_bars=4, show_progress=False)
    assert (r["n"], r["n_too_long"], r["n_segmented"], r["n_unsupported"]) == (1, 2, 1, 1)
    assert r["ends"] <= 2 / 3 and r["notes_exact"] <= 1 / 3  # the cut-less tune: no output
    assert "1 tunes in segments (0 after their whole output), 1 with no file" in format_table(
        {**r, "split": "test", "data": "x"})
    without = evaluate_rows(model, codec, rows, "three tunes", show_progress=False)
    assert without["n"] == 1 and "n_segmented" not in without
    with pytest.raises(UserError, match="--segment-bars is for abc2midi models, at least 1"):
        evaluate_rows(model, codec, rows, "three tunes", segment_bars=0)


def test_eval_scores_branched_outputs_where_asked(tiny_abc2midi):
    """--branches: the outputs scored are the converter's with the same branches, and the table
    says how they were made."""
    from simulator.facade import ContextError, ModelOutputError, MusicConverter

    model, meta = load_pretrained(tiny_abc2midi.checkpoint)
    codec = codec_from_options(meta["codec"])
    rows = tiny_abc2midi.rows
    r = evaluate_rows(model, codec, rows, "the tunes", segment_bars=4, show_progress=False,
                      branches=2)
    assert r["branches"] == 2
    assert "| metric (greedy output, branched at up to 2 closest calls) |" in format_table(
        {**r, "split": "test", "data": "x"})
    conv = MusicConverter(model, codec, branches=2)

    def converted(abc: str) -> bytes:
        try:
            return conv.abc_to_midi(abc, 4)
        except (ContextError, ModelOutputError):
            return b""

    right = [converted(row["abc"]) == row["midi"] for row in rows]
    assert r["exact_file"] == pytest.approx(sum(right) / len(rows))
    with pytest.raises(UserError, match="--branches is for music models, 0 or more"):
        evaluate_rows(model, codec, rows, "the tunes", branches=-1)
    with pytest.raises(UserError, match="branches must be 0 or more"):
        MusicConverter(model, codec, branches=-1)


def test_eval_retries_in_segments_a_tune_whose_whole_output_does_not_end(tiny_abc2midi,
                                                                          monkeypatch):
    """As the converter does: with segment_bars, a tune that fits but whose output does not end
    inside the context is converted in segments; without, it is scored as it came out."""
    import simulator.evaluate as ev
    from simulator.outputs import Output

    model, meta = load_pretrained(tiny_abc2midi.checkpoint)
    codec = codec_from_options(meta["codec"])
    whole = {"abc": "X:1\nT:t\nM:4/4\nL:1/8\nK:C\n" + "CDEF GABc | cBAG FEDC |\n" * 3,
             "midi": tiny_abc2midi.rows[0]["midi"]}
    real = ev.music_outputs
    calls = []

    def whole_tunes_never_end(model, codec, samples, prompts=None, branches=0, check=None):
        calls.append([s.abc for s in samples])
        outs = real(model, codec, samples, prompts, branches, check)
        return [Output(out.ids, False) if s.abc == whole["abc"] and out is not None else out
                for s, out in zip(samples, outs)]

    monkeypatch.setattr(ev, "music_outputs", whole_tunes_never_end)
    r = evaluate_rows(model, codec, [whole], "one tune", segment_bars=6, show_progress=False)
    assert (r["n"], r["n_segmented"], r["n_retried"], r["n_unsupported"]) == (1, 1, 1, 0)
    assert len(calls) == 2 and calls[1] == [  # the whole tune, then as one 6-bar segment
        whole["abc"].split("CDEF")[0] + " | ".join(["CDEF GABc | cBAG FEDC"] * 3) + " |]\n"]
    assert r["ends"] == 1.0 and "1 tunes in segments (1 after their whole output)" in format_table(
        {**r, "split": "test", "data": "x"})
    r = evaluate_rows(model, codec, [whole], "one tune", segment_bars=2, show_progress=False)
    assert (r["n_segmented"], r["n_retried"]) == (1, 0)  # 6 bars > 2: in segments first
    assert calls[2] == [whole["abc"].split("CDEF")[0] + "CDEF GABc | cBAG FEDC |]\n"]
    plain = evaluate_rows(model, codec, [whole], "one tune", show_progress=False)
    assert plain["ends"] == 0.0 and "n_retried" not in plain


def test_eval_retries_in_segments_a_tune_whose_output_ends_too_soon(tiny_abc2midi, monkeypatch):
    """As the converter does: an output that ends with fewer notes than the tune plays
    (`cut_short`) is replaced by the tune in segments, and a tune longer than the context is
    tried whole first, its output kept where it ends with the notes the tune plays."""
    from simulator import long_tunes

    model, meta = load_pretrained(tiny_abc2midi.checkpoint)
    codec = codec_from_options(meta["codec"])
    row = tiny_abc2midi.rows[0]
    kept = evaluate_rows(model, codec, [row], "one tune", segment_bars=4, show_progress=False)
    assert (kept["n"], kept["n_segmented"], kept["n_retried"]) == (1, 0, 0)
    monkeypatch.setattr(long_tunes, "cut_short", lambda abc, midi: True)
    r = evaluate_rows(model, codec, [row], "one tune", segment_bars=4, show_progress=False)
    assert (r["n"], r["n_segmented"], r["n_retried"]) == (1, 1, 1)
    monkeypatch.undo()
    copies = 2
    while len(codec.encode(MusicPair(row["abc"], join_midi([row["midi"]] * copies)))[0]) \
            <= model.config.max_len:
        copies *= 2
    longer = {"abc": row["abc"], "midi": join_midi([row["midi"]] * copies)}  # the pair is too long
    tried = evaluate_rows(model, codec, [row, longer], "two tunes", segment_bars=4,
                          show_progress=False)
    assert tried["n_too_long"] == 1 and tried["n_segmented"] == 0  # its output kept whole


def test_a_text_abc_model_starts_runs_of_other_music_layouts_but_not_of_another_shape(tmp_path):
    """--init-from may change the ABC's and the MIDI's layouts and the ABC's header (no weight
    depends on them); midi2abc, which writes the ABC, takes no untitled header."""
    _datagen("music", "--source", "synthetic", "--ladder", "M0", "-n", "6", "--seed", "2",
             "--out", str(tmp_path / "m0"))
    common = {"task": "abc2midi", "data": str(tmp_path / "m0"), "steps": 1, "batch_size": 2,
              "max_len": 1024, "curriculum": 0, "quiet": True}
    train(TrainArgs(out=str(tmp_path / "text"), **common))
    train(TrainArgs(out=str(tmp_path / "slots"), abc_layout="note-slots",
                    init_from=str(tmp_path / "text"), **common))
    _, meta = load_pretrained(resolve_model_path(tmp_path / "slots"))
    assert meta["codec"]["abc"] == "note-slots"
    train(TrainArgs(out=str(tmp_path / "merged"), midi_codec="merged-events",
                    abc_layout="note-slots", abc_header="untitled",
                    init_from=str(tmp_path / "text"), **common))
    _, meta = load_pretrained(resolve_model_path(tmp_path / "merged"))
    assert meta["codec"] == {"task": "abc2midi", "align": 16, "midi": "merged-events",
                             "abc": "note-slots", "header": "untitled"}
    with pytest.raises(UserError, match="untitled ABC header is for abc2midi"):
        train(TrainArgs(out=str(tmp_path / "m2a"), abc_header="untitled",
                        **{**common, "task": "midi2abc"}))
    with pytest.raises(UserError, match="does not fit this run"):
        train(TrainArgs(out=str(tmp_path / "flat"), preset="tiny-flat",
                        init_from=str(tmp_path / "text"), **common))


def test_step_tally_counts_exact_steps_writes_and_taken_branches():
    prev = np.array([[0, 0, 1, 1], [4, 0, 1, 1], [8, 0, 2, 1]], np.uint8)  # pc, x1 (2 B each)
    truth = np.array([[4, 0, 1, 1], [8, 0, 2, 1], [20, 0, 2, 1]], np.uint8)
    taken = np.array([False, False, True])
    good = truth.copy()
    t = StepTally([2, 2])
    t.add(good, np.array([True, True, False]), prev, truth, taken, ["store", "alu", "branch"],
          ["sw", "add", "beq"])
    r = t.result()
    assert (r["steps"], r["step_exact"]) == (3, 2 / 3)  # the unpredicted step is wrong
    assert (r["writes"], r["write_exact"]) == (1, 1.0)  # only the add changes x1
    assert (r["taken"], r["branch_exact"]) == (1, 0.0)
    assert r["by_mnemonic"]["add"]["write_exact"] == 1.0 and r["by_class"]["store"]["writes"] == 0
    copying = StepTally([2, 2])
    copying.add(prev, np.ones(3, bool), prev, truth, taken, ["store", "alu", "branch"],
                ["sw", "add", "beq"])
    assert copying.result()["step_exact"] == copying.result()["write_exact"] == 0.0
    wrong_x1 = good.copy()
    wrong_x1[1, 3] = 7  # the written register's high byte
    t2 = StepTally([2, 2])
    t2.add(wrong_x1, np.ones(3, bool), prev, truth, taken, ["s", "a", "b"], ["sw", "add", "beq"])
    assert t2.result()["write_exact"] == 0.0 and t2.result()["branch_exact"] == 1.0


def test_probe_scores_single_instructions_of_every_class(overfit, capsys):
    from simulator.probe import probe_rows

    rows = probe_rows("rv32e-mini", "load", 3, seed=1)
    assert [r["n_steps"] for r in rows] == [2, 2, 2]  # the lui and the load
    assert all(r["asm"].splitlines()[1].startswith("l") for r in rows)
    branches = probe_rows("rv32e-mini", "branch", 30, seed=1)
    assert any(r["n_steps"] == 1 for r in branches)  # the first branch skipped the second
    with pytest.raises(SystemExit) as e:
        main(["probe", "--model", str(overfit[1]), "-n", "2", "--json"])
    assert e.value.code == 0
    out = capsys.readouterr().out.strip().splitlines()
    result = json.loads(out[-1])
    assert set(result["by_class"]) == {"alu", "alu_imm", "upper", "muldiv", "load", "store",
                                       "branch"}
    assert all(v["programs"] == 2 for v in result["by_class"].values())
    assert "| all |" in "\n".join(out)


def test_cpu_tally_counts_bytes_states_registers_and_classes():
    truth = np.array([[1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 3, 4, 5, 6, 7, 9]], np.uint8)
    pred = np.array([[1, 2, 3, 4, 5, 6, 7, 8]])  # the second state is missing
    right = state_matches(pred, truth)
    assert right.sum() == 8
    t = CpuTally(["pc", "x1"], [4, 4])
    t.add(right, ["alu", "load"], final_right=False)
    t.add(np.ones((1, 8), bool), ["alu"], final_right=True)
    r = t.result()
    assert r["byte_accuracy"] == 16 / 24 and r["state_exact"] == 2 / 3 and r["final_exact"] == 0.5
    assert r["by_register"] == {"pc": 8 / 12, "x1": 8 / 12}
    assert r["by_class"]["alu"] == {"steps": 2, "byte_accuracy": 1.0, "state_exact": 1.0}
    assert r["by_class"]["load"]["byte_accuracy"] == 0.0


def _midi(notes, meta=()):
    mid = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack(meta)
    mid.tracks.append(track)
    for pitch, dur in notes:
        track.append(mido.Message("note_on", note=pitch, velocity=64, time=0))
        track.append(mido.Message("note_off", note=pitch, velocity=0, time=dur))
    buf = io.BytesIO()
    mid.save(file=buf)
    return buf.getvalue()


def test_music_metrics():
    ref = _midi([(60, 480), (62, 480), (64, 960)])
    assert valid_midi(ref) and not valid_midi(ref[:20]) and not valid_midi(b"abc")
    assert note_f1(ref, ref) == 1.0
    half = note_f1(_midi([(60, 480), (62, 480), (65, 960)]), ref)
    assert half == pytest.approx(2 / 3)
    assert note_f1(_midi([(60, 240), (62, 480), (64, 960)]), ref) == 0.0  # onsets all shift
    assert note_f1(b"garbage", ref) == 0.0
    assert notes_exact(ref, ref) and not notes_exact(b"garbage", ref)
    assert not notes_exact(_midi([(60, 480), (62, 480)]), ref)  # a note missing
    assert not notes_exact(_midi([(60, 480), (62, 480), (64, 960), (64, 480)]), ref)  # one more


def test_meta_exact_sees_the_meter_and_tempo_that_note_f1_does_not():
    """Notes are timed in beats, so a file in 3/4 (or at another tempo) with the reference's notes
    scores note_f1 1; meta_exact counts it wrong."""
    notes = [(60, 480), (62, 480), (64, 960)]
    four = [mido.MetaMessage("time_signature", numerator=4, denominator=4),
            mido.MetaMessage("set_tempo", tempo=500000)]
    ref = _midi(notes, four)
    assert midi_meta(ref) == [(0.0, "set_tempo", (("tempo", 500000),)),
                              (0.0, "time_signature", (("clocks_per_click", 24),
                                                       ("denominator", 4),
                                                       ("notated_32nd_notes_per_beat", 8),
                                                       ("numerator", 4)))]
    three = _midi(notes, [mido.MetaMessage("time_signature", numerator=3, denominator=4),
                          four[1]])
    slower = _midi(notes, [four[0], mido.MetaMessage("set_tempo", tempo=600000)])
    t = MusicTally("abc2midi")
    for out in (ref, three, slower, _midi(notes, four[::-1]), _midi(notes), b""):
        t.add_output(out, ref, exact_file=out == ref, ends=True)
    r = t.result()
    assert t.files["note_f1"] == [1.0] * 5 + [0.0]
    assert t.files["meta_exact"] == [True, False, False, True, False, False]  # order in time only
    assert r["meta_exact"] == pytest.approx(2 / 6)


def test_music_tally_leads_with_the_note_metrics():
    ref = _midi([(60, 480), (62, 480), (64, 960)])
    t = MusicTally("abc2midi")
    t.add_output(ref, ref, exact_file=True, ends=True)
    t.add_output(_midi([(60, 480), (62, 480), (65, 960)]), ref, exact_file=False, ends=True)
    t.add_output(b"", ref, exact_file=False, ends=False)
    t.add_teacher_forced(np.array([[1, 1, 1], [1, 0, 1], [0, 0, 1]], bool))
    t.add_teacher_forced(np.zeros((0, 3), bool))
    r = t.result()
    assert list(r)[:4] == ["note_f1", "notes_exact", "ends", "valid_midi"]
    assert r["note_f1"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert r["notes_exact"] == r["exact_file"] == pytest.approx(1 / 3)
    assert r["ends"] == r["valid_midi"] == r["meta_exact"] == pytest.approx(2 / 3)
    assert r["tf_notes"] == 3 and r["note_tf"] == pytest.approx(1 / 3)
    assert (r["pitch_tf"], r["onset_tf"], r["duration_tf"]) == pytest.approx((2 / 3, 1 / 3, 1))
    assert r["first_error"] == {"wrong_pitch": 0.5, "unreadable": 0.5}  # of the 2 wrong outputs
    assert "note_tf" not in MusicTally("midi2abc").result()


def test_first_error_says_how_an_output_first_departs_from_the_reference():
    ref = _midi([(60, 480), (62, 480), (62, 480), (64, 480), (65, 480)])
    assert first_error(ref, ref) is None
    # one D left out: every later note is one ahead of the reference
    assert first_error(_midi([(60, 480), (62, 480), (64, 480), (65, 480)]), ref) == "skipped_note"
    # E and F written in each other's place; the notes after them come out right
    assert first_error(_midi([(60, 480), (62, 480), (62, 480), (65, 480), (64, 480)]),
                       ref) == "swapped_notes"
    assert first_error(_midi([(60, 480), (62, 480), (62, 480), (62, 480), (64, 480)]),
                       ref) == "repeated_note"
    assert first_error(_midi([(60, 480), (62, 480), (62, 480), (71, 480), (65, 480)]),
                       ref) == "wrong_pitch"
    assert first_error(_midi([(60, 480), (62, 240), (62, 480)]), ref) == "wrong_timing"
    assert first_error(_midi([(60, 480), (62, 480)]), ref) == "missing"
    assert first_error(_midi([(60, 480), (62, 480), (62, 480), (64, 480), (65, 480), (67, 480)]),
                       ref) == "extra"
    assert first_error(b"garbage", ref) == "unreadable"


def test_first_difference_names_the_first_notes_that_differ_in_time_order():
    """The index and the two notes where two files' notes first differ, taken by onset (not in
    the order the file lists them: here a second track's note starts first); None where equal,
    and None for the note past the end of the shorter list."""
    ref = midi_notes(_midi([(60, 480), (62, 480)]))
    assert first_difference(ref, ref) is None
    assert first_difference(midi_notes(_midi([(60, 480), (62, 960)])), ref) == \
        (1, (0, 62, 1.0, 2.0), (0, 62, 1.0, 1.0))
    assert first_difference(ref[:1], ref) == (1, None, (0, 62, 1.0, 1.0))
    mid = mido.MidiFile(ticks_per_beat=480)
    mid.tracks += [mido.MidiTrack([mido.Message("note_on", note=64, velocity=64, time=480),
                                   mido.Message("note_off", note=64, time=480)]),
                   mido.MidiTrack([mido.Message("note_on", note=48, velocity=64),
                                   mido.Message("note_off", note=48, time=480)])]
    buf = io.BytesIO()
    mid.save(file=buf)
    two_tracks = midi_notes(buf.getvalue())
    assert two_tracks[0][1] == 64  # the file lists the later note first
    assert first_difference(two_tracks, ref) == (0, (0, 48, 0.0, 1.0), (0, 60, 0.0, 1.0))


def test_first_error_finds_no_error_where_the_same_notes_come_in_another_order():
    """Two notes at one onset and pitch that differ only in duration, read from two tracks in
    either order: the same notes, as notes_exact counts them, so no first error."""
    def two_tracks(durations):
        mid = mido.MidiFile(ticks_per_beat=480)
        for dur in durations:
            mid.tracks.append(mido.MidiTrack([mido.Message("note_on", note=60, velocity=64),
                                              mido.Message("note_off", note=60, time=dur)]))
        buf = io.BytesIO()
        mid.save(file=buf)
        return buf.getvalue()

    a, b = two_tracks([480, 960]), two_tracks([960, 480])
    assert notes_exact(a, b) and first_error(a, b) is None
