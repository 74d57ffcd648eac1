"""Task codecs (layouts: docs/formats.md): a sample <-> token ids + loss mask, byte-exact both ways.

Ids 0..255 are bytes, PAD = 256, END = 257. A sequence is a list of segments; each segment starts
on a patch boundary (`align` = the model's top-level patch size) with a header patch (short ASCII,
PAD-padded), then its content, and the sequence ends with an end patch (END, then PAD).

Content of variable length (a program, ABC text, MIDI bytes) is PAD-terminated: it is followed
by 1..align PADs up to the next patch boundary, so its end is always visible (a content whose
length is a multiple of `align` takes one extra, all-PAD patch). The trace segment is a run of
fixed-stride blocks, one per state, each PAD-padded to a whole number of patches.

The loss mask marks the target tokens that carry information: content bytes, the first PAD after
variable content, and the END; the remaining PADs are forced (see `Constraint`) and not scored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from bytesim_common.layout import round_up, terminated_length
from simulator.midi_events import (
    EventGrammar,
    NoteSpan,
    StreamError,
    events_to_midi,
    midi_to_events,
    note_spans,
)

PAD = 256
END = 257
VOCAB_SIZE = 258
IR_BYTES = 4  # width of the `fetched` instruction word (bGPT's IR register)
# where a CPU state block carries an instruction word (see `CpuCodec`)
IR_WORDS = ("none", "fetched", "given", "executed", "executed-patch")
EXECUTED_WIDTH = {"rv32": 4, "x86": 16}  # the longest instruction of the ISA, zero-padded

TASKS = ("cpu", "abc2midi", "midi2abc")


class DecodeError(ValueError):
    """Ids that no sample encodes to (e.g. a malformed model output)."""


@dataclass(frozen=True)
class CpuTrace:
    profile: str
    program: bytes
    states: bytes  # (n + 1) * state_size: state_0 .. state_n


@dataclass(frozen=True)
class MusicPair:
    abc: str
    midi: bytes


# ---------------------------------------------------------------------------------------------
# Segments


def header_patch(text: str, align: int) -> np.ndarray:
    raw = text.encode("ascii")
    if len(raw) >= align:
        raise ValueError(f"header {text!r} does not fit a {align}-byte patch with its padding")
    return _padded(raw, align)


def _padded(raw: bytes, length: int) -> np.ndarray:
    out = np.full(length, PAD, dtype=np.int16)
    out[: len(raw)] = np.frombuffer(raw, dtype=np.uint8)
    return out


def _terminated(raw: bytes, align: int) -> np.ndarray:
    """Variable content: the bytes, then 1..align PADs up to a patch boundary."""
    return _padded(raw, terminated_length(len(raw), align))


def end_patch(align: int) -> np.ndarray:
    out = np.full(align, PAD, dtype=np.int16)
    out[0] = END
    return out


class _Reader:
    """Walks a decoded id sequence patch by patch."""

    def __init__(self, ids: np.ndarray, align: int):
        self.ids = np.asarray(ids).astype(np.int64)
        self.align, self.pos = align, 0

    def header(self) -> str:
        patch = self.ids[self.pos: self.pos + self.align]
        if len(patch) < self.align:
            raise DecodeError(f"sequence ends at {self.pos} where a header patch was expected")
        n = int(np.argmax(patch >= 256)) if (patch >= 256).any() else self.align
        if n == 0 or (patch[n:] != PAD).any() or (patch[:n] < 32).any() or (patch[:n] > 126).any():
            raise DecodeError(f"no header patch at position {self.pos}")
        self.pos += self.align
        return bytes(patch[:n].astype(np.uint8)).decode("ascii")

    def expect_header(self, text: str) -> None:
        at = self.pos
        got = self.header()
        if got != text:
            raise DecodeError(f"header {got!r} at position {at}, expected {text!r}")

    def terminated(self) -> bytes:
        rest = self.ids[self.pos:]
        special = np.flatnonzero(rest >= 256)
        if len(special) == 0 or rest[special[0]] != PAD:
            raise DecodeError(f"content at position {self.pos} is not PAD-terminated")
        n = int(special[0])
        stop = terminated_length(n, self.align)
        if len(rest) < stop or (rest[n:stop] != PAD).any():
            raise DecodeError(f"content at position {self.pos} is not padded to a patch boundary")
        self.pos += stop
        return bytes(rest[:n].astype(np.uint8))

    def at_end_patch(self) -> bool:
        return self.pos < len(self.ids) and self.ids[self.pos] == END

    def end(self) -> None:
        patch = self.ids[self.pos: self.pos + self.align]
        if len(patch) < self.align or not (patch == end_patch(self.align)).all():
            raise DecodeError(f"no end patch at position {self.pos}")
        if self.pos + self.align != len(self.ids):
            raise DecodeError(f"{len(self.ids) - self.pos - self.align} ids after the end patch")


# ---------------------------------------------------------------------------------------------
# Constraint for generation


def _id_mask(*groups: str) -> torch.Tensor:
    """(V,) bool: the ids of the named groups ("bytes", "pad", "end")."""
    mask = torch.zeros(VOCAB_SIZE, dtype=torch.bool)
    for g in groups:
        if g == "bytes":
            mask[:256] = True
        else:
            mask[{"pad": PAD, "end": END}[g]] = True
    return mask


_MASKS = {key: _id_mask(*key.split("|")) for key in ("bytes", "pad", "end", "bytes|end",
                                                     "bytes|pad")}


@dataclass(frozen=True)
class Constraint:
    """Which ids may come next in a target, by position: the shape of valid output.

    A target is blocks of `block` bytes each padded to `stride` (CPU states), or, when `block`
    is None, one PAD-terminated content; then the end patch. `allowed(target)` takes the target
    ids generated so far and returns the allowed next ids as a bool mask (V,).
    """

    align: int
    stride: int  # CPU: the state block's padded length; music: the patch size
    block: int | None  # CPU: bytes per block; None: PAD-terminated content

    def allowed(self, target: Sequence[int]) -> torch.Tensor:
        t = len(target)
        if END in target:
            return _MASKS["pad"]
        if self.block is not None:
            r = t % self.stride
            return _MASKS["bytes|end"] if r == 0 else _MASKS["bytes" if r < self.block else "pad"]
        if PAD in target:
            return _MASKS["end" if t % self.align == 0 else "pad"]
        return _MASKS["bytes|pad"]

    def for_generate(self, prompt_len: int) -> Callable[[Sequence[int]], torch.Tensor]:
        """`allowed` on a whole sequence (prompt + generated), as `ByteModel.generate` calls it."""
        return lambda seq: self.allowed(seq[prompt_len:])


_FORCED = [torch.nn.functional.one_hot(torch.tensor(i), VOCAB_SIZE).bool() for i in range(256)]


@dataclass(frozen=True)
class GivenWordConstraint(Constraint):
    """State blocks with a given instruction word: the word is forced, and so is the end.

    The word is the program's bytes at a pc the model has predicted (or state_0's), so it is
    given, never guessed: `ir_word` "given" puts after each state the word at that state's pc
    (zeros outside the program); "executed" (and "executed-patch") puts before each state the
    word at the pc of the state before it. Bytes of a block outside its word and its state
    (executed-patch's gap) are PAD. A block starts only where the pc of the state before it is
    inside the program; where it has left the program the trace ends (END): the emulator
    harness's stop rule, applied to the predicted pc.
    """

    program: bytes = b""
    code_base: int = 0
    pc_bytes: int = 4
    word: int = 4  # bytes of the word in each block
    word_at: int = 0  # where the word starts in its block
    state_at: int = 0  # where the state (its pc first) starts in its block
    own_pc: bool = True  # the word is fetched at its own block's pc (else the block before's)
    pc0: int = 0  # state_0's pc

    def _pc(self, target: Sequence[int], k: int) -> int:
        """The pc of the state of target block k (k = -1: state_0)."""
        if k < 0:
            return self.pc0
        at = k * self.stride + self.state_at
        return int.from_bytes(bytes(int(i) for i in target[at: at + self.pc_bytes]), "little")

    def _inside(self, pc: int) -> bool:
        return 0 <= pc - self.code_base < len(self.program)

    def allowed(self, target: Sequence[int]) -> torch.Tensor:
        t = len(target)
        if END in target:
            return _MASKS["pad"]
        k, r = divmod(t, self.stride)
        if r == 0 and not self._inside(self._pc(target, k - 1)):
            return _MASKS["end"]  # the pc left the program: the trace ends
        if self.word_at <= r < self.word_at + self.word:
            pc = self._pc(target, k if self.own_pc else k - 1)
            if not self._inside(pc):
                return _FORCED[0]
            code = self.program[pc - self.code_base:][: self.word]
            i = r - self.word_at
            return _FORCED[code[i] if i < len(code) else 0]
        gap = self.word_at + self.word <= r < self.state_at  # between the word and the state
        return _MASKS["bytes" if r < self.block and not gap else "pad"]


def generation_constraint(constraints: Sequence[Constraint], prompt_lens: Sequence[int]):
    """The `allowed(b, seq)` callback of `ByteModel.generate` for a batch of prompts."""
    per_row = [c.for_generate(n) for c, n in zip(constraints, prompt_lens)]
    return lambda b, seq: per_row[b](seq)


# ---------------------------------------------------------------------------------------------
# Codecs


class Codec:
    """Base: a task's byte layout. Subclasses set `task` and implement the layout."""

    task: str

    def __init__(self, align: int = 16):
        if align < 16 or align % 16:
            raise ValueError(f"align must be a multiple of 16; got {align}")
        self.align = align

    def options(self) -> dict[str, Any]:
        """What a checkpoint stores so that a loaded model encodes the same way."""
        return {"task": self.task, "align": self.align}

    def sample_from_row(self, row: dict[str, Any]) -> Any:
        raise NotImplementedError

    def segments(self, sample: Any) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(prompt parts, target parts) as id arrays; the target excludes the end patch."""
        raise NotImplementedError

    def target_mask(self, target: np.ndarray) -> np.ndarray:
        """The informative positions of the target (without the end patch)."""
        raise NotImplementedError

    def encode(self, sample: Any) -> tuple[np.ndarray, np.ndarray]:
        """ids (T,) int16 and loss mask (T,) bool; T is a multiple of `align`."""
        prompt, target = self.segments(sample)
        p, t = np.concatenate(prompt), np.concatenate(target or [np.zeros(0, np.int16)])
        ids = np.concatenate([p, t, end_patch(self.align)])
        mask = np.zeros(len(ids), dtype=bool)
        mask[len(p): len(p) + len(t)] = self.target_mask(t)
        mask[len(p) + len(t)] = True  # the END
        return ids, mask

    def prompt(self, sample: Any) -> np.ndarray:
        return np.concatenate(self.segments(sample)[0])

    def decode(self, ids: np.ndarray) -> Any:
        raise NotImplementedError

    def constraint(self, sample: Any) -> Constraint:
        """The shape of a valid target for `sample` (for constrained generation)."""
        raise NotImplementedError


def state_pcs(states: np.ndarray, width: int) -> np.ndarray:
    """(n, S) uint8 states -> (n,) int64: each state's pc, its first `width` bytes (little-endian)."""
    return states[:, :width].copy().view(f"<u{width}")[:, 0].astype(np.int64)


def _profile(name: str):
    from datagen.cpu import PROFILES

    if name not in PROFILES:
        raise DecodeError(f"unknown CPU profile {name!r} (known: {', '.join(PROFILES)})")
    return PROFILES[name]


class CpuCodec(Codec):
    """`[cpu:<profile>] [program] [trace] [state_0] ... [state_n] [end]` (docs/formats.md).

    `ir_word` places an instruction word in every state block:
    - "none": the block is the state;
    - "fetched": `[state][word at the state's pc]` (zeros outside the program), bGPT's IR
      register, predicted like the state;
    - "given": the same layout, but the word is given: not scored, generation forces it from the
      program and the predicted pc, and the trace ends where the predicted pc leaves the
      program (`GivenWordConstraint`). The next state's patches come after the whole word, so
      every level sees the instruction before it predicts what the instruction does;
    - "executed": `[word executed to reach the state][state]` (zeros for state_0), given as
      above: the word sits right before the bytes it determines, inside the byte level's
      reach, but in the same top-level patch as the state's first bytes;
    - "executed-patch": the same word, PAD-padded to a patch of its own, so that the state
      starts on a patch boundary and each register byte has the same slot in every state
      (`[word][PAD...][state]`; as long as "executed" wherever word + state fill the same
      patches: 32 bytes per rv32e-mini block, 80 per rv32e block).
    Decode checks the words against the program and drops them.
    """

    task = "cpu"

    def __init__(self, align: int = 16, ir_word: str = "none", profile: str | None = None):
        super().__init__(align)
        if ir_word not in IR_WORDS:
            raise ValueError(f"ir_word must be one of {', '.join(IR_WORDS)}; got {ir_word!r}")
        self.ir_word = ir_word
        self.profile = profile  # the corpus's profile, recorded for the checkpoint's users

    def options(self) -> dict[str, Any]:
        return {**super().options(), "ir_word": self.ir_word, "profile": self.profile}

    def sample_from_row(self, row: dict[str, Any]) -> CpuTrace:
        return CpuTrace(row["profile"], bytes(row["program"]), bytes(row["states"]))

    def word(self, profile: str) -> int:
        """Bytes of the instruction word in each state block (0: none)."""
        if self.ir_word == "none":
            return 0
        return IR_BYTES if self.ir_word == "fetched" else EXECUTED_WIDTH[_profile(profile).isa]

    @property
    def executed(self) -> bool:
        """Whether the word is the one executed to reach the state (before it in the block)."""
        return self.ir_word.startswith("executed")

    def word_offset(self, profile: str) -> int:
        """Where the word starts inside its block."""
        return 0 if self.executed else _profile(profile).state_size

    @property
    def word_is_given(self) -> bool:
        return self.ir_word == "given" or self.executed

    def state_offset(self, profile: str) -> int:
        """Where the state starts inside its block."""
        if self.ir_word == "executed-patch":
            return round_up(self.word(profile), self.align)
        return self.word(profile) if self.executed else 0

    def block(self, profile: str) -> int:
        """Bytes of a block up to the end of its word and its state (PAD after them)."""
        p = _profile(profile)
        return max(self.state_offset(profile) + p.state_size,
                   self.word_offset(profile) + self.word(profile))

    def stride(self, profile: str) -> int:
        return round_up(self.block(profile), self.align)

    def words(self, trace: CpuTrace) -> np.ndarray:
        """(n+1, word) uint8: the instruction word of each state's block."""
        prof = _profile(trace.profile)
        states = np.frombuffer(trace.states, np.uint8).reshape(-1, prof.state_size)
        width, word = prof.register_bytes[0], self.word(trace.profile)
        pc = state_pcs(states, width) - prof.code_base
        code = np.zeros(len(trace.program) + word, np.uint8)
        code[: len(trace.program)] = np.frombuffer(trace.program, np.uint8)
        inside = (pc >= 0) & (pc < len(trace.program))
        at = np.where(inside, pc, len(trace.program))  # the zero tail
        fetched = code[at[:, None] + np.arange(word)]
        if not self.executed:
            return fetched
        return np.concatenate([np.zeros((1, word), np.uint8), fetched[:-1]])  # executed

    def _blocks(self, trace: CpuTrace) -> np.ndarray:
        """(n+1, stride) int16: each state with its word, PAD-padded."""
        prof = _profile(trace.profile)
        if len(trace.states) == 0 or len(trace.states) % prof.state_size:
            raise ValueError(f"states of {len(trace.states)} bytes are not whole "
                             f"{prof.state_size}-byte {trace.profile} states")
        states = np.frombuffer(trace.states, np.uint8).reshape(-1, prof.state_size)
        p, size = trace.profile, prof.state_size
        out = np.full((len(states), self.stride(p)), PAD, np.int16)
        out[:, self.state_offset(p): self.state_offset(p) + size] = states
        w = self.word_offset(p)
        out[:, w: w + self.word(p)] = self.words(trace)
        return out

    def segments(self, sample: CpuTrace) -> tuple[list[np.ndarray], list[np.ndarray]]:
        blocks = self._blocks(sample)
        prompt = [header_patch(f"cpu:{sample.profile}", self.align),
                  _terminated(sample.program, self.align),
                  header_patch("trace", self.align), blocks[0]]
        return prompt, list(blocks[1:])

    def target_mask(self, target: np.ndarray) -> np.ndarray:
        return target != PAD

    def encode(self, sample: CpuTrace) -> tuple[np.ndarray, np.ndarray]:
        ids, mask = super().encode(sample)
        if self.word_is_given:  # not predicted
            p = sample.profile
            mask[self._target_blocks(sample) + self.word_offset(p) + np.arange(self.word(p))] = False
        return ids, mask

    def _target_blocks(self, sample: CpuTrace) -> np.ndarray:
        """(n, 1) indices into `encode(sample)[0]` where the blocks of states 1..n start."""
        prompt_len = (2 * self.align + terminated_length(len(sample.program), self.align)
                      + self.stride(sample.profile))
        n = len(sample.states) // _profile(sample.profile).state_size - 1
        return prompt_len + np.arange(n)[:, None] * self.stride(sample.profile)

    def state_positions(self, sample: CpuTrace) -> np.ndarray:
        """(n, state_size) indices into `encode(sample)[0]` of the bytes of states 1..n."""
        size = _profile(sample.profile).state_size
        return self._target_blocks(sample) + self.state_offset(sample.profile) + np.arange(size)

    def generated_states(self, sample: CpuTrace, out: Sequence[int]) -> tuple[np.ndarray, bool]:
        """The states in generated ids `out` (after the prompt) as (m, state_size) uint8, and
        whether the output ended (END at a block start); a partial last block is dropped."""
        size, stride = _profile(sample.profile).state_size, self.stride(sample.profile)
        ended = END in out
        body = list(out[: out.index(END)] if ended else out)
        m = len(body) // stride
        blocks = np.array(body[: m * stride], np.int64).reshape(m, stride)
        off = self.state_offset(sample.profile)
        return blocks[:, off: off + size].astype(np.uint8), ended

    def decode(self, ids: np.ndarray) -> CpuTrace:
        r = _Reader(ids, self.align)
        head = r.header()
        if not head.startswith("cpu:"):
            raise DecodeError(f"header {head!r} is not a CPU header")
        profile = head[4:]
        program = r.terminated()
        r.expect_header("trace")
        stride = self.stride(profile)
        size, off = _profile(profile).state_size, self.state_offset(profile)
        w, word = self.word_offset(profile), self.word(profile)
        content = np.zeros(stride, bool)  # the state's and the word's bytes; PAD elsewhere
        content[off: off + size] = content[w: w + word] = True
        blocks = []
        while not r.at_end_patch():
            blk = r.ids[r.pos: r.pos + stride]
            if len(blk) < stride or (blk[content] >= 256).any() or (blk[~content] != PAD).any():
                raise DecodeError(f"no {profile} state block at position {r.pos}")
            blocks.append(blk.astype(np.uint8))
            r.pos += stride
        r.end()
        if not blocks:
            raise DecodeError("a trace needs at least state_0")
        body = np.stack(blocks)  # (n+1, stride)
        trace = CpuTrace(profile, program, body[:, off: off + size].tobytes())
        words = body[:, w: w + word]  # (n+1, word)
        if words.size and (words != self.words(trace)).any():
            raise DecodeError("an instruction word in the trace does not match the program")
        return trace

    def constraint(self, sample: CpuTrace) -> Constraint:
        profile = sample.profile
        align, stride, block = self.align, self.stride(profile), self.block(profile)
        if not self.word_is_given:
            return Constraint(align, stride, block)
        prof = _profile(profile)
        width = prof.register_bytes[0]
        return GivenWordConstraint(align, stride, block, program=sample.program,
                                   code_base=prof.code_base, pc_bytes=width,
                                   word=self.word(profile), word_at=self.word_offset(profile),
                                   state_at=self.state_offset(profile),
                                   own_pc=self.ir_word == "given",
                                   pc0=int.from_bytes(sample.states[:width], "little"))


@dataclass(frozen=True)
class EventConstraint(Constraint):
    """A target that is a MIDI event stream (`simulator.midi_events`), PAD-terminated.

    Its bytes must keep the stream well-formed and the PAD may come only where the stream may
    end (between tracks), so a constrained output that ends decodes to a valid MIDI file.
    """

    def allowed(self, target: Sequence[int]) -> torch.Tensor:
        if PAD in target or END in target:
            return super().allowed(target)
        grammar = EventGrammar()
        for byte in target:
            grammar.feed(byte)
        return grammar.mask(PAD, VOCAB_SIZE)

    def for_generate(self, prompt_len: int) -> Callable[[Sequence[int]], torch.Tensor]:
        """`allowed` on a whole sequence, reading each generated byte once."""
        return _StreamAllowed(self, prompt_len)


class _StreamAllowed:
    """`EventConstraint.allowed` for a generation: keeps the grammar between calls, which walk
    one growing sequence (a call with an empty target starts a new generation)."""

    def __init__(self, constraint: EventConstraint, prompt_len: int):
        self.constraint, self.prompt_len = constraint, prompt_len
        self.grammar, self.over = EventGrammar(), False  # over: the PAD has come

    def __call__(self, seq: Sequence[int]) -> torch.Tensor:
        target = seq[self.prompt_len:]
        if not target:
            self.grammar, self.over = EventGrammar(), False
        for byte in target[self.grammar.pos:] if not self.over else ():
            if byte >= 256:
                self.over = True
                break
            self.grammar.feed(byte)
        if self.over:
            return Constraint.allowed(self.constraint, target)
        return self.grammar.mask(PAD, VOCAB_SIZE)


MIDI_LAYOUTS = ("file", "events")


class MusicCodec(Codec):
    """`[abc] [abc bytes] [mid] [midi bytes] [end]` (abc2midi) or its mirror (midi2abc).

    `midi`: "file" writes the MIDI file's bytes as they are; "events" writes its event stream
    (`simulator.midi_events`: no header chunk, no chunk lengths), put back into a file by
    `decode` and `output_file`; generation of an event-stream target is constrained to
    well-formed events (`EventConstraint`).
    """

    def __init__(self, task: str, align: int = 16, midi: str = "file"):
        super().__init__(align)
        if task not in ("abc2midi", "midi2abc"):
            raise ValueError(f"unknown music task {task!r}")
        if midi not in MIDI_LAYOUTS:
            raise ValueError(f"unknown MIDI layout {midi!r} (known: {', '.join(MIDI_LAYOUTS)})")
        self.task, self.midi = task, midi

    def options(self) -> dict[str, Any]:
        """The "file" layout is left out, so that checkpoints from before the option and new
        ones with the same layout have the same options."""
        return {**super().options(), **({"midi": self.midi} if self.midi != "file" else {})}

    def sample_from_row(self, row: dict[str, Any]) -> MusicPair:
        return MusicPair(row["abc"], bytes(row["midi"]))

    def midi_content(self, midi: bytes) -> bytes:
        """The bytes the sequence holds for a MIDI file (ValueError if "events" cannot)."""
        return midi_to_events(midi) if self.midi == "events" else midi

    def _parts(self, sample: MusicPair) -> list[tuple[str, bytes]]:
        abc = ("abc", sample.abc.encode("utf-8", "surrogateescape"))
        mid = ("mid", self.midi_content(sample.midi) if sample.midi else b"")
        return [abc, mid] if self.task == "abc2midi" else [mid, abc]

    def segments(self, sample: MusicPair) -> tuple[list[np.ndarray], list[np.ndarray]]:
        (h1, c1), (h2, c2) = self._parts(sample)
        prompt = [header_patch(h1, self.align), _terminated(c1, self.align),
                  header_patch(h2, self.align)]
        return prompt, [_terminated(c2, self.align)]

    def target_mask(self, target: np.ndarray) -> np.ndarray:
        mask = target != PAD
        first_pad = np.flatnonzero(target == PAD)[:1]
        mask[first_pad] = True
        return mask

    def decode(self, ids: np.ndarray) -> MusicPair:
        r = _Reader(ids, self.align)
        got = {}
        for head, _ in self._parts(MusicPair("", b"")):
            r.expect_header(head)
            got[head] = r.terminated()
        r.end()
        return MusicPair(got["abc"].decode("utf-8", "surrogateescape"),
                         self._midi_file(got["mid"]))

    def _midi_file(self, content: bytes) -> bytes:
        if self.midi == "file":
            return content
        try:
            return events_to_midi(content)
        except StreamError as e:
            raise DecodeError(str(e)) from None

    def target_bytes(self, ids: np.ndarray) -> bytes:
        """The content of a generated target (ids after the prompt), up to its first special."""
        ids = np.asarray(ids).astype(np.int64)
        special = np.flatnonzero(ids >= 256)
        return bytes(ids[: special[0] if len(special) else len(ids)].astype(np.uint8))

    def output_file(self, content: bytes) -> bytes:
        """The file a target's content stands for: the ABC, or the MIDI file (DecodeError for an
        event stream that does not end)."""
        return self._midi_file(content) if self.task == "abc2midi" else content

    def note_spans(self, sample: MusicPair) -> list[NoteSpan]:
        """Where each note of an abc2midi sample's MIDI is decided, as offsets into its target
        (see `midi_events.NoteSpan`)."""
        stream = midi_to_events(sample.midi)
        return note_spans(stream) if self.midi == "events" else note_spans(stream, in_file=True)

    def constraint(self, sample: MusicPair) -> Constraint:
        if self.midi == "events" and self.task == "abc2midi":
            return EventConstraint(self.align, self.align, None)
        return Constraint(self.align, self.align, None)


def make_codec(task: str, align: int = 16, ir_word: str = "none",
               profile: str | None = None, midi: str = "file") -> Codec:
    if task == "cpu":
        return CpuCodec(align, ir_word, profile)
    if task in ("abc2midi", "midi2abc"):
        return MusicCodec(task, align, midi)
    raise ValueError(f"unknown task {task!r} (known: {', '.join(TASKS)})")


def codec_from_options(options: dict[str, Any]) -> Codec:
    """The codec a checkpoint's `codec` options describe (inverse of `Codec.options`)."""
    opts = dict(options)
    task = opts.pop("task")
    if "interleave_ir" in opts:  # checkpoints from before `ir_word`
        opts["ir_word"] = "fetched" if opts.pop("interleave_ir") else "none"
    return make_codec(task, **opts)
