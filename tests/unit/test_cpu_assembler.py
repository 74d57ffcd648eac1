"""The RISC-V assembler on real compiler output (`gcc -S`): directives, jumps and calls, `li` of any
32-bit value, the bytes GNU as gives, Unicorn runs of such code, and one-line refusals."""

import json
import shutil
import subprocess

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bytesim_common.errors import UserError
from datagen.cpu import PROFILES, assemble, classify, disassemble
from datagen.cpu.harness import run_program, zero_state
from datagen.cpu.rv32 import ABI_NAMES
from simulator.checkpoint import save_pretrained
from simulator.cli import main
from simulator.model import PRESETS, ByteModel

# riscv64-unknown-elf-gcc -march=rv32em -mabi=ilp32e -O2 -S of
#   int f(int a, int b) { int x = (a + 3) * b; if (a + 3 > 100000) x = 100000 - (a + 3); return x; }
GCC_F = """\
	.file	"t.c"
	.option nopic
	.attribute arch, "rv32e1p9_m2p0"
	.attribute unaligned_access, 0
	.attribute stack_align, 4
	.text
	.align	2
	.globl	f
	.type	f, @function
f:
	addi	a5,a0,3
	mul	a0,a5,a1
	li	a4,100000
	bge	a4,a5,.L2
	sub	a0,a4,a5
.L2:
	ret
	.size	f, .-f
	.ident	"GCC: (g2ee5e430018) 12.2.0"
"""
# What GNU as (and llvm-mc) make of it. Checked by hand against the ISA manual's encodings:
#   lui a4, 24 (100000 = 0x186a0 = 24 << 12 + 1696): 24 << 12 | rd 14 << 7 | 0x37 = 0x00018737
#   bge a4, a5, +8: imm[4:1] = 4 -> 4 << 8 | rs2 15 << 20 | rs1 14 << 15 | 5 << 12 | 0x63
#   ret = jalr x0, 0(x1): rs1 1 << 15 | 0x67 = 0x00008067
GCC_F_WORDS = [0x00350793, 0x02B78533, 0x00018737, 0x6A070713, 0x00F75463, 0x40F70533,
               0x00008067]
BASE = PROFILES["rv32e"].code_base


def words(code: bytes) -> list[int]:
    return [int.from_bytes(code[k:k + 4], "little") for k in range(0, len(code), 4)]


def run(text: str, max_steps: int = 1024, **registers: int):
    """Unicorn's trace of `text` from the zero state with some registers set (ABI names)."""
    p = PROFILES["rv32e"]
    state = bytearray(zero_state(p))
    for name, value in registers.items():
        k = p.registers.index(f"x{ABI_NAMES[name]}")
        state[4 * k:4 * k + 4] = (value % (1 << 32)).to_bytes(4, "little")
    return run_program("rv32e", assemble("rv32e", text), bytes(state), max_steps)


def final(trace, name: str) -> int:
    """Register `name` (x1..x15) in the trace's last state."""
    k = PROFILES["rv32e"].registers.index(name)
    return int.from_bytes(trace.states[-64:][4 * k:4 * k + 4], "little")


def test_gcc_output_assembles_to_the_bytes_gnu_as_gives():
    assert words(assemble("rv32e", GCC_F)) == GCC_F_WORDS
    assert assemble("rv32e", GCC_F.replace("\t", "    ").replace(",", " , ")) == \
        assemble("rv32e", GCC_F)


