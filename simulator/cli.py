"""The `simulator` command: train, eval, probe, export, mine, cpu, abc2midi, midi2abc.

Each subcommand is an `add_<name>(sub)` that builds its parser and a `run_<name>(args)` that
does the work; `COMMANDS` maps the name to the runner. A new subcommand (e.g. `cpu`) is one
more pair plus one line in `build_parser` and `COMMANDS`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from bytesim_common.cli import OneLineErrorParser, cli_entry
from bytesim_common.errors import UserError
from simulator.abc_beats import ABC_BODIES
from simulator.long_tunes import DEFAULT_SEGMENT_BARS


def _train_args() -> type:
    from simulator.train_args import TrainArgs

    return TrainArgs


def add_train(sub) -> None:
    # the options are TrainArgs' fields, read (with torch) only when `train` is parsed
    sub.add_parser("train", help="train a model on a corpus (resumable)", options_from=_train_args)


def run_train(args: argparse.Namespace) -> int:
    from simulator.train import TrainArgs, train

    summary = train(TrainArgs.from_namespace(args))
    final = summary["final"]
    if final and os.environ.get("RANK", "0") == "0":
        valid = f", valid bpb {final['valid_bpb']:.4f}" if "valid_bpb" in final else ""
        print(f"trained {summary['steps']} steps in {summary['wall_s']:.0f} s: "
              f"train bpb {final['bpb']:.4f}{valid} -> {args.out}")
    return 0


def add_eval(sub) -> None:
    p = sub.add_parser("eval", help="the metrics of docs/metrics.md for a model on a corpus split")
    p.add_argument("--model", required=True, help="a run folder or trained/NAME")
    p.add_argument("--data", required=True, help="corpus folder")
    p.add_argument("--split", default="test", choices=["train", "valid", "test"])
    p.add_argument("--limit", type=int, default=None, help="evaluate the first N rows only")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="auto")
    p.add_argument("--plot", default=None,
                   help="cpu: write the accuracy-by-instruction-class PNG here")
    p.add_argument("--segment-bars", type=int, default=None, metavar="N",
                   help="abc2midi: convert every tune as MusicConverter.abc_to_midi does, N bars "
                        "at a time where it does, tunes longer than the context too (default: "
                        "leave those out and score the rest whole)")
    p.add_argument("--branches", type=int, default=0, metavar="N",
                   help="music: write each greedy output again from up to N of its closest "
                        "calls and keep the likeliest that passes the tune's test (more calls "
                        "where none does), as `simulator abc2midi --branches N` does (default "
                        "0: greedy alone, untested, unlike the converter)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.add_argument("--quiet", action="store_true")


def run_eval(args: argparse.Namespace) -> int:
    from simulator.distributed import pick_device
    from simulator.evaluate import evaluate, format_table, plot_result

    result = evaluate(args.model, args.data, args.split, args.limit, pick_device(args.device),
                      args.batch_size, show_progress=not args.quiet,
                      segment_bars=args.segment_bars, branches=args.branches)
    print(format_table(result))
    if args.plot and result["task"] == "cpu":
        plot_result(result, args.plot)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    return 0


def add_probe(sub) -> None:
    p = sub.add_parser("probe", help="cpu: single instructions of every class against Unicorn")
    p.add_argument("--model", required=True, help="a CPU run folder or trained/NAME")
    p.add_argument("-n", type=int, default=50, help="random programs per class (default 50)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")


def run_probe(args: argparse.Namespace) -> int:
    from simulator.distributed import pick_device
    from simulator.probe import format_probe, probe

    result = probe(args.model, args.n, args.seed, pick_device(args.device))
    print(format_probe(result))
    if args.json:
        print(json.dumps(result, sort_keys=True))
    return 0


def add_export(sub) -> None:
    p = sub.add_parser("export", help="turn a run folder into a trained/NAME checkpoint")
    p.add_argument("run", help="run folder")
    p.add_argument("dest", help="checkpoint folder to write, e.g. trained/rv32e")
    p.add_argument("--eval-json", default=None,
                   help="a file holding `simulator eval --json` output, for the model card")
    p.add_argument("--average-with", nargs="+", default=None, metavar="CHECKPOINT",
                   help="export the mean of the run's weights and these checkpoints' (of the "
                        "same model and codec: e.g. the checkpoint the run started from)")
    p.add_argument("--abc-body", default=None, choices=list(ABC_BODIES),
                   help="abc2midi: read the ABC prompt's body as written or grouped by beats "
                        "(docs/formats.md), whatever the run read it as")


def run_export(args: argparse.Namespace) -> int:
    from simulator.export import export_run

    export_run(args.run, args.dest, args.eval_json, args.average_with, args.abc_body)
    print(f"exported {args.run} -> {args.dest}")
    return 0


def add_mine(sub) -> None:
    p = sub.add_parser("mine", help="the train rows a model gets wrong, as a corpus of their own")
    p.add_argument("--model", required=True, help="a run folder or trained/NAME")
    p.add_argument("--data", required=True, help="corpus folder whose train split is mined")
    p.add_argument("--out", required=True, help="folder for the mined corpus")
    p.add_argument("--easy-per-hard", type=float, default=1.0, metavar="R",
                   help="also keep R times as many of the rows the model gets right, drawn "
                        "at random (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of that draw")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="auto")
    p.add_argument("--quiet", action="store_true")


def run_mine(args: argparse.Namespace) -> int:
    from simulator.distributed import pick_device
    from simulator.mine import mine

    manifest = mine(args.model, args.data, args.out, args.easy_per_hard, args.seed,
                    args.batch_size, pick_device(args.device), show_progress=not args.quiet)
    a = manifest["args"]
    print(f"{a['hard']} of {a['rows_read']} train rows wrong teacher-forced, kept with "
          f"{a['easy']} right ones -> {args.out}")
    return 0


def add_cpu(sub) -> None:
    p = sub.add_parser("cpu", help="predict a program's register trace beside Unicorn's")
    p.add_argument("program", help="assembly text (a .s file or a string), machine code (.bin), "
                   "or - for stdin (text: assembly; other bytes: machine code)")
    p.add_argument("--init", default=None,
                   help="initial state: REG=VAL,... (others zero, pc = code base) or a file "
                   "holding such pairs or the raw state bytes (default: drawn with --seed)")
    p.add_argument("--model", default=None, help="checkpoint (default: trained/cpu-rv32e)")
    p.add_argument("--json", action="store_true", help="print one JSON object (its keys: docs/formats.md)")
    p.add_argument("--max-steps", type=int, default=None,
                   help="states to run at most (default: Unicorn 1024; the model: what fits "
                   "its context)")
    p.add_argument("--seed", type=int, default=0, help="seed of the drawn initial state")
    p.add_argument("--profile", default=None,
                   help="the model's CPU profile, where its checkpoint does not record it")
    p.add_argument("--device", default="cpu")


def run_cpu(args: argparse.Namespace) -> int:
    from simulator.cpu_inputs import read_init_arg, read_stdin_program
    from simulator.facade import CPUSimulator

    program = read_stdin_program() if args.program == "-" else args.program
    sim = CPUSimulator.from_pretrained(args.model, args.device, args.profile)
    report = sim.compare(program, read_init_arg(args.init), args.max_steps, args.seed)
    print(json.dumps(report.summary()) if args.json else report.format())
    return 0


def _add_music(sub, task: str, source: str, target: str) -> None:
    p = sub.add_parser(task, help=f"convert {source} to {target} with a byte model")
    p.add_argument("input", help=f"the {source} file")
    p.add_argument("-o", "--output", required=True, help=f"the {target} file to write")
    p.add_argument("--model", default=None, help=f"checkpoint (default: trained/{task})")
    p.add_argument("--device", default="cpu")
    p.add_argument("--branches", type=int, default=None, metavar="N",
                   help="write the greedy output again from up to N of its closest calls and "
                        "keep the likeliest that plays as long as the tune (more calls where "
                        "none does; default: the converter's, "
                        "simulator.outputs.DEFAULT_BRANCHES; 0: greedy alone, untested)")
    if task == "abc2midi":
        p.add_argument("--segment-bars", type=int, default=DEFAULT_SEGMENT_BARS, metavar="N",
                       help="a tune of more than N bars (beside a pickup), or one whose whole "
                            "output does not fit or ends too soon, is converted N bars at a time "
                            f"(default {DEFAULT_SEGMENT_BARS}; 0: whole only)")


def run_music(args: argparse.Namespace) -> int:
    from bytesim_common.files import atomic_write
    from simulator.facade import ModelOutputError, MusicConverter

    src, dst = Path(args.input), Path(args.output)
    if not dst.parent.is_dir():
        raise UserError(f"cannot write {dst}: no folder {dst.parent}")
    try:
        data = src.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read {src}: {e.strerror}") from None
    chosen = {} if args.branches is None else {"branches": args.branches}
    conv = MusicConverter.from_pretrained(args.model, args.command, args.device, **chosen)
    try:
        if args.command == "abc2midi":
            try:
                if args.segment_bars < 0:
                    raise UserError(f"--segment-bars must be 0 or more; got {args.segment_bars}")
                out = conv.abc_to_midi(data.decode("utf-8"), args.segment_bars or None)
            except UnicodeDecodeError:
                raise UserError(f"{src} is not UTF-8 ABC text") from None
        else:
            out = conv.midi_to_abc(data).encode("utf-8")
    except ModelOutputError as e:  # the model failed, not the user: exit 1, nothing written
        print(f"simulator: {e}; {dst} not written", file=sys.stderr)
        return 1
    atomic_write(dst, out)
    print(f"wrote {dst} ({len(out)} bytes)")
    return 0


COMMANDS = {"train": run_train, "eval": run_eval, "probe": run_probe, "export": run_export,
            "mine": run_mine, "cpu": run_cpu,
            "abc2midi": run_music, "midi2abc": run_music}


def build_parser() -> argparse.ArgumentParser:
    p = OneLineErrorParser(prog="simulator", description="Train, evaluate and use bytesim byte models.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=OneLineErrorParser)
    add_train(sub)
    add_eval(sub)
    add_probe(sub)
    add_export(sub)
    add_mine(sub)
    add_cpu(sub)
    _add_music(sub, "abc2midi", "ABC", "MIDI")
    _add_music(sub, "midi2abc", "MIDI", "ABC")
    return p


@cli_entry("simulator")
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command not in COMMANDS:
        raise UserError(f"unknown command {args.command!r}")
    return COMMANDS[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
