"""What users touch: `CPUSimulator` (predict a program's register trace, beside Unicorn's) and
`MusicConverter` (ABC <-> MIDI with a byte model, beside the reference converter).

    sim = CPUSimulator.from_pretrained()              # trained/cpu-rv32e
    trace = sim.predict("li x1, 5\\naddi x2, x1, 3")   # assembly, machine code or a file path
    print(sim.compare("prog.s").format())             # model vs Unicorn, register by register

Both load a checkpoint folder (`trained/NAME` or a run folder) with `load_pretrained`, encode
with the checkpoint's codec and decode greedily with `ByteModel.generate`, constrained to the
shape of valid output (`Codec.constraint`). The ground truth comes from datagen: the Unicorn
harness for CPUs, abc2midi / midi2abc for music.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bytesim_common.errors import UserError
from datagen.cpu import (
    PROFILES,
    Profile,
    assemble,
    classify,
    disassemble,
    get_profile,
    random_initial_state,
    run_program,
    zero_state,
)
from datagen.cpu.harness import DEFAULT_MAX_STEPS
from simulator.checkpoint import load_pretrained, resolve_model_path
from simulator.codec import (
    END,
    CpuCodec,
    CpuTrace,
    MusicCodec,
    MusicPair,
    codec_from_options,
    generation_constraint,
)
from simulator.metrics import CpuTally, state_matches, valid_midi
from simulator.midi_events import StreamError

TRAINED = Path(__file__).resolve().parent.parent / "trained"
DEFAULT_CPU_MODEL = "cpu-rv32e"
PROGRAM_SUFFIXES = (".s", ".S", ".asm", ".bin")

Program = str | bytes | Path
InitialState = None | bytes | Mapping[str, int] | str


def default_model_path(name: str) -> Path:
    """`trained/NAME` of the repository (where `simulator export` puts shipped checkpoints), or
    NAME in the folder $BYTESIM_TRAINED names (an install that does not carry `trained/`)."""
    return Path(os.environ.get("BYTESIM_TRAINED") or TRAINED) / name


def _load(path: str | Path | None, default: str, device: str):
    if path is None and not default_model_path(default).exists():
        raise UserError(f"no checkpoint at {default_model_path(default)}: train one "
                        f"(`simulator train` then `simulator export RUN trained/{default}`) "
                        "or give a model path (--model), or set BYTESIM_TRAINED to the folder "
                        "that holds the shipped checkpoints")
    folder = resolve_model_path(default_model_path(default) if path is None else path)
    model, meta = load_pretrained(folder, device)
    return folder, model, meta, codec_from_options(meta["codec"])


# ---------------------------------------------------------------------------------------------
# CPU inputs


def read_program(program: Program, profile: str) -> bytes:
    """Machine code from assembly text, raw bytes, or a file (`.bin`: raw; else assembly)."""
    if isinstance(program, (bytes, bytearray, memoryview)):
        code = bytes(program)
    else:
        text = str(program)
        as_path = Path(text)
        looks_like_file = isinstance(program, Path) or (
            "\n" not in text and text.endswith(PROGRAM_SUFFIXES))
        if looks_like_file or ("\n" not in text and len(text) < 4096 and as_path.is_file()):
            try:
                data = as_path.read_bytes()
            except FileNotFoundError:
                raise UserError(f"no such program file: {text}") from None
            except OSError as e:
                raise UserError(f"cannot read program file {text}: {e.strerror}") from None
            if as_path.suffix == ".bin":
                code = data
            else:
                try:
                    code = assemble(profile, data.decode("utf-8"))
                except UnicodeDecodeError:
                    raise UserError(f"{text} is not UTF-8 assembly text (machine code files "
                                    "must end in .bin)") from None
        else:
            code = assemble(profile, text)
    if not code:
        raise UserError("the program is empty")
    return code


def _register_index(profile: Profile, name: str) -> int:
    """The state slot of a register: its name as the profile spells it, or a RISC-V ABI name."""
    from datagen.cpu.rv32 import ABI_NAMES

    key = name.strip().lower()
    if profile.isa == "rv32" and key in ABI_NAMES:
        key = f"x{ABI_NAMES[key]}"
    if key not in profile.registers:
        extra = " (x0 is always zero)" if key == "x0" else ""
        raise UserError(f"{profile.name} has no register {name.strip()!r}{extra}; its registers: "
                        f"{', '.join(profile.registers)}")
    return profile.registers.index(key)


def parse_assignments(text: str) -> dict[str, int]:
    """`x1=5,x2=0x10` (commas, spaces or newlines between pairs) -> {"x1": 5, "x2": 16}."""
    values: dict[str, int] = {}
    for part in text.replace(",", " ").split():
        name, eq, value = part.partition("=")
        if not eq or not name:
            raise UserError(f"expected REG=VALUE, got {part!r}")
        try:
            values[name] = int(value, 0)
        except ValueError:
            raise UserError(f"value of {name} is not a number: {value!r}") from None
    if not values:
        raise UserError("no REG=VALUE pairs given")
    return values


def make_state(profile: Profile, values: Mapping[str, int]) -> bytes:
    """A state with the given registers set and the rest as in `zero_state` (pc = code base)."""
    state = bytearray(zero_state(profile))
    offsets = np.cumsum([0, *profile.register_bytes])
    for name, value in values.items():
        i = _register_index(profile, name)
        width = profile.register_bytes[i]
        if not -(1 << (8 * width - 1)) <= int(value) < (1 << (8 * width)):
            raise UserError(f"{name}={value} does not fit a {8 * width}-bit register")
        state[offsets[i]: offsets[i + 1]] = (int(value) % (1 << (8 * width))).to_bytes(width,
                                                                                        "little")
    return bytes(state)


def read_stdin_program() -> str | bytes:
    """A program piped in: assembly if it is printable UTF-8 text, else machine code."""
    import sys

    data = sys.stdin.buffer.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return data
    return text if all(c.isprintable() or c.isspace() for c in text) else data


def read_init_arg(arg: str | None) -> InitialState:
    """`--init`: None, `REG=VAL,...`, or a file holding such pairs or the raw state bytes."""
    if arg is None or "=" in arg:
        return arg
    try:
        data = Path(arg).read_bytes()
    except FileNotFoundError:
        raise UserError(f"--init: no file {arg} (or give REG=VALUE pairs)") from None
    except OSError as e:
        raise UserError(f"--init: cannot read {arg}: {e.strerror}") from None
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        return data
    return text if "=" in text else data


def read_initial_state(initial: InitialState, profile: Profile, rng: random.Random) -> bytes:
    """state_0: None = drawn by datagen's initial-state drawer from `rng`; a {reg: value} dict or
    `REG=VALUE,...` text (other registers zero, pc = code base); or the raw state bytes."""
    if initial is None:
        return random_initial_state(profile, rng)
    if isinstance(initial, (bytes, bytearray, memoryview)):
        state = bytes(initial)
        if len(state) != profile.state_size:
            raise UserError(f"a {profile.name} state has {profile.state_size} bytes, got "
                            f"{len(state)}")
        return state
    if isinstance(initial, str):
        return make_state(profile, parse_assignments(initial))
    if isinstance(initial, Mapping):
        return make_state(profile, initial)
    raise UserError(f"an initial state is None, bytes, a dict or REG=VALUE text; got "
                    f"{type(initial).__name__}")


# ---------------------------------------------------------------------------------------------
# Traces and comparisons


@dataclass(frozen=True)
class Trace:
    """A register trace: state_0 (the initial state) .. state_n, by the model or by Unicorn.

    stop: "end" (ran off the program's end; for the model: it wrote the end marker),
    "max_steps", or "fault:<kind>" (Unicorn only).
    """

    profile: str
    program: bytes
    states: bytes  # (n + 1) * state_size
    stop: str
    source: str  # "model" | "unicorn"

    @property
    def _profile(self) -> Profile:
        return get_profile(self.profile)

    @property
    def n_steps(self) -> int:
        return len(self.states) // self._profile.state_size - 1

    @property
    def state_bytes(self) -> list[bytes]:
        size = self._profile.state_size
        return [self.states[i: i + size] for i in range(0, len(self.states), size)]

    @property
    def registers(self) -> list[dict[str, int]]:
        """Each state as {register: unsigned value}, in the profile's register order."""
        p = self._profile
        offsets = np.cumsum([0, *p.register_bytes])
        return [{r: int.from_bytes(s[a:b], "little")
                 for r, a, b in zip(p.registers, offsets, offsets[1:])} for s in self.state_bytes]

    @property
    def disassembly(self) -> list[tuple[int, bytes, str]]:
        """(address, bytes, capstone text) of each instruction of the program."""
        return disassemble(self.profile, self.program)

    @property
    def asm(self) -> str:
        return "\n".join(f"{a:#06x}: {text}" for a, _, text in self.disassembly)

    def instruction_at(self, pc: int) -> str:
        """The capstone text of the instruction at address `pc` ("?" outside the program)."""
        return next((text for a, _, text in self.disassembly if a == pc), "?")


@dataclass(frozen=True)
class StepReport:
    """State k of a comparison: the instruction that made it and the registers the model got wrong
    (a state the model did not predict has every register wrong)."""

    step: int
    pc: int
    instruction: str
    instruction_class: str
    exact: bool
    wrong_registers: tuple[str, ...]


@dataclass(frozen=True)
class Comparison:
    """The model's trace beside Unicorn's, scored on the target states (state_1 .. state_n of
    Unicorn's trace) with the definitions of docs/metrics.md (`simulator.metrics`)."""

    predicted: Trace
    emulator: Trace
    byte_accuracy: float | None  # None when Unicorn's trace has no step
    state_exact: float | None
    final_exact: bool
    by_register: dict[str, float | None]  # byte accuracy per register
    steps: tuple[StepReport, ...]

    def summary(self) -> dict[str, Any]:
        """The `simulator cpu --json` object (docs/formats.md)."""
        return {"profile": self.emulator.profile, "program_hex": self.emulator.program.hex(),
                "predicted": [s.hex() for s in self.predicted.state_bytes],
                "emulator": [s.hex() for s in self.emulator.state_bytes],
                "byte_accuracy": self.byte_accuracy, "state_exact": self.state_exact}

    def format(self) -> str:
        """Both traces, register by register; `<-` marks a register the model got wrong."""
        p = get_profile(self.emulator.profile)
        pred, emu = self.predicted.registers, self.emulator.registers
        width = 2 + 2 * max(p.register_bytes)
        lines = [f"{p.name} program, {len(self.emulator.program)} bytes:",
                 *("  " + line for line in self.emulator.asm.splitlines()), ""]
        n = max(len(pred), len(emu))
        for k in range(min(n, len(emu) + 1)):  # one predicted state past Unicorn's end at most
            if k == 0:
                title = "state 0 (initial)"
            elif k <= len(self.steps):
                s = self.steps[k - 1]
                title = (f"state {k} after {s.pc:#x}: {s.instruction}  "
                         f"[{'exact' if s.exact else 'MISMATCH'}]")
            else:
                title = f"state {k} (predicted past Unicorn's end)"
            lines += [title, f"  {'reg':<7}{'model':<{width + 2}}unicorn"]
            for r in p.registers:
                a = f"{pred[k][r]:#0{width}x}" if k < len(pred) else "-"
                b = f"{emu[k][r]:#0{width}x}" if k < len(emu) else "-"
                lines.append(f"  {r:<7}{a:<{width + 2}}{b}{'  <-' if a != b else ''}")
        if n > len(emu) + 1:
            lines.append(f"(and {n - len(emu) - 1} more predicted states past Unicorn's end)")
        lines += ["", (f"stop: model {self.predicted.stop} after {self.predicted.n_steps} "
                       f"steps, unicorn {self.emulator.stop} after {self.emulator.n_steps} steps")]
        if self.byte_accuracy is not None:
            lines.append(f"byte accuracy {100 * self.byte_accuracy:.2f}%, states exact "
                         f"{100 * self.state_exact:.2f}%, final state "
                         f"{'right' if self.final_exact else 'wrong'}")
        return "\n".join(lines)


def compare_traces(predicted: Trace, emulator: Trace) -> Comparison:
    """Score a predicted trace against Unicorn's (same program and state_0)."""
    p = get_profile(emulator.profile)
    size = p.state_size
    truth = np.frombuffer(emulator.states, np.uint8).reshape(-1, size)[1:]  # (n, S)
    guess = np.frombuffer(predicted.states, np.uint8).reshape(-1, size)[1:]  # (m, S)
    right = state_matches(guess, truth)  # (n, S)
    regs = emulator.registers
    pcs = [r[p.pc_register] for r in regs[:-1]]  # the instruction of step k is at state_{k-1}'s pc
    classes = [classify(p.name, emulator.program[pc - p.code_base:])
               if 0 <= pc - p.code_base < len(emulator.program) else "other" for pc in pcs]
    final = (predicted.stop == "end" and len(guess) == len(truth) and len(truth) > 0
             and bool(right[-1].all()))
    tally = CpuTally(p.registers, p.register_bytes)
    if len(truth):
        tally.add(right, classes, final)
    res = tally.result()
    offsets = np.cumsum([0, *p.register_bytes])
    steps = tuple(StepReport(
        k + 1, pc, emulator.instruction_at(pc), cls, bool(right[k].all()),
        tuple(r for r, a, b in zip(p.registers, offsets, offsets[1:]) if not right[k, a:b].all()))
        for k, (pc, cls) in enumerate(zip(pcs, classes)))
    return Comparison(predicted, emulator, res["byte_accuracy"], res["state_exact"], final,
                      res["by_register"], steps)


# ---------------------------------------------------------------------------------------------
# The CPU simulator


def checkpoint_profile(codec_options: dict[str, Any]) -> str | None:
    """The CPU profile a checkpoint was trained on (its codec options' `profile`), or None."""
    return codec_options.get("profile")


class CPUSimulator:
    """A CPU byte model: predicts the register state after every instruction of a program."""

    def __init__(self, model, codec: CpuCodec, profile: str, path: Path | None = None):
        self.model, self.codec, self.path = model, codec, path
        self.profile: Profile = get_profile(profile)

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, device: str = "cpu",
                        profile: str | None = None) -> CPUSimulator:
        """Load `path` (a checkpoint folder or a run folder; default `trained/cpu-rv32e`).

        The profile is the one the checkpoint was trained on (`checkpoint_profile`); `profile`
        names it where the checkpoint does not record it.
        """
        folder, model, meta, codec = _load(path, DEFAULT_CPU_MODEL, device)
        if not isinstance(codec, CpuCodec):
            raise UserError(f"{folder} is a {codec.task} model, not a CPU model")
        recorded = checkpoint_profile(meta["codec"])
        if profile is None and recorded is None:
            raise UserError(f"{folder} does not record the CPU profile it was trained on; "
                            f"name it (profile=..., or --profile: {', '.join(PROFILES)})")
        if profile is not None and recorded is not None and profile != recorded:
            raise UserError(f"{folder} was trained on {recorded} traces, not {profile}")
        return cls(model, codec, profile or recorded, folder)

    @property
    def context(self) -> int:
        """The longest sequence, in bytes, the model was trained on."""
        return self.model.config.max_len

    def _inputs(self, programs: list[Program], initial_state, seed: int):
        rng = random.Random(seed)
        if isinstance(initial_state, list):
            if len(initial_state) != len(programs):
                raise UserError(f"{len(initial_state)} initial states for {len(programs)} "
                                "programs")
            inits = initial_state
        else:
            inits = [initial_state] * len(programs)
        return [(read_program(prog, self.profile.name),
                 read_initial_state(init, self.profile, rng))
                for prog, init in zip(programs, inits)]

    def _room(self, prompt_len: int) -> int:
        """How many states fit in the context after a prompt (and the end patch)."""
        stride = self.codec.stride(self.profile.name)
        room = (self.context - prompt_len - self.codec.align) // stride
        if room < 1:
            raise UserError(f"the program and its initial state take {prompt_len} bytes of the "
                            f"model's {self.context}-byte context, which leaves no room for a "
                            f"{stride}-byte state")
        return room

    def predict(self, program: Program | list[Program], initial_state: InitialState | list = None,
                max_steps: int | None = None, seed: int = 0) -> Trace | list[Trace]:
        """The model's trace of `program` (or of each program of a list, in one batched
        generation). A program is assembly text, machine code (bytes) or a file path (`.bin`:
        machine code). initial_state: None (drawn with `seed`), {reg: value}, `REG=VALUE,...`,
        raw state bytes, or a list of these, one per program. max_steps: states to predict at
        most (default: as many as fit in the model's context)."""
        many = isinstance(program, list)
        inputs = self._inputs(program if many else [program], initial_state, seed)
        traces = self._predict(inputs, max_steps)
        return traces if many else traces[0]

    def _predict(self, inputs: list[tuple[bytes, bytes]], max_steps: int | None) -> list[Trace]:
        name, stride = self.profile.name, self.codec.stride(self.profile.name)
        samples = [CpuTrace(name, code, state) for code, state in inputs]
        prompts = [self.codec.prompt(s).tolist() for s in samples]
        rooms = [self._room(len(p)) for p in prompts]
        if max_steps is not None and max_steps < 1:
            raise UserError(f"max_steps must be at least 1, got {max_steps}")
        budgets = [room if max_steps is None else min(room, max_steps) for room in rooms]
        allowed = generation_constraint([self.codec.constraint(s) for s in samples],
                                        [len(p) for p in prompts])
        outs = self.model.generate(prompts, max(budgets) * stride + 1, temperature=0.0,
                                   stop_id=END, allowed=allowed)
        traces = []
        for s, out, budget in zip(samples, outs, budgets):
            states, ended = self.codec.generated_states(s, out)
            stop = "end" if ended and len(states) <= budget else "max_steps"
            traces.append(Trace(name, s.program, s.states + states[:budget].tobytes(),
                                stop, "model"))
        return traces

    def emulate(self, program: Program, initial_state: InitialState = None,
                max_steps: int | None = None, seed: int = 0) -> Trace:
        """Unicorn's trace of `program` (the ground truth); arguments as `predict`."""
        [(code, state)] = self._inputs([program], initial_state, seed)
        return self._emulate(code, state, max_steps)

    def _emulate(self, code: bytes, state: bytes, max_steps: int | None) -> Trace:
        t = run_program(self.profile.name, code, state,
                        DEFAULT_MAX_STEPS if max_steps is None else max_steps)
        return Trace(self.profile.name, code, t.states, t.stop, "unicorn")

    def compare(self, program: Program, initial_state: InitialState = None,
                max_steps: int | None = None, seed: int = 0) -> Comparison:
        """The model's trace beside Unicorn's, from the same state_0, with per-byte,
        per-register and per-instruction scores (`Comparison.format()` prints them)."""
        [(code, state)] = self._inputs([program], initial_state, seed)
        [predicted] = self._predict([(code, state)], max_steps)
        return compare_traces(predicted, self._emulate(code, state, max_steps))


