"""What a user gives the CPU simulator: a program (assembly text, machine code or a file) and an
initial state (None, raw bytes, {register: value} or `REG=VALUE,...` text), read into the
bytes a trace starts from, with one-line errors for what cannot be read."""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from bytesim_common.errors import UserError
from datagen.cpu import Profile, assemble, random_initial_state
from datagen.cpu.harness import zero_state

PROGRAM_SUFFIXES = (".s", ".S", ".asm", ".bin")

Program = str | bytes | Path
InitialState = None | bytes | Mapping[str, int] | str


def read_program(program: Program, profile: str) -> bytes:
    """Machine code from assembly text, raw bytes, or a file (`.bin`: raw; else assembly)."""
    if isinstance(program, (bytes, bytearray, memoryview)):
        code = bytes(program)
    else:
        text = str(program)
        as_path = Path(text)
        looks_like_file = isinstance(program, Path) or (
            "\n" not in text and text.endswith(PROGRAM_SUFFIXES))
        if looks_like_file or ("\n" not in text and len(text) < 4096 and as_path.is_file()):
            try:
                data = as_path.read_bytes()
            except FileNotFoundError:
                raise UserError(f"no such program file: {text}") from None
            except OSError as e:
                raise UserError(f"cannot read program file {text}: {e.strerror}") from None
            if as_path.suffix == ".bin":
                code = data
            else:
                try:
                    code = assemble(profile, data.decode("utf-8"))
                except UnicodeDecodeError:
                    raise UserError(f"{text} is not UTF-8 assembly text (machine code files "
                                    "must end in .bin)") from None
        else:
            code = assemble(profile, text)
    if not code:
        raise UserError("the program is empty")
    return code


def _register_index(profile: Profile, name: str) -> int:
    """The state slot of a register: its name as the profile spells it, or a RISC-V ABI name."""
    from datagen.cpu.rv32 import ABI_NAMES

    key = name.strip().lower()
    if profile.isa == "rv32" and key in ABI_NAMES:
        key = f"x{ABI_NAMES[key]}"
    if key not in profile.registers:
        extra = " (x0 is always zero)" if key == "x0" else ""
        raise UserError(f"{profile.name} has no register {name.strip()!r}{extra}; its registers: "
                        f"{', '.join(profile.registers)}")
    return profile.registers.index(key)


def parse_assignments(text: str) -> dict[str, int]:
    """`x1=5,x2=0x10` (commas, spaces or newlines between pairs) -> {"x1": 5, "x2": 16}."""
    values: dict[str, int] = {}
    for part in text.replace(",", " ").split():
        name, eq, value = part.partition("=")
        if not eq or not name:
            raise UserError(f"expected REG=VALUE, got {part!r}")
        try:
            values[name] = int(value, 0)
        except ValueError:
            raise UserError(f"value of {name} is not a number: {value!r}") from None
    if not values:
        raise UserError("no REG=VALUE pairs given")
    return values


def make_state(profile: Profile, values: Mapping[str, int]) -> bytes:
    """A state with the given registers set and the rest as in `zero_state` (pc = code base)."""
    state = bytearray(zero_state(profile))
    offsets = np.cumsum([0, *profile.register_bytes])
    for name, value in values.items():
        i = _register_index(profile, name)
        width = profile.register_bytes[i]
        if not -(1 << (8 * width - 1)) <= int(value) < (1 << (8 * width)):
            raise UserError(f"{name}={value} does not fit a {8 * width}-bit register")
        state[offsets[i]: offsets[i + 1]] = (int(value) % (1 << (8 * width))).to_bytes(width,
                                                                                        "little")
    return bytes(state)


def read_stdin_program() -> str | bytes:
    """A program piped in: assembly if it is printable UTF-8 text, else machine code."""
    import sys

    data = sys.stdin.buffer.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return data
    return text if all(c.isprintable() or c.isspace() for c in text) else data


def read_init_arg(arg: str | None) -> InitialState:
    """`--init`: None, `REG=VAL,...`, or a file holding such pairs or the raw state bytes."""
    if arg is None or "=" in arg:
        return arg
    try:
        data = Path(arg).read_bytes()
    except FileNotFoundError:
        raise UserError(f"--init: no file {arg} (or give REG=VALUE pairs)") from None
    except OSError as e:
        raise UserError(f"--init: cannot read {arg}: {e.strerror}") from None
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        return data
    return text if "=" in text else data


def read_initial_state(initial: InitialState, profile: Profile, rng: random.Random) -> bytes:
    """state_0: None = drawn by datagen's initial-state drawer from `rng`; a {reg: value} dict or
    `REG=VALUE,...` text (other registers zero, pc = code base); or the raw state bytes."""
    if initial is None:
        return random_initial_state(profile, rng)
    if isinstance(initial, (bytes, bytearray, memoryview)):
        state = bytes(initial)
        if len(state) != profile.state_size:
            raise UserError(f"a {profile.name} state has {profile.state_size} bytes, got "
                            f"{len(state)}")
        return state
    if isinstance(initial, str):
        return make_state(profile, parse_assignments(initial))
    if isinstance(initial, Mapping):
        return make_state(profile, initial)
    raise UserError(f"an initial state is None, bytes, a dict or REG=VALUE text; got "
                    f"{type(initial).__name__}")
