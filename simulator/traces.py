"""Register traces, predicted or emulated, and their comparison: per-byte, per-register and
per-instruction scores and the register-by-register text report that `simulator cpu` and
`make demo` print."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from datagen.cpu import Profile, classify, disassemble, get_profile
from simulator.codec import state_pcs
from simulator.metrics import CpuTally, state_matches


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


@dataclass
class Steps:
    """What was executed at each step of a trace (at the pc of state_0 .. state_n-1)."""

    classes: list[str]
    mnemonics: list[str]
    prev: np.ndarray  # (n, S) uint8: the state before each step
    truth: np.ndarray  # (n, S) uint8: the state after it
    fallthrough: np.ndarray  # (n,) int64: the pc of the instruction after the executed one
    width: int  # bytes of the pc, the state's first register

    @property
    def pcs(self) -> np.ndarray:
        """(n,) int64: the pc of each step's instruction (the state before it)."""
        return state_pcs(self.prev, self.width)

    @property
    def taken(self) -> np.ndarray:
        """(n,) bool: the pc did not fall through (a taken branch)."""
        return state_pcs(self.truth, self.width) != self.fallthrough

    def pc_advanced(self) -> np.ndarray:
        """The pc-advance baseline (n, S): the previous state, the pc at the next instruction."""
        out = self.prev.copy()
        pcs = self.fallthrough.astype(f"<u{self.width}")[:, None]
        out[:, : self.width] = pcs.view(np.uint8)
        return out


def trace_steps(trace, profile) -> Steps:
    """The instruction, class and fall-through pc of every step of `trace` (anything with the
    corpus's `program` and `states` bytes: a corpus row or a `Trace`)."""
    states = np.frombuffer(trace.states, np.uint8).reshape(-1, profile.state_size)
    width = profile.register_bytes[0]
    pcs = state_pcs(states, width)
    listing = {a: (len(code), text.split()[0] if text else "?")
               for a, code, text in disassemble(profile.name, trace.program)}
    classes, mnemonics, after = [], [], []
    for pc in pcs[:-1]:
        at = pc - profile.code_base
        code = trace.program[at: at + 16] if 0 <= at < len(trace.program) else b""
        classes.append(classify(profile.name, code))
        size, mnemonic = listing.get(int(pc), (0, "?"))
        mnemonics.append(mnemonic)
        after.append(pc + size)
    return Steps(classes, mnemonics, states[:-1], states[1:], np.array(after, np.int64), width)


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
    executed = trace_steps(emulator, p)
    pcs, classes = executed.pcs.tolist(), executed.classes
    final = (predicted.stop == "end" and len(guess) == len(truth) and len(truth) > 0
             and bool(right[-1].all()))
    tally = CpuTally(p.registers, p.register_bytes)
    if len(truth):
        tally.add(right, classes, final)
    res = tally.result()
    offsets = np.cumsum([0, *p.register_bytes])
    reports = tuple(StepReport(
        k + 1, pc, emulator.instruction_at(pc), cls, bool(right[k].all()),
        tuple(r for r, a, b in zip(p.registers, offsets, offsets[1:]) if not right[k, a:b].all()))
        for k, (pc, cls) in enumerate(zip(pcs, classes)))
    return Comparison(predicted, emulator, res["byte_accuracy"], res["state_exact"], final,
                      res["by_register"], reports)
