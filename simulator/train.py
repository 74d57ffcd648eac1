"""`simulator train`: AdamW + warmup + schedule, clipping, bf16 autocast on CUDA, DDP, resume.

Batches are a pure function of (seed, step) (see `simulator.data`), the learning rate a pure
function of the step, and a run folder's checkpoint holds the weights, the optimizer and the RNG
state, so a killed run resumed with `--resume` ends bit-identical to an uninterrupted one (CPU).

The loss of a step is the sum of the token losses of the whole global batch over its number of
target tokens. Under DDP (`torchrun --nproc-per-node N -m simulator train ...`) every rank builds
the same global batch, takes its slice, and scales its sum by world / global tokens, so that the
averaged gradient is exactly the one of a single process at the same global batch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import platform
import shlex
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from bytesim_common.cli import flag_of, option
from bytesim_common.errors import UserError
from bytesim_common.files import atomic_write, atomic_write_json, is_leftover
from bytesim_common.progress import progress_bar
from datagen.corpus import read_manifest
from simulator import __version__
from simulator.checkpoint import (
    latest_checkpoint,
    load_pretrained,
    load_run_state,
    resolve_model_path,
    save_run_state,
)
from simulator.codec import IR_WORDS, MIDI_LAYOUTS, TASKS, codec_from_options, make_codec
from simulator.data import EncodedSplit, batch_sequences, curriculum_sequences, load_split
from simulator.evaluate import split_loss
from simulator.metrics import bits_per_token

RUN_FILE = "run.json"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
# Arguments that decide the trained weights; a resumed run must use the same ones.
IDENTITY = ("task", "data", "preset", "steps", "seed", "batch_size", "lr", "grad_accum",
            "schedule", "warmup", "max_len", "weight_decay", "clip", "ir_word", "bit_embed",
            "local_window", "sort_window", "curriculum", "scheduled_sampling", "init_from",
            "midi_codec")
# IDENTITY keys added later whose default is not what runs from before them did.
ADDED_LATER = {"midi_codec": "file"}
SCHEDULE = ("steps", "warmup", "schedule", "decay_frac", "lr")  # shape only the lr per step
FREE_ON_INIT = ("checkpoint_activations", "max_len", "local_window")  # --init-from may change
CONFIG_OVERRIDES = ("max_len", "local_window", "bit_embed")  # TrainArgs that replace the preset's ModelConfig


@dataclass
class TrainArgs:
    """The arguments of a training run: `simulator train`'s options are built from these fields
    (`bytesim_common.cli.add_dataclass_options`), so each default is defined here only."""

    task: str = option(choices=list(TASKS), help="cpu, abc2midi or midi2abc")
    data: str = option(help="corpus folder (made by `datagen`)")
    out: str = option(help="run folder (checkpoints, metrics, loss curve)")
    preset: str = option("tiny", help="model preset (see simulator.model.PRESETS)")
    steps: int = option(1000, help="optimizer steps")
    seed: int = option(0, help="seed of the weights and of the batches")
    save_every: int = option(200, help="checkpoint every K steps")
    resume: bool = option(False, help="continue the run in --out")
    batch_size: int = option(32, help="sequences per step, over all processes and --grad-accum "
                             "micro-steps")
    lr: float = option(1e-3, help="peak learning rate")
    device: str = option("auto", help="auto (default), cpu, cuda, cuda:N")
    grad_accum: int = option(1, help="micro-steps per optimizer step")
    sort_window: int = option(8, help="batches whose sequences are sorted by length together, so "
                              "that a batch pads less (1 = plain shuffling)")
    eval_every: int = option(100, help="validation loss every K steps")
    valid_limit: int | None = option(1000, help="validation rows scored (the split's first N; "
                                     "0 = all)")
    schedule: str = option("constant", choices=["constant", "cosine"],
                           help="constant with a linear decay over the last --decay-frac of the "
                           "steps (default), or cosine")
    warmup: int | None = option(None, help="linear warmup steps (default: 5%% of --steps, at "
                                "most 200)")
    decay_frac: float = option(0.2, help="constant schedule: the last fraction of the steps "
                               "decays linearly")
    min_lr_ratio: float = option(0.1, help="the lowest learning rate, as a fraction of --lr")
    max_len: int | None = option(None, flag="--context", aliases=("--max-len",), metavar="BYTES",
                                 help="longest sequence in bytes (default: the preset's "
                                 "context); longer sequences are left out and counted")
    local_window: int | None = option(None, help="bytes before its patch that the byte level "
                                      "attends to (the copy path; default: the preset's)")
    bit_embed: bool | None = option(None, help="also embed the 8 bits of every byte (default: "
                                    "the preset's)")
    checkpoint_activations: bool = option(
        False, help="keep only each block's input and recompute its activations in the backward "
        "pass: much less memory for long contexts, the same gradients")
    weight_decay: float = option(0.1, help="AdamW weight decay (matrices only)")
    clip: float = option(1.0, help="gradient norm clipping")
    ir_word: str = option("none", choices=list(IR_WORDS),
                          const_flags={"--interleave-ir": "fetched"},
                          help="cpu: an instruction word in each state block: none; fetched (the "
                          "word at the state's pc, after it, predicted: bGPT's IR); given (the "
                          "same, but given, not predicted, and the trace ends where the "
                          "predicted pc leaves the program); executed (the word executed to "
                          "reach the state, before it, given). Default: none")
    midi_codec: str = option("events", choices=list(MIDI_LAYOUTS),
                             help="abc2midi/midi2abc: the MIDI as its event stream, without the "
                             "header chunk and chunk lengths, generated as well-formed events "
                             "only (default), or as the file's bytes (docs/music.md)")
    init_from: str | None = option(None, metavar="CHECKPOINT",
                                   help="start from this checkpoint's weights (e.g. "
                                   "trained/cpu-rv32e) with a fresh optimizer; its shape and "
                                   "codec must be the run's")
    curriculum: int | None = option(None, metavar="STEPS",
                                    help="draw the first STEPS batches from the shortest "
                                    "sequences, widening linearly from the shortest 10%% to all "
                                    "(default: half of --steps; 0: none)")
    scheduled_sampling: float = option(0.0, metavar="P",
                                       help="replace target inputs by the model's own "
                                       "predictions, a share rising linearly to P at the last "
                                       "step (default 0: teacher forcing)")
    quiet: bool = option(False, help="no progress output")

    @classmethod
    def from_namespace(cls, ns: Any) -> TrainArgs:
        return cls(**{f.name: getattr(ns, f.name) for f in fields(cls) if hasattr(ns, f.name)})


def default_warmup(args: TrainArgs) -> int:
    return args.warmup if args.warmup is not None else min(200, max(1, args.steps // 20))


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


def check_schedule_prefix(old: TrainArgs, new: TrainArgs, done: int) -> None:
    """--resume may change --steps (and the other SCHEDULE args) only where the learning rate of
    every step already done stays the same: then the run ends as an uninterrupted one would."""
    wo, wn = default_warmup(old), default_warmup(new)
    for s in range(done):
        if lr_at(s, old, wo) != lr_at(s, new, wn):
            raise UserError(
                f"--resume: the learning-rate schedule (--steps, --warmup, --schedule, "
                f"--decay-frac, --lr) now differs at step {s}, which the run has done (it is at "
                f"step {done}); keep the schedule, or pass --warmup {wo} if only the default "
                f"warmup moved")


def lr_at(step: int, args: TrainArgs, warmup: int) -> float:
    """The learning rate of optimizer step `step` (counted from 0)."""
    base, low = args.lr, args.lr * args.min_lr_ratio
    if step < warmup:
        return base * (step + 1) / warmup
    if args.schedule == "cosine":
        p = (step - warmup) / max(1, args.steps - warmup)
        return low + (base - low) * 0.5 * (1 + math.cos(math.pi * p))
    start = args.steps - max(1, int(args.decay_frac * args.steps))
    if step < start:
        return base
    return low + (base - low) * (args.steps - step) / (args.steps - start)


# ---------------------------------------------------------------------------------------------
# Set-up


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def all_sum(self, x: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            dist.all_reduce(x)
        return x

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def init_distributed(device: str) -> Dist:
    """Join the process group torchrun set up (NCCL on CUDA, gloo on CPU), if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def pick_device(name: str, d: Dist | None = None) -> str:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError("--device cuda asked, but torch sees no CUDA device")
        if d is not None and d.world > 1 and name == "cuda":
            name = f"cuda:{d.local_rank}"
    elif name != "cpu":
        raise UserError(f"--device takes auto, cpu, cuda or cuda:N; got {name!r}")
    return name


