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
import copy
import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bytesim_common.errors import UserError
from bytesim_common.files import atomic_write_json
from bytesim_common.progress import progress_bar
from datagen.corpus import read_manifest
from simulator.checkpoint import (
    latest_checkpoint,
    load_pretrained,
    load_run_state,
    resolve_model_path,
    save_run_state,
)
from simulator.codec import AUX_TARGETS, RECORD_LAYOUTS, codec_from_options, make_codec
from simulator.data import EncodedSplit, batch_sequences, curriculum_sequences, load_split
from simulator.distributed import Dist, hardware, init_distributed, pick_device
from simulator.evaluate import split_loss
from simulator.metrics import bits_per_token
from simulator.run_folder import (
    ADDED_LATER,
    METRICS,
    SUMMARY,
    TASK_OPTIONS,
    adopt_schedule,
    prepare_run,
    read_metrics,
    resolve_curriculum,
)
from simulator.schedule import default_warmup, lr_at
from simulator.train_args import CONFIG_OVERRIDES, TrainArgs, check_args

# --init-from may change these (an auxiliary head that differs is drawn afresh)
FREE_ON_INIT = ("checkpoint_activations", "max_len", "local_window", "aux_outputs")
# ... and these codec options: the CPU profile (a ladder), what comes before the records, the
# ABC's and the MIDI's layouts and the ABC's header and body
CODEC_FREE_ON_INIT = ("profile", "abc", "midi", "prompt", "header", "body")


def make_optimizer(model: torch.nn.Module, args: TrainArgs, device: str) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices only (not on norms, biases)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": args.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.95), eps=1e-8,
                             fused=device.startswith("cuda"))


def average_decay(decay: float, updates: int) -> float:
    """--ema's decay for the update after `updates` of them: `decay`, or (1 + n) / (10 + n)
    while that is lower, so that the weights a run starts from (random, or --init-from's) are
    forgotten within its first steps instead of over 1 / (1 - decay) of them."""
    return min(decay, (1 + updates) / (10 + updates))


