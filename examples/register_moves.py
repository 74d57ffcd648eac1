"""Does a RISC-V model move and add arbitrary 32-bit values? `addi rd, rs1, IMM` against Unicorn.

    python examples/register_moves.py [--model PATH] [-n 40] [--imm zero|random] [--seed 0]

Every register starts with a uniformly random 32-bit value (the corpora draw a third of their
values that way, and the rest small or at the sign edges), and rd differs from rs1, so neither
copying the previous state nor writing a small or sign-filled value can be right. `--imm zero`
is a plain register move (`mv rd, rs1`); `--imm random` a 12-bit immediate, an addition with
carries. Prints each case, then how many destination registers were right, in all and by
route (`rd <- rs1`: the full-state layouts learnt the routes one at a time, docs/training.md).
"""

import collections
import random

from bytesim_common.cli import OneLineErrorParser, cli_entry
from simulator.facade import CPUSimulator


@cli_entry("examples/register_moves.py")
def main(argv: list[str] | None = None) -> None:
    p = OneLineErrorParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None, help="a RISC-V checkpoint (default: trained/cpu-rv32e)")
    p.add_argument("-n", type=int, default=40, help="cases (default 40)")
    p.add_argument("--imm", choices=("zero", "random"), default="zero")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fast", action="store_true", help="3 cases")
    args = p.parse_args(argv)

    sim = CPUSimulator.from_pretrained(args.model)
    registers = [r for r in sim.profile.program_registers if r != "x0"]
    rng = random.Random(args.seed)
    right, n = 0, 3 if args.fast else args.n
    routes: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])  # right, cases
    for _ in range(n):
        rd, rs1 = rng.sample(registers, 2)
        imm = 0 if args.imm == "zero" else rng.randint(-2048, 2047)
        state = {r: rng.getrandbits(32) for r in registers}
        report = sim.compare(f"addi {rd}, {rs1}, {imm}", state, max_steps=1)
        want = report.emulator.registers[1][rd]
        got = report.predicted.registers[1][rd] if report.predicted.n_steps else None
        right += got == want
        routes[f"{rd}<-{rs1}"][0] += got == want
        routes[f"{rd}<-{rs1}"][1] += 1
        shown = "no state" if got is None else f"{got:#010x}"
        print(f"addi {rd}, {rs1}, {imm:<5}  {rs1}={state[rs1]:#010x}  unicorn {want:#010x}  "
              f"model {shown}{'' if got == want else '  <-'}")
    print(f"{sim.profile.name}: {right} of {n} destination registers right")
    print("by route: " + ", ".join(f"{route} {a}/{b}" for route, (a, b) in sorted(routes.items())))


if __name__ == "__main__":
    main()