@pytest.mark.parametrize("text, expected", [
    ("ret", [0x00008067]),
    ("j .+8", [0x0080006F]),  # imm[10:1] = 4 -> 4 << 21 | 0x6f
    ("jal .-4", [0xFFDFF0EF]),  # rd = ra; imm 0x1ffffc: imm[20] 1, imm[10:1] 0x3fe, imm[19:12] ff
    ("jal a0, .+16", [0x0100056F]),
    ("jalr a0", [0x000500E7]),
    ("jalr a1, a0, 4", [0x004505E7]),
    ("jalr a1, 4(a0)", [0x004505E7]),
    ("jalr a0, a1", [0x00058567]),
    ("jalr 8(a1)", [0x008580E7]),
    ("jr a0", [0x00050067]),
    ("jr 4(a1)", [0x00458067]),
    ("jr a1, 4", [0x00458067]),
    ("call .+2048", [0x001000EF]),  # imm[11] is bit 20
    ("tail .-2", [0xFFFFF06F]),
    ("li a0, -1", [0xFFF00513]),
    ("li a0, 0xffffffff", [0xFFF00513]),  # gas reads it as the 32-bit -1
    ("li a0, 2047", [0x7FF00513]),
    ("li a0, 2048", [0x00001537, 0x80050513]),  # lui 1 (+0x800 rounding), addi -2048
    ("li a0, 0x80000000", [0x80000537]),  # low 12 bits zero: lui alone
    ("li a0, 0x7ffff800", [0x80000537, 0x80050513]),
    ("li a0, -2147483648", [0x80000537]),
    ("zext.b a0, a1", [0x0FF5F513]),
    ("sext.b a0, a1", [0x01859513, 0x41855513]),
    ("sext.h a0, a1", [0x01059513, 0x41055513]),
    ("zext.h a0, a1", [0x01059513, 0x01055513]),
    ("sgt a0, a1, a2", [0x00B62533]),  # slt a0, a2, a1
    (".word 0x00008067, -1", [0x00008067, 0xFFFFFFFF]),
    ("nop; nop", [0x00000013] * 2),
    ("1: j 1b", [0x0000006F]),  # a label on the reference's own line is behind it
    ("j 1f\n1: j 1b\n1: j 1b", [0x0040006F, 0x0000006F, 0x0000006F]),
])
def test_forms_encode_as_gnu_as(text, expected):
    assert words(assemble("rv32e", text)) == expected


def test_labels_after_a_two_instruction_li_are_placed_right():
    text = "beqz a0, done\nli a1, 0x12345678\ndone:\nret"
    code = assemble("rv32e", text)
    assert len(code) == 16 and words(code)[0] == 0x00050663  # beq a0, x0, +12
    assert final(run(text, ra=BASE + 16), "x11") == 0
    assert final(run(text, ra=BASE + 16, a0=1), "x11") == 0x12345678


def test_numeric_labels_alignment_and_skipped_sections():
    code = assemble("rv32e", """
        .section .text.startup,"ax",@progbits
    1:  addi a0, a0, 1
        .align 3                      # at 4: one nop to reach 8
    2:  bnez a0, 1b
        .p2align 5,,16                # at 12: 20 bytes to 32, over the max of 16: nothing
        j 2b
        .balign 16                    # at 16: nothing
        .align 2                      # 4-byte code is always 4-byte aligned: nothing
        beqz a0, 1f
    1:  .4byte 0x13
        .section .debug_info,"",@progbits
        .4byte 0x1234
        .string "ignored: debug info is not code"
        .text
        j 2b
        .section .note.GNU-stack,"",@progbits
    """)
    assert words(code) == [0x00150513, 0x00000013, 0xFE051CE3, 0xFFDFF06F, 0x00050263, 0x13,
                           0xFF1FF06F]


def test_capstone_reads_back_the_same_instructions():
    text = GCC_F + """
    g:  call f
        jal a0, g
        jalr a1, a0, -4
        jr t0
        tail g
        j .
    """
    code = assemble("rv32e", text)
    listing = disassemble("rv32e", code)
    assert [t.split()[0] for _, _, t in listing] == [
        "addi", "mul", "lui", "addi", "bge", "sub", "ret", "jal", "jal", "jalr", "jr", "j", "j"]
    assert assemble("rv32e", "\n".join(t for _, _, t in listing)) == code


