"""The facade: CPUSimulator (predict / emulate / compare) and MusicConverter, on tiny checkpoints
trained in tests/conftest.py, against the real Unicorn and abc2midi / midi2abc."""

import io
import json
import shutil

import mido
import pytest
import torch
from helpers import needs_abc2midi

from bytesim_common.errors import UserError
from datagen.cpu import PROFILES
from datagen.cpu.harness import run_program
from simulator.checkpoint import read_config, save_pretrained
from simulator.cpu_inputs import make_state
from simulator.facade import (
    ContextError,
    CPUSimulator,
    ModelOutputError,
    MusicConverter,
    OutputDidNotEnd,
    Trace,
    compare_traces,
)
from simulator.model import PRESETS, ByteModel

pytestmark = pytest.mark.usefixtures("one_torch_thread")
MINI = PROFILES["rv32e-mini"]


@pytest.fixture(scope="module")
def sim(tiny_cpu):
    return CPUSimulator.from_pretrained(tiny_cpu.checkpoint, profile="rv32e-mini")


def _init(row) -> bytes:
    return row["states"][: MINI.state_size]


# ---------------------------------------------------------------------------------------------
# CPU


def test_batched_prediction_reproduces_the_learned_traces(sim, tiny_cpu):
    rows = tiny_cpu.rows
    traces = sim.predict([r["program"] for r in rows], [_init(r) for r in rows])
    assert [t.states for t in traces] == [r["states"] for r in rows]
    assert all(t.stop == "end" and t.source == "model" for t in traces)
    one = sim.predict(rows[0]["program"], _init(rows[0]))  # batching changes nothing
    assert isinstance(one, Trace) and one.states == traces[0].states


def test_trace_views_agree_with_the_bytes(sim, tiny_cpu):
    row = tiny_cpu.rows[0]
    t = sim.emulate(row["program"], _init(row))
    assert t.states == row["states"] and t.stop == row["stop"] == "end"
    assert t.n_steps == row["n_steps"] == len(t.state_bytes) - 1
    for state, regs in zip(t.state_bytes, t.registers):
        assert list(regs) == list(MINI.registers)
        assert b"".join(v.to_bytes(4, "little") for v in regs.values()) == state
    assert "\n".join(text for _, _, text in t.disassembly) == row["asm"]


def test_compare_scores_a_learned_program_as_exact(sim, tiny_cpu):
    row = tiny_cpu.rows[1]
    c = sim.compare(row["program"], _init(row))
    assert c.byte_accuracy == c.state_exact == 1.0 and c.final_exact
    assert len(c.steps) == row["n_steps"] and all(s.exact and not s.wrong_registers
                                                  for s in c.steps)
    assert set(c.by_register.values()) == {1.0}
    assert list(c.summary()) == ["profile", "program_hex", "predicted", "emulator",
                                 "byte_accuracy", "state_exact"]
    assert c.summary()["predicted"] == c.summary()["emulator"]
    assert "MISMATCH" not in c.format() and "<-" not in c.format()


def test_compare_traces_marks_the_wrong_register_and_missing_states():
    emu = run_program("rv32e-mini", bytes.fromhex("93005000" "13812000"),
                      make_state(MINI, {"x3": 9}))
    truth = Trace("rv32e-mini", bytes.fromhex("93005000" "13812000"), emu.states, "end",
                  "unicorn")
    states = bytearray(emu.states)
    states[16 + 8] ^= 0xFF  # state 1: one byte of x2 wrong
    c = compare_traces(Trace(truth.profile, truth.program, bytes(states), "end", "model"), truth)
    assert c.byte_accuracy == 31 / 32 and c.state_exact == 0.5 and c.final_exact
    assert [s.wrong_registers for s in c.steps] == [("x2",), ()]
    assert c.by_register["x2"] == 7 / 8 and c.by_register["x1"] == 1.0
    assert [s.instruction_class for s in c.steps] == ["alu_imm", "alu_imm"]
    short = compare_traces(Trace(truth.profile, truth.program, emu.states[:32], "end", "model"),
                           truth)
    assert short.byte_accuracy == 0.5 and not short.final_exact
    assert short.steps[1].wrong_registers == MINI.registers
    assert "MISMATCH" in c.format() and "x2" in c.format().split("MISMATCH")[1]


