"""Greedy outputs of a model for a codec's samples: the one path from prompts to output ids that
the facade and `simulator eval` share, so that the evaluation scores what a user gets.

- `greedy_ids`: each sample's prompt continued greedily, constrained to the shape of valid output
  (`Codec.constraint`), stopping at END.
- `music_outputs`: the same for conversions, with the context's room rule: an output ends only if
  its END stands where the whole end patch still fits the context (as in training, where every
  sequence ends with a whole end patch); a prompt that leaves less than a patch of room is not run.
  With `branches`, the greedy output is then written again from its closest calls
  (`branched_ids`), and the likeliest output is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from simulator.codec import END, VOCAB_SIZE, Codec, MusicCodec, MusicPair, generation_constraint
from simulator.generate import eval_mode

# A greedy output branches only where the runner-up had at least this probability (given
# the constraint): below it, the runner-up's output is seldom the likelier one.
BRANCH_FLOOR = 0.1
# The converter's branches (`MusicConverter`, `simulator abc2midi`): on the default abc2midi
# of 2026-12-05, 3 branches took M2's note_f1 from 0.941 to 0.947 and M1's from 0.9889 to
# 0.9896 for 1.3x (M1) to 1.7x (M2) the time per tune (docs/music.md, thirty-ninth session).
DEFAULT_BRANCHES = 3


def greedy_ids(model, codec: Codec, samples: Sequence[Any], max_new: int,
               prompts: Sequence[list[int]] | None = None) -> list[list[int]]:
    """The new ids after each sample's prompt (at most `max_new`; up to and with END)."""
    prompts = [codec.prompt(s).tolist() for s in samples] if prompts is None else prompts
    allowed = generation_constraint([codec.constraint(s) for s in samples],
                                    [len(p) for p in prompts])
    return model.generate(prompts, max_new, temperature=0.0, stop_id=END, allowed=allowed)


@dataclass(frozen=True)
class Output:
    """A conversion's output ids (cut where the context ends) and whether it ended in time."""

    ids: list[int]
    ends: bool


def output_room(context: int, prompt_len: int, align: int) -> int:
    """The output ids before the end patch that fit the context after a prompt."""
    return context - prompt_len - align


def music_outputs(model, codec: MusicCodec, samples: Sequence[MusicPair],
                  prompts: Sequence[list[int]] | None = None,
                  branches: int = 0) -> list[Output | None]:
    """Each sample's greedy output in one batch; None where the prompt leaves no room. With
    `branches`, each output is written again from up to that many of its closest calls
    (`branched_ids`)."""
    prompts = [codec.prompt(s).tolist() for s in samples] if prompts is None else prompts
    rooms = [output_room(model.config.max_len, len(p), codec.align) for p in prompts]
    fits = [i for i, room in enumerate(rooms) if room >= codec.align]
    outputs: list[Output | None] = [None] * len(samples)
    if fits:
        chosen, chosen_prompts = [samples[i] for i in fits], [prompts[i] for i in fits]
        limits = [rooms[i] + 1 for i in fits]  # END may take the end patch's first place
        outs = greedy_ids(model, codec, chosen, max(limits), chosen_prompts)
        outs = [out[:limit] for out, limit in zip(outs, limits)]
        if branches:
            outs = branched_ids(model, codec, chosen, chosen_prompts, outs, limits, branches)
        for i, out in zip(fits, outs):
            outputs[i] = Output(out, END in out)
    return outputs


@dataclass(frozen=True)
class _Scored:
    """An output's log-probability under the constrained model (the sum over the ids it chose
    where the constraint left more than one), and its branch points, closest calls first:
    (position, runner-up id) where the runner-up's probability was at least BRANCH_FLOOR."""

    logp: float
    branch_points: list[tuple[int, int]]


