"""Seeded random programs and initial states, valid by construction.

A program is a list of groups of instructions; each group is one instruction except where an
instruction needs a set-up to be valid:

- RISC-V loads and stores come as `lui rb, data_base >> 12` + the access `offset(rb)`, so the
  base register always holds the data page's address (no register is reserved; any register may
  be the base, and the program may overwrite it afterwards);
- x86 `div r` comes as `or r, 1` + `xor edx, edx` + `div r`: a nonzero divisor and a quotient
  that fits, so it cannot fault. (RISC-V division by zero does not trap and is drawn as is.)

Branches go forward only, to the start of a later group or to the end of the program, so every
program ends and a trace has at most as many steps as the program has instructions.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, fields

from bytesim_common.errors import UserError
from datagen.cpu import rv32, x86
from datagen.cpu.isa import isa_module
from datagen.cpu.profiles import CLASSES, Profile
from datagen.weights import parse_weights

Insn = tuple
DEFAULT_MIX = {"alu": 3, "alu_imm": 3, "upper": 1, "muldiv": 2, "load": 2, "store": 2, "branch": 2}
EDGE_WORDS = (0, 1, 2, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x7FFFFFFE, 0x80000001, 0xFFFFFFFE,
              0x7FFF, 0x8000, 0xFFFF, 0xFFFF8000, 0x7F, 0x80, 0xFF, 0xFFFFFF80)
X86_ARITH_FLAGS = (0x1, 0x4, 0x10, 0x40, 0x80, 0x800)  # CF PF AF ZF SF OF
RV32_MNEMONICS = frozenset(m for ms in rv32.CLASS_MNEMONICS.values() for m in ms)
NEAR_WINDOW = 32  # most memory accesses fall in the page's first bytes, so loads see stores


IMMEDIATES = ("mixed", "zero", "small", "full")  # `--imm`: RISC-V 12-bit immediates, shift amounts
VALUES = ("mixed", "uniform", "uniform-shifts", "uniform-arith",  # `--values`: state_0's
          "half-uniform-shifts")                                 # registers
# The `--values` modes that draw a program's registers by its mnemonics: mode -> (the
# mnemonics, the `random_initial_state` values of a program that holds one; "mixed" for the
# others). The shifts route bits by a distance; `addi`, `add` and `sub` carry too.
SHIFTS = frozenset({"slli", "srli", "srai", "sll", "srl", "sra"})
VALUES_WHERE = {"uniform-shifts": (SHIFTS, "uniform"),
                "uniform-arith": (SHIFTS | {"addi", "add", "sub"}, "uniform"),
                "half-uniform-shifts": (SHIFTS, "half-uniform")}


@dataclass(frozen=True)
class Operands:
    """How a program's operands and state_0's registers are drawn, beyond the class mix
    (`datagen cpu --mnemonics --imm --values`); the defaults are the corpora's since the start.

    mnemonics: RISC-V only: draw only these mnemonics (classes left without one get weight 0);
    () = every mnemonic of each class.
    weights: RISC-V only: (mnemonic, weight) pairs, each drawn with that weight within its
    class, every other mnemonic with weight 1; () = uniform within each class.
    imm: RISC-V immediates of `alu_imm` ops: "mixed" (uniform, small or an edge value, a third
    each), "zero", "small" (-16..16; shift amounts 0..16) or "full" (uniform over the field).
    values: state_0's registers: "mixed" (`random_word`), "uniform" (32 uniform bits), or
    "uniform-shifts" (uniform in programs that hold a RISC-V shift, mixed in the others), or
    "uniform-arith" (the same for a shift, `addi`, `add` or `sub`), or "half-uniform-shifts"
    (in programs that hold a shift, each register uniform or mixed, half the time each).
    """

    mnemonics: tuple[str, ...] = ()
    imm: str = "mixed"
    values: str = "mixed"
    weights: tuple[tuple[str, float], ...] = ()

    def changed(self) -> dict:
        """The fields that differ from the defaults, JSON-able (a corpus's args record only
        these, so corpora made before the options existed keep their manifests)."""
        out: dict = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value != f.default:
                out[f.name] = (dict(value) if f.name == "weights" else
                               list(value) if isinstance(value, tuple) else value)
        return out

    @classmethod
    def from_changed(cls, changed: dict) -> Operands:
        """The inverse of `changed` (JSON lists back to tuples, the weights' dict to pairs)."""
        return cls(**{k: tuple(v.items()) if isinstance(v, dict) else
                      tuple(v) if isinstance(v, list) else v for k, v in changed.items()})


DEFAULT_OPERANDS = Operands()


def parse_mnemonics(text: str | None, profile: Profile, mix: dict[str, float]) -> tuple[str, ...]:
    """`addi,xori` -> ("addi", "xori"), checked against the profile and the class mix."""
    if text is None:
        return ()
    if profile.isa != "rv32":
        raise UserError(f"--mnemonics is for the RISC-V profiles, not {profile.name}")
    names = tuple(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))
    unknown = [m for m in names if m not in RV32_MNEMONICS]
    if unknown or not names:
        raise UserError(f"--mnemonics: unknown mnemonic(s) {', '.join(unknown) or repr(text)}; "
                        f"known: {', '.join(sorted(RV32_MNEMONICS))}")
    if not any(mix[c] > 0 and set(rv32.CLASS_MNEMONICS[c]) & set(names)
               for c in CLASSES if c not in ("load", "store")):
        raise UserError(f"--mnemonics {text}: none of them is in a class that --mix draws "
                        "(other than load and store)")
    return names


