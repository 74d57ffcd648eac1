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
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import torch

from bytesim_common.layout import round_up, terminated_length
from datagen.music.abc_header import canonical_header
from simulator.abc_beats import ABC_BODIES, beat_spaced
from simulator.abc_slots import ABC_LAYOUTS, fill_due, slot_abc, unslot_abc
from simulator.abc_slots import FILL as SLOT_FILL
from simulator.midi_events import (
    EventGrammar,
    NoteAlignedGrammar,
    NoteSpan,
    StreamError,
    StreamGrammar,
    align_notes,
    aligned_offsets,
    events_to_midi,
    merge_tracks,
    midi_to_events,
    note_spans,
    read_aligned,
    split_tracks,
    unalign_notes,
)

PAD = 256
END = 257
VOCAB_SIZE = 258
IR_BYTES = 4  # width of the `fetched` instruction word (bGPT's IR register)
# where a CPU state block carries an instruction word (see `CpuCodec`)
IR_WORDS = ("none", "fetched", "given", "executed", "executed-patch", "executed-operands")
EXECUTED_WIDTH = {"rv32": 4, "x86": 16}  # the longest instruction of the ISA, zero-padded
RV32_SOURCE_FIELDS = (15, 20)  # where rs1 and rs2 start in a RISC-V word (5 bits each)
RV32_WRITES_RD = (0x03, 0x13, 0x17, 0x33, 0x37, 0x67, 0x6F)  # opcodes whose rd is written


