"""RV32 (E register file + M extension) instructions: one encoder, the assembler, the classifier.

An instruction is a tuple `(mnemonic, *operands)` with registers as numbers, in assembly order:

    ("add", rd, rs1, rs2)   ("addi", rd, rs1, imm)   ("lui", rd, imm20)
    ("lw", rd, offset, rs1)  ("sw", rs2, offset, rs1)  ("beq", rs1, rs2, offset)
    ("jal", rd, offset)      ("jalr", rd, offset, rs1)

Branch and jal offsets are relative to the instruction, in bytes (as capstone prints them). The
random program generator and `assemble` both make tuples; `encode` alone turns them into bytes.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

from bytesim_common.errors import UserError

Insn = tuple
MAX_INSN_BYTES = 4

# mnemonic -> (format, opcode, funct3, funct7); JR is jalr: I-type, written like a load
_R, _I, _SH, _U, _L, _S, _B, _J, _JR = "R", "I", "SH", "U", "L", "S", "B", "J", "JR"
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
    "jal": (_J, 0x6F, 0, 0), "jalr": (_JR, 0x67, 0, 0),
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
              _L: (-2048, 2047, 1), _S: (-2048, 2047, 1), _B: (-4096, 4094, 2),
              _J: (-(1 << 20), (1 << 20) - 2, 2), _JR: (-2048, 2047, 1)}


def _check_imm(mnemonic: str, fmt: str, imm: int) -> None:
    lo, hi, step = _IMM_RANGE[fmt]
    if not (lo <= imm <= hi and imm % step == 0):
        even = " and even" if step == 2 else ""
        what = "offset" if fmt in (_B, _J) else "immediate"
        reach = ", ±1 MiB" if fmt == _J else ""
        raise UserError(f"{mnemonic}: {what} {imm} out of range ({lo}..{hi}{even}){reach}")


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
    elif fmt in (_I, _SH, _L, _JR):
        if fmt in (_L, _JR):
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
    elif fmt == _J:
        _, rd, off = insn
        _check_imm(m, fmt, off)
        off &= 0x1FFFFF
        word = ((off >> 20) & 1) << 31 | ((off >> 1) & 0x3FF) << 21 | ((off >> 11) & 1) << 20 \
            | ((off >> 12) & 0xFF) << 12 | rd << 7 | opcode
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
    if fmt in (_L, _S, _JR):
        return f"{m} x{ops[0]}, {ops[1]}(x{ops[2]})"
    n_regs = {_R: 3, _I: 2, _SH: 2, _U: 1, _B: 2, _J: 1}[fmt]
    return f"{m} " + ", ".join([f"x{r}" for r in ops[:n_regs]] + [str(v) for v in ops[n_regs:]])


def classify(code: bytes) -> str:
    """The instruction class of the instruction at the start of `code`: a generator class, "jump"
    (jal, jalr: real programs' calls and returns, never generated), or "other"."""
    if len(code) < 4:
        return "other"
    word = int.from_bytes(code[:4], "little")
    opcode, f7 = word & 0x7F, word >> 25
    if opcode == 0x33:
        return "muldiv" if f7 == 1 else "alu"
    return {0x13: "alu_imm", 0x37: "upper", 0x17: "upper", 0x03: "load", 0x23: "store",
            0x63: "branch", 0x6F: "jump", 0x67: "jump"}.get(opcode, "other")


# ---------------------------------------------------------------------------------------------
# Assembler: GNU as syntax as compilers write it (`gcc -S` for rv32e/rv32im):
# the instructions above, ABI register names, gas's RV32IM pseudo-instructions, labels (named,
# numeric `1:` with `1b`/`1f`, `.`), and the directives that place code. There is no linker:
# anything that needs a relocation (`%hi`, `la`, calls out of the file) is refused by name.

# all 32 of RV32I (a6.. are outside the E register file: named so that refusals name them)
ABI_NAMES = {"zero": 0, "ra": 1, "sp": 2, "gp": 3, "tp": 4, "t0": 5, "t1": 6, "t2": 7,
             "s0": 8, "fp": 8, "s1": 9, **{f"a{i}": 10 + i for i in range(8)},
             **{f"s{i}": 16 + i for i in range(2, 12)}, **{f"t{i}": 25 + i for i in range(3, 7)}}

Expansion = Callable[..., list[Insn]]


def _li(rd: int, value: int) -> list[Insn]:
    """gas's `li` on RV32: addi alone if the value fits 12 bits, else lui (+0x800 rounding, so
    that the sign-extended low part adds back) and an addi unless the low 12 bits are zero."""
    if not -(1 << 31) <= value < (1 << 32):
        raise UserError(f"li: {value} does not fit in 32 bits")
    value = (value + (1 << 31)) % (1 << 32) - (1 << 31)  # as a signed 32-bit number
    low = (value & 0xFFF) - ((value & 0x800) << 1)  # the low 12 bits, sign-extended
    high = ((value + 0x800) >> 12) & 0xFFFFF
    if high == 0:
        return [("addi", rd, 0, low)]
    return [("lui", rd, high)] + ([("addi", rd, rd, low)] if low else [])


# Operand kinds: r register, i immediate, b target (label, `.`, either +/- n, or a byte offset
# from the instruction), m offset(register). mnemonic -> its forms (kinds, expansion); forms
# with the same operand count differ in which operands are offset(register).
_PSEUDO: dict[str, list[tuple[str, Expansion]]] = {
    "nop": [("", lambda: [("addi", 0, 0, 0)])],
    "li": [("ri", _li)],
    "mv": [("rr", lambda d, s: [("addi", d, s, 0)])],
    "not": [("rr", lambda d, s: [("xori", d, s, -1)])],
    "neg": [("rr", lambda d, s: [("sub", d, 0, s)])],
    "seqz": [("rr", lambda d, s: [("sltiu", d, s, 1)])],
    "snez": [("rr", lambda d, s: [("sltu", d, 0, s)])],
    "sltz": [("rr", lambda d, s: [("slt", d, s, 0)])],
    "sgtz": [("rr", lambda d, s: [("slt", d, 0, s)])],
    "sgt": [("rrr", lambda d, a, b: [("slt", d, b, a)])],
    "sgtu": [("rrr", lambda d, a, b: [("sltu", d, b, a)])],
    "zext.b": [("rr", lambda d, s: [("andi", d, s, 255)])],
    "sext.b": [("rr", lambda d, s: [("slli", d, s, 24), ("srai", d, d, 24)])],
    "sext.h": [("rr", lambda d, s: [("slli", d, s, 16), ("srai", d, d, 16)])],
    "zext.h": [("rr", lambda d, s: [("slli", d, s, 16), ("srli", d, d, 16)])],
    "beqz": [("rb", lambda s, o: [("beq", s, 0, o)])],
    "bnez": [("rb", lambda s, o: [("bne", s, 0, o)])],
    "blez": [("rb", lambda s, o: [("bge", 0, s, o)])],
    "bgez": [("rb", lambda s, o: [("bge", s, 0, o)])],
    "bltz": [("rb", lambda s, o: [("blt", s, 0, o)])],
    "bgtz": [("rb", lambda s, o: [("blt", 0, s, o)])],
    "bgt": [("rrb", lambda a, b, o: [("blt", b, a, o)])],
    "ble": [("rrb", lambda a, b, o: [("bge", b, a, o)])],
    "bgtu": [("rrb", lambda a, b, o: [("bltu", b, a, o)])],
    "bleu": [("rrb", lambda a, b, o: [("bgeu", b, a, o)])],
    "j": [("b", lambda o: [("jal", 0, o)])],
    "jal": [("b", lambda o: [("jal", 1, o)])],
    "jr": [("r", lambda s: [("jalr", 0, 0, s)]), ("m", lambda i, s: [("jalr", 0, i, s)]),
           ("ri", lambda s, i: [("jalr", 0, i, s)])],
    "jalr": [("r", lambda s: [("jalr", 1, 0, s)]), ("m", lambda i, s: [("jalr", 1, i, s)]),
             ("rr", lambda d, s: [("jalr", d, 0, s)]), ("rri", lambda d, s, i: [("jalr", d, i, s)])],
    "ret": [("", lambda: [("jalr", 0, 0, 1)])],
    # near forms only (jal, ±1 MiB): with no linker there is nothing to relax from auipc + jalr
    "call": [("b", lambda o: [("jal", 1, o)]), ("rb", lambda d, o: [("jal", d, o)])],
    "tail": [("b", lambda o: [("jal", 0, o)])],
}
_KINDS = {_R: "rrr", _I: "rri", _SH: "rri", _U: "ri", _L: "rm", _S: "rm", _B: "rrb", _J: "rb",
          _JR: "rm"}
_BASE_FORMS = {m: [(_KINDS[fmt], lambda *ops, m=m: [(m, *ops)])] for m, (fmt, *_) in OPS.items()}
_FORMS: dict[str, list[tuple[str, Expansion]]] = {
    m: _BASE_FORMS.get(m, []) + _PSEUDO.get(m, []) for m in {**_BASE_FORMS, **_PSEUDO}}
_KIND_NAMES = {"r": "reg", "i": "imm", "b": "target", "m": "offset(reg)"}

_ADDRESS_PSEUDO = ("la", "lla", "lga")  # a symbol's address: needs a relocation
_IGNORED = {".file", ".ident", ".globl", ".global", ".local", ".weak", ".hidden", ".protected",
            ".internal", ".type", ".size", ".loc", ".addrsig", ".addrsig_sym", ".variant_cc"}
_OPTIONS = {"norvc", "pic", "nopic", "relax", "norelax", "push", "pop", "csr-check",
            "no-csr-check"}
_SECTION_DIRECTIVES = {".text", ".data", ".bss", ".section", ".pushsection", ".popsection",
                       ".previous"}
_METADATA_SECTIONS = (".debug", ".note", ".comment", ".riscv.attributes")
_ALIGNMENTS = {".align": True, ".p2align": True, ".balign": False}  # -> is the argument log2
_WORDS = (".word", ".4byte", ".long")
_NOP = encode(("addi", 0, 0, 0))
_MAX_ALIGN = 1 << 12  # the profiles load programs at a 4 KiB boundary
_LABEL = re.compile(r"^([A-Za-z_.$][\w.$]*|\d+)\s*:(.*)$")
_TARGET = re.compile(r"([A-Za-z_.$][\w.$]*|\d+[bf])\s*(?:([+-])\s*(\w+))?")
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


@dataclass(frozen=True)
class _Labels:
    """Label addresses: named ones, and numeric ones as (statement index, address) in order."""
    named: dict[str, int]
    numeric: dict[str, list[tuple[int, int]]]

    def target(self, text: str, address: int, index: int) -> int:
        """The byte offset from `address` (statement number `index`) to the target `text`."""
        t = text.strip().removesuffix("@plt")
        match = _TARGET.fullmatch(t)
        if not match:
            return _immediate(t)  # already an offset from this instruction
        name, sign, addend = match.groups()
        if name == ".":
            base = address
        elif name[0].isdigit():  # 1b: the last `1:` at or before here; 1f: the next one after
            back = name[-1] == "b"
            spots = [a for i, a in self.numeric.get(name[:-1], []) if (i <= index) == back]
            if not spots:
                where = "before" if back else "after"
                raise UserError(f"no label {name[:-1]!r} {where} this line (for {name!r})")
            base = spots[-1] if back else spots[0]
        elif name in self.named:
            base = self.named[name]
        else:
            raise UserError(f"unknown label {name!r} (only labels of this file: there is no "
                            "linker)")
        return base + (_immediate(addend) * (-1 if sign == "-" else 1) if sign else 0) - address


def _parse(kinds: str, ops: list[str], allowed: int, target: Callable[[str], int]) -> list[int]:
    out: list[int] = []
    for kind, op in zip(kinds, ops):
        if kind == "r":
            out.append(_register(op, allowed))
        elif kind == "i":
            out.append(_immediate(op))
        elif kind == "b":
            out.append(target(op))
        else:  # "m": offset(base) -> offset, base
            match = _MEM.match(op.strip())
            if not match:
                raise UserError(f"expected offset(register), got {op.strip()!r}"
                                + (" (a symbol needs a relocation, which is not supported)"
                                   if _TARGET.fullmatch(op.strip()) else ""))
            out += [_immediate(match.group(1) or "0"), _register(match.group(2), allowed)]
    return out


def _expand(mnemonic: str, ops: list[str], allowed: int,
            target: Callable[[str], int]) -> list[Insn]:
    """The base instructions of one statement (`target` turns a target operand into an offset)."""
    if mnemonic in _ADDRESS_PSEUDO:
        raise UserError(f"{mnemonic} loads a symbol's address, which needs a relocation: not "
                        "supported (there is no linker); build constants with li")
    if mnemonic not in _FORMS:
        raise UserError(f"unsupported RISC-V instruction {mnemonic!r}")
    for op in ops:
        if "%" in op:
            raise UserError(f"{mnemonic}: relocation {op.strip()!r} is not supported (there is no "
                            "linker); build constants with li")
    forms = _FORMS[mnemonic]
    fits = [(kinds, make) for kinds, make in forms if len(kinds) == len(ops)]
    if len(fits) > 1:  # told apart by where the offset(register) operands are
        fits = [(k, m) for k, m in fits if all((c == "m") == ("(" in o) for c, o in zip(k, ops))]
    if fits:
        kinds, make = fits[0]
        return make(*_parse(kinds, ops, allowed, target))
    if len(forms) == 1:
        raise UserError(f"{mnemonic} takes {len(forms[0][0])} operand(s), got {len(ops)}")
    usage = " | ".join(", ".join(_KIND_NAMES[k] for k in kinds) or "no operands"
                       for kinds, _ in forms)
    raise UserError(f"{mnemonic}: operands {', '.join(o.strip() for o in ops)!r} fit none of "
                    f"its forms ({usage})")


def _split_statements(line: str) -> list[str]:
    """The statements of a source line: `#` and `//` start a comment and `;` separates
    statements (as in gas), outside double-quoted strings."""
    out, start, quoted, k = [], 0, False, 0
    while k < len(line):
        c = line[k]
        if quoted:
            quoted = c != '"'
            k += 2 if c == "\\" else 1
            continue
        if c == '"':
            quoted = True
        elif c == "#" or line.startswith("//", k):
            break
        elif c == ";":
            out.append(line[start:k])
            start = k + 1
        k += 1
    return [s.strip() for s in [*out, line[start:k]] if s.strip()]


def _check_isa(isa: str) -> None:
    """Refuse an ISA string (`.attribute arch`, `.option arch`) whose code this assembler would
    not encode as gas does: RV64, or compressed instructions (gas then shrinks plain mnemonics)."""
    s = isa.strip().strip('"').lower()
    if (base := re.match(r"rv(\d+)", s)) and base.group(1) != "32":
        raise UserError(f"ISA {s!r}: RV{base.group(1)} code is not supported (the profiles are "
                        "RV32)")
    tokens = s.split("_")
    letters = "".join(re.sub(r"^rv\d+|\d+(p\d+)?", "", t) for t in tokens
                      if not t.startswith(("z", "s", "x")))
    if "c" in letters or any(t.startswith("zc") for t in tokens):
        raise UserError(f"ISA {s!r} has compressed instructions (the C extension), which are not "
                        "supported: compile with -march=rv32em or rv32im")


def _check_option(args: str) -> None:
    name, _, rest = args.partition(",")
    name = name.strip().lower()
    if name == "rvc":
        raise UserError("compressed instructions (the C extension) are not supported")
    if name == "arch":
        for change in rest.split(","):
            if not change.strip().startswith("-"):
                _check_isa(change.strip().lstrip("+"))
    elif name not in _OPTIONS:
        raise UserError(f"unknown option {name!r}")


def _padding(directive: str, args: str, address: int) -> bytes:
    """The nops that align `address` as .align/.p2align (log2 of the boundary; RISC-V gas's
    .align is .p2align) or .balign (bytes) ask, with their optional `, fill, max` arguments."""
    amount, fill, most = (args.split(",") + ["", ""])[:3]
    n = _immediate(amount)
    log2 = n if _ALIGNMENTS[directive] else (n.bit_length() - 1 if n > 0 and n & (n - 1) == 0
                                             else -1)
    if not 0 <= log2 <= _MAX_ALIGN.bit_length() - 1:
        raise UserError(f"{directive} {amount.strip()}: the boundary must be a power of two up "
                        f"to {_MAX_ALIGN} bytes")
    if fill.strip():
        raise UserError(f"{directive}: a fill value is not supported in code (gas pads code "
                        "with nops)")
    pad = -address % (1 << log2)  # a multiple of 4: code is always 4-byte aligned here
    if most.strip() and pad > _immediate(most):
        return b""
    return _NOP * (pad // 4)


def _words(args: str) -> bytes:
    out = b""
    for text in args.split(","):
        if _TARGET.fullmatch(text.strip()):
            raise UserError(f"the address of {text.strip()!r} needs a relocation, which is not "
                            "supported (there is no linker)")
        value = _immediate(text)
        if not -(1 << 31) <= value < (1 << 32):
            raise UserError(f"{value} does not fit in 32 bits")
        out += (value % (1 << 32)).to_bytes(4, "little")
    return out


def _directive(name: str, args: str, address: int) -> bytes:
    """The bytes that a directive in a code section emits."""
    if name in _IGNORED or name.startswith(".cfi_"):
        return b""
    if name == ".option":
        _check_option(args)
        return b""
    if name == ".attribute":
        tag, _, value = args.partition(",")
        if tag.strip().lower() in ("arch", "tag_riscv_arch", "5"):
            _check_isa(value)
        return b""
    if name in _ALIGNMENTS:
        return _padding(name, args, address)
    if name in _WORDS:
        return _words(args)
    raise UserError(f"unsupported directive {name!r}: only code is assembled (instructions, "
                    ".word, alignment)")


def _section_kind(name: str) -> str:
    """"code" (.text, .text.*), "metadata" (debug info, notes: skipped) or "data" (refused)."""
    if name == ".text" or name.startswith(".text."):
        return "code"
    return "metadata" if name.startswith(_METADATA_SECTIONS) else "data"


@dataclass(frozen=True)
class _Line:
    """One statement that emits bytes, at `address` from the program's start."""
    number: int
    text: str
    address: int
    mnemonic: str = ""  # an instruction's, encoded in pass 2 once all labels are known
    operands: tuple[str, ...] = ()
    data: bytes = b""  # a directive's bytes (.word, alignment)


class _Layout:
    """Pass 1: every statement's address (an instruction's size never depends on a label), the
    labels' addresses, and the current section."""

    def __init__(self, n_registers: int):
        self.n_registers = n_registers
        self.lines: list[_Line] = []
        self.address = 0
        self.labels = _Labels({}, {})
        self.label_lines: dict[str, int] = {}
        self.section, self.previous, self.stack = ".text", ".text", []

    def add(self, number: int, statement: str) -> None:
        in_code = _section_kind(self.section) == "code"
        while (match := _LABEL.match(statement)):
            if in_code:
                self._label(match.group(1), number)
            statement = match.group(2).strip()
        if not statement:
            return
        head, args = re.match(r"(\S+)\s*(.*)", statement).groups()
        head = head.lower()
        if head in _SECTION_DIRECTIVES:
            self._switch(head, args)
            return
        if not in_code:
            return  # the contents of debug info and notes
        text = " ".join(statement.split())
        if head.startswith("."):
            line = _Line(number, text, self.address, data=_directive(head, args, self.address))
            size = len(line.data)
        else:
            ops = tuple(args.split(",")) if args.strip() else ()
            size = 4 * len(_expand(head, list(ops), self.n_registers, lambda op: 0))
            line = _Line(number, text, self.address, head, ops)
        self.lines.append(line)
        self.address += size

    def _label(self, name: str, number: int) -> None:
        if name[0].isdigit():
            self.labels.numeric.setdefault(name, []).append((len(self.lines), self.address))
        elif name in self.label_lines:
            raise UserError(f"label {name!r} is already defined on line {self.label_lines[name]}")
        else:
            self.labels.named[name] = self.address
            self.label_lines[name] = number

    def _switch(self, directive: str, args: str) -> None:
        name = directive
        if directive in (".section", ".pushsection"):
            name = args.split(",")[0].strip().strip('"')
        elif directive == ".previous":
            name = self.previous
        elif directive == ".popsection":
            if not self.stack:
                raise UserError(".popsection without a .pushsection")
            name = self.stack.pop()
        if _section_kind(name) == "data":
            raise UserError(f"section {name!r} is not supported: only code (.text) is assembled; "
                            "a program has no data of its own (its data page starts zeroed)")
        if directive == ".pushsection":
            self.stack.append(self.section)
        self.previous, self.section = self.section, name


def assemble(text: str, n_registers: int = 16) -> bytes:
    """Machine code for RISC-V assembly `text` as GNU as would make it (RV32IM, no relocations),
    e.g. the output of `gcc -S`. Statements are placed in source order from the program's start
    (where it runs from); `#` and `//` comment, `;` separates; directives that emit no code are
    skipped and the rest refused by name. Branch and jump targets are labels, `.`, either with
    +/- n, or byte offsets from the instruction (as capstone prints them). `call` and `tail` are
    their near forms (jal). Registers beyond x{n_registers-1} are refused. Every error is one line
    that names the source line."""
    layout = _Layout(n_registers)
    for number, raw in enumerate(text.splitlines(), 1):
        for statement in _split_statements(raw):
            try:
                layout.add(number, statement)
            except UserError as e:
                raise UserError(f"line {number}: {' '.join(statement.split())}: {e}") from None
    code = bytearray()
    for index, line in enumerate(layout.lines):
        try:
            if line.mnemonic:
                target = functools.partial(layout.labels.target, address=line.address,
                                           index=index)
                insns = _expand(line.mnemonic, list(line.operands), n_registers, target)
                code += b"".join(encode(insn) for insn in insns)
            else:
                code += line.data
        except UserError as e:
            raise UserError(f"line {line.number}: {line.text}: {e}") from None
    if not code:
        raise UserError("the assembly text holds no instruction")
    return bytes(code)
