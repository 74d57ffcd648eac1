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
from pathlib import Path
from typing import Any

import numpy as np

from bytesim_common.errors import UserError
from datagen.cpu import PROFILES, Profile, get_profile
from datagen.cpu.harness import DEFAULT_MAX_STEPS, run_program
from datagen.music.segments import Unsupported
from simulator.checkpoint import load_pretrained, resolve_model_path
from simulator.codec import (
    CpuCodec,
    CpuTrace,
    MusicCodec,
    MusicPair,
    codec_from_options,
)
from simulator.cpu_inputs import InitialState, Program, read_initial_state, read_program
from simulator.long_tunes import DEFAULT_SEGMENT_BARS, UnreadableSegment, convert_tune
from simulator.metrics import valid_midi
from simulator.midi_events import StreamError
from simulator.outputs import (
    DEFAULT_BRANCHES,
    fits_its_tune,
    greedy_ids,
    music_outputs,
    output_file,
)
from simulator.traces import Comparison, StepReport, Trace, compare_traces

TRAINED = Path(__file__).resolve().parent.parent / "trained"
DEFAULT_CPU_MODEL = "cpu-rv32e"


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
        outs = greedy_ids(self.model, self.codec, samples, max(budgets) * stride + 1, prompts)
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


class ContextError(UserError):
    """The input, or the output the model wrote, does not fit the model's context (`raw`: what
    it wrote, if anything)."""

    def __init__(self, message: str, raw: bytes = b""):
        UserError.__init__(self, message)  # not the next in OutputDidNotEnd's order
        self.raw = raw


class OutputDidNotEnd(ContextError, ModelOutputError):
    """The model's output ran to the end of its context (a model failure, not bad input)."""


class MusicConverter:
    """An ABC -> MIDI (`trained/abc2midi`) or MIDI -> ABC (`trained/midi2abc`) byte model."""

    def __init__(self, model, codec: MusicCodec, path: Path | None = None,
                 branches: int = DEFAULT_BRANCHES):
        if branches < 0:
            raise UserError(f"branches must be 0 or more; got {branches}")
        self.model, self.codec, self.path, self.branches = model, codec, path, branches

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, task: str | None = None,
                        device: str = "cpu", branches: int = DEFAULT_BRANCHES) -> MusicConverter:
        """Load `path` (default `trained/<task>`, task default abc2midi); the direction is the
        checkpoint's (`task`, when given, must agree). `branches`: each greedy output is written
        again from up to that many of its closest calls (where the runner-up was likeliest),
        and the likeliest of them is kept (`simulator.outputs.branched_ids`; 0: greedy
        alone)."""
        if task is not None and task not in ("abc2midi", "midi2abc"):
            raise UserError(f"task must be abc2midi or midi2abc, got {task!r}")
        folder, model, _, codec = _load(path, task or "abc2midi", device)
        if not isinstance(codec, MusicCodec):
            raise UserError(f"{folder} is a {codec.task} model, not a music converter")
        if task is not None and codec.task != task:
            raise UserError(f"{folder} is a {codec.task} model, not {task}")
        return cls(model, codec, folder, branches)

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

    def _convert(self, samples: list[MusicPair]) -> list[bytes | ContextError]:
        """The model's output files for samples' prompts (greedy, constrained, in one batch,
        then branched); a ContextError in place of a file whose input or output does not fit
        the context."""
        prompts = []
        for sample in samples:
            try:
                prompts.append(self.codec.prompt(sample).tolist())
            except StreamError as e:  # the events codec reads only canonical MIDI
                raise UserError(f"the model cannot read this MIDI file: {e}") from None
            except ValueError as e:  # e.g. ABC text that a note-slot prompt cannot hold
                raise UserError(f"the model cannot read this ABC text: {e}") from None
        source = "ABC text" if self.task == "abc2midi" else "MIDI file"
        files: list[bytes | ContextError] = []
        outs = music_outputs(self.model, self.codec, samples, prompts, self.branches,
                             fits_its_tune(self.codec))
        for prompt, out in zip(prompts, outs):
            if out is None:
                files.append(ContextError(
                    f"the {source} takes {len(prompt)} bytes encoded; the model's context is "
                    f"{self.context} bytes (at most {self.context - 4 * self.codec.align - 1} "
                    "bytes of input)"))
            elif out.ends:
                files.append(output_file(self.codec, out))  # a whole file
            else:
                raw = self.codec.target_bytes(np.array(out.ids, np.int64))
                files.append(OutputDidNotEnd(f"the model's output did not end within its "
                                             f"{self.context}-byte context ({len(raw)} bytes "
                                             "written)", raw))
        return files

    def _convert_one(self, sample: MusicPair) -> bytes:
        [out] = self._convert([sample])
        if isinstance(out, ContextError):
            raise out
        return out

    def abc_to_midi(self, abc: str, segment_bars: int | None = DEFAULT_SEGMENT_BARS) -> bytes:
        """The model's MIDI file for an ABC tune; ModelOutputError if mido cannot parse it. A
        tune that plays more than `segment_bars` bars beside a pickup is converted that many
        bars at a time, its repeats and parts written out, and so is a shorter one whose output
        does not fit the context, does not end, or ends with fewer notes than the tune plays
        (simulator/long_tunes.py, `convert_tune`; None: whole only)."""
        self._need("abc2midi")
        failures: list[ContextError] = []

        def whole() -> bytes | None:
            try:
                return self._convert_one(MusicPair(abc, b""))
            except ContextError as e:
                failures.append(e)
                return None

        try:
            raw = convert_tune(abc, whole, self._segment_files, segment_bars)
        except Unsupported as why:
            e = failures[0]
            raise type(e)(f"{e}; and the tune cannot be converted in segments: {why}",
                          e.raw) from None
        except UnreadableSegment as why:
            raise ModelOutputError(f"the tune was converted in segments, and {why}",
                                   b"") from None
        if raw is None:
            raise failures[0]
        if not valid_midi(raw):
            raise ModelOutputError(f"the model's output is not valid MIDI (mido cannot parse "
                                   f"its {len(raw)} bytes)", raw)
        return raw

    def _segment_files(self, texts: list[str]) -> list[bytes | None]:
        return [None if isinstance(out, ContextError) else out
                for out in self._convert([MusicPair(text, b"") for text in texts])]

    def midi_to_abc(self, midi: bytes) -> str:
        """The model's ABC text for a MIDI file (normalised first, as the training corpus)."""
        self._need("midi2abc")
        raw = self._convert_one(MusicPair("", _normalized(midi)))
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


# the trace types live in simulator.traces; users of the facade find them here too
__all__ = ["CPUSimulator", "Comparison", "ContextError", "ModelOutputError", "MusicConverter",
           "OutputDidNotEnd", "StepReport", "Trace", "compare_traces"]
