"""Unicorn runs that record the full state after every executed instruction (docs/formats.md).

One `Emulator` per profile and process, reused for every program: every register is reset (the
ones outside the state too), the code page rewritten, the data page zeroed and the translation
cache flushed before each run (without the flush, a short program after a longer one can run
stale translated code). A UC_HOOK_CODE hook fires
before each instruction and copies the registers straight into a preallocated buffer with one
`uc_reg_read_batch` call: slot k holds the state before instruction k, i.e. state_k.

A fault ends the trace after the last instruction that completed, as single-stepping Unicorn
(`emu_start(count=1)` per instruction) sees it: e.g. a jump to unmapped memory is itself the
faulting instruction. Faults are rare (generated programs never fault), so after one the
program is simply replayed one instruction at a time to get exactly that.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass

import unicorn
from unicorn import (
    UC_HOOK_CODE,
    UC_PROT_EXEC,
    UC_PROT_READ,
    UC_PROT_WRITE,
    Uc,
    UcError,
    riscv_const,
    x86_const,
)

try:  # the C library handle; the Python wrappers cost more than the emulation itself
    from unicorn.unicorn_py3.unicorn import uclib as _uclib
except ImportError:  # unicorn < 2.1
    from unicorn.unicorn import _uc as _uclib  # type: ignore[attr-defined,no-redef]

from bytesim_common.errors import UserError
from datagen.cpu.profiles import Profile, get_profile

UC_ARCH = {"rv32": (unicorn.UC_ARCH_RISCV, unicorn.UC_MODE_RISCV32),
           "x86": (unicorn.UC_ARCH_X86, unicorn.UC_MODE_32)}  # a profile's isa -> (arch, mode)
_UC_REG_PREFIX = {"rv32": (riscv_const, "UC_RISCV_REG_"), "x86": (x86_const, "UC_X86_REG_")}


def uc_registers(profile: Profile) -> tuple[int, ...]:
    """Unicorn's ids of the profile's state registers, in state order."""
    consts, prefix = _UC_REG_PREFIX[profile.isa]
    return tuple(getattr(consts, prefix + r.upper()) for r in profile.registers)


DEFAULT_MAX_STEPS = 1024
MAX_STEPS_LIMIT = 1 << 16  # states are recorded in memory allocated up front: bound it
FAULTS = {getattr(unicorn, n): n[len("UC_ERR_"):].lower()
          for n in dir(unicorn) if n.startswith("UC_ERR_")}  # e.g. 6 -> "read_unmapped"


@dataclass(frozen=True)
class Trace:
    states: bytes  # (n_steps + 1) * state_size: state_0 .. state_n
    n_steps: int
    stop: str  # "end" | "max_steps" | "fault:<kind>"


class Emulator:
    """A Unicorn instance for one profile. `record=False` runs without the hook (final state
    only), the emulator's own speed bound for the benchmark."""

    def __init__(self, profile: Profile, record: bool = True):
        self.profile = p = profile
        self.uc = Uc(*UC_ARCH[p.isa])
        self.uc.mem_map(p.code_base, p.code_size, UC_PROT_READ | UC_PROT_EXEC)
        self.uc.mem_map(p.data_base, p.data_size, UC_PROT_READ | UC_PROT_WRITE)
        # Every register, the ones outside the state too (x86 segments and esp, RISC-V x16..x31,
        # CSRs): restored before each run, so that no program sees what an earlier one left.
        self._reset = self.uc.context_save()
        self._n_regs = len(p.registers)
        self._regs = (ctypes.c_int * self._n_regs)(*uc_registers(p))
        self._offsets = [sum(p.register_bytes[:i]) for i in range(self._n_regs)]
        self._zero_data = bytes(p.data_size)
        self._code_len = 0
        self._init = ctypes.create_string_buffer(p.state_size)
        self._init_ptrs = self._pointers(ctypes.addressof(self._init))
        self._capacity = 0
        self._grow(DEFAULT_MAX_STEPS + 2)
        self._hooks = 0
        if record:
            self.uc.hook_add(UC_HOOK_CODE, self._on_code)

    def _pointers(self, base: int) -> ctypes.Array:
        return (ctypes.c_void_p * self._n_regs)(*(base + o for o in self._offsets))

    def _grow(self, n_states: int) -> None:
        """Room for `n_states` states: the buffer and, per slot, the registers' addresses."""
        if n_states <= self._capacity:
            return
        size = self.profile.state_size
        self._buf = ctypes.create_string_buffer(n_states * size)
        base = ctypes.addressof(self._buf)
        self._slots = [self._pointers(base + k * size) for k in range(n_states)]
        self._capacity = n_states

    def _on_code(self, uc: Uc, address: int, size: int, user_data: object) -> None:
        k = self._hooks
        if k < self._capacity:
            _uclib.uc_reg_read_batch(self.uc._uch, self._regs, self._slots[k], self._n_regs)
        self._hooks = k + 1

    def _read_state(self, slot: int) -> None:
        _uclib.uc_reg_read_batch(self.uc._uch, self._regs, self._slots[slot], self._n_regs)

    def _pc(self, slot: int) -> int:
        size = self.profile.state_size
        return int.from_bytes(self._buf.raw[slot * size: slot * size + 4], "little")

    def _load(self, code: bytes, init_state: bytes, max_steps: int) -> None:
        """Check the inputs; write the code, zero the data page, flush, set state_0."""
        p = self.profile
        if not code:
            raise UserError("the program is empty")
        if len(code) > p.code_size:
            raise UserError(f"the program has {len(code)} bytes; {p.name} holds at most "
                            f"{p.code_size}")
        if len(init_state) != p.state_size:
            raise UserError(f"an initial {p.name} state has {p.state_size} bytes, "
                            f"got {len(init_state)}")
        if max_steps < 1:
            raise UserError(f"max_steps must be at least 1, got {max_steps}")
        if max_steps > MAX_STEPS_LIMIT:
            raise UserError(f"max_steps {max_steps} is over the limit of {MAX_STEPS_LIMIT} "
                            "states per trace")
        self._grow(max_steps + 2)
        uc = self.uc
        uc.context_restore(self._reset)
        uc.mem_write(p.code_base, code + bytes(max(0, self._code_len - len(code))))
        self._code_len = len(code)
        uc.mem_write(p.data_base, self._zero_data)
        uc.ctl_remove_cache(p.code_base, p.code_base + p.code_size)
        ctypes.memmove(self._init, init_state, p.state_size)
        _uclib.uc_reg_write_batch(uc._uch, self._regs, self._init_ptrs, self._n_regs)
        self._hooks = 0

    def _emulate(self, start: int, end: int, count: int) -> str | None:
        """Run; the fault's stop reason, or None if the run ended without one."""
        try:
            self.uc.emu_start(start, end, count=count)
        except UcError as e:
            return "fault:" + FAULTS.get(e.errno, f"error_{e.errno}")
        return None

    def _replay(self, code: bytes, init_state: bytes, end: int, limit: int) -> int:
        """After a fault: run again one instruction at a time (at most `limit`), recording the
        state after each one that completes; return how many did. (Registers read after a
        fault are not always the state after the last instruction, e.g. RISC-V moves pc past
        an illegal instruction.)"""
        self._load(code, init_state, limit + 1)
        self._hooks = self._capacity  # the hook records nothing while replaying
        self._read_state(0)
        n = 0
        while n < limit and not self._emulate(self._pc(n), end, 1):
            n += 1
            self._read_state(n)
        return n

    def run(self, code: bytes, init_state: bytes, max_steps: int = DEFAULT_MAX_STEPS) -> Trace:
        """Execute `code` from `init_state`, recording the state after every instruction."""
        self._load(code, init_state, max_steps)
        end = self.profile.code_base + len(code)
        stop = self._emulate(int.from_bytes(init_state[:4], "little"), end, max_steps)
        if stop is None:
            n = min(self._hooks, max_steps)
            self._read_state(n)
            stop = "end" if self._pc(n) == end else "max_steps"
        else:  # hooks fired for every instruction begun: at most that many completed
            n = self._replay(code, init_state, end, min(self._hooks, max_steps))
        return Trace(self._buf.raw[: (n + 1) * self.profile.state_size], n, stop)

    def run_final(self, code: bytes, init_state: bytes,
                  max_steps: int = DEFAULT_MAX_STEPS) -> bytes:
        """The final state only (for the benchmark's unhooked bound)."""
        self._load(code, init_state, max_steps)
        end = self.profile.code_base + len(code)
        self._emulate(int.from_bytes(init_state[:4], "little"), end, max_steps)
        self._read_state(0)
        return self._buf.raw[: self.profile.state_size]


_EMULATORS: dict[tuple[int, str], Emulator] = {}


def emulator(profile_name: str) -> Emulator:
    """This process's recording emulator for a profile (made once, then reused)."""
    key = (os.getpid(), profile_name)  # a forked worker makes its own
    if key not in _EMULATORS:
        _EMULATORS[key] = Emulator(get_profile(profile_name))
    return _EMULATORS[key]


def zero_state(profile: Profile) -> bytes:
    """All registers zero, pc = code_base (x86: eflags = 0x2, its always-set bit)."""
    values = {profile.pc_register: profile.code_base, "eflags": 0x2}
    state = b"".join(values.get(r, 0).to_bytes(w, "little")
                     for r, w in zip(profile.registers, profile.register_bytes))
    return state.ljust(profile.state_size, b"\0")


def run_program(profile_name: str, code: bytes, init_state: bytes | None = None,
                max_steps: int = DEFAULT_MAX_STEPS) -> Trace:
    """Run machine code on Unicorn and return its trace (init_state None: `zero_state`)."""
    profile = get_profile(profile_name)
    state = zero_state(profile) if init_state is None else bytes(init_state)
    return emulator(profile_name).run(bytes(code), state, max_steps)
