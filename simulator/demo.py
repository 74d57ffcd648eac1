"""`make demo`: the shipped checkpoints in trained/ on single instructions of every class and an
example program, and on an example tune, each beside the ground truth (Unicorn; abc2midi). A
missing checkpoint is said in one line and the other part still runs.

    python -m simulator.demo [--cpu-model PATH] [--abc2midi-model PATH] [--profile NAME]
"""

from __future__ import annotations

import argparse

from bytesim_common.errors import UserError
from bytesim_common.files import display_path
from simulator.facade import (
    CPUSimulator,
    ModelOutputError,
    MusicConverter,
    default_model_path,
    midi_summary,
)
from simulator.probe import format_probe, probe_model

EXAMPLE_PROGRAM = """\
# a little arithmetic on x1..x3 (valid on every RISC-V profile)
    li   x1, 21
    slli x2, x1, 1        # x2 = 42
    mul  x3, x2, x1       # x3 = 882
    sub  x1, x3, x2
    bge  x1, x2, done     # taken: skips the next instruction
    addi x1, x1, 1
done:
    xori x3, x3, -1
"""
EXAMPLE_STATE = {"x2": 7, "x3": 0xFFFFFFF0}

EXAMPLE_TUNE = """\
X:1
T:Demo tune
M:3/4
L:1/8
K:D
A2 | d2 f2 a2 | g2 e2 c2 | d4 A2 | d6 |]
"""


PROBE_PROGRAMS = 10  # random single-instruction programs per class in the demo's probe
DEMO_CPU_MODEL = "cpu-rv32e-mini"  # the shipped CPU model that executes most (its card)


def demo_cpu(path: str | None, profile: str | None) -> None:
    sim = CPUSimulator.from_pretrained(path, profile=profile)
    print(f"== CPU simulator {display_path(sim.path)} ({sim.profile.name}) vs Unicorn ==")
    print(format_probe(probe_model(sim.model, sim.codec, sim.path, PROBE_PROGRAMS)))
    print("(pc-advance: the previous state with the pc moved on, the trivial baseline; "
          "`simulator probe` for more programs)\n")
    print(sim.compare(EXAMPLE_PROGRAM, EXAMPLE_STATE).format())


def demo_music(path: str | None) -> None:
    conv = MusicConverter.from_pretrained(path, task="abc2midi")
    print(f"== ABC -> MIDI with {display_path(conv.path)} vs the reference converter ==")
    print(EXAMPLE_TUNE)
    show_abc_to_midi(conv, EXAMPLE_TUNE)


def show_abc_to_midi(conv: MusicConverter, abc: str) -> bytes | None:
    """Print the reference converter's MIDI file for `abc` and the model's, their notes listed;
    return the model's file (None where the model made none, which is printed too)."""
    reference = conv.reference_abc_to_midi(abc)
    print(f"reference ({len(reference)} bytes):\n{midi_summary(reference)}")
    try:
        predicted = conv.abc_to_midi(abc)
    except ModelOutputError as e:
        print(f"model: {e}")
        return None
    same = "byte-identical to the reference" if predicted == reference else "differs"
    print(f"model ({len(predicted)} bytes, {same}):\n{midi_summary(predicted)}")
    return predicted


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m simulator.demo", description=__doc__.split("\n")[0])
    p.add_argument("--cpu-model", default=None,
                   help=f"default: trained/{DEMO_CPU_MODEL}, the shipped CPU model that executes "
                   "most (docs/training.md, the ladder)")
    p.add_argument("--profile", default=None, help="the CPU model's profile, if not recorded")
    p.add_argument("--abc2midi-model", default=None, help="default: trained/abc2midi")
    args = p.parse_args(argv)
    cpu_model = args.cpu_model or str(default_model_path(DEMO_CPU_MODEL))
    for part, run in (("CPU", lambda: demo_cpu(cpu_model, args.profile)),
                      ("music", lambda: demo_music(args.abc2midi_model))):
        try:
            run()
        except UserError as e:
            print(f"demo: skipping the {part} part: {e}")
        print()


if __name__ == "__main__":
    main()
