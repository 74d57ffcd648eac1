"""CPU profiles (docs/formats.md): the architecture, the state's registers and the memory map, as
data. Plain data: the emulator's and the disassembler's ids for them live in `harness` and `isa`,
so that reading a corpus (training, evaluation) needs neither Unicorn nor capstone here."""

from __future__ import annotations

from dataclasses import dataclass

from bytesim_common.errors import UserError

CLASSES = ("alu", "alu_imm", "upper", "muldiv", "load", "store", "branch")


@dataclass(frozen=True)
class Profile:
    """One CPU profile. A state is `registers` in order, little-endian, `state_size` bytes."""

    name: str
    isa: str  # "rv32" | "x86": which encoder module (datagen.cpu.rv32 / datagen.cpu.x86)
    registers: tuple[str, ...]  # state order; registers[0] is the program counter
    register_bytes: tuple[int, ...]
    state_size: int  # a multiple of 16; zero-padded where the registers fill less
    program_registers: tuple[str, ...]  # the registers random programs may use
    classes: tuple[str, ...]  # the instruction classes random programs draw from
    code_base: int  # the program is loaded here; state_0's pc
    code_size: int
    data_base: int  # the data page: mapped read/write, zero at the start of every program
    data_size: int

    @property
    def pc_register(self) -> str:
        return self.registers[0]


def _rv32(name: str, n_regs: int, state_size: int) -> Profile:
    xs = tuple(f"x{i}" for i in range(1, n_regs))
    return Profile(
        name=name, isa="rv32", registers=("pc",) + xs,
        register_bytes=(4,) * n_regs, state_size=state_size,
        program_registers=("x0",) + xs, classes=CLASSES,
        code_base=0x1000, code_size=0x4000, data_base=0x8000, data_size=0x1000,
    )


_X86_REGS = ("eip", "eflags", "eax", "ecx", "edx", "ebx", "esi", "edi")

PROFILES: dict[str, Profile] = {
    "rv32e": _rv32("rv32e", 16, 64),
    "rv32e-mini": _rv32("rv32e-mini", 4, 16),
    "x86": Profile(
        name="x86", isa="x86", registers=_X86_REGS,
        register_bytes=(4,) * 8, state_size=32,
        program_registers=("eax", "ecx", "edx", "ebx", "esi", "edi"), classes=CLASSES,
        code_base=0x1000, code_size=0x4000, data_base=0x8000, data_size=0x1000,
    ),
}


def get_profile(name: str) -> Profile:
    """The profile called `name`, or a UserError naming the known ones."""
    try:
        return PROFILES[name]
    except KeyError:
        raise UserError(f"unknown CPU profile {name!r}; known: {', '.join(PROFILES)}") from None
