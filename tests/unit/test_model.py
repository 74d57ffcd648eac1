"""ByteModel forward: shapes, causality at every level, the copy window, config, learning."""

import json
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from simulator.blocks import BLOCKS, register_block
from simulator.model import PRESETS, ByteModel, ModelConfig

# (preset, local_window): two and three levels, inside the patch only and across patch boundaries
SHAPES = [("tiny", 0), ("tiny", 20), ("tiny3", 0), ("tiny3", 6), ("tiny3", 40), ("tiny-flat", 0),
          ("tiny-enc", 20)]


def make(name: str, window: int = 0, seed: int = 0) -> ByteModel:
    torch.manual_seed(seed)
    return ByteModel(replace(PRESETS[name], local_window=window)).double()


@pytest.mark.parametrize("name,window", SHAPES)
def test_forward_shape(name, window):
    model = make(name, window)
    ids = torch.randint(0, 258, (3, 64))
    assert model(ids).shape == (3, 64, 258)


@pytest.mark.parametrize("name,window", SHAPES)
def test_causal_at_every_level(name, window):
    """Changing ids[:, t] leaves logits[:, :t+1] exactly unchanged and changes logits[:, t+1]."""
    model = make(name, window)
    ids = torch.randint(0, 256, (2, 64), generator=torch.Generator().manual_seed(1))
    ref = model(ids)
    for t in (0, 1, 3, 4, 5, 15, 16, 17, 31, 32, 47, 48, 62, 63):
        changed = ids.clone()
        changed[:, t] = (changed[:, t] + 1) % 256
        out = model(changed)
        assert torch.equal(out[:, : t + 1], ref[:, : t + 1]), f"position <= {t} saw byte {t}"
        if t + 1 < ids.shape[1]:
            assert not torch.allclose(out[:, t + 1], ref[:, t + 1]), f"byte {t} unused at {t + 1}"


