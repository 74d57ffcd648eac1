"""CPU instruction sets: each class against hand-computed results, the assembler, the classifier."""

import random

import pytest

from bytesim_common.errors import UserError
from datagen.cpu import PROFILES, assemble, classify, disassemble, random_program
from datagen.cpu.harness import run_program
from datagen.cpu.isa import isa_module
from datagen.cpu.programs import encode_program


def regs(profile: str, text: str) -> dict[str, int]:
    """The final registers after running `text` from the zero state."""
    p = PROFILES[profile]
    trace = run_program(profile, assemble(profile, text))
    assert trace.stop == "end"
    last = trace.states[-p.state_size:]
    return {r: int.from_bytes(last[4 * i:4 * i + 4], "little") for i, r in enumerate(p.registers)}


def test_profiles_match_the_spec():
    assert PROFILES["rv32e"].registers == ("pc",) + tuple(f"x{i}" for i in range(1, 16))
    assert PROFILES["rv32e-mini"].registers == ("pc", "x1", "x2", "x3")
    assert PROFILES["x86"].registers == ("eip", "eflags", "eax", "ecx", "edx", "ebx", "esi", "edi")
    assert [PROFILES[n].state_size for n in ("rv32e", "rv32e-mini", "x86")] == [64, 16, 32]
    for p in PROFILES.values():
        assert sum(p.register_bytes) <= p.state_size and p.state_size % 16 == 0


def test_rv32_alu_and_immediates():
    r = regs("rv32e", """
        lui x1, 0x80000        # x1 = 0x80000000
        addi x2, x0, 4
        sra x3, x1, x2         # arithmetic: sign bits shifted in
        srl x4, x1, x2
        srai x5, x1, 31
        sltiu x6, x0, -1       # 0 < 0xffffffff unsigned
        slt x7, x1, x0         # INT_MIN < 0 signed
        sub x8, x0, x2
        auipc x9, 1            # pc 0x1020 + 0x1000
        xori x10, x2, -1
    """)
    assert r["x3"] == 0xF8000000 and r["x4"] == 0x08000000 and r["x5"] == 0xFFFFFFFF
    assert r["x6"] == 1 and r["x7"] == 1 and r["x8"] == 0xFFFFFFFC
    assert r["x9"] == 0x2020 and r["x10"] == 0xFFFFFFFB


def test_rv32_m_extension():
    r = regs("rv32e", """
        addi x1, x0, -1        # 0xffffffff
        mulhu x2, x1, x1       # 0xfffffffe00000001 >> 32
        mulh x3, x1, x1        # (-1 * -1) >> 32 = 0
        mulhsu x4, x1, x1      # -1 * 0xffffffff = -0xffffffff -> high word all ones
        addi x5, x0, 7
        div x6, x5, x0         # division by zero: -1
        rem x7, x5, x0         # remainder by zero: the dividend
        divu x8, x5, x0
        remu x9, x5, x0
        lui x10, 0x80000
        div x11, x10, x1       # INT_MIN / -1 overflows to INT_MIN
        rem x12, x10, x1       # ... remainder 0
        addi x13, x0, -7
        rem x14, x13, x2       # wait: x2 = 0xfffffffe = -2; -7 rem -2 = -1
        mul x15, x13, x13
    """)
    assert r["x2"] == 0xFFFFFFFE and r["x3"] == 0 and r["x4"] == 0xFFFFFFFF
    assert r["x6"] == 0xFFFFFFFF and r["x7"] == 7 and r["x8"] == 0xFFFFFFFF and r["x9"] == 7
    assert r["x11"] == 0x80000000 and r["x12"] == 0
    assert r["x14"] == 0xFFFFFFFF and r["x15"] == 49


def test_rv32_loads_stores_every_width():
    r = regs("rv32e", """
        lui x1, 8              # the data page, 0x8000
        addi x2, x0, -128      # 0xffffff80
        sb x2, 3(x1)
        lb x3, 3(x1)
        lbu x4, 3(x1)
        lh x5, 2(x1)           # bytes 00 80 -> 0xffff8000
        lhu x6, 2(x1)
        lw x7, 0(x1)           # 0x80000000
        sh x2, 8(x1)
        sw x2, 12(x1)
        lw x8, 8(x1)
        lw x9, 12(x1)
        lw x10, 100(x1)        # untouched: zero
    """)
    assert (r["x3"], r["x4"], r["x5"], r["x6"]) == (0xFFFFFF80, 0x80, 0xFFFF8000, 0x8000)
    assert (r["x7"], r["x8"], r["x9"], r["x10"]) == (0x80000000, 0xFF80, 0xFFFFFF80, 0)


