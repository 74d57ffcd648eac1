"""The room rule and the branches shared by the facade and the evaluation (simulator/outputs.py)."""

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import torch

from simulator.codec import END, VOCAB_SIZE
from simulator.model import PRESETS, ByteModel
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


class _Allowed:
    """A constraint: the ids 60-79 anywhere, END too at a patch start."""

    def for_generate(self, prompt_len):
        def allowed(seq):
            mask = torch.zeros(VOCAB_SIZE, dtype=torch.bool)
            mask[60:80] = True
            mask[END] = len(seq) % 16 == 0
            return mask
        return allowed


class _RandomPrompts(_Codec):
    """Prompts of random bytes (the sample is the seed), output constrained by `_Allowed`."""

    def prompt(self, sample):
        return torch.randint(0, 256, (32,), generator=torch.Generator().manual_seed(sample)).numpy()

    def constraint(self, sample):
        return _Allowed()


def _tiny_model():
    torch.manual_seed(0)
    model = ByteModel(replace(PRESETS["tiny"], max_len=128)).double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3)  # outputs varied, with close calls
    return model


def _logp(model, prompt, out):
    """The constrained log-probability of `out` after `prompt`, straight from the logits."""
    ids = torch.tensor(prompt + out + [0] * (-(len(prompt) + len(out)) % 16))
    with torch.no_grad():
        logits = model(ids[None])[0]
    allowed, total = _Allowed().for_generate(len(prompt)), 0.0
    for t, y in enumerate(out):
        mask = allowed(prompt + out[:t])
        if mask.sum() > 1:
            total += float(logits[len(prompt) + t].masked_fill(~mask, -torch.inf)
                           .log_softmax(-1)[y])
    return total


def test_branched_outputs_are_likelier_and_keep_to_the_constraint():
    model, codec = _tiny_model(), _RandomPrompts()
    samples = list(range(6))
    prompts = [codec.prompt(s).tolist() for s in samples]
    greedy = music_outputs(model, codec, samples)
    branched = music_outputs(model, codec, samples, branches=3)
    assert music_outputs(model, codec, samples, branches=3) == branched  # deterministic
    changed = 0
    for prompt, g, r in zip(prompts, greedy, branched):
        assert g is not None and r is not None
        assert all(60 <= y < 80 or y == END for y in r.ids)
        assert len(r.ids) <= output_room(128, 32, 16) + 1
        if r.ids != g.ids:
            changed += 1
            assert (r.ends, _logp(model, prompt, r.ids)) > (g.ends, _logp(model, prompt, g.ids))
    assert changed  # the tiny model has close calls that a branch wins


def test_a_check_prefers_outputs_that_pass_it_and_branches_further_for_the_others():
    """With a converter's check, a sample keeps an output that passes it over a likelier one that
    does not; where none passes (an output that does not end never does), the greedy output is
    written again from more of its calls and the likeliest of all is kept."""
    model, codec = _tiny_model(), _RandomPrompts()
    samples = list(range(6))
    prompts = [codec.prompt(s).tolist() for s in samples]
    greedy = music_outputs(model, codec, samples)
    branched = music_outputs(model, codec, samples, branches=3)
    passing = music_outputs(model, codec, samples, branches=3, check=lambda sample, ids: True)
    failing = music_outputs(model, codec, samples, branches=3, check=lambda sample, ids: False)
    assert any(b is not None and not b.ends for b in branched)  # the second round is tried
    for prompt, b, p, f in zip(prompts, branched, passing, failing):
        assert b is not None and p is not None and f is not None
        if b.ends:
            assert p == b  # it passes: nothing more is tried
        assert (f.ends, _logp(model, prompt, f.ids)) >= (b.ends, _logp(model, prompt, b.ids))
    assert failing != branched  # the further calls found likelier outputs
    # a check that only the greedy output fails: an output that ends and differs from it is kept
    fails_greedy = {s: g.ids for s, g in zip(samples, greedy) if g is not None}
    checked = music_outputs(model, codec, samples, branches=3,
                            check=lambda sample, ids: ids != fails_greedy[sample])
    for c, g in zip(checked, greedy):
        assert c is not None and g is not None
        assert c.ids != g.ids or not c.ends