def hardware(device: str) -> str:
    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name(torch.device(device))} (CUDA)"
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"


def check_args(args: TrainArgs, d: Dist) -> None:
    if args.task not in TASKS:
        raise UserError(f"--task takes {', '.join(TASKS)}; got {args.task!r}")
    if args.schedule not in ("constant", "cosine"):
        raise UserError(f"--schedule takes constant or cosine; got {args.schedule!r}")
    if args.midi_codec not in MIDI_LAYOUTS:
        raise UserError(f"--midi-codec takes {' or '.join(MIDI_LAYOUTS)}; "
                        f"got {args.midi_codec!r}")
    for name in ("steps", "batch_size", "grad_accum", "save_every", "eval_every", "sort_window"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1")
    if args.valid_limit is not None and args.valid_limit < 0:
        raise UserError(f"--valid-limit must be 0 (all) or more; got {args.valid_limit}")
    if args.curriculum is not None and args.curriculum < 0:
        raise UserError(f"--curriculum must be 0 (none) or more steps; got {args.curriculum}")
    if not 0.0 <= args.scheduled_sampling <= 1.0:
        raise UserError(f"--scheduled-sampling must be in [0, 1]; got {args.scheduled_sampling}")
    if args.lr <= 0:
        raise UserError(f"--lr must be positive; got {args.lr}")
    if args.batch_size % (d.world * args.grad_accum):
        raise UserError(f"--batch-size {args.batch_size} must be a multiple of processes x "
                        f"--grad-accum = {d.world} x {args.grad_accum}")


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


def _adopt_schedule(args: TrainArgs, run: Path, done: int, d: Dist) -> None:
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
        if f.name in ("task", "data", "out") or value != getattr(defaults, f.name):
            flag = flag_of(f)
            if isinstance(value, bool):
                argv += [flag] if value else []
            else:
                argv += [flag, str(value)]
    return shlex.join(argv)


def make_optimizer(model: torch.nn.Module, args: TrainArgs, device: str) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices only (not on norms, biases)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": args.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.95), eps=1e-8,
                             fused=device.startswith("cuda"))


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