def test_rv32_branches_taken_and_not():
    trace = run_program("rv32e", assemble("rv32e", """
        beq x0, x0, skip       # taken
        addi x1, x0, 1         # skipped
    skip:
        bne x0, x0, 8          # not taken
        addi x2, x0, 2
    """))
    pcs = [int.from_bytes(trace.states[64 * k:64 * k + 4], "little") for k in range(4)]
    assert trace.n_steps == 3 and pcs == [0x1000, 0x1008, 0x100C, 0x1010]
    assert trace.states[-64:][4:8] == bytes(4)  # x1 never written


def test_x86_flags_after_signed_overflow():
    r = regs("x86", "mov eax, 0x7fffffff\nadd eax, 1")
    # OF (signed overflow), SF (negative), AF (carry out of bit 3), PF (low byte 0x00 is even)
    assert r["eax"] == 0x80000000 and r["eflags"] == 0x2 | 0x800 | 0x80 | 0x10 | 0x4


def test_x86_muldiv_loads_stores():
    r = regs("x86", """
        mov eax, 0xffffffff
        mov ecx, 2
        mul ecx                # edx:eax = 0x1fffffffe
        mov ebx, eax
        mov esi, edx
        mov eax, 100
        or ecx, 1              # the generator's guard: divisor 3, edx 0
        xor edx, edx
        div ecx
        mov word ptr [0x8002], cx
        movsx edi, byte ptr [0x8002]
        mov byte ptr [0x8010], ah
    """)
    assert (r["ebx"], r["esi"]) == (0xFFFFFFFE, 1)
    assert (r["eax"], r["edx"], r["edi"]) == (33, 1, 3)


@pytest.mark.parametrize("profile", list(PROFILES))
def test_assembler_round_trips_capstone_text(profile):
    """Every generated program, disassembled by capstone, assembles back to the same bytes."""
    p, rng = PROFILES[profile], random.Random(3)
    for _ in range(150):
        code = encode_program(p, random_program(p, rng, 1, 24))
        text = "\n".join(t for _, _, t in disassemble(profile, code))
        assert assemble(profile, text) == code, text


@pytest.mark.parametrize("profile", list(PROFILES))
def test_classify_matches_the_generator(profile):
    p, rng = PROFILES[profile], random.Random(4)
    isa, seen = isa_module(p), set()
    for cls in p.classes:
        mix = {c: float(c == cls or c == "alu") for c in p.classes}
        for _ in range(20):
            insns = random_program(p, rng, 4, 4, mix)
            code = encode_program(p, insns)
            at = 0
            for insn in insns:
                got = classify(profile, code[at:])
                setup = insn[0] in ("lui", "or", "xor")  # base set-up / div guard
                assert got == cls or got == "alu" or (setup and got in ("upper", "alu_imm"))
                seen.add(got)
                at += len(isa.encode(insn, p.code_base + at))
    assert seen >= set(p.classes)


@pytest.mark.parametrize("text, match", [
    ("frob x1, x2", "unsupported RISC-V instruction 'frob'"),
    ("addi x1, x2, 5000", "addi: immediate 5000 out of range"),
    ("slli x1, x1, 32", "slli: immediate 32 out of range"),
    ("beq x1, x2, 3", "even"),
    ("add x1, x2, x16", "outside this profile"),
    ("lw x1, x2", "offset\\(register\\)"),
    ("beq x1, x2, nowhere", "unknown label"),
])
def test_assembler_errors_name_the_problem(text, match):
    with pytest.raises(UserError, match=match):
        assemble("rv32e", text)


def test_mini_profile_refuses_high_registers():
    assert assemble("rv32e-mini", "add x3, x2, x1")
    with pytest.raises(UserError, match="x0..x3"):
        assemble("rv32e-mini", "add x4, x2, x1")
    with pytest.raises(UserError, match="unknown CPU profile"):
        assemble("arm", "nop")
