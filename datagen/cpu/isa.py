"""Per-profile front door to the instruction sets: assemble, disassemble, classify."""

from __future__ import annotations

import functools
from types import ModuleType

import capstone

from datagen.cpu import rv32, x86
from datagen.cpu.profiles import Profile, get_profile


def isa_module(profile: Profile) -> ModuleType:
    """The encoder module of a profile's instruction set (rv32 or x86)."""
    return {"rv32": rv32, "x86": x86}[profile.isa]


def assemble(profile_name: str, text: str) -> bytes:
    """Machine code for assembly `text` (RISC-V: RV32IM as compilers emit it, with pseudo-
    instructions, labels and code directives, see `rv32.assemble`; x86: the generator's subset
    in Intel syntax, loaded at code_base)."""
    profile = get_profile(profile_name)
    if profile.isa == "rv32":
        return rv32.assemble(text, n_registers=len(profile.program_registers))
    return x86.assemble(text, base=profile.code_base)


def classify(profile_name: str, insn: bytes) -> str:
    """The class (alu, alu_imm, upper, muldiv, load, store, branch, and for RISC-V jump, which
    the generator never emits; "other" outside them) of the
    instruction at the start of `insn` (bytes after it are ignored, so `program[pc - base:]`
    works for both fixed and variable-length instruction sets)."""
    return isa_module(get_profile(profile_name)).classify(insn)


CS_ARCH = {"rv32": (capstone.CS_ARCH_RISCV, capstone.CS_MODE_RISCV32),
           "x86": (capstone.CS_ARCH_X86, capstone.CS_MODE_32)}  # a profile's isa -> (arch, mode)


@functools.cache
def _capstone(profile_name: str) -> capstone.Cs:
    md = capstone.Cs(*CS_ARCH[get_profile(profile_name).isa])
    md.skipdata = True  # bytes that decode to no instruction show as `.byte`, never vanish
    return md


def disassemble(profile_name: str, code: bytes) -> list[tuple[int, bytes, str]]:
    """(address, bytes, capstone text) of each instruction of `code` loaded at code_base."""
    md = _capstone(profile_name)
    base = get_profile(profile_name).code_base
    return [(a, code[a - base:a - base + size], f"{m} {ops}".strip())
            for a, size, m, ops in md.disasm_lite(code, base)]