# ---------------------------------------------------------------------------------------------
# Training


def sample_inputs(model, ids: torch.Tensor, replace: torch.Tensor) -> torch.Tensor:
    """Scheduled sampling, in parallel: `ids` (b, T) with the bytes where `replace` (b, T) holds
    swapped for the model's own teacher-forced predictions of them (no gradient)."""
    with torch.no_grad():
        pred = model(ids).argmax(-1)  # (b, T): logits[:, t] predicts ids[:, t]
    return torch.where(replace, pred, ids)


def initial_weights(path: str, config, codec_options: dict[str, Any]):
    """--init-from: the model saved in `path` (a checkpoint or a run folder), which must have
    this run's shape and codec layout; the CPU profile may differ (a ladder from rv32e-mini
    to rv32e: the model knows nothing of state sizes), and so may `FREE_ON_INIT`: the context
    (positions are rotary) and the byte level's window (a bigger state needs a longer reach);
    no weight's shape depends on them."""
    model, meta = load_pretrained(resolve_model_path(path))
    have, want = model.config.to_dict(), config.to_dict()
    diff = [f"{k} {have[k]!r} there, {want[k]!r} here" for k in want
            if k not in FREE_ON_INIT and have[k] != want[k]]
    have_codec = codec_from_options(meta["codec"]).options()  # checkpoints of older layouts too
    diff += [f"codec {k} {have_codec.get(k)!r} there, {v!r} here"  # a ladder may change the CPU
             for k, v in codec_options.items() if k != "profile" and have_codec.get(k) != v]
    if diff:
        raise UserError(f"--init-from {path} does not fit this run: {'; '.join(diff[:3])}")
    model.config.max_len = config.max_len
    return model.train()