# ---------------------------------------------------------------------------------------------
# The music converter


class ModelOutputError(UserError):
    """The model wrote something that is not a valid output (`raw` holds what it wrote)."""

    def __init__(self, message: str, raw: bytes):
        super().__init__(message)
        self.raw = raw


class MusicConverter:
    """An ABC -> MIDI (`trained/abc2midi`) or MIDI -> ABC (`trained/midi2abc`) byte model."""

    def __init__(self, model, codec: MusicCodec, path: Path | None = None):
        self.model, self.codec, self.path = model, codec, path

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, task: str | None = None,
                        device: str = "cpu") -> MusicConverter:
        """Load `path` (default `trained/<task>`, task default abc2midi); the direction is the
        checkpoint's (`task`, when given, must agree)."""
        if task is not None and task not in ("abc2midi", "midi2abc"):
            raise UserError(f"task must be abc2midi or midi2abc, got {task!r}")
        folder, model, _, codec = _load(path, task or "abc2midi", device)
        if not isinstance(codec, MusicCodec):
            raise UserError(f"{folder} is a {codec.task} model, not a music converter")
        if task is not None and codec.task != task:
            raise UserError(f"{folder} is a {codec.task} model, not {task}")
        return cls(model, codec, folder)

    @property
    def task(self) -> str:
        return self.codec.task

    @property
    def context(self) -> int:
        return self.model.config.max_len

    def _need(self, task: str) -> None:
        if self.task != task:
            raise UserError(f"this converter's model does {self.task}; load a {task} model "
                            f"(e.g. MusicConverter.from_pretrained(task={task!r}))")

    def _convert(self, sample: MusicPair) -> bytes:
        """The model's output file for a sample's prompt (greedy, constrained)."""
        try:
            prompt = self.codec.prompt(sample).tolist()
        except StreamError as e:  # the events codec reads only canonical MIDI
            raise UserError(f"the model cannot read this MIDI file: {e}") from None
        room = self.context - len(prompt) - self.codec.align
        if room < self.codec.align:
            source = "ABC text" if self.task == "abc2midi" else "MIDI file"
            raise UserError(f"the {source} takes {len(prompt)} bytes encoded; the model's "
                            f"context is {self.context} bytes (at most "
                            f"{self.context - 4 * self.codec.align - 1} bytes of input)")
        allowed = generation_constraint([self.codec.constraint(sample)], [len(prompt)])
        [out] = self.model.generate([prompt], room + 1, temperature=0.0, stop_id=END,
                                    allowed=allowed)
        raw = self.codec.target_bytes(np.array(out, np.int64))
        if END not in out:
            raise ModelOutputError(f"the model's output did not end within its "
                                   f"{self.context}-byte context ({len(raw)} bytes written)", raw)
        return self.codec.output_file(raw)  # an event stream that ended is a whole file

    def abc_to_midi(self, abc: str) -> bytes:
        """The model's MIDI file for an ABC tune; ModelOutputError if mido cannot parse it."""
        self._need("abc2midi")
        raw = self._convert(MusicPair(abc, b""))
        if not valid_midi(raw):
            raise ModelOutputError(f"the model's output is not valid MIDI (mido cannot parse "
                                   f"its {len(raw)} bytes)", raw)
        return raw

    def midi_to_abc(self, midi: bytes) -> str:
        """The model's ABC text for a MIDI file (normalised first, as the training corpus)."""
        self._need("midi2abc")
        raw = self._convert(MusicPair("", _normalized(midi)))
        return raw.decode("utf-8", "replace")

    @staticmethod
    def reference_abc_to_midi(abc: str) -> bytes:
        """The reference converter's MIDI (abc2midi, else music21), normalised as in corpora."""
        from datagen.music.convert import convert, reference_converter

        done = convert(abc, reference_converter())
        if done.failure:
            raise UserError(f"the reference converter could not convert the tune "
                            f"({done.failure}: {done.detail})")
        return _normalized(done.midi or b"")

    @staticmethod
    def reference_midi_to_abc(midi: bytes) -> str:
        """The reference midi2abc's ABC text for a MIDI file."""
        from datagen.music.convert import midi_to_abc

        return midi_to_abc(bytes(midi))


def _normalized(midi: bytes) -> bytes:
    from datagen.music.normalize import BadMidi, normalize_midi

    try:
        return normalize_midi(bytes(midi))
    except BadMidi as e:
        raise UserError(f"not a MIDI file that mido can read ({e})") from None


def midi_summary(midi: bytes) -> str:
    """A one-paragraph listing of a MIDI file's notes (for printing beside a reference)."""
    from datagen.music.show import note_listing

    try:
        return "\n".join(note_listing(midi))
    except Exception as e:  # noqa: BLE001 - a listing never raises
        return f"(unreadable: {type(e).__name__})"


__all__ = ["CPUSimulator", "Comparison", "ModelOutputError", "MusicConverter", "StepReport",
           "Trace", "compare_traces"]
