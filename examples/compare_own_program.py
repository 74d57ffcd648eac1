"""Compare a CPU byte model with the Unicorn emulator on your own program.

    python examples/compare_own_program.py my_program.s [--init x1=5,x2=-1] [--model PATH]

The program is RISC-V assembly (a `.s` file; labels, `#` comments, ABI register names) or raw
machine code (a `.bin` file). Without a file, a small built-in program is used.
"""

import json

from bytesim_common.cli import OneLineErrorParser, cli_entry
from simulator.facade import CPUSimulator

BUILT_IN = """\
    li   x1, 100
    li   x2, 7
    rem  x3, x1, x2      # 100 % 7 = 2
    beqz x3, skip        # not taken
    srai x1, x1, 2       # 25
skip:
    and  x2, x1, x3
"""


@cli_entry("examples/compare_own_program.py")
def main(argv: list[str] | None = None) -> None:
    p = OneLineErrorParser(description=__doc__.split("\n")[0])
    p.add_argument("program", nargs="?", default=None, help="a .s or .bin file")
    p.add_argument("--init", default=None, help="initial registers, e.g. x1=5,x2=0x10")
    p.add_argument("--model", default=None, help="checkpoint (default: trained/cpu-rv32e)")
    p.add_argument("--profile", default=None, help="CPU profile, if the checkpoint lacks it")
    p.add_argument("--fast", action="store_true", help="compare the first 3 steps only")
    args = p.parse_args(argv)

    sim = CPUSimulator.from_pretrained(args.model, profile=args.profile)
    report = sim.compare(args.program or BUILT_IN, args.init, max_steps=3 if args.fast else None)
    print(report.format())
    wrong = [s for s in report.steps if not s.exact]
    for s in wrong:
        print(f"step {s.step} ({s.instruction_class}: {s.instruction}): wrong "
              f"{', '.join(s.wrong_registers)}")
    print(json.dumps({"byte_accuracy": report.byte_accuracy, "state_exact": report.state_exact,
                      "by_register": report.by_register}))


if __name__ == "__main__":
    main()
