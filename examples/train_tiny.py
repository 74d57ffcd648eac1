"""End to end in a few minutes on a laptop: make a corpus of Unicorn traces, train a tiny byte
model on it, export the checkpoint, and compare it with Unicorn on a program it never saw.

    python examples/train_tiny.py --out /tmp/bytesim-tiny [--fast]

--fast (seconds, for the tests) makes 32 traces and trains 10 steps; the model then knows the
layout of a trace but little arithmetic. Without it: 2,000 traces, 400 steps (a few minutes
on 2 CPU cores) and the model gets most pc and many register bytes right.
"""

from pathlib import Path

from bytesim_common.cli import OneLineErrorParser, cli_entry
from datagen.corpus import write_corpus
from datagen.cpu.build import cpu_job
from simulator.export import export_run
from simulator.facade import CPUSimulator
from simulator.train import TrainArgs, train


@cli_entry("examples/train_tiny.py")
def main(argv: list[str] | None = None) -> None:
    p = OneLineErrorParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="folder for the corpus, run and checkpoint")
    p.add_argument("--fast", action="store_true", help="seconds instead of minutes")
    args = p.parse_args(argv)
    out = Path(args.out)
    n, steps = (32, 10) if args.fast else (2000, 400)

    corpus = out / "corpus"
    write_corpus(corpus, cpu_job("rv32e-mini", n, seed=0, max_len=8), show_progress=False)
    train(TrainArgs(task="cpu", data=str(corpus), out=str(out / "run"), preset="tiny",
                    steps=steps, batch_size=16, lr=3e-3, save_every=steps, eval_every=steps,
                    quiet=args.fast))
    export_run(out / "run", out / "checkpoint")

    sim = CPUSimulator.from_pretrained(out / "checkpoint", profile="rv32e-mini")
    report = sim.compare("li x1, 3\nadd x2, x1, x1\nmul x3, x2, x2", {"x3": 1},
                         max_steps=4 if args.fast else None)
    print(report.format())


if __name__ == "__main__":
    main()