def test_program_forms_agree_and_bad_programs_are_one_line_errors(sim, tmp_path):
    text = "li x1, 5\n# comment\nloop: addi x2, x1, -1\nbnez x3, 4\n"
    code = bytes.fromhex("93005000" "1381f0ff" "63920100")
    (tmp_path / "p.s").write_text(text)
    (tmp_path / "p.bin").write_bytes(code)
    init = {"x3": 0}
    traces = [sim.emulate(p, init) for p in (text, code, str(tmp_path / "p.s"),
                                              tmp_path / "p.bin", str(tmp_path / "p.bin"))]
    assert {t.program for t in traces} == {code} and len({t.states for t in traces}) == 1
    for bad, words in [("frob x1, x2", "frob"), ("addi x9, x1, 1", "x9"),
                       (str(tmp_path / "nope.s"), "no such program file")]:
        with pytest.raises(UserError, match=words) as e:
            sim.predict(bad)
        assert "\n" not in str(e.value)


def test_initial_states(sim):
    s = make_state(MINI, {"sp": -1, "x1": 0x10, "X3": 7})  # ABI name, negative, any case
    assert s == (bytes.fromhex("00100000") + (16).to_bytes(4, "little") + b"\xff" * 4
                 + (7).to_bytes(4, "little"))
    assert sim.emulate("nop", "x2=-1,x1=0x10,x3=7").state_bytes[0] == s
    drawn = [sim.emulate("nop", seed=k).state_bytes[0] for k in (0, 0, 1)]
    assert drawn[0] == drawn[1] != drawn[2]
    assert int.from_bytes(drawn[0][:4], "little") == MINI.code_base
    for bad, words in [({"x5": 1}, "no register 'x5'"), ({"x1": 1 << 32}, "32-bit"),
                       (b"\0" * 8, "16 bytes"), ("x1", "REG=VALUE")]:
        with pytest.raises(UserError, match=words):
            sim.emulate("nop", bad)


def test_too_long_input_and_bad_max_steps_are_refused(sim):
    long_program = "addi x1, x1, 1\n" * 200  # 800 bytes > the tiny model's 512-byte context
    with pytest.raises(UserError, match="512-byte context"):
        sim.predict(long_program)
    with pytest.raises(UserError, match="max_steps"):
        sim.predict("nop", max_steps=0)
    assert sim.predict("nop", max_steps=2).n_steps <= 2


def test_profile_comes_from_the_run_or_is_asked_for(tiny_cpu, tmp_path):
    assert CPUSimulator.from_pretrained(tiny_cpu.run).profile.name == "rv32e-mini"
    assert read_config(tiny_cpu.checkpoint)["codec"]["profile"] == "rv32e-mini"
    assert CPUSimulator.from_pretrained(tiny_cpu.checkpoint).profile.name == "rv32e-mini"
    # a checkpoint that does not record its profile (as older ones) must be told it
    unrecorded = tmp_path / "no-profile"
    shutil.copytree(tiny_cpu.checkpoint, unrecorded)
    config = read_config(unrecorded)
    config["codec"]["profile"] = None
    (unrecorded / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match="does not record the CPU profile"):
        CPUSimulator.from_pretrained(unrecorded)
    assert CPUSimulator.from_pretrained(unrecorded, profile="rv32e-mini").profile.name == \
        "rv32e-mini"
    with pytest.raises(UserError, match="trained on rv32e-mini traces, not x86"):
        CPUSimulator.from_pretrained(tiny_cpu.run, profile="x86")


