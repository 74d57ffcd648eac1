"""RV32 (E register file + M extension) instructions: one encoder, the assembler, the classifier.

An instruction is a tuple `(mnemonic, *operands)` with registers as numbers, in assembly order:

    ("add", rd, rs1, rs2)   ("addi", rd, rs1, imm)   ("lui", rd, imm20)
    ("lw", rd, offset, rs1)  ("sw", rs2, offset, rs1)  ("beq", rs1, rs2, offset)

Branch offsets are relative to the branch, in bytes (as capstone prints them). The random
program generator and `assemble` both make tuples; `encode` alone turns them into bytes.
"""

from __future__ import annotations

import re

from datagen.errors import UserError

Insn = tuple
MAX_INSN_BYTES = 4

# mnemonic -> (format, opcode, funct3, funct7)
_R, _I, _SH, _U, _L, _S, _B = "R", "I", "SH", "U", "L", "S", "B"
OPS: dict[str, tuple[str, int, int, int]] = {
    **{m: (_R, 0x33, f3, f7) for m, f3, f7 in [
        ("add", 0, 0), ("sub", 0, 0x20), ("sll", 1, 0), ("slt", 2, 0), ("sltu", 3, 0),
        ("xor", 4, 0), ("srl", 5, 0), ("sra", 5, 0x20), ("or", 6, 0), ("and", 7, 0),
        ("mul", 0, 1), ("mulh", 1, 1), ("mulhsu", 2, 1), ("mulhu", 3, 1),
        ("div", 4, 1), ("divu", 5, 1), ("rem", 6, 1), ("remu", 7, 1)]},
    **{m: (_I, 0x13, f3, 0) for m, f3 in [
        ("addi", 0), ("slti", 2), ("sltiu", 3), ("xori", 4), ("ori", 6), ("andi", 7)]},
    **{m: (_SH, 0x13, f3, f7) for m, f3, f7 in [("slli", 1, 0), ("srli", 5, 0), ("srai", 5, 0x20)]},
    "lui": (_U, 0x37, 0, 0), "auipc": (_U, 0x17, 0, 0),
    **{m: (_L, 0x03, f3, 0) for m, f3 in [("lb", 0), ("lh", 1), ("lw", 2), ("lbu", 4), ("lhu", 5)]},
    **{m: (_S, 0x23, f3, 0) for m, f3 in [("sb", 0), ("sh", 1), ("sw", 2)]},
    **{m: (_B, 0x63, f3, 0) for m, f3 in [
        ("beq", 0), ("bne", 1), ("blt", 4), ("bge", 5), ("bltu", 6), ("bgeu", 7)]},
}

CLASS_MNEMONICS: dict[str, tuple[str, ...]] = {
    "alu": ("add", "sub", "sll", "slt", "sltu", "xor", "srl", "sra", "or", "and"),
    "alu_imm": ("addi", "slti", "sltiu", "xori", "ori", "andi", "slli", "srli", "srai"),
    "upper": ("lui", "auipc"),
    "muldiv": ("mul", "mulh", "mulhsu", "mulhu", "div", "divu", "rem", "remu"),
    "load": ("lb", "lh", "lw", "lbu", "lhu"),
    "store": ("sb", "sh", "sw"),
    "branch": ("beq", "bne", "blt", "bge", "bltu", "bgeu"),
}
ACCESS_BYTES = {"lb": 1, "lbu": 1, "sb": 1, "lh": 2, "lhu": 2, "sh": 2, "lw": 4, "sw": 4}

# (lowest, highest, step) of each format's immediate
_IMM_RANGE = {_I: (-2048, 2047, 1), _SH: (0, 31, 1), _U: (-(1 << 19), (1 << 20) - 1, 1),
              _L: (-2048, 2047, 1), _S: (-2048, 2047, 1), _B: (-4096, 4094, 2)}


def _check_imm(mnemonic: str, fmt: str, imm: int) -> None:
    lo, hi, step = _IMM_RANGE[fmt]
    if not (lo <= imm <= hi and imm % step == 0):
        even = " and even" if step == 2 else ""
        raise UserError(f"{mnemonic}: immediate {imm} out of range ({lo}..{hi}{even})")


def branch_size(mnemonic: str, distance: int) -> int:
    """Bytes of a branch (always 4 on RISC-V)."""
    return 4