def parse_mnemonic_weights(text: str | None, profile: Profile, mix: dict[str, float],
                           mnemonics: tuple[str, ...] = ()) -> tuple[tuple[str, float], ...]:
    """`mul=4,sub=2` -> (("mul", 4.0), ("sub", 2.0)): weights within each mnemonic's class,
    checked against the profile, the class mix and the mnemonics `--mnemonics` allows."""
    if text is None:
        return ()
    if profile.isa != "rv32":
        raise UserError(f"--mnemonic-weights is for the RISC-V profiles, not {profile.name}")
    weights = parse_weights(text, "--mnemonic-weights", RV32_MNEMONICS, "mnemonic")
    for cls, ms in rv32.CLASS_MNEMONICS.items():
        drawn = [m for m in ms if not mnemonics or m in mnemonics]
        if mix[cls] > 0 and drawn and all(weights.get(m, 1.0) == 0 for m in drawn):
            raise UserError(f"--mnemonic-weights: every mnemonic drawn from class {cls} has "
                            "weight 0; leave the class out of --mix instead")
    return tuple(weights.items())


def parse_mix(text: str | None) -> dict[str, float]:
    """`alu=4,load=1,...` -> class weights (classes left out get weight 0); None -> the default."""
    if text is None:
        return {c: float(DEFAULT_MIX[c]) for c in CLASSES}
    mix = parse_weights(text, "--mix", CLASSES, "instruction class")
    if not any(w > 0 for c, w in mix.items() if c not in ("load", "store")):
        raise UserError("--mix needs a positive weight on a class other than load and store")
    return {c: mix.get(c, 0.0) for c in CLASSES}


def random_word(rng: random.Random) -> int:
    """A 32-bit value: uniform, small (-16..16), or one of the sign edges, each a third."""
    kind = rng.randrange(3)
    if kind == 0:
        return rng.getrandbits(32)
    if kind == 1:
        return rng.randint(-16, 16) & 0xFFFFFFFF
    return rng.choice(EDGE_WORDS)


def state_values(values: str, program: list[Insn]) -> str:
    """The `random_initial_state` values of `program` under `--values`: a mode of VALUES_WHERE
    gives its values where the program holds one of its mnemonics and "mixed" elsewhere."""
    if values not in VALUES_WHERE:
        return values
    mnemonics, where = VALUES_WHERE[values]
    return where if any(insn[0] in mnemonics for insn in program) else "mixed"