@torch.no_grad()
def update_average(average: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """average <- decay * average + (1 - decay) * model, parameter by parameter."""
    for a, p in zip(average.parameters(), model.parameters(), strict=True):
        a.lerp_(p, 1.0 - decay)


def sample_inputs(model, ids: torch.Tensor, replace: torch.Tensor) -> torch.Tensor:
    """Scheduled sampling, in parallel: `ids` (b, T) with the bytes where `replace` (b, T) holds
    swapped for the model's own teacher-forced predictions of them (no gradient)."""
    with torch.no_grad():
        pred = model(ids).argmax(-1)  # (b, T): logits[:, t] predicts ids[:, t]
    return torch.where(replace, pred, ids)


def initial_weights(path: str, config, codec_options: dict[str, Any]):
    """--init-from: the model saved in `path` (a checkpoint or a run folder), which must have
    this run's shape and codec layout; the CPU profile may differ (a ladder from rv32e-mini
    to rv32e: the model knows nothing of state sizes), and so may the ABC's and the MIDI's
    layouts and the ABC's header and body (no weight depends on them) and `FREE_ON_INIT`: the context
    (positions are rotary) and the byte level's window (a bigger state needs a longer reach);
    no weight's shape depends on them. A preset with more blocks at some level than the checkpoint (and its shape
    otherwise) grows it deeper: the new blocks start as identities (`ByteModel.reshaped`)."""
    model, meta = load_pretrained(resolve_model_path(path))
    have, want = model.config.to_dict(), config.to_dict()
    deeper = len(have["n_layers"]) == len(want["n_layers"]) and all(  # grown by the preset
        h <= w for h, w in zip(have["n_layers"], want["n_layers"]))
    diff = [f"{k} {have[k]!r} there, {want[k]!r} here" for k in want
            if k not in FREE_ON_INIT and have[k] != want[k] and not (k == "n_layers" and deeper)]
    have_codec = codec_from_options(meta["codec"]).options()  # checkpoints of older layouts too
    diff += [f"codec {k} {have_codec.get(k)!r} there, {v!r} here"  # a ladder may change the CPU
             for k, v in codec_options.items() if k not in CODEC_FREE_ON_INIT
             and have_codec.get(k) != v]
    if diff:
        raise UserError(f"--init-from {path} does not fit this run: {'; '.join(diff[:3])}")
    model = model.reshaped(dataclasses.replace(model.config, max_len=config.max_len,
                                               local_window=config.local_window,
                                               n_layers=config.n_layers))
    if model.config.aux_outputs != config.aux_outputs:
        model.add_aux_head(config.aux_outputs)
    return model.train()


def _step_loss(model, train: EncodedSplit, seqs: np.ndarray, args: TrainArgs, d: Dist,
               device: str, step: int) -> tuple[float, float]:
    """Forward + backward of this rank's slice of the global batch `seqs`; the global mean loss
    of the bytes, and the auxiliary loss (`--aux-targets`) over the same number of tokens.

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
    total = torch.zeros(2, dtype=torch.float64, device=device)  # bytes' loss, auxiliary loss
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
            if args.aux_targets == "none":
                logits = model(inputs)  # (b, T, V)
                aux_sum = torch.zeros((), device=device)
            else:
                logits, aux = model(inputs, aux=True)  # (b, T, V), (b, T, A)
                aux_sum = _aux_loss(aux, train.aux_batch(seqs[part], length), device)
            loss_sum = F.cross_entropy(logits[mask].float(), ids[mask], reduction="sum")
            ((loss_sum + args.aux_weight * aux_sum) * (d.world / n_tokens)).backward()
        total += torch.stack([loss_sum, aux_sum]).detach().double()
    loss, aux_loss = (d.all_sum(total) / n_tokens).tolist()
    return loss, aux_loss


def _aux_loss(aux: torch.Tensor, targets_np: np.ndarray, device: str) -> torch.Tensor:
    """The auxiliary loss of a micro-batch: at each position with targets (B, T, A; NaN: none),
    the mean binary cross-entropy of its A outputs (logits) against its A target bits, summed
    over positions like the bytes' loss."""
    targets = torch.from_numpy(targets_np).to(device)
    has = ~targets[..., 0].isnan()  # (b, T)
    return F.binary_cross_entropy_with_logits(
        aux[has].float(), targets[has], reduction="sum") / max(targets.shape[-1], 1)


def _device(args: TrainArgs) -> tuple[Dist, str]:
    """Join the process group, if any, and pick this rank's device."""
    d = init_distributed(args.device if args.device != "auto" else
                         ("cuda" if torch.cuda.is_available() else "cpu"))
    device = pick_device(args.device, d)
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
        torch.backends.cuda.matmul.allow_tf32 = True
    return d, device


def _config_and_codec(args: TrainArgs):
    """The model's shape (the preset with the run's overrides) and the task's codec; fills in
    the arguments that default to the preset's or the corpus's."""
    from simulator.model import PRESETS

    for name, tasks in TASK_OPTIONS.items():  # another task's option: recorded as runs before it
        if args.task not in tasks:
            setattr(args, name, ADDED_LATER[name])
    if args.preset not in PRESETS:
        raise UserError(f"unknown --preset {args.preset!r}; known: {', '.join(PRESETS)}")
    args.data = str(Path(args.data).resolve())
    overrides = {k: getattr(args, k) for k in CONFIG_OVERRIDES if getattr(args, k) is not None}
    overrides["aux_outputs"] = AUX_TARGETS[args.aux_targets]
    if args.aux_targets != "none" and args.cpu_layout not in RECORD_LAYOUTS:
        raise UserError(f"--aux-targets {args.aux_targets} needs commit records (--cpu-layout "
                        f"{' or '.join(RECORD_LAYOUTS)})")
    try:
        config = dataclasses.replace(PRESETS[args.preset], **overrides)
    except ValueError as e:
        raise UserError(f"--preset {args.preset} with {overrides}: {e}") from None
    args.max_len = config.max_len
    resolve_curriculum(args)
    profile = read_manifest(args.data, "cpu")["args"]["profile"] if args.task == "cpu" else None
    # segments start on 16-byte boundaries (header patches) and on the model's patches
    align = math.lcm(16, config.patch_sizes[0])
    try:
        codec = make_codec(args.task, align=align, ir_word=args.ir_word,
                           profile=profile, midi=args.midi_codec, layout=args.cpu_layout,
                           abc=args.abc_layout, prompt=args.record_prompt,
                           header=args.abc_header, body=args.abc_body)
        if args.task == "cpu":
            codec.block(profile)  # a layout the profile cannot have fails here, in one line
    except ValueError as e:
        raise UserError(str(e)) from None
    return config, codec


def train(args: TrainArgs) -> dict[str, Any]:
    """Train (or resume) a run; return its summary."""
    from simulator.model import ByteModel

    d, device = _device(args)
    check_args(args, d)
    config, codec = _config_and_codec(args)
    run = Path(args.out)
    log = sys.stderr if d.main and not args.quiet else None
    train_split = load_split(args.data, args.task, codec, "train", args.max_len, log=log,
                             aux=args.aux_targets)
    valid_split = load_split(args.data, args.task, codec, "valid", args.max_len, required=False,
                             log=log, limit=args.valid_limit or None)
    codec_info = codec.options()
    # --init-from is read (and checked) before the run folder is made, so that a checkpoint
    # that does not fit leaves no run; a run resumed from a checkpoint of its own skips it
    start_from = (initial_weights(args.init_from, config, codec_info)
                  if args.init_from and not (args.resume and latest_checkpoint(run)) else None)
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
    # --ema: the average is what checkpoints hold (and what is validated and exported); the
    # weights being trained are kept beside it in the run state, to resume from
    average = copy.deepcopy(model).eval().requires_grad_(False) if args.ema else None
    saved = average if average is not None else model
    optimizer = make_optimizer(model, args, device)
    if resume_from is not None:
        state = load_run_state(resume_from)
        if average is not None:
            model.load_state_dict(state["weights"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng_torch"])
        if device.startswith("cuda") and "rng_cuda" in state:
            torch.cuda.set_rng_state(state["rng_cuda"])
        start, elapsed = int(state["step"]), float(state["elapsed"])
        cpu = float(state.get("cpu", 0.0))
    if args.resume:
        adopt_schedule(args, run, start, d)
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
            if average is not None:
                state["weights"] = model.state_dict()
            save_run_state(run, saved, codec_info, args.preset, state)
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
            loss, aux_loss = _step_loss(net, train_split, seqs, args, d, device, step)
            grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip))
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if average is not None:
                update_average(average, model, average_decay(args.ema, step))
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            elapsed += dt
            cpu += time.process_time() - c0  # this process's threads: what a shared machine gave
            rec = {"step": step + 1, "loss": loss, "bpb": bits_per_token(loss), "lr": lr,
                   "grad_norm": grad_norm, "tokens": int(train_split.n_targets[seqs].sum()),
                   "time_s": round(elapsed, 3), "cpu_s": round(cpu, 3),
                   "bytes_per_s": round(int(train_split.lengths[seqs].sum()) / dt, 1)}
            if args.aux_targets != "none":
                rec["aux_loss"] = aux_loss
            done = step + 1
            if len(valid_split) and (done % args.eval_every == 0 or done == args.steps):
                vloss = split_loss(saved, valid_split, args.batch_size // d.world, device, d)
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