def test_loading_errors_are_one_line(tiny_cpu, tmp_path):
    def error(path, **kw) -> str:
        with pytest.raises(UserError) as e:
            CPUSimulator.from_pretrained(path, profile="rv32e-mini", **kw)
        assert "\n" not in str(e.value)
        return str(e.value)

    assert "no model at" in error(tmp_path / "missing")
    truncated = tmp_path / "truncated"
    shutil.copytree(tiny_cpu.checkpoint, truncated)
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    assert "truncated" in error(truncated)
    shapes = tmp_path / "shapes"
    shutil.copytree(tiny_cpu.checkpoint, shapes)
    cfg = json.loads((shapes / "config.json").read_text())
    cfg["model"]["d_model"] = [128, 32]
    (shapes / "config.json").write_text(json.dumps(cfg))
    assert "shape" in error(shapes)


# ---------------------------------------------------------------------------------------------
# Music


def test_abc_to_midi_reproduces_the_reference(tiny_abc2midi):
    conv = MusicConverter.from_pretrained(tiny_abc2midi.checkpoint)
    assert conv.task == "abc2midi"
    row = tiny_abc2midi.rows[0]
    midi = conv.abc_to_midi(row["abc"])
    assert midi == row["midi"] == conv.reference_abc_to_midi(row["abc"])
    assert len(mido.MidiFile(file=io.BytesIO(midi)).tracks) >= 1
    with pytest.raises(UserError, match="does abc2midi"):
        conv.midi_to_abc(midi)
    with pytest.raises(ContextError, match="context is 512 bytes"):  # one bar: no segments
        conv.abc_to_midi("X:1\nK:C\n" + "C" * 600)


@needs_abc2midi
def test_a_tune_longer_than_the_context_is_converted_in_segments(tmp_path, monkeypatch):
    """The converter falls back to segments (simulator/long_tunes.py) where the whole tune
    does not fit, and joins their files; here a stand-in model converts as abc2midi does."""
    save_pretrained(ByteModel(PRESETS["tiny"]), {"task": "abc2midi", "align": 16}, tmp_path)
    conv = MusicConverter.from_pretrained(tmp_path)
    asked = []

    def convert(samples):
        asked.append(len(samples))
        return [OutputDidNotEnd("the model's output did not end within its context", b"")
                if s.abc.count("|") > 8 else conv.reference_abc_to_midi(s.abc) for s in samples]

    monkeypatch.setattr(conv, "_convert", convert)
    tune = "X:1\nT:long\nM:4/4\nL:1/8\nK:G\n" + "|: GABc dedB | AGFG A4 :|\n" * 3
    assert conv.abc_to_midi(tune) == conv.reference_abc_to_midi(tune)
    assert asked == [1]  # 12 bars: in segments first, its one distinct segment once
    with pytest.raises(OutputDidNotEnd, match="did not end"):  # a ModelOutputError: exit 1
        conv.abc_to_midi(tune, segment_bars=None)
    with pytest.raises(ContextError, match="cannot be converted in segments: a segment cannot "
                                           "carry 'K:D' inside a bar"):
        conv.abc_to_midi(tune.replace("A4", "[K:D] A4"))


@needs_abc2midi
def test_an_output_that_ends_with_fewer_notes_than_the_tune_is_converted_in_segments(
        tmp_path, monkeypatch):
    """A whole output that ends too soon (`cut_short`) is replaced by the tune in segments; where
    the tune cannot be cut, the output is given as written."""
    save_pretrained(ByteModel(PRESETS["tiny"]), {"task": "abc2midi", "align": 16}, tmp_path)
    conv = MusicConverter.from_pretrained(tmp_path)
    tune = "X:1\nT:t\nM:4/4\nL:1/8\nK:G\n" + "GABc dedB | AGFG A4 |\n" * 2  # 4 bars: whole first
    short = conv.reference_abc_to_midi(tune.split("\nGABc")[0] + "\nGABc dedB | AGFG A4 |]\n")
    asked = []

    def convert(samples):
        asked.append(len(samples))
        return [short if "A4 |\nGABc" in s.abc else conv.reference_abc_to_midi(s.abc)
                for s in samples]

    monkeypatch.setattr(conv, "_convert", convert)
    assert conv.abc_to_midi(tune) == conv.reference_abc_to_midi(tune)
    assert asked == [1, 1]  # the whole tune, then as one 4-bar segment
    assert conv.abc_to_midi(tune, segment_bars=None) == short
    assert conv.abc_to_midi(tune.replace("A4", "[K:D] A4")) == short  # cannot be cut


