"""The room rule shared by the facade and the evaluation (simulator/outputs.py)."""

from types import SimpleNamespace

import numpy as np

from simulator.codec import END
from simulator.outputs import Output, music_outputs, output_room


class _Codec:
    """Prompts of a given length; no constraint."""

    align = 16

    def prompt(self, sample):
        return np.zeros(sample, np.int64)

    def constraint(self, sample):
        return SimpleNamespace(for_generate=lambda n: lambda seq: None)


class _Model:
    """Writes `end_at` bytes, then END (or never ends), whatever the prompt."""

    def __init__(self, context, end_at):
        self.config = SimpleNamespace(max_len=context)
        self.end_at = end_at
        self.asked: list[int] = []

    def generate(self, prompts, max_new, **options):
        self.asked.append(max_new)
        out = [65] * self.end_at + [END]
        return [out[:max_new] for _ in prompts]


def test_an_output_ends_only_where_its_end_patch_fits_the_context():
    context, prompt = 128, 64
    room = output_room(context, prompt, 16)
    assert room == 48  # 64 bytes after the prompt, less the end patch
    for end_at, ends in ((0, True), (room, True), (room + 1, False), (100, False)):
        [out] = music_outputs(_Model(context, end_at), _Codec(), [prompt])
        assert isinstance(out, Output) and out.ends is ends, end_at
        assert len(out.ids) <= room + 1


def test_a_prompt_that_leaves_less_than_a_patch_is_not_run():
    model = _Model(128, 5)
    outs = music_outputs(model, _Codec(), [64, 97, 96, 112])
    assert [o is None for o in outs] == [False, True, False, True]
    assert model.asked == [48 + 1]  # one batch, sized for the widest room (prompt 64)