def random_initial_state(profile: Profile, rng: random.Random, values: str = "mixed") -> bytes:
    """state_0: pc = code_base; registers from `random_word`, or 32 uniform bits with values
    "uniform", or either, half the time each, with "half-uniform" (x86 eflags: random
    arithmetic flags, plus the always-set bit 1); `state_values` turns the per-mnemonic modes
    into one of the three for a program."""
    words = []
    for name in profile.registers:
        if name == profile.pc_register:
            words.append(profile.code_base)
        elif name == "eflags":
            words.append(0x2 | sum(f for f in X86_ARITH_FLAGS if rng.random() < 0.5))
        else:
            uniform = values == "uniform" or (values == "half-uniform" and rng.random() < 0.5)
            words.append(rng.getrandbits(32) if uniform else random_word(rng))
    state = b"".join(v.to_bytes(w, "little") for v, w in zip(words, profile.register_bytes))
    return state.ljust(profile.state_size, b"\0")


def _offset(rng: random.Random, width: int, limit: int) -> int:
    """A data-page offset, aligned to the access width, usually within the first bytes."""
    top = NEAR_WINDOW if rng.random() < 0.8 else limit
    return rng.randrange(0, top - width + 1, width)


# ---------------------------------------------------------------------------------------------
# Groups per class. A group generator returns a list of instructions; branches carry the
# placeholder target None, resolved once the whole program is laid out.


def _rv32_imm(rng: random.Random, imm: str, shift: bool) -> int:
    """An alu_imm immediate (a shift amount where `shift`), drawn as `Operands.imm` says."""
    if imm == "zero":
        return 0
    if imm == "small":
        return rng.randint(0, 16) if shift else rng.randint(-16, 16)
    if shift:
        return rng.randrange(32)
    if imm == "full":
        return rng.randint(-2048, 2047)
    kind = rng.randrange(3)
    if kind == 0:
        return rng.randint(-2048, 2047)
    if kind == 1:
        return rng.randint(-16, 16)
    return rng.choice((-2048, 2047, -1, 0, 1))


def _rv32_mnemonics(cls: str, operands: Operands) -> tuple[str, ...]:
    """The mnemonics of class `cls` that programs may draw."""
    ms = rv32.CLASS_MNEMONICS[cls]
    return tuple(m for m in ms if m in operands.mnemonics) if operands.mnemonics else ms


def _rv32_mnemonic(cls: str, rng: random.Random, operands: Operands) -> str:
    """One mnemonic of class `cls`: uniform, or as `Operands.weights` weigh them."""
    ms = _rv32_mnemonics(cls, operands)
    if not operands.weights:
        return rng.choice(ms)  # the draw every corpus made before the weights used
    weights = dict(operands.weights)
    return rng.choices(ms, [weights.get(m, 1.0) for m in ms])[0]


def _rv32_group(profile: Profile, cls: str, rng: random.Random, room: int,
                operands: Operands) -> list[Insn]:
    n = len(profile.program_registers)
    rd, rs1, rs2 = rng.randrange(1, n), rng.randrange(n), rng.randrange(n)
    m = _rv32_mnemonic(cls, rng, operands)
    if cls in ("alu", "muldiv"):
        return [(m, rd, rs1, rs2)]
    if cls == "alu_imm":
        return [(m, rd, rs1, _rv32_imm(rng, operands.imm, m in ("slli", "srli", "srai")))]
    if cls == "upper":
        return [(m, rd, rng.getrandbits(20) if rng.random() < 0.5 else rng.randrange(16))]
    if cls in ("load", "store"):
        base = rng.randrange(1, n)
        offset = _offset(rng, rv32.ACCESS_BYTES[m], min(2048, profile.data_size))
        value = rd if cls == "load" else rs2
        return [("lui", base, profile.data_base >> 12), (m, value, offset, base)]
    return [(m, rs1, rs2, None)]  # branch


