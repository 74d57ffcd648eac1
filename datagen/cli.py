"""The `datagen` command; what it writes: docs/formats.md."""

from __future__ import annotations

import argparse
import sys

from bytesim_common.cli import OneLineErrorParser, cli_entry


def build_parser() -> argparse.ArgumentParser:
    p = OneLineErrorParser(prog="datagen", description="Make corpora from real emulators and converters.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=OneLineErrorParser)

    cpu = sub.add_parser("cpu", help="CPU traces from Unicorn runs of random programs")
    cpu.add_argument("--profile", default="rv32e", help="rv32e (default), rv32e-mini, x86")
    cpu.add_argument("-n", type=int, required=True, help="number of traces")
    cpu.add_argument("--seed", type=int, default=0)
    cpu.add_argument("--out", required=True, help="corpus folder (created; resumed if present)")
    cpu.add_argument("--workers", type=int, default=1)
    cpu.add_argument("--min-len", type=int, default=1, help="fewest instructions per program")
    cpu.add_argument("--max-len", type=int, default=16, help="most instructions per program")
    cpu.add_argument("--max-steps", type=int, default=None,
                     help="stop a trace after this many executed instructions (default: max-len)")
    cpu.add_argument("--mix", default=None,
                     help="instruction-class weights (classes: alu, alu_imm, upper, muldiv, load, "
                     "store, branch), e.g. alu=4,alu_imm=4,muldiv=1; left out = 0")
    cpu.add_argument("--mnemonics", default=None,
                     help="RISC-V: draw only these mnemonics, e.g. addi or addi,xori (default: all)")
    cpu.add_argument("--mnemonic-weights", default=None,
                     help="RISC-V: weights within each class, e.g. mul=4,sub=2 (others: 1)")
    cpu.add_argument("--imm", default="mixed",
                     help="RISC-V alu_imm immediates: mixed (default: uniform, small or edge, a "
                     "third each), zero, small (-16..16) or full (uniform)")
    cpu.add_argument("--values", default="mixed",
                     help="state_0's registers: mixed (default: uniform, small or edge, a third "
                     "each), uniform (32 random bits), uniform-shifts (uniform where the program "
                     "holds a shift, mixed elsewhere), uniform-arith (the same for a shift, "
                     "addi, add or sub) or half-uniform-shifts (where the program holds a "
                     "shift, each register uniform or mixed, half the time each)")
    cpu.add_argument("--split-by", default="program",
                     help="what decides a row's split: program (default; one program, one split) "
                     "or trace (program and state_0: for rungs with few distinct programs)")
    cpu.add_argument("--shard", default=None, help="make only shard K of N (K from 0), e.g. 0/4")
    cpu.add_argument("--quiet", action="store_true", help="no progress output")

    music = sub.add_parser("music", help="ABC <-> MIDI pairs from real converters")
    music.add_argument("--source", nargs="+", default=["synthetic"],
                       help="music21, synthetic, or .abc files")
    music.add_argument("-n", type=int, required=True, help="number of tunes")
    music.add_argument("--seed", type=int, default=0)
    music.add_argument("--out", required=True)
    music.add_argument("--converter", default=None, choices=["abc2midi", "music21"],
                       help="reference converter (default: abc2midi where installed)")
    music.add_argument("--workers", type=int, default=1)
    music.add_argument("--shard", default=None, help="make only shard K of N (K from 0), e.g. 0/4")
    music.add_argument("--max-bytes", type=int, default=8192,
                       help="count pairs whose bGPT encoding is longer as too_long (0: no limit)")
    music.add_argument("--keep-text", action="store_true",
                       help="keep the MIDI's text meta events (titles, notes); see docs/music.md")
    music.add_argument("--timeout", type=float, default=10.0,
                       help="seconds a conversion may take before it counts as a timeout")
    music.add_argument("--synth-mix", default=None,
                       help="synthetic feature probabilities, e.g. chords=0.2,triplets=0.1")
    music.add_argument("--segment-bars", type=int, default=0, metavar="N",
                       help="also cut each music21 or file tune of more than N bars into the "
                            "segments it plays, N bars each, as the converter cuts a tune longer "
                            "than a model's context; one row each, in the tune's split "
                            "(docs/music.md; default 0: tunes whole only)")
    music.add_argument("--segments-only", action="store_true",
                       help="with --segment-bars: a tune that plays more than one segment "
                            "comes as its segments only, not whole, as the converter gives a "
                            "long tune to a model")
    music.add_argument("--ladder", default=None, choices=["M0", "M1", "M2"],
                       help="synthetic tunes of one rung of the ladder (docs/music.md); "
                       "--synth-mix then changes that rung's mix")
    music.add_argument("--quiet", action="store_true", help="no progress output")

    merge = sub.add_parser("merge", help="one corpus holding the rows of several")
    merge.add_argument("corpora", nargs="+", help="complete corpora of one kind, in order")
    merge.add_argument("--out", required=True, help="corpus folder (created; resumed if present)")
    merge.add_argument("--quiet", action="store_true", help="no progress output")

    exp = sub.add_parser("export-bgpt", help="write a corpus in bGPT's file layout")
    exp.add_argument("corpus")
    exp.add_argument("out")

    show = sub.add_parser("show", help="print a few rows of a corpus readably")
    show.add_argument("corpus")
    show.add_argument("-n", type=int, default=3, help="how many rows")
    show.add_argument("--split", default=None)
    return p


@cli_entry("datagen")
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "cpu":
        from datagen.cpu.build import build_cpu_corpus

        build_cpu_corpus(args)
    elif args.command == "music":
        from datagen.music.build import build_music_corpus

        build_music_corpus(args)
    elif args.command == "merge":
        from datagen.merge import merge_corpora

        manifest = merge_corpora(args.out, args.corpora, show_progress=not args.quiet)
        print(f"{manifest['counts']['rows']} rows of {len(args.corpora)} corpora -> {args.out}")
    elif args.command == "export-bgpt":
        from datagen.export_bgpt import export_bgpt

        export_bgpt(args.corpus, args.out)
    elif args.command == "show":
        from datagen.show import show

        show(args.corpus, args.n, args.split, out=sys.stdout)
    return 0