def set_target(insn: Insn, target: int, address: int) -> Insn:
    """A branch at `address` aimed at `target` (RISC-V branch operands are relative)."""
    return (*insn[:3], target - address)


def encode(insn: Insn, address: int = 0) -> bytes:
    """The 4 bytes of one instruction (`address` is unused: RISC-V branches are relative)."""
    m = insn[0]
    if m not in OPS:
        raise UserError(f"unsupported RISC-V instruction {m!r}")
    fmt, opcode, f3, f7 = OPS[m]
    if fmt == _R:
        _, rd, rs1, rs2 = insn
        word = f7 << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | rd << 7 | opcode
    elif fmt in (_I, _SH, _L):
        if fmt == _L:
            _, rd, imm, rs1 = insn
        else:
            _, rd, rs1, imm = insn
        _check_imm(m, fmt, imm)
        imm12 = f7 << 5 | imm if fmt == _SH else imm & 0xFFF
        word = imm12 << 20 | rs1 << 15 | f3 << 12 | rd << 7 | opcode
    elif fmt == _U:
        _, rd, imm = insn
        _check_imm(m, fmt, imm)
        word = (imm & 0xFFFFF) << 12 | rd << 7 | opcode
    elif fmt == _S:
        _, rs2, imm, rs1 = insn
        _check_imm(m, fmt, imm)
        imm &= 0xFFF
        word = (imm >> 5) << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | (imm & 0x1F) << 7 | opcode
    else:  # _B
        _, rs1, rs2, off = insn
        _check_imm(m, fmt, off)
        off &= 0x1FFF
        word = ((off >> 12) & 1) << 31 | ((off >> 5) & 0x3F) << 25 | rs2 << 20 | rs1 << 15 \
            | f3 << 12 | ((off >> 1) & 0xF) << 8 | ((off >> 11) & 1) << 7 | opcode
    return word.to_bytes(4, "little")


def format_insn(insn: Insn) -> str:
    """Assembly text of one instruction, e.g. `lw x1, 8(x3)`."""
    m, *ops = insn
    fmt = OPS[m][0]
    if fmt in (_L, _S):
        return f"{m} x{ops[0]}, {ops[1]}(x{ops[2]})"
    n_regs = {_R: 3, _I: 2, _SH: 2, _U: 1, _B: 2}[fmt]
    return f"{m} " + ", ".join([f"x{r}" for r in ops[:n_regs]] + [str(v) for v in ops[n_regs:]])


def classify(code: bytes) -> str:
    """The instruction class of the instruction at the start of `code`; "other" if none."""
    if len(code) < 4:
        return "other"
    word = int.from_bytes(code[:4], "little")
    opcode, f7 = word & 0x7F, word >> 25
    if opcode == 0x33:
        return "muldiv" if f7 == 1 else "alu"
    return {0x13: "alu_imm", 0x37: "upper", 0x17: "upper", 0x03: "load", 0x23: "store",
            0x63: "branch"}.get(opcode, "other")


# ---------------------------------------------------------------------------------------------
# Assembler: the mnemonics above, ABI register names, labels, and the aliases capstone prints.

ABI_NAMES = {"zero": 0, "ra": 1, "sp": 2, "gp": 3, "tp": 4, "t0": 5, "t1": 6, "t2": 7,
             "s0": 8, "fp": 8, "s1": 9, **{f"a{i}": 10 + i for i in range(6)}}