def _step_loss(model, train: EncodedSplit, seqs: np.ndarray, args: TrainArgs, d: Dist,
               device: str, step: int) -> float:
    """Forward + backward of this rank's slice of the global batch `seqs`; the global mean loss.

    With --scheduled-sampling P the model reads, at step s, a share P * s / steps of its target
    inputs from its own predictions; which ones is drawn for the global batch from (seed, step),
    so processes and micro-steps change nothing. The loss is still against the true bytes."""
    length = int(train.lengths[seqs].max())
    n_tokens = int(train.n_targets[seqs].sum())
    rows = np.array_split(np.arange(len(seqs)), d.world * args.grad_accum)[
        d.rank * args.grad_accum:(d.rank + 1) * args.grad_accum]
    p_sampled = args.scheduled_sampling * step / args.steps
    if p_sampled:  # which target inputs the model's predictions replace, for the global batch
        coins = np.random.default_rng([args.seed, step, 3]).random((len(seqs), length)) < p_sampled
    total = torch.zeros((), dtype=torch.float64, device=device)
    for i, part in enumerate(rows):
        ids_np, mask_np = train.batch(seqs[part], length)
        ids = torch.from_numpy(ids_np).to(device)  # (b, T)
        mask = torch.from_numpy(mask_np).to(device)  # (b, T)
        sync = i == len(rows) - 1 or d.world == 1
        ctx = model.no_sync() if not sync else contextlib.nullcontext()
        with ctx, torch.autocast("cuda", torch.bfloat16, enabled=device.startswith("cuda")):
            inputs = ids
            if p_sampled:
                replace = torch.from_numpy(mask_np & coins[part]).to(device)  # (b, T)
                inputs = sample_inputs(model, ids, replace)
            logits = model(inputs)  # (b, T, V)
            loss_sum = F.cross_entropy(logits[mask].float(), ids[mask], reduction="sum")
            (loss_sum * (d.world / n_tokens)).backward()
        total += loss_sum.detach().double()
    return float(d.all_sum(total).item()) / n_tokens


