"""Greedy outputs of a model for a codec's samples: the one path from prompts to output ids that
the facade and `simulator eval` share, so that the evaluation scores what a user gets.

- `greedy_ids`: each sample's prompt continued greedily, constrained to the shape of valid output
  (`Codec.constraint`), stopping at END.
- `music_outputs`: the same for conversions, with the context's room rule: an output ends only if
  its END stands where the whole end patch still fits the context (as in training, where every
  sequence ends with a whole end patch); a prompt that leaves less than a patch of room is not run.
  With `branches`, the greedy output is then written again from its closest calls
  (`branched_ids`), and the likeliest output is kept; with a `check` as well (the converter's
  test of an output against its tune, `fits_its_tune`: the MIDI file plays as long as the ABC),
  one that passes it before one that does not, and an output that fails it is written again
  from more of its calls.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from simulator.codec import (
    END,
    VOCAB_SIZE,
    Codec,
    DecodeError,
    MusicCodec,
    MusicPair,
    generation_constraint,
)
from simulator.generate import eval_mode
from simulator.long_tunes import cut_short, wrong_length

# A greedy output branches only where the runner-up had at least this probability (given
# the constraint): below it, the runner-up's output is seldom the likelier one.
BRANCH_FLOOR = 0.1
# The converter's branches (`MusicConverter`, `simulator abc2midi`): on the default abc2midi
# of 2026-12-05, 3 branches took M2's note_f1 from 0.941 to 0.947 and M1's from 0.9889 to
# 0.9896 for 1.3x (M1) to 1.7x (M2) the time per tune (docs/music.md, thirty-ninth session).
DEFAULT_BRANCHES = 3
# Where no output so far passes the converter's check, the greedy output is written again from up
# to CHECK_BRANCHES more of its calls, down to a runner-up probability of CHECK_FLOOR
# (docs/music.md, forty-sixth session).
CHECK_BRANCHES = 16
CHECK_FLOOR = 0.01


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


# a converter's test of a sample's whole output (its ids, with END): whether it may be right
Check = Callable[[Any, list[int]], bool]


def output_room(context: int, prompt_len: int, align: int) -> int:
    """The output ids before the end patch that fit the context after a prompt."""
    return context - prompt_len - align


def music_outputs(model, codec: MusicCodec, samples: Sequence[MusicPair],
                  prompts: Sequence[list[int]] | None = None, branches: int = 0,
                  check: Check | None = None) -> list[Output | None]:
    """Each sample's greedy output in one batch; None where the prompt leaves no room. With
    `branches`, each output is written again from up to that many of its closest calls, and
    from more where none passes `check` (`branched_ids`)."""
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
            outs = branched_ids(model, codec, chosen, chosen_prompts, outs, limits, branches,
                                check)
        for i, out in zip(fits, outs):
            outputs[i] = Output(out, END in out)
    return outputs


@dataclass(frozen=True)
class _Scored:
    """An output's log-probability under the constrained model (the sum over the ids it chose
    where the constraint left more than one), and its close calls, closest first: (position,
    runner-up id, the runner-up's probability) where that was at least CHECK_FLOOR."""

    logp: float
    close_calls: list[tuple[int, int, float]]


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
        runner_up_p = runner_up_p.exp()
        close = (free & (runner_up_p >= CHECK_FLOOR)).nonzero().flatten().tolist()
        close.sort(key=lambda t: -float(runner_up_p[t]))
        scored.append(_Scored(float(logp.gather(-1, chosen)[free].sum()),
                              [(t, int(runner_up[t]), float(runner_up_p[t])) for t in close]))
    return scored


def branched_ids(model, codec: Codec, samples: Sequence[Any], prompts: Sequence[list[int]],
                 outs: Sequence[list[int]], limits: Sequence[int], branches: int,
                 check: Check | None = None) -> list[list[int]]:
    """Greedy outputs written again from their closest calls: at each of up to `branches`
    positions where the runner-up was likeliest (and at least BRANCH_FLOOR likely), the output
    takes the runner-up instead and goes on greedily (all of them in one batch). With `check`,
    a sample none of whose outputs passes it is written again so from up to CHECK_BRANCHES more
    of its greedy output's calls (down to CHECK_FLOOR), in a second batch. Each sample keeps, of
    its outputs, one that ends before one that does not, then one that passes `check` before one
    that does not, then the likeliest under the constrained model (a tie keeps the greedy one);
    `limits` cut each sample's outputs, as the room rule does."""
    scored = _scored(model, codec, samples, prompts, outs)

    def ranked(b: int, out: list[int], logp: float) -> tuple[bool, bool, float]:
        ends = END in out
        return ends, ends and (check is None or check(samples[b], out)), logp

    best = [(ranked(b, out, s.logp), out) for b, (out, s) in enumerate(zip(outs, scored))]
    first = [[(t, y) for t, y, p in s.close_calls if p >= BRANCH_FLOOR][:branches]
             for s in scored]
    for b, out, logp in _branch_outputs(model, codec, samples, prompts, outs, limits, first):
        best[b] = max(best[b], (ranked(b, out, logp), out), key=lambda pair: pair[0])
    if check is not None:
        again = [[] if best[b][0][1] else
                 [(t, y) for t, y, _ in s.close_calls if (t, y) not in first[b]][:CHECK_BRANCHES]
                 for b, s in enumerate(scored)]
        for b, out, logp in _branch_outputs(model, codec, samples, prompts, outs, limits, again):
            best[b] = max(best[b], (ranked(b, out, logp), out), key=lambda pair: pair[0])
    return [out for _, out in best]


def _branch_outputs(model, codec: Codec, samples: Sequence[Any], prompts: Sequence[list[int]],
                    outs: Sequence[list[int]], limits: Sequence[int],
                    points: Sequence[list[tuple[int, int]]]) -> list[tuple[int, list[int], float]]:
    """The outputs that take the runner-up at each of `points` (per sample: position, runner-up
    id) and go on greedily, all in one batch: (sample, output, its log-probability) for each."""
    unit = model.config.patch_sizes[0]
    jobs = []  # (sample, where the new prompt stops, the ids forced after it)
    for b, sample_points in enumerate(points):
        for t, runner_up in sample_points:
            cut = (len(prompts[b]) + t) // unit * unit - len(prompts[b])  # a whole patch
            jobs.append((b, cut, outs[b][cut:t] + [runner_up]))
    if not jobs:
        return []
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
    return [(b, out, s.logp) for (b, _, _), out, s in zip(jobs, tries, tried)]


def output_file(codec: MusicCodec, output: Output) -> bytes:
    """The file an output's ids stand for (DecodeError where an event stream is cut short)."""
    return codec.output_file(codec.target_bytes(np.array(output.ids, np.int64)))


def fits_its_tune(codec: MusicCodec) -> Check:
    """A conversion's test of an output against its input, the tune: the MIDI file plays as long
    as the ABC's notes and rests add up to, and at least as many notes as the ABC plays
    (`simulator.long_tunes`: `wrong_length`, `cut_short`). For abc2midi the output is the MIDI
    file, for midi2abc the ABC text."""

    def check(sample: MusicPair, ids: list[int]) -> bool:
        try:
            file = output_file(codec, Output(ids, True))
        except DecodeError:
            return False
        if codec.task == "abc2midi":
            abc, midi = sample.abc, file
        else:
            abc, midi = file.decode("utf-8", "surrogateescape"), sample.midi
        return not wrong_length(abc, midi) and not cut_short(abc, midi)

    return check
