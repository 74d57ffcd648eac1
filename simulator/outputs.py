"""Greedy outputs of a model for a codec's samples: the one path from prompts to output ids that
the facade and `simulator eval` share, so that the evaluation scores what a user gets.

- `greedy_ids`: each sample's prompt continued greedily, constrained to the shape of valid output
  (`Codec.constraint`), stopping at END.
- `music_outputs`: the same for conversions, with the context's room rule: an output ends only if
  its END stands where the whole end patch still fits the context (as in training, where every
  sequence ends with a whole end patch); a prompt that leaves less than a patch of room is not run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator.codec import END, Codec, MusicCodec, MusicPair, generation_constraint


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
                  prompts: Sequence[list[int]] | None = None) -> list[Output | None]:
    """Each sample's greedy output in one batch; None where the prompt leaves no room."""
    prompts = [codec.prompt(s).tolist() for s in samples] if prompts is None else prompts
    rooms = [output_room(model.config.max_len, len(p), codec.align) for p in prompts]
    fits = [i for i, room in enumerate(rooms) if room >= codec.align]
    outputs: list[Output | None] = [None] * len(samples)
    if fits:
        outs = greedy_ids(model, codec, [samples[i] for i in fits], max(rooms[i] for i in fits) + 1,
                          [prompts[i] for i in fits])
        for i, out in zip(fits, outs):
            kept = out[:rooms[i] + 1]  # END may take the end patch's first place
            outputs[i] = Output(kept, END in kept)
    return outputs


def output_file(codec: MusicCodec, output: Output) -> bytes:
    """The file an output's ids stand for (DecodeError where an event stream is cut short)."""
    return codec.output_file(codec.target_bytes(np.array(output.ids, np.int64)))