@torch.no_grad()
def _scored(model, codec: Codec, samples: Sequence[Any], prompts: Sequence[list[int]],
            outs: Sequence[list[int]]) -> list[_Scored]:
    """Each output scored teacher-forced after its prompt, in one forward pass."""
    unit = model.config.patch_sizes[0]
    lengths = [len(p) + len(o) for p, o in zip(prompts, outs)]
    width = -(-max(lengths) // unit) * unit
    ids = torch.zeros(len(outs), width, dtype=torch.long, device=model.head.weight.device)
    for b, (p, o) in enumerate(zip(prompts, outs)):
        ids[b, :lengths[b]] = torch.tensor(p + o)
    with eval_mode(model):
        logits = model(ids).float().cpu()  # (B, width, V)
    scored = []
    for b, (sample, prompt, out) in enumerate(zip(samples, prompts, outs)):
        if not out:
            scored.append(_Scored(0.0, []))
            continue
        allowed = codec.constraint(sample).for_generate(len(prompt))
        seq = prompt + out
        masks = []
        for t in range(len(prompt), len(seq)):
            mask = allowed(seq[:t])
            masks.append(torch.ones(VOCAB_SIZE, dtype=torch.bool) if mask is None else mask)
        mask = torch.stack(masks)  # (n, V)
        logp = logits[b, len(prompt): len(seq)].masked_fill(~mask, float("-inf")).log_softmax(-1)
        chosen = torch.tensor(out)[:, None]
        free = mask.sum(-1) > 1  # positions where the output had a choice
        others = logp.scatter(-1, chosen, float("-inf"))
        runner_up_p, runner_up = others.max(-1)
        close = (free & (runner_up_p.exp() >= BRANCH_FLOOR)).nonzero().flatten().tolist()
        close.sort(key=lambda t: -float(runner_up_p[t]))
        scored.append(_Scored(float(logp.gather(-1, chosen)[free].sum()),
                              [(t, int(runner_up[t])) for t in close]))
    return scored


def branched_ids(model, codec: Codec, samples: Sequence[Any], prompts: Sequence[list[int]],
                outs: Sequence[list[int]], limits: Sequence[int], branches: int) -> list[list[int]]:
    """Greedy outputs written again from their closest calls: at each of up to `branches`
    positions where the runner-up was likeliest (and at least BRANCH_FLOOR likely), the output
    takes the runner-up instead and goes on greedily (all of them in one batch). Each sample
    keeps the likeliest of its outputs under the constrained model (an output that ends before
    one that does not); `limits` cut each sample's outputs, as the room rule does."""
    scored = _scored(model, codec, samples, prompts, outs)
    unit = model.config.patch_sizes[0]
    jobs = []  # (sample, where the new prompt stops, the ids forced after it)
    for b, s in enumerate(scored):
        for t, runner_up in s.branch_points[:branches]:
            cut = (len(prompts[b]) + t) // unit * unit - len(prompts[b])  # a whole patch
            jobs.append((b, cut, outs[b][cut:t] + [runner_up]))
    if not jobs:
        return list(outs)
    starts = [prompts[b] + outs[b][:cut] for b, cut, _ in jobs]
    constraint = generation_constraint([codec.constraint(samples[b]) for b, _, _ in jobs],
                                       [len(prompts[b]) for b, _, _ in jobs])

    def allowed(j: int, seq: list[int]) -> torch.Tensor | None:
        t = len(seq) - len(starts[j])
        forced = jobs[j][2]
        if t < len(forced):
            return torch.nn.functional.one_hot(torch.tensor(forced[t]), VOCAB_SIZE).bool()
        return constraint(j, seq)

    new = model.generate(starts, max(limits[b] - cut for b, cut, _ in jobs), temperature=0.0,
                         stop_id=END, allowed=allowed)
    tries = [(outs[b][:cut] + more)[:limits[b]] for (b, cut, _), more in zip(jobs, new)]
    tried = _scored(model, codec, [samples[b] for b, _, _ in jobs],
                    [prompts[b] for b, _, _ in jobs], tries)
    best = [(END in out, s.logp, out) for out, s in zip(outs, scored)]
    for (b, _, _), out, s in zip(jobs, tries, tried):
        if (END in out, s.logp) > best[b][:2]:
            best[b] = (END in out, s.logp, out)
    return [out for _, _, out in best]


def output_file(codec: MusicCodec, output: Output) -> bytes:
    """The file an output's ids stand for (DecodeError where an event stream is cut short)."""
    return codec.output_file(codec.target_bytes(np.array(output.ids, np.int64)))