def test_jumps_are_their_own_class():
    code = assemble("rv32e", "jal f\nf: jalr a0\nret\nj f\nadd a0, a0, a1")
    assert [classify("rv32e", code[k:]) for k in range(0, len(code), 4)] == \
        ["jump", "jump", "jump", "jump", "alu"]


def test_gcc_function_runs_both_ways_and_returns_to_its_caller():
    end = BASE + 4 * len(GCC_F_WORDS)  # returning here ends the program
    near = run(GCC_F, ra=end, a0=5, a1=7)  # (5 + 3) * 7; the branch is taken
    assert (near.stop, near.n_steps, final(near, "x10")) == ("end", 6, 56)
    far = run(GCC_F, ra=end, a0=200000, a1=7)
    assert (far.stop, far.n_steps, final(far, "x10")) == ("end", 7, (100000 - 200003) % 2**32)


def test_ret_to_an_unmapped_address_is_a_recorded_fault():
    trace = run(GCC_F, a0=5, a1=7)  # ra = 0: nothing is mapped there
    assert trace.stop == "fault:fetch_unmapped" and trace.n_steps == 5  # the ret itself faults
    assert final(trace, "x10") == 56


def test_loops_backward_branches_and_calls():
    count = run("""
        li a0, 0
        li a1, 10
    loop:
        add a0, a0, a1
        addi a1, a1, -1
        bnez a1, loop
    """)
    assert (count.stop, count.n_steps, final(count, "x10")) == ("end", 32, 55)
    forever = run("1: addi a0, a0, 1\n j 1b", max_steps=40)
    assert (forever.stop, forever.n_steps, final(forever, "x10")) == ("max_steps", 40, 20)
    called = run("""
        li a0, 5
        call double
        j .Lend
    double:
        add a0, a0, a0
        ret
    .Lend:
    """)
    assert (called.stop, final(called, "x10"), final(called, "x1")) == ("end", 10, BASE + 8)


@pytest.mark.parametrize("text, problem", [
    ('.string "hi"', "unsupported directive '.string'"),
    (".section .rodata", "section '.rodata' is not supported"),
    (".data", "section '.data' is not supported"),
    ("lui a5, %hi(x)", "relocation '%hi(x)' is not supported"),
    ("lw a0, %lo(x)(a5)", "relocation '%lo(x)(a5)' is not supported"),
    ("la a0, x", "needs a relocation"),
    ("lw a0, x", "needs a relocation"),
    (".word x", "needs a relocation"),
    ("call printf", "unknown label 'printf' (only labels of this file: there is no linker)"),
    ("j 0x100000", "jal: offset 1048576 out of range (-1048576..1048574 and even), ±1 MiB"),
    ("jal a0, 3", "and even"),
    ("li a0, 0x100000000", "li: 4294967296 does not fit in 32 bits"),
    ('.attribute arch, "rv32i2p1_m2p0_c2p0"', "compressed instructions"),
    (".option arch, +c", "compressed instructions"),
    (".option rvc", "compressed instructions"),
    ('.attribute arch, "rv64i2p1_m2p0"', "RV64 code is not supported"),
    (".balign 3", "power of two"),
    (".p2align 2, 0", "fill value"),
    ("j 1b", "no label '1' before this line"),
    ("jalr a0, a1, a2, a3", "fit none of its forms (reg, offset(reg) | reg | offset(reg) | reg, reg"),
    ("ret a0", "ret takes 0 operand(s), got 1"),
    ("ecall", "unsupported RISC-V instruction 'ecall'"),
    ("jal x16, .", "outside this profile"),
    ("mv a6, t6", "register a6 is outside this profile (x0..x15)"),
])
def test_refusals_are_one_line_naming_the_line_and_the_problem(text, problem):
    with pytest.raises(UserError) as e:
        assemble("rv32e", f"nop\n\t{text}\nnop")
    message = str(e.value)
    assert message.startswith(f"line 2: {' '.join(text.split())}: ") and problem in message
    assert "\n" not in message