@dataclass(frozen=True)
class RecordLayout:
    """A commit record's fields, name -> (offset, bytes). The `given` fields come first: the
    harness reads them from the program and the state before the step (never predicted); the
    model writes the others. PAD fills the bytes between fields and the rest of the stride."""

    fields: dict[str, tuple[int, int]]  # name -> (offset, ids)
    given: tuple[str, ...]
    # fields written one bit per id (0 or 1), least significant bit first: n bytes take 8n ids
    bits: tuple[str, ...] = ()

    @cached_property
    def size(self) -> int:
        """Bytes up to the end of the last field."""
        return max(at + width for at, width in self.fields.values())

    @cached_property
    def given_bytes(self) -> int:
        """Bytes of the given fields, which lead the record."""
        return max(self.fields[name][0] + self.fields[name][1] for name in self.given)

    @cached_property
    def content(self) -> np.ndarray:
        """(size,) bool: the bytes that belong to a field."""
        mask = np.zeros(self.size, bool)
        for at, width in self.fields.values():
            mask[at: at + width] = True
        return mask

    def put(self, out: np.ndarray, name: str, values: np.ndarray) -> None:
        """Write field `name` of the records `out` (m, >= size) from its bytes (m, n)."""
        at, width = self.fields[name]
        if name in self.bits:
            values = ((values[:, :, None].astype(np.int64) >> np.arange(8)) & 1).reshape(
                len(values), 8 * values.shape[1])
        out[:, at: at + width] = values

    def get(self, records: np.ndarray, name: str) -> np.ndarray:
        """The bytes (..., n) int64 of field `name` of records (..., >= size); a bit field's
        ids are read as bits (the low bit of each)."""
        at, width = self.fields[name]
        ids = records[..., at: at + width].astype(np.int64)
        if name not in self.bits:
            return ids
        return ((ids.reshape(*ids.shape[:-1], width // 8, 8) & 1) << np.arange(8)).sum(-1)


# `CpuRecordCodec`'s layouts (docs/formats.md): "records" gives what the register file reads
# (RVFI's fields); "decoded-records" also the word's pc and its immediate, decoded and
# sign-extended, so that every operand of a step sits byte-aligned with what it computes.
RECORD_LAYOUTS = {
    "records": RecordLayout({"word": (0, 4), "reads": (4, 8), "next_pc": (12, 4), "rd": (16, 1),
                             "value": (20, 4)}, given=("word", "reads")),
    "decoded-records": RecordLayout({"pc": (0, 4), "word": (4, 4), "reads": (8, 8),
                                     "imm": (16, 4), "next_pc": (20, 4), "rd": (24, 1),
                                     "value": (28, 4)}, given=("pc", "word", "reads", "imm")),
    # decoded records with the numbers as bits, one id each, least significant first: bit i of
    # the value written sits a fixed distance after bit i of each operand (rs1 72, rs2 40, the
    # immediate 104 ids back), so a shift is a move by the shift amount and an addition a
    # carry from the bit before (docs/training.md)
    "bit-records": RecordLayout({"pc": (0, 4), "word": (4, 4), "imm": (8, 32), "reads": (40, 64),
                                 "next_pc": (104, 4), "rd": (108, 1), "value": (112, 32)},
                                given=("pc", "word", "imm", "reads"), bits=("imm", "reads", "value")),
}
CPU_LAYOUTS = ("states", *RECORD_LAYOUTS)
# What comes before the first commit record: "full", the profile's header, the program, the
# "records" header and state_0; "state", the profile's header and state_0; "header", the
# profile's header alone; "blank", the profile's header and PAD in place of the rest (as many
# ids as "full": a control for whether the model needs the program or only the positions).
# Every value a record's result depends on is given in the record (or, for a load, was stored
# by an earlier record into memory that starts zeroed), so the program and state_0 are context
# the model need not read: generation takes them from the sample, not from the sequence
# (docs/formats.md). It learns L0 slower per step after the shorter ones, and as fast after
# "blank" as after "full": the patches, not the program, are what it uses (docs/training.md,
# "Blank patches instead of the program"). "blank-N" is the header and N patches of PAD, the
# same whatever the program's length. "full" is the default.
RECORD_PROMPTS = ("full", "state", "header", "blank", "blank-N")


def parse_record_prompt(prompt: str) -> tuple[str, int | None]:
    """A record prompt's kind and, for "blank-N", its N patches of PAD (ValueError where
    `prompt` is none of RECORD_PROMPTS)."""
    kind, dash, count = prompt.partition("-")
    if not dash and prompt in RECORD_PROMPTS:
        return prompt, None
    if kind == "blank" and count.isdigit() and int(count) <= 64:
        return kind, int(count)
    raise ValueError(f"the record prompt must be one of {', '.join(RECORD_PROMPTS)} (N = 0 to "
                     f"64 patches); got {prompt!r}")

# Training-only auxiliary targets a codec can give beside the bytes (`Codec.aux_targets`), name
# -> outputs per scored byte. "mul-sums": at each byte k of the value a RISC-V `mul` writes
# (commit records), the 18 bits of the running column sum c_k = sum_{i+j=k} a_i b_j + (c_{k-1}
# >> 8) over the bytes a_i, b_j of its operands, whose low 8 bits are the byte itself and the
# rest the carry into the next (the intermediate an auxiliary loss taught a transformer to
# multiply with: docs/training.md).
AUX_TARGETS = {"none": 0, "mul-sums": 18}

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

    def blocks(self, stride: int, content: np.ndarray, what: str) -> list[np.ndarray]:
        """Blocks of `stride` ids up to the end patch (read too): bytes where `content` (stride,)
        is True, PAD elsewhere."""
        blocks = []
        while not self.at_end_patch():
            blk = self.ids[self.pos: self.pos + stride]
            if len(blk) < stride or (blk[content] >= 256).any() or (blk[~content] != PAD).any():
                raise DecodeError(f"no {what} at position {self.pos}")
            blocks.append(blk)
            self.pos += stride
        self.end()
        return blocks

    def cpu_header(self, segment: str) -> tuple[str, bytes]:
        """A CPU sequence's start: its profile (from the header) and program; then the header
        `segment` of what follows."""
        head = self.header()
        if not head.startswith("cpu:"):
            raise DecodeError(f"header {head!r} is not a CPU header")
        program = self.terminated()
        self.expect_header(segment)
        return head[4:], program

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


_BITS = torch.arange(VOCAB_SIZE) < 2  # the ids of a bit field: 0 and 1
_FORCED = [torch.nn.functional.one_hot(torch.tensor(i), VOCAB_SIZE).bool() for i in range(256)]


@dataclass(frozen=True)
class GivenWordConstraint(Constraint):
    """State blocks with a given instruction word: the word is forced, and so is the end.

    The word is the program's bytes at a pc the model has predicted (or state_0's), so it is
    given, never guessed: `ir_word` "given" puts after each state the word at that state's pc
    (zeros outside the program); "executed" (and "executed-patch") puts before each state the
    word at the pc of the state before it. Bytes of a block outside its word and its state
    (executed-patch's gap) are PAD. "executed-operands" also forces, after the word, the
    values of the registers the word's source fields name, read from the state before (the
    predicted one in a free run). A block starts only where the pc of the state before it is
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
    state0: bytes = b""  # state_0, which the prompt holds
    reads: int = 0  # bytes of source-register values right after the word (executed-operands)
    n_regs: int = 0  # registers in a state (pc, x1, x2, ...), for the reads

    def _state(self, target: Sequence[int], k: int) -> bytes:
        """The state of target block k (k = -1: state_0)."""
        if k < 0:
            return self.state0
        at = k * self.stride + self.state_at
        return bytes(int(i) for i in target[at: at + len(self.state0)])

    def _pc(self, target: Sequence[int], k: int) -> int:
        """The pc of the state of target block k (k = -1: state_0)."""
        return int.from_bytes(self._state(target, k)[: self.pc_bytes], "little")

    def _inside(self, pc: int) -> bool:
        return 0 <= pc - self.code_base < len(self.program)

    def _word_byte(self, pc: int, i: int) -> int:
        """Byte i of the word at pc (zeros outside the program and past its end)."""
        if not self._inside(pc):
            return 0
        code = self.program[pc - self.code_base:][: self.word]
        return code[i] if i < len(code) else 0

    def allowed(self, target: Sequence[int]) -> torch.Tensor:
        t = len(target)
        if END in target:
            return _MASKS["pad"]
        k, r = divmod(t, self.stride)
        if r == 0 and not self._inside(self._pc(target, k - 1)):
            return _MASKS["end"]  # the pc left the program: the trace ends
        if self.word_at <= r < self.word_at + self.word:
            return _FORCED[self._word_byte(self._pc(target, k if self.own_pc else k - 1),
                                           r - self.word_at)]
        read_at = self.word_at + self.word
        if read_at <= r < read_at + self.reads:
            at = k * self.stride + self.word_at
            word = np.array([target[at: at + self.word]], np.uint8)
            prev = np.frombuffer(self._state(target, k - 1), np.uint8)[None]
            return _FORCED[int(rv32_source_values(word, prev, self.n_regs)[0, r - read_at])]
        gap = read_at + self.reads <= r < self.state_at  # between the word and the state
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

    def aux_targets(self, sample: Any, ids: np.ndarray,
                    kind: str) -> tuple[np.ndarray, np.ndarray]:
        """Auxiliary targets of kind `kind` (AUX_TARGETS) for `sample`, read from its encoding
        `ids` (`encode(sample)[0]`): positions (M,) int64 into `ids` and their targets
        (M, AUX_TARGETS[kind]) float32 bits."""
        raise ValueError(f"{self.task} sequences of this layout have no {kind!r} targets")


def _word_values(words: np.ndarray) -> np.ndarray:
    """(m, 4) uint8 little-endian words -> (m,) int64."""
    return (words[:, :4].astype(np.int64) << np.array([0, 8, 16, 24])).sum(1)


def rv32_destination(words: np.ndarray, n_regs: int) -> np.ndarray:
    """(m, 4) uint8 RISC-V words -> (m,) int64: the register each word writes, its rd field where
    its opcode writes one (lui, auipc, jal, jalr, loads, ALU ops), else 0 (stores, branches,
    x0, and a register the state does not hold)."""
    w = _word_values(words)
    rd = (w >> 7) & 31
    return np.where(np.isin(w & 0x7F, RV32_WRITES_RD) & (rd < n_regs), rd, 0)


def rv32_source_values(words: np.ndarray, states: np.ndarray, n_regs: int) -> np.ndarray:
    """(m, 4) uint8 RISC-V words and (m, S) uint8 states (pc, x1, x2, ..., 4 bytes each) ->
    (m, 8) uint8: the values in each state of the registers that its word's rs1 and rs2 fields
    name, little-endian; zeros for x0 and for a field naming no register of the state. Formats
    without rs1 or rs2 have immediate bits or rd there, and are read all the same."""
    w = _word_values(words)
    out = np.zeros((len(words), 4 * len(RV32_SOURCE_FIELDS)), np.uint8)
    for i, shift in enumerate(RV32_SOURCE_FIELDS):
        field = (w >> shift) & 31
        real = (field >= 1) & (field < n_regs)
        at = np.where(real, field, 0)[:, None] * 4 + np.arange(4)  # (m, 4) the register's bytes
        out[:, 4 * i: 4 * i + 4] = np.where(real[:, None], np.take_along_axis(states, at, 1), 0)
    return out


def _signed(x: np.ndarray, bits: int) -> np.ndarray:
    """The low `bits` of x, sign-extended (int64)."""
    x = x & ((1 << bits) - 1)
    return np.where(x >> (bits - 1), x - (1 << bits), x)


def rv32_immediate(words: np.ndarray) -> np.ndarray:
    """(m, 4) uint8 RISC-V words -> (m, 4) uint8: each word's immediate as its format (I, S,
    B, U, J by opcode) defines it, sign-extended to 32 bits, little-endian; zeros for R-type."""
    w = _word_values(words)
    op = w & 0x7F
    i_type = _signed(w >> 20, 12)
    s_type = _signed(((w >> 25) << 5) | ((w >> 7) & 31), 12)
    b_type = _signed(((w >> 31) << 12) | (((w >> 7) & 1) << 11) | (((w >> 25) & 63) << 5)
                     | (((w >> 8) & 15) << 1), 13)
    u_type = w & 0xFFFFF000
    j_type = _signed(((w >> 31) << 20) | (((w >> 12) & 255) << 12) | (((w >> 20) & 1) << 11)
                     | (((w >> 21) & 1023) << 1), 21)
    imm = np.select([np.isin(op, (0x03, 0x0F, 0x13, 0x67, 0x73)), op == 0x23, op == 0x63,
                     np.isin(op, (0x17, 0x37)), op == 0x6F],
                    [i_type, s_type, b_type, u_type, j_type], 0)
    return (imm[:, None] >> np.array([0, 8, 16, 24]) & 0xFF).astype(np.uint8)


def record_given(layout: RecordLayout, words: np.ndarray, before: np.ndarray,
                 n_regs: int) -> np.ndarray:
    """(m, layout.given_bytes) int64: the given fields of m records, from the words executed
    (m, 4) and the states before them (m, S) uint8; PAD between fields."""
    parts = {"pc": lambda: before[:, :4], "word": lambda: words,
             "reads": lambda: rv32_source_values(words, before, n_regs),
             "imm": lambda: rv32_immediate(words)}
    out = np.full((len(words), layout.given_bytes), PAD, np.int64)
    for name in layout.given:
        layout.put(out, name, parts[name]())
    return out


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
      patches: 32 bytes per rv32e-mini block, 80 per rv32e block);
    - "executed-operands" (RISC-V): `[word][rs1's value][rs2's value][state]`, the values the
      word's source fields name in the state before, given like the word: the harness reads the
      register file, the model computes the rest (32 bytes per rv32e-mini block, 80 per rv32e).
    Decode checks the words (and values) against the program (and states) and drops them.
    """

    task = "cpu"
    layout_flag = "--ir-word executed-operands"  # what needs RISC-V, in errors

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

    def reads(self, profile: str) -> int:
        """Bytes of source-register values after the word in each block (executed-operands)."""
        if self.ir_word != "executed-operands":
            return 0
        isa = _profile(profile).isa
        if isa != "rv32":
            raise ValueError(f"{self.layout_flag} reads RISC-V register fields; "
                             f"profile {profile!r} is {isa}")
        return 4 * len(RV32_SOURCE_FIELDS)

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
        return self.word(profile) + self.reads(profile) if self.executed else 0

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

    def source_values(self, trace: CpuTrace) -> np.ndarray:
        """(n+1, reads) uint8: each block's source-register values, read from the state before
        it (zeros in state_0's block, whose word is zeros)."""
        prof = _profile(trace.profile)
        states = np.frombuffer(trace.states, np.uint8).reshape(-1, prof.state_size)
        before = np.concatenate([np.zeros_like(states[:1]), states[:-1]])
        return rv32_source_values(self.words(trace), before, len(prof.registers))

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
        w, word = self.word_offset(p), self.word(p)
        out[:, w: w + word] = self.words(trace)
        if self.reads(p):
            out[:, w + word: w + word + self.reads(p)] = self.source_values(trace)
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
        if self.word_is_given:  # not predicted (nor the values read after the word)
            at, width = self.given_span(sample.profile)
            mask[self._target_blocks(sample) + at + np.arange(width)] = False
        return ids, mask

    def given_span(self, profile: str) -> tuple[int, int]:
        """(offset, bytes) of the given part of each block: the word and the values read."""
        return self.word_offset(profile), self.word(profile) + self.reads(profile)

    def state0_length(self, profile: str) -> int:
        """Ids of state_0's block at the end of the prompt."""
        return self.stride(profile)

    def prompt_length(self, sample: CpuTrace) -> int:
        """Ids of `prompt(sample)`, counted without encoding it."""
        return (2 * self.align + terminated_length(len(sample.program), self.align)
                + self.state0_length(sample.profile))

    def _target_blocks(self, sample: CpuTrace) -> np.ndarray:
        """(n, 1) indices into `encode(sample)[0]` where the blocks of states 1..n start."""
        n = len(sample.states) // _profile(sample.profile).state_size - 1
        return self.prompt_length(sample) + np.arange(n)[:, None] * self.stride(sample.profile)

    def state_positions(self, sample: CpuTrace) -> np.ndarray:
        """(n, state_size) indices into `encode(sample)[0]` of the bytes of states 1..n."""
        size = _profile(sample.profile).state_size
        return self._target_blocks(sample) + self.state_offset(sample.profile) + np.arange(size)

    def teacher_forced_states(self, sample: CpuTrace, pred: np.ndarray) -> np.ndarray:
        """States 1..n (n, state_size) as `pred`, the model's argmax at every position of
        `encode(sample)[0]`, has them (ids, 256 and 257 included)."""
        return pred[self.state_positions(sample)]

    def generated_states(self, sample: CpuTrace, out: Sequence[int],
                         after: int = 0) -> tuple[np.ndarray, bool]:
        """The states in generated ids `out` as (m, state_size) uint8, and whether the output
        ended (END at a block start); a partial last block is dropped. `out` follows the
        sample's true trace up to state `after` (0: the prompt)."""
        size, off = _profile(sample.profile).state_size, self.state_offset(sample.profile)
        blocks, ended = self._generated_blocks(sample, out)
        return blocks[:, off: off + size].astype(np.uint8), ended

    def _generated_blocks(self, sample: CpuTrace, out: Sequence[int]) -> tuple[np.ndarray, bool]:
        """The whole blocks (m, stride) int64 of generated ids `out` up to END (a partial last
        one dropped), and whether the output ended."""
        stride = self.stride(sample.profile)
        ended = END in out
        body = list(out[: out.index(END)] if ended else out)
        m = len(body) // stride
        return np.array(body[: m * stride], np.int64).reshape(m, stride), ended

    def decode(self, ids: np.ndarray) -> CpuTrace:
        r = _Reader(ids, self.align)
        profile, program = r.cpu_header("trace")
        stride = self.stride(profile)
        size, off = _profile(profile).state_size, self.state_offset(profile)
        w, word, reads = self.word_offset(profile), self.word(profile), self.reads(profile)
        content = np.zeros(stride, bool)  # the state's, the word's and the reads' bytes
        content[off: off + size] = content[w: w + word + reads] = True
        blocks = r.blocks(stride, content, f"{profile} state block")
        if not blocks:
            raise DecodeError("a trace needs at least state_0")
        body = np.stack(blocks).astype(np.uint8)  # (n+1, stride)
        trace = CpuTrace(profile, program, body[:, off: off + size].tobytes())
        words = body[:, w: w + word]  # (n+1, word)
        if words.size and (words != self.words(trace)).any():
            raise DecodeError("an instruction word in the trace does not match the program")
        if reads and (body[:, w + word: w + word + reads] != self.source_values(trace)).any():
            raise DecodeError("a source-register value in the trace does not match its state")
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
                                   state0=sample.states[: prof.state_size],
                                   reads=self.reads(profile), n_regs=len(prof.registers))


class CpuRecordCodec(CpuCodec):
    """Commit records (RISC-V): `[cpu:<profile>] [program] [records] [state_0] [record_1] ...
    [record_n] [end]` (docs/formats.md).

    A record stands for one executed instruction, in `stride` bytes (32 with 16-byte patches):
    its given fields first (`RECORD_LAYOUTS`: the word executed and the values of rs1 and rs2,
    as with `executed-operands`; "decoded-records" also the word's pc before it and its
    immediate after the values), then `[next pc][rd][PAD x3][value written]` predicted. `rd` is
    the register the word writes (0: none); every state is rebuilt by replaying the records over
    state_0, so what a model writes for each step is where the pc goes, which register changes
    and its value, always at the same offsets, and never the registers that stay.
    """

    def __init__(self, align: int = 16, profile: str | None = None, layout: str = "records",
                 prompt: str = "full"):
        super().__init__(align, "executed-operands", profile)
        self.layout = layout
        self.layout_flag = f"--cpu-layout {layout}"
        self.record = RECORD_LAYOUTS[layout]
        self.prompt_kind = prompt
        self._prompt, self._blank_patches = parse_record_prompt(prompt)

    def options(self) -> dict[str, Any]:
        return {"task": self.task, "align": self.align, "layout": self.layout,
                "profile": self.profile, "prompt": self.prompt_kind}

    def block(self, profile: str) -> int:
        self.reads(profile)  # RISC-V only
        return self.record.size

    def given_span(self, profile: str) -> tuple[int, int]:
        return 0, self.record.given_bytes

    def state0_length(self, profile: str) -> int:
        return round_up(_profile(profile).state_size, self.align)

    def state_positions(self, sample: CpuTrace) -> np.ndarray:
        raise ValueError("commit records hold no states: see `teacher_forced_states`")

    def _records(self, trace: CpuTrace) -> np.ndarray:
        """(n, stride) int16: the records of states 1..n (ValueError where one cannot be
        rebuilt from the state before it)."""
        prof = _profile(trace.profile)
        n_regs, size, fields = len(prof.registers), prof.state_size, self.record.fields
        if len(trace.states) == 0 or len(trace.states) % size:
            raise ValueError(f"states of {len(trace.states)} bytes are not whole "
                             f"{size}-byte {trace.profile} states")
        states = np.frombuffer(trace.states, np.uint8).reshape(-1, size)
        words = self.words(trace)[1:]  # (n, 4) the word executed to reach each state
        rd = rv32_destination(words, n_regs)  # (n,)
        out = np.full((len(words), self.stride(trace.profile)), PAD, np.int16)
        out[:, : self.record.given_bytes] = record_given(self.record, words, states[:-1], n_regs)
        put = {"next_pc": states[1:, :4], "rd": rd[:, None],
               "value": np.take_along_axis(states[1:], rd[:, None] * 4 + np.arange(4), 1)}
        for name, values in put.items():
            self.record.put(out, name, values)
        at, width = fields["value"]
        out[rd == 0, at: at + width] = 0  # no register written: zeros
        for k, record in enumerate(out):
            if (replay_record(states[k], record, n_regs, self.record) != states[k + 1]).any():
                raise ValueError(f"state {k + 1} is not state {k} with the pc moved and at most "
                                 f"register {rd[k]} written: commit records cannot hold it")
        return out

    def _prompt_parts(self, sample: CpuTrace) -> list[np.ndarray]:
        """The prompt's patches as `prompt_kind` has them; no record needed."""
        size = _profile(sample.profile).state_size
        state_0 = _padded(sample.states[:size], self.state0_length(sample.profile))
        full = [_terminated(sample.program, self.align), header_patch("records", self.align),
                state_0]
        blank = (sum(len(part) for part in full) if self._blank_patches is None
                 else self._blank_patches * self.align)
        after = {"full": full, "state": [state_0], "header": [],
                 "blank": [np.full(blank, PAD, np.int16)]}
        return [header_patch(f"cpu:{sample.profile}", self.align), *after[self._prompt]]

    def segments(self, sample: CpuTrace) -> tuple[list[np.ndarray], list[np.ndarray]]:
        return self._prompt_parts(sample), list(self._records(sample))

    def prompt(self, sample: CpuTrace) -> np.ndarray:
        return np.concatenate(self._prompt_parts(sample))  # without replaying the records

    def prompt_length(self, sample: CpuTrace) -> int:
        return sum(len(part) for part in self._prompt_parts(sample))

    def encode(self, sample: CpuTrace) -> tuple[np.ndarray, np.ndarray]:
        ids, mask = super().encode(sample)
        if self.prompt_kind != "full":  # where the trace ends depends on the program, which
            mask[-self.align] = False   # this prompt leaves out; generation forces the END
        return ids, mask

    def _replay(self, sample: CpuTrace, records: np.ndarray, after: int | None) -> np.ndarray:
        """(m, state_size) int64: the states `records` (m, >= record size ids) lead to, each
        replayed over the true state before it (after=None) or all in a row from true state
        `after`."""
        prof = _profile(sample.profile)
        states = np.frombuffer(sample.states, np.uint8).reshape(-1, prof.state_size)
        out, state = [], states[after or 0].astype(np.int64)
        for k, record in enumerate(records):
            state = replay_record(states[k] if after is None else state, record,
                                  len(prof.registers), self.record)
            out.append(state)
        return np.array(out, np.int64).reshape(len(records), prof.state_size)

    def teacher_forced_states(self, sample: CpuTrace, pred: np.ndarray) -> np.ndarray:
        at = self._target_blocks(sample) + np.arange(self.record.size)  # (n, record size)
        return self._replay(sample, pred[at], after=None)

    def generated_states(self, sample: CpuTrace, out: Sequence[int],
                         after: int = 0) -> tuple[np.ndarray, bool]:
        records, ended = self._generated_blocks(sample, out)
        return self._replay(sample, records, after).astype(np.uint8), ended

    def decode(self, ids: np.ndarray) -> CpuTrace:
        if self.prompt_kind != "full":
            raise DecodeError(f"records after a {self.prompt_kind!r} prompt come without the "
                              "program: their states are rebuilt with the sample "
                              "(`generated_states`)")
        r = _Reader(ids, self.align)
        profile, program = r.cpu_header("records")
        prof, size = _profile(profile), self.record.size
        n0 = self.state0_length(profile)
        first = r.ids[r.pos: r.pos + n0]
        if len(first) < n0 or (first[:prof.state_size] >= 256).any() \
                or (first[prof.state_size:] != PAD).any():
            raise DecodeError(f"no {profile} state_0 at position {r.pos}")
        r.pos += n0
        content = np.zeros(self.stride(profile), bool)
        content[:size] = self.record.content
        records = np.array(r.blocks(len(content), content, "commit record"), np.int64)
        state_0 = bytes(first[:prof.state_size].astype(np.uint8))
        states = self._replay(CpuTrace(profile, program, state_0), records, after=0)
        wrong = np.flatnonzero((states < 0).any(1))[:1]
        if len(wrong):
            raise DecodeError(f"a commit record writes register "
                              f"{records[wrong[0], self.record.fields['rd'][0]]}, which "
                              f"{profile} does not have")
        trace = CpuTrace(profile, program, state_0 + states.astype(np.uint8).tobytes())
        if len(records) and (records[:, :size] != self._records(trace)[:, :size]).any():
            raise DecodeError("a commit record's given fields or zeros do not match the "
                              "program and the states")
        return trace

    def aux_targets(self, sample: CpuTrace, ids: np.ndarray,
                    kind: str) -> tuple[np.ndarray, np.ndarray]:
        if kind != "mul-sums" or self.record.bits:
            if kind == "mul-sums":
                raise ValueError(f"no 'mul-sums' targets in {self.layout_flag}: its value is "
                                 "written in bits, not bytes")
            return super().aux_targets(sample, ids, kind)
        starts = self._target_blocks(sample)  # (n, 1)
        records = ids[starts + np.arange(self.record.size)].astype(np.int64)  # (n, size)
        fields = self.record.fields
        word = _word_values(records[:, fields["word"][0]:])
        is_mul = ((word & 0xFE00707F) == 0x02000033) & (records[:, fields["rd"][0]] != 0)
        at = fields["reads"][0]
        a, b = records[is_mul, at: at + 4], records[is_mul, at + 4: at + 8]  # (m, 4) bytes each
        sums = np.zeros((len(a), 4), np.int64)  # (m, 4) c_0..c_3
        carry = np.zeros(len(a), np.int64)
        for k in range(4):
            sums[:, k] = sum(a[:, i] * b[:, k - i] for i in range(k + 1)) + carry
            carry = sums[:, k] >> 8
        width = AUX_TARGETS[kind]
        bits = (sums[..., None] >> np.arange(width)) & 1  # (m, 4, width)
        pos = starts[is_mul] + fields["value"][0] + np.arange(4)  # (m, 4)
        return pos.reshape(-1), bits.reshape(-1, width).astype(np.float32)

    def constraint(self, sample: CpuTrace) -> Constraint:
        prof = _profile(sample.profile)
        return RecordConstraint(self.align, self.stride(sample.profile), self.record.size,
                                program=sample.program, code_base=prof.code_base,
                                state0=sample.states[: prof.state_size],
                                n_regs=len(prof.registers), layout=self.record)


def replay_record(before: np.ndarray, record: np.ndarray, n_regs: int,
                  layout: RecordLayout) -> np.ndarray:
    """(S,) the state after a commit record (its first `layout.size` ids) over the state before
    it: the new pc, and rd's 4 bytes set to the value written (rd 0: no register). A record
    naming a register the state does not have (or not a byte) leads to no state: all -1."""
    after = before.astype(np.int64).copy()
    at, width = layout.fields["next_pc"]
    after[:width] = record[at: at + width]
    rd = int(record[layout.fields["rd"][0]])
    if not 0 <= rd < n_regs:
        after[:] = -1
    elif rd:
        after[4 * rd: 4 * rd + 4] = layout.get(record, "value")
    return after


@dataclass(frozen=True)
class RecordConstraint(GivenWordConstraint):
    """Commit records: the given fields are forced (from the program, the predicted pc and the
    states the records so far lead to), `rd` names a register of the state, the record's gaps
    are PAD, and the trace ends where the predicted pc leaves the program."""

    layout: RecordLayout = RECORD_LAYOUTS["records"]
    # the records so far (a target's first k * stride ids) -> whether the pc they lead to is in
    # the program, and record k's given bytes: worked out once per record, not once per byte
    _given: dict[tuple[int, ...], tuple[bool, np.ndarray]] = field(default_factory=dict,
                                                                   compare=False, repr=False)

    def allowed(self, target: Sequence[int]) -> torch.Tensor:
        if END in target:
            return _MASKS["pad"]
        k, r = divmod(len(target), self.stride)
        layout = self.layout
        if r >= layout.given_bytes:  # what the model writes: no state needed
            if r == layout.fields["rd"][0]:
                return torch.arange(VOCAB_SIZE) < self.n_regs
            if any(at <= r < at + width for at, width in map(layout.fields.get, layout.bits)):
                return _BITS
            return _MASKS["bytes" if r < layout.size and layout.content[r] else "pad"]
        inside, given = self._given_bytes(target, k)
        if r == 0 and not inside:
            return _MASKS["end"]
        return _FORCED[int(given[r])]

    def _given_bytes(self, target: Sequence[int], k: int) -> tuple[bool, np.ndarray]:
        """Whether the pc of the state the records before record k lead to is in the program
        (else the trace ends), and record k's given fields (given_bytes,) from that state."""
        records = tuple(int(i) for i in target[: k * self.stride])
        if records not in self._given:
            layout = self.layout
            state = np.frombuffer(self.state0, np.uint8).astype(np.int64)
            for j in range(k):  # the state before record k
                state = replay_record(state, np.asarray(records[j * self.stride:][:layout.size]),
                                      self.n_regs, layout)
            pc = int.from_bytes(bytes(int(b) & 0xFF for b in state[:4]), "little")
            word = np.array([[self._word_byte(pc, i) for i in range(self.word)]], np.uint8)
            self._given[records] = (self._inside(pc), record_given(
                layout, word, state[None].astype(np.uint8), self.n_regs)[0])
        return self._given[records]


@dataclass(frozen=True)
class EventConstraint(Constraint):
    """A target that is a MIDI event stream (`simulator.midi_events`), PAD-terminated.

    Its bytes must keep the stream well-formed and the PAD may come only where the stream may
    end (between tracks), so a constrained output that ends decodes to a valid MIDI file.
    With `note_aligned` the stream is note-aligned (`midi_events.NoteAlignedGrammar`) and its
    fill is forced; with `merged` its tracks after the first are merged (`midi_events`).
    """

    note_aligned: bool = False
    merged: bool = False

    def grammar(self) -> StreamGrammar:
        return NoteAlignedGrammar(self.align) if self.note_aligned else EventGrammar(self.merged)

    def allowed(self, target: Sequence[int]) -> torch.Tensor:
        if PAD in target or END in target:
            return super().allowed(target)
        return self.grammar().feed_all(target).mask(PAD, VOCAB_SIZE)

    def for_generate(self, prompt_len: int) -> Callable[[Sequence[int]], torch.Tensor]:
        """`allowed` on a whole sequence, reading each generated byte once."""
        return _StreamAllowed(self, prompt_len)


_NO_SLOT_FILL = _MASKS["bytes|pad"].clone()
_NO_SLOT_FILL[SLOT_FILL] = False


@dataclass(frozen=True)
class AbcSlotConstraint(Constraint):
    """A target that is ABC in note slots (`simulator.abc_slots`), PAD-terminated: a run of FILL
    starts only where the layout lets one start, and once started it is forced to its boundary
    (`abc_slots.fill_due`), so that dropping the FILL gives ABC text back."""

    def allowed(self, target: Sequence[int]) -> torch.Tensor:
        if PAD in target or END in target:
            return super().allowed(target)
        due, may_fill = fill_due(bytes(int(i) for i in target), self.align)
        if due:
            return _FORCED[SLOT_FILL]
        return _MASKS["bytes|pad"] if may_fill else _NO_SLOT_FILL


class _StreamAllowed:
    """`EventConstraint.allowed` for a generation: keeps the grammar between calls, which walk
    one growing sequence (a call with an empty target starts a new generation)."""

    def __init__(self, constraint: EventConstraint, prompt_len: int):
        self.constraint, self.prompt_len = constraint, prompt_len
        self.grammar, self.over = constraint.grammar(), False  # over: the PAD has come

    def __call__(self, seq: Sequence[int]) -> torch.Tensor:
        target = seq[self.prompt_len:]
        if not target:
            self.grammar, self.over = self.constraint.grammar(), False
        for byte in target[self.grammar.pos:] if not self.over else ():
            if byte >= 256:
                self.over = True
                break
            self.grammar.feed(byte)
        if self.over:
            return Constraint.allowed(self.constraint, target)
        return self.grammar.mask(PAD, VOCAB_SIZE)


MIDI_LAYOUTS = ("file", "events", "note-aligned", "merged-events")
ABC_HEADERS = ("canonical", "untitled")


class MusicCodec(Codec):
    """`[abc] [abc bytes] [mid] [midi bytes] [end]` (abc2midi) or its mirror (midi2abc).

    `midi`: "file" writes the MIDI file's bytes as they are; "events" writes its event stream
    (`simulator.midi_events`: no header chunk, no chunk lengths), put back into a file by
    `decode` and `output_file`; "note-aligned" the event stream with fill after every event
    but a note-on, so that each note begins a patch (`midi_events.NoteAlignedGrammar`; the
    fill is forced and not scored); "merged-events" the event stream with the tracks after the
    first merged in time order (`midi_events.merge_tracks`). Generation of an event-stream
    target is constrained to well-formed events (`EventConstraint`).

    `abc`: "text" writes the ABC as it is; "note-slots" starts every note of its body on a
    slot of its own, and "note-gchord-slots" every note and every guitar chord
    (`simulator.abc_slots`). As midi2abc's target, the fill that follows a run's first FILL
    byte is forced and not scored (`AbcSlotConstraint`).

    `header`: the ABC's header in canonical form ("canonical"), or that without its `X:` and
    `T:` lines ("untitled", abc2midi only: a midi2abc target must name its tune;
    `datagen.music.abc_header`).

    `body`: the ABC's body as it is written ("as-written"), or with its notes grouped by beats
    as the synthetic generator writes them ("beats", abc2midi only: abc2midi plays both the
    same; `simulator.abc_beats`).
    """

    def __init__(self, task: str, align: int = 16, midi: str = "file", abc: str = "text",
                 header: str = "canonical", body: str = "as-written"):
        super().__init__(align)
        if task not in ("abc2midi", "midi2abc"):
            raise ValueError(f"unknown music task {task!r}")
        if midi not in MIDI_LAYOUTS:
            raise ValueError(f"unknown MIDI layout {midi!r} (known: {', '.join(MIDI_LAYOUTS)})")
        if abc not in ABC_LAYOUTS:
            raise ValueError(f"unknown ABC layout {abc!r} (known: {', '.join(ABC_LAYOUTS)})")
        if header not in ABC_HEADERS:
            raise ValueError(f"unknown ABC header {header!r} (known: {', '.join(ABC_HEADERS)})")
        if header == "untitled" and task == "midi2abc":
            raise ValueError("an untitled ABC header is for abc2midi's prompt: the ABC that "
                             "midi2abc writes must start with its X: and T: lines")
        if body not in ABC_BODIES:
            raise ValueError(f"unknown ABC body {body!r} (known: {', '.join(ABC_BODIES)})")
        if body == "beats" and task == "midi2abc":
            raise ValueError("an ABC body grouped by beats is for abc2midi's prompt: midi2abc "
                             "writes the ABC it learnt")
        self.task, self.midi, self.abc, self.header, self.body = task, midi, abc, header, body
        self.slotted_target = abc != "text" and task == "midi2abc"  # midi2abc writes slots

    def options(self) -> dict[str, Any]:
        """The "file", "text", "canonical" and "as-written" layouts are left out, so that
        checkpoints from before the options and new ones with the same layouts have the same
        options."""
        return {**super().options(), **({"midi": self.midi} if self.midi != "file" else {}),
                **({"abc": self.abc} if self.abc != "text" else {}),
                **({"header": self.header} if self.header != "canonical" else {}),
                **({"body": self.body} if self.body != "as-written" else {})}

    def sample_from_row(self, row: dict[str, Any]) -> MusicPair:
        return MusicPair(row["abc"], bytes(row["midi"]))

    def midi_content(self, midi: bytes) -> bytes:
        """The bytes the sequence holds for a MIDI file (ValueError if "events" cannot)."""
        if self.midi == "file":
            return midi
        stream = midi_to_events(midi)
        if self.midi == "merged-events":
            return merge_tracks(stream)
        return align_notes(stream, self.align) if self.midi == "note-aligned" else stream

    def abc_content(self, abc: str) -> bytes:
        """The bytes the sequence holds for ABC text, its header in canonical form, untitled
        if the codec's header is (`datagen.music.abc_header`), its body grouped by beats if the
        codec's body is (`simulator.abc_beats`; ValueError if the layout cannot)."""
        titled = self.header == "canonical"
        if self.body == "beats":
            abc = beat_spaced(abc)
        text = canonical_header(abc, titled).encode("utf-8", "surrogateescape")
        if self.abc == "text":
            return text
        return slot_abc(text, self.align, gchords_apart=self.abc == "note-gchord-slots")

    def _parts(self, sample: MusicPair) -> list[tuple[str, bytes]]:
        abc = ("abc", self.abc_content(sample.abc))
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
        if self.midi == "note-aligned" and self.task == "abc2midi":  # the fill is forced
            end = first_pad[0] if len(first_pad) else len(target)
            mask[:end] = False
            mask[read_aligned(bytes(target[:end].astype(np.uint8)), self.align).offsets] = True
        if self.slotted_target:  # a run's first FILL decides it
            mask[1:] &= ~((target[1:] == SLOT_FILL) & (target[:-1] == SLOT_FILL))
        mask[first_pad] = True
        return mask

    def decode(self, ids: np.ndarray) -> MusicPair:
        r = _Reader(ids, self.align)
        got = {}
        for head, _ in self._parts(MusicPair("", b"")):
            r.expect_header(head)
            got[head] = r.terminated()
        r.end()
        abc = got["abc"] if self.abc == "text" else unslot_abc(got["abc"])
        return MusicPair(abc.decode("utf-8", "surrogateescape"),
                         self._midi_file(got["mid"]))

    def _midi_file(self, content: bytes) -> bytes:
        if self.midi == "file":
            return content
        try:
            if self.midi == "note-aligned":
                content = unalign_notes(content, self.align)
            elif self.midi == "merged-events":
                content = split_tracks(content)
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
        if self.task == "abc2midi":
            return self._midi_file(content)
        return unslot_abc(content) if self.slotted_target else content

    def note_spans(self, sample: MusicPair) -> list[NoteSpan]:
        """Where each note of an abc2midi sample's MIDI is decided, as offsets into its target
        (see `midi_events.NoteSpan`)."""
        stream = midi_to_events(sample.midi)
        if self.midi == "file":
            return note_spans(stream, in_file=True)
        if self.midi == "merged-events":
            return note_spans(merge_tracks(stream), merged=True)
        spans = note_spans(stream)
        if self.midi == "events":
            return spans
        at = aligned_offsets(stream, self.align)
        return [NoteSpan(at[s.pitch], tuple(at[p] for p in s.onset),
                         tuple(at[p] for p in s.duration)) for s in spans]

    def constraint(self, sample: MusicPair) -> Constraint:
        if self.midi != "file" and self.task == "abc2midi":
            return EventConstraint(self.align, self.align, None, self.midi == "note-aligned",
                                   self.midi == "merged-events")
        if self.slotted_target:
            return AbcSlotConstraint(self.align, self.align, None)
        return Constraint(self.align, self.align, None)


def make_codec(task: str, align: int = 16, ir_word: str = "none",
               profile: str | None = None, midi: str = "file", layout: str = "states",
               abc: str = "text", prompt: str = "full", header: str = "canonical",
               body: str = "as-written") -> Codec:
    """A task's codec; for the CPU, a commit-record `layout` (RECORD_LAYOUTS) takes no ir_word
    and may leave the program and state_0 out of its `prompt` (RECORD_PROMPTS)."""
    if task == "cpu":
        if layout not in CPU_LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(CPU_LAYOUTS)}; got {layout!r}")
        if layout in RECORD_LAYOUTS:
            return CpuRecordCodec(align, profile, layout, prompt)
        if prompt != "full":
            raise ValueError(f"a {prompt!r} prompt needs commit records (a layout of "
                             f"{', '.join(RECORD_LAYOUTS)}): full states are read from state_0")
        return CpuCodec(align, ir_word, profile)
    if task in ("abc2midi", "midi2abc"):
        if prompt != "full":
            raise ValueError(f"a {prompt!r} prompt is for the cpu task's commit records; a "
                             f"{task} prompt is its whole input")
        return MusicCodec(task, align, midi, abc, header, body)
    raise ValueError(f"unknown task {task!r} (known: {', '.join(TASKS)})")


def codec_from_options(options: dict[str, Any]) -> Codec:
    """The codec a checkpoint's `codec` options describe (inverse of `Codec.options`)."""
    opts = dict(options)
    task = opts.pop("task")
    if "interleave_ir" in opts:  # checkpoints from before `ir_word`
        opts["ir_word"] = "fetched" if opts.pop("interleave_ir") else "none"
    return make_codec(task, **opts)
