"""Does a RISC-V model shift arbitrary 32-bit values? `slli`/`srli`/`srai` against Unicorn.

    python examples/uniform_shifts.py [--model PATH] [--profile NAME] [-n 300] [--seed 0]

Every register starts with a uniformly random 32-bit value and the shift amount s is uniform
over 0-31, so every bit of the result depends on the data (the corpora draw a third of their
values uniform and the rest small or at the sign edges, where most shifted bits are copies of
the sign). Writing s = 8q + r, a shift by whole bytes (r = 0) moves bytes; a bit offset r routes
each result byte from two source bytes. Prints how many destination registers were right, by
mnemonic, by q and by r (docs/training.md, "Where the shifts fail").
"""

import collections
import random

from bytesim_common.cli import OneLineErrorParser, cli_entry
from simulator.facade import CPUSimulator


@cli_entry("examples/uniform_shifts.py")
def main(argv: list[str] | None = None) -> None:
    p = OneLineErrorParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None, help="a RISC-V checkpoint (default: trained/cpu-rv32e)")
    p.add_argument("--profile", default=None, help="e.g. rv32e-mini (default: the model's)")
    p.add_argument("-n", type=int, default=300, help="cases (default 300)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fast", action="store_true", help="3 cases")
    args = p.parse_args(argv)

    sim = CPUSimulator.from_pretrained(args.model, profile=args.profile)
    registers = [r for r in sim.profile.program_registers if r != "x0"]
    rng = random.Random(args.seed)
    n = 3 if args.fast else args.n
    tally: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])  # right, cases
    for _ in range(n):
        op, rd, rs1, s = (rng.choice(("slli", "srli", "srai")), rng.choice(registers),
                          rng.choice(registers), rng.randrange(32))
        state = {r: rng.getrandbits(32) for r in registers}
        report = sim.compare(f"{op} {rd}, {rs1}, {s}", state, max_steps=1)
        want = report.emulator.registers[1][rd]
        got = report.predicted.registers[1][rd] if report.predicted.n_steps else None
        for key in ("all", op, f"q={s // 8}", f"r={s % 8}"):
            tally[key][0] += got == want
            tally[key][1] += 1
    for group in (("all",), ("slli", "srli", "srai"), [f"q={q}" for q in range(4)],
                  [f"r={r}" for r in range(8)]):
        print("  ".join(f"{key} {tally[key][0]}/{tally[key][1]}" for key in group if key in tally))


if __name__ == "__main__":
    main()