def test_a_label_defined_twice_is_refused():
    with pytest.raises(UserError, match="line 3: x: nop: label 'x' is already defined on line 1"):
        assemble("rv32e", "x: nop\nnop\nx: nop")


GCC_TOKENS = ["addi", "li", "j", "jal", "jalr", "jr", "ret", "call", "tail", "bnez", "a0", "ra",
              "x16", ".L2", ".L2:", "1:", "1b", "1f", ".", ".+8", ".-3", "%hi(x)", "0(a5)", "(",
              ")", ",", "\t", ";", "#", '"', "0x7ffff800", "-2049", "99999999999", ".align",
              ".p2align", ".balign", ".word", ".section", ".text", ".data", ".option", "rvc",
              ".attribute", "arch", "rv32imc", ".size", ".string", ".cfi_startproc", ".popsection"]


@settings(max_examples=300, deadline=None, derandomize=True)
@given(text=st.lists(st.sampled_from(GCC_TOKENS), max_size=12).map(" ".join))
def test_fuzzed_compiler_like_text_is_code_or_a_one_line_error(text):
    try:
        code = assemble("rv32e", text)
    except UserError as e:
        assert "\n" not in str(e) and str(e)
    else:
        assert len(code) % 4 == 0 and code


@pytest.mark.skipif(shutil.which("llvm-mc") is None or shutil.which("llvm-objcopy") is None,
                    reason="llvm-mc and llvm-objcopy (a second, real RISC-V assembler) are absent")
def test_same_bytes_as_llvm_mc(tmp_path):
    """LLVM's assembler agrees byte for byte (call and tail aside: with a linker in view it
    emits auipc + jalr for them; this assembler has none and emits the near jal)."""
    text = GCC_F + """
    g:  jal g
        jal a0, .L2
        jalr a1, a0, -4
        jalr t0, 8(a2)
        jr 4(t1)
        j 1f
        li a3, 0x7ffff800
        li a4, -4096
    1:  .p2align 4
        sext.h a0, a1
        bleu a0, a1, g
        beqz a2, 1b
    """
    (tmp_path / "p.s").write_text(text)
    made = subprocess.run(["llvm-mc", "-triple=riscv32", "-mattr=+e,+m", "-filetype=obj", "-o",
                           str(tmp_path / "p.o"), str(tmp_path / "p.s")],
                          capture_output=True, text=True, check=False)
    if "unable to get target" in made.stderr or "No available targets" in made.stderr:
        pytest.skip("this llvm-mc has no RISC-V target")
    assert made.returncode == 0, made.stderr
    subprocess.run(["llvm-objcopy", "-O", "binary", "--only-section=.text", str(tmp_path / "p.o"),
                    str(tmp_path / "p.bin")], check=True)
    assert assemble("rv32e", text) == (tmp_path / "p.bin").read_bytes()


@pytest.mark.usefixtures("one_torch_thread")
def test_simulator_cpu_json_on_gcc_output(tmp_path, capsys):
    """`simulator cpu f.s --json --model M` end to end (an untrained model: only the plumbing)."""
    torch.manual_seed(0)
    save_pretrained(ByteModel(PRESETS["tiny"]),
                    {"task": "cpu", "align": 16, "profile": "rv32e", "interleave_ir": False},
                    tmp_path / "model")
    (tmp_path / "f.s").write_text(GCC_F)
    with pytest.raises(SystemExit) as e:
        main(["cpu", str(tmp_path / "f.s"), "--json", "--model", str(tmp_path / "model"),
              "--init", "a0=5,a1=7"])
    out = json.loads(capsys.readouterr().out)
    assert e.value.code == 0 and out["profile"] == "rv32e"
    assert bytes.fromhex(out["program_hex"]) == assemble("rv32e", GCC_F)
    assert len(out["emulator"]) == 6 and all(len(s) == 128 for s in out["predicted"])
    assert int.from_bytes(bytes.fromhex(out["emulator"][-1])[40:44], "little") == 56
