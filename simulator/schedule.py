"""The learning rate of every optimizer step: a pure function of the step and the arguments,
so that a resumed run, or one whose --steps changed where no done step's rate moves, ends as an
uninterrupted one would."""

from __future__ import annotations

import math

from bytesim_common.errors import UserError
from simulator.train_args import TrainArgs


def default_warmup(args: TrainArgs) -> int:
    return args.warmup if args.warmup is not None else min(200, max(1, args.steps // 20))


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
