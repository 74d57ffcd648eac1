"""The x86-32 subset the generator draws: one hand-written encoder, an assembler, the classifier.

An instruction is a tuple `(mnemonic, *operands)` in Intel order; an operand is a register name
(`"eax"`, `"bx"`, `"cl"`), an int (an immediate; for a branch, the absolute target address) or
`Mem(size, address)` (an absolute `size ptr [address]`, the only addressing mode used):

    ("add", "eax", "ebx")   ("add", "eax", 5)   ("mov", "eax", 0x12345678)   ("mul", "ecx")
    ("movzx", "eax", Mem("byte", 0x8000))   ("mov", Mem("word", 0x8002), "cx")   ("je", 0x1010)

Branches use the short form (rel8) where the target is within reach, the near form otherwise.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from bytesim_common.errors import UserError

Insn = tuple
MAX_INSN_BYTES = 7  # the longest instruction `encode` makes (e.g. `mov word ptr [a], r16`)


class Mem(NamedTuple):
    size: str  # "byte" | "word" | "dword"
    address: int


REG32 = {r: i for i, r in enumerate(("eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"))}
REG16 = {r: i for i, r in enumerate(("ax", "cx", "dx", "bx", "sp", "bp", "si", "di"))}
REG8 = {r: i for i, r in enumerate(("al", "cl", "dl", "bl", "ah", "ch", "dh", "bh"))}
ALU = {"add": 0, "or": 1, "adc": 2, "sbb": 3, "and": 4, "sub": 5, "xor": 6, "cmp": 7}
SHIFTS = {"rol": 0, "ror": 1, "shl": 4, "shr": 5, "sar": 7}
UNARY = {"not": 2, "neg": 3, "mul": 4, "imul": 5, "div": 6}  # F7 /n
JCC = ("jo", "jno", "jb", "jae", "je", "jne", "jbe", "ja",
       "js", "jns", "jp", "jnp", "jl", "jge", "jle", "jg")
BRANCHES = JCC + ("jmp",)
EXTEND = {("movzx", "byte"): 0xB6, ("movzx", "word"): 0xB7,
          ("movsx", "byte"): 0xBE, ("movsx", "word"): 0xBF}
SIZE_BYTES = {"byte": 1, "word": 2, "dword": 4}
SIZE_REGS = {"byte": REG8, "word": REG16, "dword": REG32}


def _modrm(mod: int, reg: int, rm: int) -> bytes:
    return bytes([mod << 6 | reg << 3 | rm])


def _mem(reg: int, m: Mem) -> bytes:
    return _modrm(0, reg, 5) + (m.address & 0xFFFFFFFF).to_bytes(4, "little")


def _imm32(v: int) -> bytes:
    if not -(1 << 31) <= v < (1 << 32):
        raise UserError(f"immediate {v} does not fit in 32 bits")
    return (v & 0xFFFFFFFF).to_bytes(4, "little")


def _r32(name: object, m: str) -> int:
    if name not in REG32:
        raise UserError(f"{m}: {name!r} is not a 32-bit register")
    return REG32[name]  # type: ignore[index]


def branch_size(mnemonic: str, distance: int) -> int:
    """Bytes of a forward branch whose target lies `distance` bytes after its end."""
    if distance <= 127:
        return 2
    return 5 if mnemonic == "jmp" else 6


def set_target(insn: Insn, target: int, address: int) -> Insn:
    """A branch aimed at the absolute address `target` (x86 branch operands are absolute)."""
    return (insn[0], target)


def encode(insn: Insn, address: int = 0) -> bytes:
    """The bytes of one instruction placed at `address`."""
    m, *ops = insn
    sig = tuple("r" if isinstance(o, str) else "m" if isinstance(o, Mem) else "i" for o in ops)
    if m in BRANCHES and sig == ("i",):
        rel = ops[0] - (address + 2)
        if -128 <= rel <= 127:
            return bytes([0xEB if m == "jmp" else 0x70 + JCC.index(m), rel & 0xFF])
        if m == "jmp":
            return b"\xE9" + _imm32(ops[0] - (address + 5))
        return bytes([0x0F, 0x80 + JCC.index(m)]) + _imm32(ops[0] - (address + 6))
    if m in ALU or m in ("test", "mov"):
        if sig == ("r", "r"):
            opcode = {"test": 0x85, "mov": 0x89}.get(m, ALU.get(m, 0) << 3 | 1)
            return bytes([opcode]) + _modrm(3, _r32(ops[1], m), _r32(ops[0], m))
        if sig == ("r", "i") and m == "mov":
            return bytes([0xB8 + _r32(ops[0], m)]) + _imm32(ops[1])
        if sig == ("r", "i") and m == "test":
            return b"\xF7" + _modrm(3, 0, _r32(ops[0], m)) + _imm32(ops[1])
        if sig == ("r", "i"):
            signed = ops[1] - (1 << 32) if ops[1] >= 1 << 31 else ops[1]  # 0xffffff87 == -121
            if -128 <= signed <= 127:
                return b"\x83" + _modrm(3, ALU[m], _r32(ops[0], m)) + bytes([signed & 0xFF])
            return b"\x81" + _modrm(3, ALU[m], _r32(ops[0], m)) + _imm32(ops[1])
        if m == "mov" and sig == ("r", "m") and ops[1].size == "dword":
            return b"\x8B" + _mem(_r32(ops[0], m), ops[1])
        if m == "mov" and sig == ("m", "r"):
            regs = SIZE_REGS[ops[0].size]
            if ops[1] not in regs:
                raise UserError(f"mov: {ops[1]!r} is not a {ops[0].size} register")
            prefix = {"byte": b"\x88", "word": b"\x66\x89", "dword": b"\x89"}[ops[0].size]
            return prefix + _mem(regs[ops[1]], ops[0])
    if m in ("movzx", "movsx") and sig == ("r", "m") and (m, ops[1].size) in EXTEND:
        return bytes([0x0F, EXTEND[m, ops[1].size]]) + _mem(_r32(ops[0], m), ops[1])
    if m in SHIFTS and sig == ("r", "i"):
        if not 0 <= ops[1] <= 31:
            raise UserError(f"{m}: shift count {ops[1]} out of range (0..31)")
        return b"\xC1" + _modrm(3, SHIFTS[m], _r32(ops[0], m)) + bytes([ops[1]])
    if m in SHIFTS and sig == ("r", "r") and ops[1] == "cl":
        return b"\xD3" + _modrm(3, SHIFTS[m], _r32(ops[0], m))
    if m in UNARY and sig == ("r",):
        return b"\xF7" + _modrm(3, UNARY[m], _r32(ops[0], m))
    if m == "imul" and sig == ("r", "r"):
        return b"\x0F\xAF" + _modrm(3, _r32(ops[0], m), _r32(ops[1], m))
    if m in ("inc", "dec") and sig == ("r",):
        return bytes([(0x40 if m == "inc" else 0x48) + _r32(ops[0], m)])
    raise UserError(f"unsupported x86 instruction {format_insn(insn)!r}")


def _operand_text(o: object) -> str:
    if isinstance(o, Mem):
        return f"{o.size} ptr [{o.address:#x}]"
    if isinstance(o, int):
        return f"{o:#x}" if not -10 < o < 10 else str(o)
    return str(o)


def format_insn(insn: Insn) -> str:
    """Intel-syntax text of one instruction, as capstone writes it."""
    m, *ops = insn
    return f"{m} " + ", ".join(_operand_text(o) for o in ops) if ops else m


def classify(code: bytes) -> str:
    """The instruction class of the instruction at the start of `code`; "other" if none."""
    if code[:1] == b"\x66":
        code = code[1:]
    if not code:
        return "other"
    op, modrm = code[0], code[1] if len(code) > 1 else 0
    mod, sub = modrm >> 6, (modrm >> 3) & 7
    if op in (0x88, 0x89) and mod == 0:
        return "store"
    if op == 0x8B and mod == 0:
        return "load"
    if op in {n << 3 | 1 for n in range(8)} | {0x85, 0x89, 0xD3} or 0x40 <= op <= 0x4F:
        return "alu"
    if op in (0x81, 0x83, 0xC1):
        return "alu_imm"
    if 0xB8 <= op <= 0xBF:
        return "upper"
    if op == 0xF7:
        return {0: "alu_imm", 2: "alu", 3: "alu"}.get(sub, "muldiv")
    if 0x70 <= op <= 0x7F or op in (0xEB, 0xE9):
        return "branch"
    if op == 0x0F:
        return {0xAF: "muldiv", 0xB6: "load", 0xB7: "load", 0xBE: "load", 0xBF: "load"}.get(
            modrm, "branch" if 0x80 <= modrm <= 0x8F else "other")
    return "other"


# ---------------------------------------------------------------------------------------------
# Assembler for the subset above (Intel syntax as capstone prints it; labels allowed).

_MEM_TEXT = re.compile(r"^(byte|word|dword)\s+ptr\s*\[\s*([^\]]+?)\s*\]$")


def _parse_operand(text: str, labels: dict[str, int]) -> object:
    t = text.strip().lower()
    if (match := _MEM_TEXT.match(t)):
        return Mem(match.group(1), _number(match.group(2)))
    if t in REG32 or t in REG16 or t in REG8:
        return t
    if t in labels:
        return labels[t]
    return _number(t)


def _number(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise UserError(f"{text!r} is neither a register, a number nor a known label") from None


def assemble(text: str, base: int) -> bytes:
    """Machine code for Intel-syntax `text` loaded at `base` (`#`/`;` comments, `name:` labels;
    branch targets are labels or absolute addresses)."""
    lines: list[tuple[int, str, list[str], list[str]]] = []  # number, mnemonic, operands, labels
    pending: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = re.split(r"#|;|//", raw, maxsplit=1)[0].strip()
        while (match := re.match(r"^([A-Za-z_.][\w.]*)\s*:(.*)$", line)):
            pending.append(match.group(1).lower())
            line = match.group(2).strip()
        if line:
            mnemonic, _, rest = line.partition(" ")
            ops = rest.split(",") if rest.strip() else []
            lines.append((number, mnemonic.lower(), ops, pending))
            pending = []
    if not lines:
        raise UserError("the assembly text holds no instruction")
    # Place labels: start with every branch short, grow the ones out of reach until stable.
    sizes = [2 if m in BRANCHES else 0 for _, m, _, _ in lines]
    for _ in range(len(lines) + 1):
        addresses = [base + sum(sizes[:i]) for i in range(len(lines) + 1)]
        labels = {name: addresses[i] for i, (_, _, _, names) in enumerate(lines) for name in names}
        labels.update({name: addresses[-1] for name in pending})
        code, new_sizes = bytearray(), []
        for number, m, ops, _ in lines:
            try:
                insn = (m, *(_parse_operand(o, labels) for o in ops))
                data = encode(insn, base + len(code))
            except UserError as e:
                raise UserError(f"line {number}: {e}") from None
            new_sizes.append(len(data))
            code += data
        if new_sizes == sizes:
            return bytes(code)
        sizes = new_sizes
    raise UserError("branch sizes do not settle; simplify the program")