def _x86_group(profile: Profile, cls: str, rng: random.Random, room: int,
               operands: Operands) -> list[Insn]:
    regs = profile.program_registers
    dst, src = rng.choice(regs), rng.choice(regs)
    if cls == "alu":
        kind = rng.randrange(4)
        if kind < 2:
            return [(rng.choice((*x86.ALU, "test", "mov")), dst, src)]
        if kind == 2:
            return [(rng.choice(("not", "neg", "inc", "dec")), dst)]
        return [(rng.choice(tuple(x86.SHIFTS)), dst, "cl")]
    if cls == "alu_imm":
        kind = rng.randrange(3)
        if kind == 0:
            return [(rng.choice(tuple(x86.SHIFTS)), dst, rng.randrange(32))]
        imm = rng.randint(-128, 127) if kind == 1 else random_word(rng)
        return [(rng.choice((*x86.ALU, "test")), dst, imm)]
    if cls == "upper":
        return [("mov", dst, random_word(rng))]
    if cls == "muldiv":
        kind = rng.randrange(4 if room >= 3 else 3)
        if kind == 0:
            return [("mul", src)]
        if kind == 1:
            return [("imul", src)]
        if kind == 2:
            return [("imul", dst, src)]
        divisor = rng.choice([r for r in regs if r not in ("eax", "edx")])
        return [("or", divisor, 1), ("xor", "edx", "edx"), ("div", divisor)]
    if cls in ("load", "store"):
        size = rng.choice(("byte", "word", "dword"))
        address = profile.data_base + _offset(rng, x86.SIZE_BYTES[size], profile.data_size)
        if cls == "load":
            m = "mov" if size == "dword" else rng.choice(("movzx", "movsx"))
            return [(m, dst, x86.Mem(size, address))]
        if size == "byte":
            reg = rng.choice(tuple(x86.REG8))
        else:
            reg = src if size == "dword" else dict(zip(x86.REG32, x86.REG16))[src]
        return [("mov", x86.Mem(size, address), reg)]
    return [(rng.choice(x86.BRANCHES), None)]  # branch


_GROUPS = {"rv32": _rv32_group, "x86": _x86_group}


def group_length(profile: Profile, cls: str) -> int:
    """Instructions in the shortest group of class `cls` (an rv32 load or store needs its lui)."""
    return 2 if profile.isa == "rv32" and cls in ("load", "store") else 1


def random_program(profile: Profile, rng: random.Random, min_len: int = 1, max_len: int = 16,
                   mix: dict[str, float] | None = None,
                   operands: Operands = DEFAULT_OPERANDS) -> list[Insn]:
    """A random program of min_len..max_len instructions, branches resolved, ready to encode."""
    mix = DEFAULT_MIX if mix is None else mix
    if operands.mnemonics:  # classes without an allowed mnemonic are not drawn
        mix = {c: w if _rv32_mnemonics(c, operands) else 0.0 for c, w in mix.items()}
    length = rng.randint(min_len, max_len)
    insns: list[Insn] = []
    starts: list[int] = []  # index of each group's first instruction
    while len(insns) < length:
        room = length - len(insns)
        fits = [c for c in CLASSES if mix.get(c, 0) > 0 and group_length(profile, c) <= room]
        cls = rng.choices(fits, weights=[mix[c] for c in fits])[0]
        starts.append(len(insns))
        insns += _GROUPS[profile.isa](profile, cls, rng, room, operands)
    targets = {i: rng.choice([s for s in starts if s > i] + [len(insns)])
               for i, insn in enumerate(insns) if insn[-1] is None}
    return _lay_out(profile, insns, targets)


def _lay_out(profile: Profile, insns: list[Insn], targets: dict[int, int]) -> list[Insn]:
    """Fix branch sizes (from the last branch back: each covers only later instructions)
    and aim every branch at its target instruction's address."""
    isa = isa_module(profile)
    sizes = [0 if i in targets else len(isa.encode(insn)) for i, insn in enumerate(insns)]
    for i in sorted(targets, reverse=True):
        sizes[i] = isa.branch_size(insns[i][0], sum(sizes[i + 1:targets[i]]))
    addresses = [profile.code_base]
    for size in sizes:
        addresses.append(addresses[-1] + size)
    return [isa.set_target(insn, addresses[targets[i]], addresses[i]) if i in targets else insn
            for i, insn in enumerate(insns)]


def encode_program(profile: Profile, insns: list[Insn]) -> bytes:
    """The machine code of a laid-out program, loaded at `profile.code_base`."""
    isa = isa_module(profile)
    code = bytearray()
    for insn in insns:
        code += isa.encode(insn, profile.code_base + len(code))
    return bytes(code)
