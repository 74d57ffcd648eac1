"""Predict a program's execution with a CPU byte model (no emulator involved).

    python examples/predict_program.py [--model trained/cpu-rv32e] [--profile NAME] [--fast]
"""

from bytesim_common.cli import OneLineErrorParser, cli_entry
from simulator.facade import CPUSimulator

PROGRAM = """\
    li   x1, 10
    addi x2, x1, -3      # x2 = 7
    mul  x3, x1, x2      # x3 = 70
    sltu x1, x2, x3      # x1 = 1
"""


@cli_entry("examples/predict_program.py")
def main(argv: list[str] | None = None) -> None:
    p = OneLineErrorParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None, help="checkpoint (default: trained/cpu-rv32e)")
    p.add_argument("--profile", default=None, help="CPU profile, if the checkpoint lacks it")
    p.add_argument("--fast", action="store_true", help="predict at most 2 states")
    args = p.parse_args(argv)

    sim = CPUSimulator.from_pretrained(args.model, profile=args.profile)
    trace = sim.predict(PROGRAM, initial_state={"x2": 5}, max_steps=2 if args.fast else None)
    print(trace.asm)
    for k, regs in enumerate(trace.registers):
        print(f"state {k}: " + " ".join(f"{r}={v:#x}" for r, v in regs.items()))
    print(f"the model stopped: {trace.stop} after {trace.n_steps} steps")


if __name__ == "__main__":
    main()