def train(args: TrainArgs) -> dict[str, Any]:
    """Train (or resume) a run; return its summary."""
    from simulator.model import PRESETS, ByteModel

    d = init_distributed(args.device if args.device != "auto" else
                         ("cuda" if torch.cuda.is_available() else "cpu"))
    device = pick_device(args.device, d)
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
        torch.backends.cuda.matmul.allow_tf32 = True
    check_args(args, d)
    if args.task == "cpu":  # no MIDI in a CPU run: recorded as the layout runs before it had
        args.midi_codec = ADDED_LATER["midi_codec"]
    if args.preset not in PRESETS:
        raise UserError(f"unknown --preset {args.preset!r}; known: {', '.join(PRESETS)}")
    args.data = str(Path(args.data).resolve())
    overrides = {k: getattr(args, k) for k in CONFIG_OVERRIDES if getattr(args, k) is not None}
    try:
        config = dataclasses.replace(PRESETS[args.preset], **overrides)
    except ValueError as e:
        raise UserError(f"--preset {args.preset} with {overrides}: {e}") from None
    args.max_len = config.max_len
    resolve_curriculum(args)
    profile = read_manifest(args.data, "cpu")["args"]["profile"] if args.task == "cpu" else None
    codec = make_codec(args.task, align=config.patch_sizes[0], ir_word=args.ir_word,
                       profile=profile, midi=args.midi_codec)
    run = Path(args.out)
    log = sys.stderr if d.main and not args.quiet else None
    train_split = load_split(args.data, args.task, codec, "train", args.max_len, log=log)
    valid_split = load_split(args.data, args.task, codec, "valid", args.max_len, required=False,
                             log=log, limit=args.valid_limit or None)
    codec_info = codec.options()
    # checked before the run folder is made: a checkpoint that does not fit leaves no run
    start_from = initial_weights(args.init_from, config, codec_info) if args.init_from else None
    resume_from = prepare_run(args, d, device)  # after the data is read: a bad corpus leaves no run

    torch.manual_seed(args.seed)
    start, elapsed, cpu = 0, 0.0, 0.0  # wall and CPU seconds of the steps done
    if resume_from is None:
        model = ByteModel(config) if start_from is None else start_from
    else:
        model, _ = load_pretrained(resume_from)
        model.train()
    model.config.checkpoint_activations = args.checkpoint_activations  # memory, not the weights
    model.to(device)
    optimizer = make_optimizer(model, args, device)
    if resume_from is not None:
        state = load_run_state(resume_from)
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng_torch"])
        if device.startswith("cuda") and "rng_cuda" in state:
            torch.cuda.set_rng_state(state["rng_cuda"])
        start, elapsed = int(state["step"]), float(state["elapsed"])
        cpu = float(state.get("cpu", 0.0))
    if args.resume:
        _adopt_schedule(args, run, start, d)
    net = model
    if d.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[torch.device(device).index] if device.startswith("cuda") else None)
    warmup = default_warmup(args)
    by_length = np.argsort(train_split.lengths, kind="stable") if args.curriculum else None

    def checkpoint(step: int) -> None:
        if d.main:
            state = {"step": step, "elapsed": elapsed, "cpu": cpu,
                     "optimizer": optimizer.state_dict(),
                     "rng_torch": torch.get_rng_state()}
            if device.startswith("cuda"):
                state["rng_cuda"] = torch.cuda.get_rng_state()
            save_run_state(run, model, codec_info, args.preset, state)
        d.barrier()

    bar = progress_bar(args.steps, f"train {args.task}", "steps", d.main and not args.quiet,
                       initial=start)
    last: dict[str, Any] = (read_metrics(run) or [{}])[-1] if d.main else {}
    try:
        for step in range(start, args.steps):
            t0, c0 = time.perf_counter(), time.process_time()
            lr = lr_at(step, args, warmup)
            for group in optimizer.param_groups:
                group["lr"] = lr
            if step < args.curriculum:
                seqs = curriculum_sequences(by_length, args.seed, step, args.batch_size,
                                            args.curriculum)
            else:
                seqs = batch_sequences(train_split.lengths, args.seed, step, args.batch_size,
                                       args.sort_window)
            loss = _step_loss(net, train_split, seqs, args, d, device, step)
            grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip))
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            elapsed += dt
            cpu += time.process_time() - c0  # this process's threads: what a shared machine gave
            rec = {"step": step + 1, "loss": loss, "bpb": bits_per_token(loss), "lr": lr,
                   "grad_norm": grad_norm, "tokens": int(train_split.n_targets[seqs].sum()),
                   "time_s": round(elapsed, 3), "cpu_s": round(cpu, 3),
                   "bytes_per_s": round(int(train_split.lengths[seqs].sum()) / dt, 1)}
            done = step + 1
            if len(valid_split) and (done % args.eval_every == 0 or done == args.steps):
                vloss = split_loss(model, valid_split, args.batch_size // d.world, device, d)
                rec.update(valid_loss=vloss, valid_bpb=bits_per_token(vloss))
            if d.main:
                with open(run / METRICS, "a") as f:
                    f.write(json.dumps(rec, sort_keys=True) + "\n")
            last = rec
            bar.update(1)
            bar.set_postfix_str(f"loss {loss:.4f} bpb {rec['bpb']:.3f}")
            if done % args.save_every == 0 or done == args.steps:
                checkpoint(done)
    except OSError as e:  # a full disk, a folder made read-only: the last checkpoint is intact
        raise UserError(f"writing the run folder {run} failed: {e.strerror or e}; its last "
                        "complete checkpoint is kept, run again with --resume") from None
    finally:
        bar.close()
    summary = {"steps": args.steps, "wall_s": round(elapsed, 1), "cpu_s": round(cpu, 1),
               "hardware": hardware(device),
               "processes": d.world, "final": last,
               "sequences": {"train": len(train_split), "valid": len(valid_split),
                             "left_out_longer_than_max_len": train_split.n_too_long
                             + valid_split.n_too_long},
               "params": sum(p.numel() for p in model.parameters())}
    if d.main:
        atomic_write_json(run / SUMMARY, summary)
        from simulator.metrics import plot_losses

        plot_losses(read_metrics(run), run / "loss.png", title=f"{args.task} {args.preset}")
        _tensorboard(run, read_metrics(run))
    d.barrier()
    return summary


def _tensorboard(run: Path, records: list[dict[str, Any]]) -> None:
    """Mirror metrics.jsonl as TensorBoard scalars when tensorboard is installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return
    with SummaryWriter(str(run / "tb")) as w:
        for r in records:
            for k, v in r.items():
                if k != "step" and isinstance(v, (int, float)):
                    w.add_scalar(k, v, r["step"])