def test_midi_to_abc_reproduces_the_tune(tiny_midi2abc):
    conv = MusicConverter.from_pretrained(tiny_midi2abc.checkpoint, task="midi2abc")
    row = tiny_midi2abc.rows[0]
    assert conv.midi_to_abc(row["midi"]) == row["abc"]
    assert "X:" in conv.reference_midi_to_abc(row["midi"])
    with pytest.raises(UserError, match="not a MIDI file"):
        conv.midi_to_abc(b"not midi at all")
    with pytest.raises(UserError, match="is a midi2abc model, not abc2midi"):
        MusicConverter.from_pretrained(tiny_midi2abc.checkpoint, task="abc2midi")


def test_invalid_model_output_carries_the_raw_bytes(tmp_path, monkeypatch):
    torch.manual_seed(0)
    save_pretrained(ByteModel(PRESETS["tiny"]), {"task": "abc2midi", "align": 16}, tmp_path)
    conv = MusicConverter.from_pretrained(tmp_path)  # untrained
    monkeypatch.setattr(conv, "_convert", lambda samples: [b"MThd\x00\x00\x00\x06junk"])
    with pytest.raises(ModelOutputError, match="not valid MIDI") as e:
        conv.abc_to_midi("X:1\nK:C\nCDE|\n")
    assert e.value.raw == b"MThd\x00\x00\x00\x06junk"
    monkeypatch.undo()
    with pytest.raises(ModelOutputError) as e:  # random weights: not MIDI, or never ends
        conv.abc_to_midi("X:1\nK:C\nCDE|\n")
    assert isinstance(e.value.raw, bytes) and "\n" not in str(e.value)


def test_a_note_slot_converter_writes_ended_midi_and_refuses_unslottable_text(tmp_path):
    torch.manual_seed(0)
    codec = {"task": "abc2midi", "align": 16, "midi": "events", "abc": "note-slots"}
    save_pretrained(ByteModel(PRESETS["tiny"]), codec, tmp_path)
    conv = MusicConverter.from_pretrained(tmp_path)  # untrained
    with pytest.raises(UserError, match="cannot read this ABC text") as e:
        conv.abc_to_midi("X:1\nK:C\nC\x00DE|\n")
    assert "\n" not in str(e.value)
    try:  # the slotted prompt is read; an event stream that ends is a valid file
        out = conv.abc_to_midi("X:1\nK:C\nCDE|\n")
    except ModelOutputError as e:
        assert "did not end" in str(e)
    else:
        mido.MidiFile(file=io.BytesIO(out))


def test_a_cpu_checkpoint_is_not_a_music_converter(tiny_cpu):
    with pytest.raises(UserError, match="is a cpu model, not a music converter"):
        MusicConverter.from_pretrained(tiny_cpu.checkpoint)


def test_x86_through_the_facade(tiny_x86):
    """x86 goes the same way: the profile from the checkpoint, x86 machine code, its registers."""
    sim = CPUSimulator.from_pretrained(tiny_x86.checkpoint)
    assert sim.profile.name == "x86"
    x86 = PROFILES["x86"]
    rows = tiny_x86.rows
    inits = [r["states"][: x86.state_size] for r in rows]
    assert [t.states for t in sim.predict([r["program"] for r in rows], inits)] == \
        [r["states"] for r in rows]
    c = sim.compare(rows[0]["program"], inits[0])
    assert c.byte_accuracy == c.state_exact == 1.0 and c.final_exact
    assert list(c.predicted.registers[0]) == list(x86.registers)
    assert c.summary()["profile"] == "x86"
