"""ByteModel.generate: the KV-cached path against the recompute-everything reference, batching,
sampling, constraints, stopping and streaming."""

from dataclasses import replace

import pytest
import torch

from simulator.generate import _CachedDecoder, eval_mode
from simulator.model import PRESETS, ByteModel

CONFIGS = [("tiny", 0), ("tiny", 20), ("tiny3", 0), ("tiny3", 6), ("tiny3", 40), ("tiny-flat", 0),
          ("tiny-enc", 20)]
END = 257


def make(name: str, window: int = 0) -> ByteModel:
    """A float64 model whose weights are scaled up so that its outputs are varied, not flat."""
    torch.manual_seed(0)
    model = ByteModel(replace(PRESETS[name], local_window=window)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(4)
    return model


def random_prompts(lengths, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 256, (n,), generator=g).tolist() for n in lengths]


@pytest.mark.parametrize("name,window", CONFIGS)
def test_cached_logits_match_full_forward(name, window):
    """Teacher-forced: the cached decoder's logits at every step equal the full forward's."""
    model = make(name, window).eval()
    ids = torch.tensor(random_prompts([96])[0])
    prompt = 32
    full = model(ids[None])[0]  # (96, V)
    dec = _CachedDecoder(model, [ids[:prompt].tolist()])
    with torch.no_grad():
        for t in range(prompt, 96):
            torch.testing.assert_close(dec.logits()[0], full[t], rtol=0, atol=1e-10)
            dec.advance(ids[t : t + 1])


@pytest.mark.parametrize("name,window", CONFIGS)
def test_cached_equals_uncached_greedy_batch_1(name, window):
    model = make(name, window)
    for prompt in random_prompts([32, 0]):
        cached = model.generate([prompt], 40)
        assert cached == model.generate([prompt], 40, use_cache=False)
        assert len(cached[0]) == 40


@pytest.mark.parametrize("name,window", CONFIGS)
def test_cached_equals_uncached_ragged_batch(name, window):
    model = make(name, window)
    prompts = random_prompts([32, 0, 16, 48])
    cached = model.generate(prompts, 40)
    assert cached == model.generate(prompts, 40, use_cache=False)
    assert cached == [model.generate([p], 40)[0] for p in prompts]  # batching changes nothing
    assert len({tuple(c) for c in cached}) > 1


@pytest.mark.parametrize("name,window", CONFIGS)
def test_cached_equals_uncached_sampled(name, window):
    """Same generator seed -> the same samples from both paths (varied outputs: a strong check)."""
    model = make(name, window)
    prompts = random_prompts([32, 16])
    cached = model.generate(
        prompts, 48, temperature=1.0, generator=torch.Generator().manual_seed(5)
    )
    uncached = model.generate(
        prompts, 48, temperature=1.0, generator=torch.Generator().manual_seed(5), use_cache=False
    )
    assert cached == uncached
    assert len(set(cached[0])) > 10


def test_sampling_reproducible_and_seed_dependent():
    model = make("tiny3", 6)
    prompts = random_prompts([16, 32])

    def sample(seed, **kw):
        return model.generate(
            prompts, 64, temperature=0.8, generator=torch.Generator().manual_seed(seed), **kw
        )

    assert sample(7) == sample(7)
    assert sample(7) != sample(8)
    assert sample(7, top_k=20, top_p=0.9) == sample(7, top_k=20, top_p=0.9)
    greedy = model.generate(prompts, 64)
    assert sample(7, top_k=1) == greedy
    assert sample(7, top_p=1e-9) == greedy


def test_constrained_decoding_never_emits_disallowed_ids():
    """A codec-like rule: byte ids only inside a 32-byte state; at a state's start also END;
    after END, PAD to the end of the patch."""
    model = make("tiny")
    V = model.config.vocab_size
    bytes_only = torch.zeros(V, dtype=torch.bool)
    bytes_only[:256] = True
    at_start = bytes_only.clone()
    at_start[END] = True
    pad_only = torch.zeros(V, dtype=torch.bool)
    pad_only[256] = True
    prompts = random_prompts([32, 16])

    def allowed(b, seq):
        pos = len(seq)
        if pos % 16 and END in seq[pos - pos % 16 :]:
            return pad_only
        return at_start if pos % 32 == 0 else bytes_only

    for temperature in (0.0, 2.0):
        outs = model.generate(
            prompts,
            96,
            temperature=temperature,
            allowed=allowed,
            generator=torch.Generator().manual_seed(0),
        )
        for prompt, out in zip(prompts, outs):
            seq = list(prompt)
            for y in out:
                assert allowed(0, seq)[y], (len(seq), y)
                seq.append(y)


@pytest.mark.parametrize("name,window", [("tiny", 0), ("tiny3", 40)])
def test_stop_id_only_at_a_patch_start(name, window):
    model = make(name, window)
    prompts = random_prompts([16, 32, 0])
    force = {0: 16 + 16, 1: 32 + 5, 2: 3}  # row -> absolute position where END is forced

    def allowed(b, seq):
        mask = torch.ones(258, dtype=torch.bool)
        mask[END] = len(seq) == force[b]
        mask[:END] = len(seq) != force[b]
        return mask

    outs = model.generate(prompts, 64, stop_id=END, allowed=allowed)
    assert outs[0][-1] == END and len(outs[0]) == 17  # END at a patch start: stops
    assert len(outs[1]) == 64 and outs[1][5] == END  # END inside a patch: an ordinary id
    assert len(outs[2]) == 64 and outs[2][3] == END
    # the rows that kept going are unchanged by row 0 leaving the batch
    alone = model.generate(prompts[1:], 64, stop_id=END, allowed=lambda b, s: allowed(b + 1, s))
    assert alone == outs[1:]


def test_callback_streams_each_id_once_in_order():
    model = make("tiny3", 6)
    prompts = random_prompts([16, 0, 48])
    seen = []
    outs = model.generate(
        prompts,
        50,
        temperature=1.0,
        generator=torch.Generator().manual_seed(1),
        callback=lambda b, y: seen.append((b, y)),
    )
    assert len(seen) == sum(len(o) for o in outs)
    for b, out in enumerate(outs):
        assert [y for c, y in seen if c == b] == out


def test_generate_contract():
    model = make("tiny")
    model.train()
    assert model.generate([[1] * 16, []], 0) == [[], []]
    model.generate([[1] * 16], 3)
    assert model.training  # generate restores the mode it found
    with pytest.raises(ValueError, match="multiple of 16"):
        model.generate([[1] * 17], 3)
    with pytest.raises(ValueError, match="ids in"):
        model.generate([[300] * 16], 3)
    with pytest.raises(ValueError, match="permits no id"):
        model.generate([[1] * 16], 3, allowed=lambda b, s: torch.zeros(258, dtype=torch.bool))
    assert model.training  # also after an error inside it


def test_eval_mode_restores_the_mode_it_found():
    model = make("tiny")
    for training in (True, False):
        model.train(training)
        with pytest.raises(RuntimeError), eval_mode(model):
            assert not model.training and not model.levels[0].training
            raise RuntimeError
        assert model.training is training
