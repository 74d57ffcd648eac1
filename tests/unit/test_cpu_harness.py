"""The Unicorn harness: agrees with single-stepping, records faults, caps steps, flushes code."""

import random

import pytest
from unicorn import UC_PROT_EXEC, UC_PROT_READ, UC_PROT_WRITE, Uc, UcError

from datagen.cpu import PROFILES, assemble, random_initial_state, random_program
from datagen.cpu.harness import UC_ARCH, Emulator, run_program, uc_registers
from datagen.cpu.programs import encode_program


def single_step(profile, code: bytes, init: bytes, max_steps: int):
    """A separate reference: a fresh Unicorn, one emu_start(count=1) per instruction."""
    p = PROFILES[profile]
    uc, regs = Uc(*UC_ARCH[p.isa]), uc_registers(p)
    uc.mem_map(p.code_base, p.code_size, UC_PROT_READ | UC_PROT_EXEC)
    uc.mem_map(p.data_base, p.data_size, UC_PROT_READ | UC_PROT_WRITE)
    uc.mem_write(p.code_base, code)
    for i, reg in enumerate(regs):
        uc.reg_write(reg, int.from_bytes(init[4 * i:4 * i + 4], "little"))

    def state() -> bytes:
        raw = b"".join(uc.reg_read(r).to_bytes(4, "little") for r in regs)
        return raw.ljust(p.state_size, b"\0")

    states, end = [state()], p.code_base + len(code)
    while len(states) <= max_steps:
        pc = uc.reg_read(regs[0])
        if pc == end:
            return b"".join(states), "end"
        try:
            uc.emu_start(pc, end, count=1)
        except UcError:
            return b"".join(states), "fault"
        states.append(state())
    return b"".join(states), "end" if uc.reg_read(regs[0]) == end else "max_steps"


@pytest.mark.parametrize("profile", list(PROFILES))
def test_hooked_trace_equals_single_stepping(profile):
    p, rng = PROFILES[profile], random.Random(11)
    for _ in range(60):
        code = encode_program(p, random_program(p, rng, 1, 20))
        init = random_initial_state(p, rng)
        trace = run_program(profile, code, init, max_steps=64)
        states, stop = single_step(profile, code, init, 64)
        assert trace.states == states and trace.stop == stop == "end"
        assert len(trace.states) == (trace.n_steps + 1) * p.state_size


@pytest.mark.parametrize("profile, text, steps, stop", [
    ("rv32e", "addi x3, x0, 5\nlw x1, 0(x0)\naddi x3, x3, 1", 1, "fault:read_unmapped"),
    ("rv32e", "lui x2, 1\nsw x1, 0(x2)", 1, "fault:write_prot"),  # the code page is read-only
    ("rv32e", "beq x0, x0, 64", 1, "fault:exception"),  # lands on zeros: illegal instruction
    # as single-stepping Unicorn sees it, a jump to unmapped memory is the faulting instruction
    ("x86", "inc eax\njmp 0x100000", 1, "fault:fetch_unmapped"),
    ("x86", bytes.fromhex("40 0f 0b 40"), 1, "fault:insn_invalid"),  # inc eax; ud2; inc eax
    ("x86", "inc eax\nmov dword ptr [0x20], eax\ninc eax", 1, "fault:write_unmapped"),
])
def test_faults_are_recorded_with_the_states_before_them(profile, text, steps, stop):
    code = assemble(profile, text) if isinstance(text, str) else text
    trace = run_program(profile, code)
    states, ref_stop = single_step(profile, code, trace.states[:PROFILES[profile].state_size], 99)
    assert (trace.n_steps, trace.stop) == (steps, stop)
    assert trace.states == states and ref_stop == "fault"


def test_max_steps_cuts_the_trace():
    code = assemble("rv32e-mini", "\n".join(["addi x1, x1, 1"] * 6))
    full, cut = run_program("rv32e-mini", code), run_program("rv32e-mini", code, max_steps=4)
    assert (full.n_steps, full.stop, cut.n_steps, cut.stop) == (6, "end", 4, "max_steps")
    assert cut.states == full.states[:5 * 16]
    assert run_program("rv32e-mini", code, max_steps=6).stop == "end"


def test_a_short_program_after_a_long_one_runs_its_own_code():
    emu, p = Emulator(PROFILES["rv32e"]), PROFILES["rv32e"]
    init = random_initial_state(p, random.Random(0))
    long = assemble("rv32e", "\n".join(["addi x1, x1, 1"] * 12))
    short = assemble("rv32e", "addi x1, x1, 7")
    emu.run(long, init)
    again = emu.run(short, init)
    assert again == Emulator(p).run(short, init)
    assert again.n_steps == 1 and again.stop == "end"


def test_data_page_is_zero_for_every_program():
    code = assemble("rv32e", "lui x1, 8\nlw x2, 0(x1)\naddi x3, x0, 9\nsw x3, 0(x1)")
    first, second = run_program("rv32e", code), run_program("rv32e", code)
    assert first == second  # the store of the first run is not seen by the second's load


def test_unhooked_run_gives_the_same_final_state():
    p, rng = PROFILES["x86"], random.Random(5)
    plain = Emulator(p, record=False)
    for _ in range(20):
        code = encode_program(p, random_program(p, rng))
        init = random_initial_state(p, rng)
        assert plain.run_final(code, init) == run_program("x86", code, init).states[-32:]
