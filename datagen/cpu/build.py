"""`datagen cpu`: a corpus of Unicorn traces of random programs (docs/formats.md)."""

from __future__ import annotations

import argparse
import hashlib
import random
from functools import partial

from bytesim_common.errors import UserError
from datagen.corpus import CorpusJob, RowBatch, parse_shard, split_of, write_corpus
from datagen.cpu.harness import MAX_STEPS_LIMIT, emulator
from datagen.cpu.isa import disassemble
from datagen.cpu.profiles import get_profile
from datagen.cpu.programs import (
    DEFAULT_OPERANDS,
    IMMEDIATES,
    VALUES,
    Operands,
    encode_program,
    parse_mix,
    parse_mnemonic_weights,
    parse_mnemonics,
    random_initial_state,
    random_program,
    state_values,
)
from datagen.schemas import SCHEMAS

MAX_LEN = 1024  # branch offsets and the code page hold programs of up to this many instructions
SPLIT_BY = ("program", "trace")  # what a row's split is a hash of: its program, or program + state_0


def row_seed(seed: int, index: int) -> int:
    """The seed of row `index` of a corpus made with `seed` (63 bits, from sha256)."""
    digest = hashlib.sha256(f"datagen-cpu:{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def make_row(profile_name: str, seed: int, min_len: int, max_len: int, max_steps: int,
             mix: dict[str, float], operands: Operands = DEFAULT_OPERANDS,
             split_by: str = "program") -> dict:
    """One corpus row, a pure function of its arguments."""
    profile = get_profile(profile_name)
    rng = random.Random(seed)
    insns = random_program(profile, rng, min_len, max_len, mix, operands)
    program = encode_program(profile, insns)
    state_0 = random_initial_state(profile, rng, state_values(operands.values, insns))
    trace = emulator(profile_name).run(program, state_0, max_steps)
    return {"profile": profile_name, "seed": seed, "program": program, "states": trace.states,
            "n_steps": trace.n_steps, "stop": trace.stop,
            "asm": "\n".join(text for _, _, text in disassemble(profile_name, program)),
            "split": split_of(program if split_by == "program" else program + state_0)}


def make_rows(start: int, stop: int, profile: str, seed: int, min_len: int, max_len: int,
              max_steps: int, mix: dict[str, float], split_by: str = "program",
              **operands: object) -> RowBatch:
    """Rows start..stop-1; `operands` are `Operands.changed()` (a corpus's args)."""
    draw = Operands.from_changed(operands)
    return RowBatch([make_row(profile, row_seed(seed, i), min_len, max_len, max_steps, mix, draw,
                              split_by) for i in range(start, stop)])


def cpu_job(profile: str, n: int, seed: int = 0, min_len: int = 1, max_len: int = 16,
            max_steps: int | None = None, mix: str | None = None, mnemonics: str | None = None,
            imm: str = "mixed", values: str = "mixed", split_by: str = "program",
            mnemonic_weights: str | None = None) -> CorpusJob:
    """The corpus job for `datagen cpu`, with its arguments checked."""
    p = get_profile(profile)
    if n <= 0:
        raise UserError(f"-n must be a positive number of traces; got {n}")
    if not 1 <= min_len <= max_len <= MAX_LEN:
        raise UserError(f"--min-len and --max-len need 1 <= min-len <= max-len <= {MAX_LEN}; "
                        f"got {min_len} and {max_len}")
    if max_steps is None:
        max_steps = max_len  # forward branches only: no generated program runs longer
    if max_steps < 1:
        raise UserError(f"--max-steps must be at least 1; got {max_steps}")
    if max_steps > MAX_STEPS_LIMIT:
        raise UserError(f"--max-steps {max_steps} is over the limit of {MAX_STEPS_LIMIT} states "
                        "per trace")
    weights = parse_mix(mix)
    for name, value, known in (("--imm", imm, IMMEDIATES), ("--values", values, VALUES),
                               ("--split-by", split_by, SPLIT_BY)):
        if value not in known:
            raise UserError(f"{name} must be one of {', '.join(known)}; got {value!r}")
    if imm != "mixed" and p.isa != "rv32":
        raise UserError(f"--imm is for the RISC-V profiles, not {profile}")
    allowed = parse_mnemonics(mnemonics, p, weights)
    operands = Operands(allowed, imm, values,
                        parse_mnemonic_weights(mnemonic_weights, p, weights, allowed))
    args = {"profile": profile, "seed": seed, "min_len": min_len, "max_len": max_len,
            "max_steps": max_steps, "mix": weights, **operands.changed()}
    if split_by != "program":  # recorded only where it is not the default, like the operands
        args["split_by"] = split_by
    return CorpusJob(kind="cpu", args=args, n_rows=n, schema=SCHEMAS["cpu"],
                     make_rows=partial(make_rows, **args), tally=("split", "stop"))


def build_cpu_corpus(args: argparse.Namespace) -> dict:
    """Make (or resume) the corpus that `datagen cpu` was asked for; return its manifest."""
    job = cpu_job(args.profile, args.n, args.seed, args.min_len, args.max_len, args.max_steps,
                  args.mix, args.mnemonics, args.imm, args.values, args.split_by,
                  args.mnemonic_weights)
    return write_corpus(args.out, job, workers=args.workers, shard=parse_shard(args.shard),
                        show_progress=not args.quiet)