@pytest.mark.parametrize("window", [0, 5, 16, 21])
def test_byte_level_window_reach(window):
    """With the top level cut off, one byte layer sees exactly its patch plus `window` bytes."""
    model = make("tiny", window)
    assert model.config.n_layers[-1] == 1
    with torch.no_grad():
        model.levels[1].from_parent.weight.zero_()
    ids = torch.randint(0, 256, (1, 64), generator=torch.Generator().manual_seed(2))
    ref = model(ids)
    for j in range(64):
        changed = ids.clone()
        changed[0, j] = (changed[0, j] + 1) % 256
        moved = (model(changed) - ref).abs().amax(-1)[0] > 0  # (T,)
        # position t's inputs are ids[p - 1] for p from its patch start - window up to t
        expect = torch.tensor([(t // 16) * 16 - window - 1 <= j < t for t in range(64)])
        assert torch.equal(moved, expect), f"byte {j}"


def test_every_parameter_gets_a_gradient():
    """No unused parameters (DistributedDataParallel relies on it)."""
    for name, window in SHAPES:
        model = make(name, window)
        ids = torch.randint(0, 258, (2, 32))
        F.cross_entropy(model(ids).flatten(0, 1), ids.flatten()).backward()
        missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
        assert not missing, f"{name}: {missing}"


def test_forward_rejects_bad_lengths():
    model = make("tiny")
    with pytest.raises(ValueError, match="multiple of 16"):
        model(torch.zeros(1, 20, dtype=torch.long))
    with pytest.raises(ValueError, match="max_len"):
        model(torch.zeros(1, model.config.max_len + 16, dtype=torch.long))


def test_config_json_round_trip():
    for cfg in PRESETS.values():
        again = ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
        assert again == cfg


def test_config_rejects_unknown_and_invalid_fields():
    d = PRESETS["tiny"].to_dict() | {"n_layer": 3}
    with pytest.raises(ValueError, match="unknown ModelConfig field.*n_layer"):
        ModelConfig.from_dict(d)
    bad = [
        {"patch_sizes": (16, 6)},  # 6 does not divide 16
        {"patch_sizes": (16, 16)},  # must shrink
        {"patch_sizes": (1, 1)},  # 1 only alone (flat)
        {"d_model": (64,)},  # one entry per level
        {"n_heads": (3, 2)},  # 64 does not split into 3 heads
        {"block_types": ("transformer", "nope")},
        {"max_len": 500},
        {"local_window": -1},
        {"patch_encoder": -1},
    ]
    for change in bad:
        with pytest.raises(ValueError):
            replace(PRESETS["tiny"], **change)


def test_patch_encoder_reads_a_patch_non_additively():
    """A plain patch embedding is a sum over slots, so changing slot 1 moves it by the same vector
    whatever slot 0 holds; the patch encoder's reading depends on both together."""
    def slot1_effect(model: ByteModel, first: int) -> torch.Tensor:
        a, b = torch.full((1, 16), 65), torch.full((1, 16), 65)
        a[0, 0] = b[0, 0] = first
        b[0, 1] = 66
        return model.levels[0].embed_units(b) - model.levels[0].embed_units(a)

    for name, additive in (("tiny", True), ("tiny-enc", False)):
        model = make(name)
        with torch.no_grad():
            same = torch.allclose(slot1_effect(model, 10), slot1_effect(model, 20))
        assert same == additive, name


def test_preset_sizes():
    """The presets have the sizes their comments promise (built on the meta device: no memory)."""
    expect = {
        "tiny": (1e5, 1e6),
        "tiny3": (1e5, 1e6),
        "small": (2e6, 8e6),
        "small-deepbytes": (2e6, 8e6),
        "small-widebytes": (6e6, 9e6),
        "small-p4": (3e6, 5e6),
        "small-flat": (3e6, 5e6),
        "small-glu": (2e6, 8e6),
        "small-heads4": (2e6, 8e6),
        "small-heads8": (2e6, 8e6),
        "small-heads16": (2e6, 8e6),
        "small-deeppatches": (6e6, 9e6),
        "tiny-deeppatches": (1e5, 1e6),
        "tiny-flat": (1e5, 1e6),
        "tiny-enc": (1e5, 1e6),
        "small-enc": (4e6, 8e6),
        "small3": (2e6, 12e6),
        "small3-deep": (2e6, 12e6),
        "base": (30e6, 50e6),
        "base3": (30e6, 50e6),
        "bgpt": (100e6, 120e6),
    }
    assert set(expect) == set(PRESETS)
    for name, (lo, hi) in expect.items():
        with torch.device("meta"):
            n = ByteModel(PRESETS[name]).num_parameters()
        assert lo <= n <= hi, f"{name}: {n}"


def test_register_block_builds_levels_from_the_registry():
    """A new block type plugs in by name without touching the stack."""
    base = BLOCKS["transformer"]

    @register_block("test-scaled-transformer")
    class Scaled(base):
        def forward(self, x, pos, cache=None):
            return super().forward(x, pos, cache) * 1.0

    try:
        cfg = replace(PRESETS["tiny"], block_types=("transformer", "test-scaled-transformer"))
        model = ByteModel(cfg)
        assert isinstance(model.levels[1].blocks[0], Scaled)
        assert model(torch.zeros(1, 32, dtype=torch.long)).shape == (1, 32, 258)
        with pytest.raises(ValueError, match="already registered"):
            register_block("test-scaled-transformer")(Scaled)
    finally:
        del BLOCKS["test-scaled-transformer"]


@pytest.mark.parametrize("name,window", [("tiny", 0), ("tiny3", 8)])
def test_tiny_model_overfits_two_sequences(name, window):
    torch.manual_seed(0)
    model = ByteModel(replace(PRESETS[name], local_window=window))
    ids = torch.randint(0, 256, (2, 64), generator=torch.Generator().manual_seed(3))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(100):
        loss = F.cross_entropy(model(ids).flatten(0, 1), ids.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] > 5.0  # ~ln(258) at init
    assert losses[-1] < 0.5, losses[::10]


@pytest.mark.parametrize("name,window,dropout", [("tiny", 20, 0.0), ("tiny3", 6, 0.1)])
def test_activation_checkpointing_same_gradients_less_saved(name, window, dropout):
    """checkpoint_activations changes what the forward keeps for the backward, nothing else."""
    ids = torch.randint(0, 256, (2, 64), generator=torch.Generator().manual_seed(1))
    grads, saved = [], []
    for on in (False, True):
        torch.manual_seed(0)
        cfg = replace(PRESETS[name], local_window=window, dropout=dropout,
                      checkpoint_activations=on)
        model = ByteModel(cfg).double()
        saved.append(0)

        def pack(t):
            saved[-1] += t.numel() * t.element_size()  # bytes the forward keeps for the backward
            return t

        torch.manual_seed(5)  # the same dropout masks
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = F.cross_entropy(model(ids).flatten(0, 1), ids.flatten())
        loss.backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
        model.eval()
        with torch.no_grad():  # not training: no checkpointing, the same logits
            assert torch.equal(model(ids), make(name, window)(ids))
    for n in grads[0]:
        torch.testing.assert_close(grads[1][n], grads[0][n], rtol=0, atol=0, msg=n)
    assert saved[1] < saved[0] / 2, saved


def test_bit_embedding_is_causal_and_sees_single_bits():
    torch.manual_seed(0)
    model = ByteModel(replace(PRESETS["tiny3"], bit_embed=True)).double()
    ids = torch.randint(0, 256, (2, 64), generator=torch.Generator().manual_seed(4))
    ids[:, 40:] = 256  # PAD: a special has no bits
    ref = model(ids)
    changed = ids.clone()
    changed[:, 20] ^= 0x10  # one bit of one byte
    out = model(changed)
    assert torch.equal(out[:, :21], ref[:, :21]) and not torch.allclose(out[:, 21], ref[:, 21])
    plain = ByteModel(replace(PRESETS["tiny3"], bit_embed=False))
    assert model.num_parameters() - plain.num_parameters() == sum(
        u * 8 * d for u, d in zip((16, 4, 1), PRESETS["tiny3"].d_model))


def test_first_gradient_is_not_blown_up_by_a_zero_start_vector():
    """Each level's first unit sees only the start vector; a zero one met LayerNorm's
    1/sqrt(eps) and made the first gradient norm ~1e6, so clipping froze everything else."""
    torch.manual_seed(0)
    model = ByteModel(PRESETS["tiny"])
    ids = torch.randint(0, 256, (4, 64), generator=torch.Generator().manual_seed(5))
    F.cross_entropy(model(ids).flatten(0, 1), ids.flatten()).backward()
    assert torch.nn.utils.clip_grad_norm_(model.parameters(), 1e12) < 100


@pytest.mark.parametrize("name", ["small", "small3"])
def test_the_parents_context_starts_at_the_scale_of_a_byte_embedding(name):
    """Below the top, a unit's input is its byte embedding plus the parent's projected output;
    at init the projection must not drown the byte (it was ~16x the embedding)."""
    torch.manual_seed(0)
    model = ByteModel(PRESETS[name])
    for k, level in enumerate(model.levels[1:], 1):
        parent_output = torch.randn(512, model.config.d_model[k - 1])  # normalised: unit variance
        ratio = level.from_parent(parent_output).std() / level.embed.weight.std()
        assert 0.5 < ratio < 2, (k, ratio)


def test_a_block_type_brings_its_own_settings():
    """A block type declares the dataclass of its settings; block_options set them per level,
    next to the transformer's, and a setting the type does not have is refused."""
    from dataclasses import dataclass

    from simulator.blocks import TransformerConfig

    @dataclass(frozen=True)
    class GatedConfig:
        gate_init: float = 0.5  # a setting no other block has
        dropout: float = 0.0  # filled from ModelConfig.dropout

    @register_block("test-gated")
    class Gated(torch.nn.Module):
        config_class = GatedConfig

        def __init__(self, shape, config):
            super().__init__()
            self.config = config
            self.gate = torch.nn.Parameter(torch.full((shape.d_model,), config.gate_init))

        def forward(self, x, pos, cache=None):
            return x * self.gate

        def new_cache(self):
            return None

    try:
        cfg = replace(PRESETS["tiny"], block_types=("transformer", "test-gated"),
                      block_options=({"mlp_ratio": 2}, {"gate_init": 0.25}))
        model = ByteModel(cfg)
        assert model.levels[1].blocks[0].config == GatedConfig(gate_init=0.25)
        assert cfg.block_config(0) == TransformerConfig(n_heads=2, mlp_ratio=2)
        assert model.levels[0].blocks[0].mlp.up.out_features == 2 * 64
        assert model(torch.zeros(1, 32, dtype=torch.long)).shape == (1, 32, 258)
        assert ModelConfig.from_dict(cfg.to_dict()) == cfg  # config.json round trip
        with pytest.raises(ValueError, match="no setting n_heads"):
            replace(cfg, block_options=({}, {"n_heads": 4}))
        with pytest.raises(ValueError, match="one per level"):
            replace(cfg, block_options=({},))
        with pytest.raises(ValueError, match="config_class"):
            register_block("test-no-config")(torch.nn.Identity)
    finally:
        del BLOCKS["test-gated"]


def test_swiglu_mlp_keeps_the_parameter_count_and_is_causal():
    """`mlp: swiglu` swaps each block's GELU MLP for a gated one of about the same size (within
    2%); the model stays causal; an unknown MLP is refused."""
    gelu = replace(PRESETS["tiny"], local_window=8)
    glu = replace(gelu, block_options=({"mlp": "swiglu"},) * 2)
    n_gelu, n_glu = ByteModel(gelu).num_parameters(), ByteModel(glu).num_parameters()
    assert n_glu != n_gelu and abs(n_glu - n_gelu) / n_gelu < 0.02
    torch.manual_seed(0)
    model = ByteModel(glu).double()
    ids = torch.randint(0, 256, (2, 48), generator=torch.Generator().manual_seed(1))
    changed = ids.clone()
    changed[:, 20] = (changed[:, 20] + 1) % 256
    ref, out = model(ids), model(changed)
    assert torch.equal(out[:, :21], ref[:, :21]) and not torch.allclose(out[:, 21], ref[:, 21])
    with pytest.raises(ValueError, match="mlp must be one of"):
        replace(gelu, block_options=({"mlp": "relu"}, {}))


def test_bit_head_scores_each_byte_by_its_bits():
    """`bit_head`: a byte's logit gains the sum of the per-bit logits of its set bits (PAD and
    END nothing), on top of the ordinary head."""
    model = ByteModel(replace(PRESETS["tiny"], bit_head=True)).double()
    ids = torch.randint(0, 256, (2, 32))
    h = model._run(ids)[1][-1]  # (B, T, D)
    extra = model(ids) - model.head(h)  # (B, T, V)
    bits = model.bit_head(h)  # (B, T, 8)
    for v in (0, 1, 0x80, 0xA5, 255):
        want = sum((bits[..., i] for i in range(8) if v >> i & 1), torch.zeros_like(h[..., 0]))
        assert torch.allclose(extra[..., v], want)
    assert (extra[..., 256:] == 0).all()
    assert ByteModel(PRESETS["tiny"]).bit_head is None


def test_aux_head_reads_the_byte_level_causally_and_leaves_the_logits_alone():
    """`aux_outputs`: A more outputs per position from the byte level's outputs; a head added
    to a model changes none of its logits, and output t depends on ids[:, :t] only."""
    torch.manual_seed(0)
    model = ByteModel(PRESETS["tiny"])
    ids = torch.randint(0, 256, (2, 64))
    before = model(ids)
    with pytest.raises(ValueError, match="no auxiliary head"):
        model(ids, aux=True)
    model.add_aux_head(5)
    logits, aux = model(ids, aux=True)
    assert torch.equal(logits, before) and aux.shape == (2, 64, 5)
    changed = ids.clone()
    changed[:, 40] = (changed[:, 40] + 1) % 256
    assert torch.equal(model(changed, aux=True)[1][:, :41], aux[:, :41])
    assert not torch.equal(model(changed, aux=True)[1][:, 41:], aux[:, 41:])
    config = ModelConfig.from_dict(model.config.to_dict())
    assert config.aux_outputs == 5 and ByteModel(config).aux_head.out_features == 5


@pytest.mark.parametrize("name,window", [("tiny", 20), ("tiny3", 6)])
def test_a_model_grown_deeper_computes_what_it_did(name, window):
    """reshaped(): blocks appended at any level start as identities, the window may change, and
    a config with fewer blocks or another width cannot hold the weights."""
    model = make(name, window).eval()
    deeper_layers = tuple(n + 1 + k for k, n in enumerate(model.config.n_layers))
    deeper = model.reshaped(replace(model.config, n_layers=deeper_layers)).eval()
    ids = torch.randint(0, 258, (2, 64))
    assert torch.equal(model(ids), deeper(ids))
    assert deeper.num_parameters() > model.num_parameters()
    for old, new in zip(model.levels, deeper.levels):  # the old blocks first, as they were
        for a, b in zip(old.blocks.parameters(), new.blocks[:len(old.blocks)].parameters()):
            assert torch.equal(a, b)
    wider = model.reshaped(replace(model.config, local_window=window + 16))
    assert wider.levels[-1].blocks[0].attn.window == window + 16
    assert not torch.equal(model(ids), wider.eval()(ids))  # the bytes now see further back
    with pytest.raises(ValueError, match="cannot hold"):
        model.reshaped(replace(model.config, n_layers=(1,) * model.config.n_levels))
    with pytest.raises(RuntimeError, match="size mismatch"):
        model.reshaped(replace(model.config, d_model=tuple(2 * d for d in model.config.d_model)))