# alias -> (operand kinds, expansion from the parsed operands to a base instruction)
_ALIASES = {
    "nop": ("", lambda: ("addi", 0, 0, 0)),
    "li": ("ri", lambda d, i: ("addi", d, 0, i)),
    "mv": ("rr", lambda d, s: ("addi", d, s, 0)),
    "not": ("rr", lambda d, s: ("xori", d, s, -1)),
    "neg": ("rr", lambda d, s: ("sub", d, 0, s)),
    "seqz": ("rr", lambda d, s: ("sltiu", d, s, 1)),
    "snez": ("rr", lambda d, s: ("sltu", d, 0, s)),
    "sltz": ("rr", lambda d, s: ("slt", d, s, 0)),
    "sgtz": ("rr", lambda d, s: ("slt", d, 0, s)),
    "beqz": ("rb", lambda s, o: ("beq", s, 0, o)),
    "bnez": ("rb", lambda s, o: ("bne", s, 0, o)),
    "blez": ("rb", lambda s, o: ("bge", 0, s, o)),
    "bgez": ("rb", lambda s, o: ("bge", s, 0, o)),
    "bltz": ("rb", lambda s, o: ("blt", s, 0, o)),
    "bgtz": ("rb", lambda s, o: ("blt", 0, s, o)),
    "bgt": ("rrb", lambda a, b, o: ("blt", b, a, o)),
    "ble": ("rrb", lambda a, b, o: ("bge", b, a, o)),
    "bgtu": ("rrb", lambda a, b, o: ("bltu", b, a, o)),
    "bleu": ("rrb", lambda a, b, o: ("bgeu", b, a, o)),
}
_KINDS = {_R: "rrr", _I: "rri", _SH: "rri", _U: "ri", _L: "rm", _S: "rm", _B: "rrb"}
_MEM = re.compile(r"^(.*)\((\s*\w+\s*)\)$")


def _register(text: str, allowed: int) -> int:
    t = text.strip().lower()
    if t in ABI_NAMES:
        r = ABI_NAMES[t]
    elif re.fullmatch(r"x\d+", t):
        r = int(t[1:])
    else:
        raise UserError(f"{text.strip()!r} is not a register")
    if r >= allowed:
        raise UserError(f"register {text.strip()} is outside this profile (x0..x{allowed - 1})")
    return r


def _immediate(text: str) -> int:
    try:
        return int(text.strip(), 0)
    except ValueError:
        raise UserError(f"{text.strip()!r} is not a number") from None


def _parse(mnemonic: str, kinds: str, ops: list[str], allowed: int, labels: dict[str, int],
           address: int) -> list[int]:
    if len(ops) != len(kinds):
        raise UserError(f"{mnemonic} takes {len(kinds)} operand(s), got {len(ops)}")
    out: list[int] = []
    for kind, op in zip(kinds, ops):
        if kind == "r":
            out.append(_register(op, allowed))
        elif kind == "i":
            out.append(_immediate(op))
        elif kind == "b":
            op = op.strip()
            if op in labels:
                out.append(labels[op] - address)
            elif re.fullmatch(r"[A-Za-z_.][\w.]*", op):
                raise UserError(f"unknown label {op!r}")
            else:
                out.append(_immediate(op))
        else:  # "m": offset(base) -> offset, base
            match = _MEM.match(op.strip())
            if not match:
                raise UserError(f"{mnemonic}: expected offset(register), got {op.strip()!r}")
            out += [_immediate(match.group(1) or "0"), _register(match.group(2), allowed)]
    return out


def assemble(text: str, n_registers: int = 16) -> bytes:
    """Machine code for assembly `text` (one instruction per line; `#` comments; `name:` labels;
    branch targets are labels or byte offsets). Registers beyond x{n_registers-1} are refused."""
    lines: list[tuple[int, str, list[str]]] = []
    labels: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = re.split(r"#|//|;", raw, maxsplit=1)[0].strip()
        while (match := re.match(r"^([A-Za-z_.][\w.]*)\s*:(.*)$", line)):
            labels[match.group(1)] = 4 * len(lines)
            line = match.group(2).strip()
        if line:
            mnemonic, _, rest = line.partition(" ")
            ops = [o for o in rest.split(",")] if rest.strip() else []
            lines.append((number, mnemonic.lower(), ops))
    code = bytearray()
    for number, mnemonic, ops in lines:
        address = len(code)
        try:
            if mnemonic in _ALIASES:
                kinds, expand = _ALIASES[mnemonic]
                insn = expand(*_parse(mnemonic, kinds, ops, n_registers, labels, address))
            elif mnemonic in OPS:
                kinds = _KINDS[OPS[mnemonic][0]]
                insn = (mnemonic, *_parse(mnemonic, kinds, ops, n_registers, labels, address))
            else:
                raise UserError(f"unsupported RISC-V instruction {mnemonic!r}")
            code += encode(insn)
        except UserError as e:
            raise UserError(f"line {number}: {e}") from None
    if not code:
        raise UserError("the assembly text holds no instruction")
    return bytes(code)
