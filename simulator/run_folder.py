"""A training run's folder: `run.json` (the arguments that decide the weights, the command that
makes the run, where and when it started), `metrics.jsonl`, `summary.json`, and the resume
policy: a run resumes only with the arguments it was started with, except a learning-rate
schedule that keeps every done step's rate."""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import asdict, fields
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from bytesim_common.cli import flag_of
from bytesim_common.errors import UserError
from bytesim_common.files import atomic_write, atomic_write_json, is_leftover
from simulator import __version__
from simulator.checkpoint import latest_checkpoint
from simulator.distributed import Dist, hardware
from simulator.schedule import check_schedule_prefix
from simulator.train_args import TrainArgs

RUN_FILE = "run.json"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
# Arguments that decide the trained weights; a resumed run must use the same ones.
IDENTITY = ("task", "data", "preset", "steps", "seed", "batch_size", "lr", "grad_accum",
            "schedule", "warmup", "max_len", "weight_decay", "clip", "ir_word", "bit_embed",
            "local_window", "sort_window", "curriculum", "scheduled_sampling", "init_from",
            "midi_codec", "cpu_layout", "bit_head", "aux_targets", "aux_weight", "abc_layout",
            "ema", "record_prompt", "abc_header", "abc_body")
# IDENTITY keys added later, with what runs from before them did (for ir_word and midi_codec,
# not today's default); another task's option is recorded with this value too.
ADDED_LATER = {"midi_codec": "file", "ir_word": "none", "cpu_layout": "states", "bit_head": None,
               "aux_targets": "none", "aux_weight": 1.0, "abc_layout": "text", "ema": 0.0,
               "record_prompt": "full", "abc_header": "canonical", "abc_body": "as-written"}
# options that only one kind of task reads (the others record ADDED_LATER's value)
TASK_OPTIONS = {"ir_word": ("cpu",), "cpu_layout": ("cpu",), "record_prompt": ("cpu",),
                "aux_targets": ("cpu",), "aux_weight": ("cpu",),
                "midi_codec": ("abc2midi", "midi2abc"), "abc_layout": ("abc2midi", "midi2abc"),
                "abc_header": ("abc2midi", "midi2abc"),  # midi2abc refuses "untitled"
                "abc_body": ("abc2midi", "midi2abc")}  # and "beats"
SCHEDULE = ("steps", "warmup", "schedule", "decay_frac", "lr")  # shape only the lr per step


def resolve_curriculum(args: TrainArgs) -> None:
    """--curriculum's default: half the steps of the run as it is created. It is recorded in
    run.json, so a resumed run keeps it whatever its --steps are now."""
    if args.curriculum is not None:
        return
    info = Path(args.out) / RUN_FILE
    if args.resume and info.exists():
        args.curriculum = json.loads(info.read_text())["args"].get("curriculum", 0)
    else:
        args.curriculum = args.steps // 2


def _flag(name: str) -> str:
    """The command-line spelling of the TrainArgs field `name`."""
    return next(flag_of(f) for f in fields(TrainArgs) if f.name == name)


def _identity(args: TrainArgs) -> dict[str, Any]:
    return {k: getattr(args, k) for k in IDENTITY}


def prepare_run(args: TrainArgs, d: Dist, device: str) -> Path | None:
    """Create RUN (or check it for --resume); return the checkpoint to resume from, if any.

    Rank 0 checks and writes; the other ranks wait for it, then read the same folder.
    """
    run = Path(args.out)
    if d.main:
        _check_or_create_run(args, run, d.world, device)
    d.barrier()
    return latest_checkpoint(run) if args.resume else None


def _check_or_create_run(args: TrainArgs, run: Path, world: int, device: str) -> None:
    info = run / RUN_FILE
    if args.resume:
        if not info.exists():
            raise UserError(f"--resume: {run} holds no run ({RUN_FILE} is missing; a run killed "
                            "before it was written has nothing to resume: start it without "
                            "--resume)")
        have = json.loads(info.read_text())["identity"]
        have = {k: have.get(k, ADDED_LATER.get(k, getattr(TrainArgs, k, None)))
                for k in IDENTITY}  # runs from before a key was added
        diff = [f"{_flag(k)} {have[k]!r} there, {v!r} now"
                for k, v in _identity(args).items() if have[k] != v and k not in SCHEDULE]
        if diff:
            raise UserError(f"--resume with other arguments than {run} was started with: "
                            f"{'; '.join(diff[:3])}")
        return
    if info.exists():
        raise UserError(f"{run} already holds a run; add --resume to continue it, or use "
                        "another --out")
    if run.exists() and not all(is_leftover(p) for p in run.iterdir()):
        raise UserError(f"{run} is not empty and holds no run; use another --out")
    run.mkdir(parents=True, exist_ok=True)
    atomic_write_json(info, {
        "identity": _identity(args), "args": asdict(args), "bytesim_version": __version__,
        "command": command_line(args, world),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z"), "hardware": hardware(device),
        "processes": world, "torch": torch.__version__})


def adopt_schedule(args: TrainArgs, run: Path, done: int, d: Dist) -> None:
    """On --resume: check a changed schedule against the steps done, record it, drop the metrics
    of steps after the checkpoint."""
    info = json.loads((run / RUN_FILE).read_text())
    old = TrainArgs.from_namespace(SimpleNamespace(**info["args"]))
    check_schedule_prefix(old, args, done)
    if d.main:
        if any(getattr(old, k) != getattr(args, k) for k in SCHEDULE):
            info.update(identity=_identity(args), args=asdict(args),
                        command=command_line(args, d.world))
            atomic_write_json(run / RUN_FILE, info)
        _truncate_metrics(run, done)


def command_line(args: TrainArgs, world: int = 1) -> str:
    """The `simulator train` command that makes this run (non-default arguments only)."""
    defaults = TrainArgs(task=args.task, data=args.data, out=args.out)
    argv = ["simulator", "train"] if world == 1 else [
        "torchrun", f"--nproc-per-node={world}", "-m", "simulator", "train"]
    for f in fields(TrainArgs):
        value = getattr(args, f.name)
        if f.name == "resume":  # the command that makes the run, not how it was continued
            continue
        if args.task not in TASK_OPTIONS.get(f.name, (args.task,)):  # not this task's option
            continue
        if f.name in ("task", "data", "out") or value != getattr(defaults, f.name):
            flag = flag_of(f)
            if isinstance(value, bool):
                argv += [flag] if value else []
            else:
                argv += [flag, str(value)]
    return shlex.join(argv)


def read_metrics(run: Path | str) -> list[dict[str, Any]]:
    path = Path(run) / METRICS
    if not path.exists():
        return []
    lines = path.read_text().split("\n")[:-1]  # a torn last line (no newline) is dropped
    return [json.loads(line) for line in lines if line.strip()]


def _truncate_metrics(run: Path, step: int) -> None:
    """Drop the records a killed run wrote after its last checkpoint (they will be redone)."""
    kept = [r for r in read_metrics(run) if r["step"] <= step]
    text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept)
    atomic_write(run / METRICS, text.encode())
