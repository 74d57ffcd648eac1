"""The hierarchical byte model: bGPT/MEGABYTE-style decoders stacked over patches of bytes.

Levels, top first. Level k works on units of U_k bytes: U_0 = patch_sizes[0] (the top patches),
U_1 = patch_sizes[1], ..., U_n = 1 (bytes). Level 0 is a causal transformer over the whole sequence
of top patches. Level k > 0 runs inside each unit of level k-1, over its G_k = U_{k-1} / U_k
sub-units; at the byte level it also sees the `local_window` bytes before the patch (the copy path,
as BLT's local models attend across patch boundaries; 0 = inside the patch only, bGPT's way).

The shift is inside the model, the same at every level: the input for unit m is the embedding of
unit m-1 (a learned start vector for m = 0), plus, for k > 0, a projection of the parent level's
output for the unit containing m and a learned embedding of m's slot in that parent unit. So every
output for unit m has seen exactly the bytes before unit m, and logits[:, t] predicts ids[:, t].

Unit embedding: a unit of U bytes is embedded as the sum of U slot-specific byte embeddings (a table
of U * V rows), which equals bGPT's linear layer over the concatenated one-hot bytes; with
`bit_embed`, plus a linear map of the unit's U * 8 bits (instruction fields straddle bytes); with
`patch_encoder` (top level only), plus a non-linear reading of the patch: a few blocks over its
bytes, inside the patch, whose U outputs are concatenated and mapped to the level's width (like
BLT's local encoder; for text whose items do not sit at fixed slots, such as ABC notes).
Output: a linear map to the V logits; with `bit_head`, plus 8 logits per byte, one per bit,
shared by the 256 byte ids (byte v gets the sum of the logits of its set bits), so that what is
learnt about one bit of a result holds for every byte that has it. With `aux_outputs` A > 0, a
linear map of the same byte-level outputs to A more numbers per byte, trained (only) against
auxiliary targets that the training data gives (`forward(ids, aux=True)`; simulator/train.py):
an inductive bias towards intermediate results, unused when generating.
Positions: rotary embeddings (RoPE) at every level, at absolute unit indices (0.5 bits better than
none after 120 steps: docs/training.md). RoPE is relative, so a patch's bytes are treated the same
wherever the patch is, and sequences longer than those seen in training still get well-defined
positions.

Shape legend: B batch, T bytes, U_k bytes per unit of level k, L_k = T / U_k units at level k,
G_k = U_{k-1} / U_k units of level k per unit of level k-1, D_k width of level k, V vocabulary.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, cast

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from simulator.blocks import BLOCKS, LevelShape, Positions
from simulator.generate import generate


@dataclass
class ModelConfig:
    """Shape of a ByteModel. Per-level tuples are ordered top level first (len = levels)."""

    vocab_size: int = 258  # 0..255 bytes, 256 PAD, 257 END
    patch_sizes: tuple[int, ...] = (16,)  # bytes per unit, top level down; (16,) = two levels
    d_model: tuple[int, ...] = (256, 128)
    n_layers: tuple[int, ...] = (4, 2)
    n_heads: tuple[int, ...] = (4, 2)
    block_types: tuple[str, ...] = ("transformer", "transformer")  # names in blocks.BLOCKS
    # per level, settings of that level's block config (e.g. {"mlp_ratio": 2}); () = none. The
    # shared fields below (n_heads[k], mlp_ratio, dropout, rope_base) fill the block config's
    # fields of the same name unless an option sets them.
    block_options: tuple[dict[str, Any], ...] = ()
    max_len: int = 2048  # bytes per training sequence (a multiple of patch_sizes[0])
    local_window: int = 0  # bytes before its patch the byte level sees (the copy path)
    bit_embed: bool = False  # also embed the 8 bits of every byte (fields that straddle bytes)
    bit_head: bool = False  # also score every byte id by its 8 bits (see the module docstring)
    patch_encoder: int = 0  # blocks of a byte encoder inside each top-level patch (0: none)
    aux_outputs: int = 0  # outputs per byte of a training-only auxiliary head (0: none)
    dropout: float = 0.0
    mlp_ratio: int = 4
    rope_base: float = 10000.0
    # training only: keep each block's input and recompute the rest of its activations in the
    # backward pass (about 0.6x the peak memory, 1.3x the step time; the same gradients)
    checkpoint_activations: bool = False

    def __post_init__(self) -> None:
        for f in ("patch_sizes", "d_model", "n_layers", "n_heads", "block_types", "block_options"):
            setattr(self, f, tuple(getattr(self, f)))
        self._check()

    @property
    def n_levels(self) -> int:
        return len(self.patch_sizes) + 1

    def _check(self) -> None:
        n = self.n_levels
        for f in ("d_model", "n_layers", "n_heads", "block_types"):
            if len(getattr(self, f)) != n:
                raise ValueError(
                    f"ModelConfig.{f} needs {n} entries (one per level), got {getattr(self, f)}"
                )
        flat = self.patch_sizes == (1,)  # a flat byte transformer with a per-byte head below it
        if not self.patch_sizes or (not flat and any(
            b < 1 or a <= b or a % b for a, b in itertools.pairwise((*self.patch_sizes, 1))
        )):
            raise ValueError(
                f"ModelConfig.patch_sizes must shrink from the top level down, each dividing the one "
                f"before and > 1 (or be (1,): flat), got {self.patch_sizes}"
            )
        for k, (d, h) in enumerate(zip(self.d_model, self.n_heads)):
            if h < 1 or d % h or (d // h) % 2:
                raise ValueError(f"level {k}: d_model {d} must split into {h} heads of even width")
        for name in self.block_types:
            if name not in BLOCKS:
                raise ValueError(f"unknown block type {name!r}; registered: {sorted(BLOCKS)}")
        if self.block_options and len(self.block_options) != n:
            raise ValueError(f"ModelConfig.block_options needs {n} entries (one per level) or "
                             f"none, got {self.block_options}")
        for k in range(n):
            self.block_config(k)
        if self.max_len < 1 or self.max_len % self.patch_sizes[0]:
            raise ValueError(
                f"ModelConfig.max_len {self.max_len} must be a multiple of {self.patch_sizes[0]}"
            )
        if (
            self.vocab_size < 2
            or self.local_window < 0
            or self.patch_encoder < 0
            or self.aux_outputs < 0
            or min(self.n_layers) < 0
            or self.mlp_ratio < 1
        ):
            raise ValueError(f"invalid ModelConfig {self}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ModelConfig.dropout must be in [0, 1), got {self.dropout}")

    def block_config(self, k: int) -> Any:
        """The typed config of level k's blocks: its type's `config_class`, from the shared
        fields it declares and then level k's block_options."""
        cls = BLOCKS[self.block_types[k]].config_class
        names = {f.name for f in fields(cls)}
        shared = {"n_heads": self.n_heads[k], "mlp_ratio": self.mlp_ratio,
                  "dropout": self.dropout, "rope_base": self.rope_base}
        options = dict(self.block_options[k]) if self.block_options else {}
        unknown = sorted(set(options) - names)
        if unknown:
            raise ValueError(f"level {k}: {self.block_types[k]!r} blocks have no setting "
                             f"{', '.join(unknown)} (theirs: {', '.join(sorted(names))})")
        return cls(**{**{key: v for key, v in shared.items() if key in names}, **options})

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown ModelConfig field(s): {', '.join(unknown)}")
        try:
            return cls(**d)
        except TypeError as e:
            raise ValueError(f"invalid ModelConfig: {e}") from None


PRESETS: dict[str, ModelConfig] = {
    # tests: ~0.4M parameters
    "tiny": ModelConfig(
        patch_sizes=(16,),
        d_model=(64, 32),
        n_layers=(2, 1),
        n_heads=(2, 2),
        block_types=("transformer",) * 2,
        max_len=512,
    ),
    "tiny3": ModelConfig(
        patch_sizes=(16, 4),
        d_model=(64, 48, 32),
        n_layers=(2, 1, 1),
        n_heads=(2, 2, 2),
        block_types=("transformer",) * 3,
        max_len=512,
    ),
    # 2 CPU cores, an hour: ~5M parameters
    "small": ModelConfig(
        patch_sizes=(16,),
        d_model=(256, 128),
        n_layers=(4, 2),
        n_heads=(4, 2),
        block_types=("transformer",) * 2,
        max_len=2048,
    ),
    "small3": ModelConfig(
        patch_sizes=(64, 16),
        d_model=(256, 192, 128),
        n_layers=(4, 2, 2),
        n_heads=(4, 3, 2),
        block_types=("transformer",) * 3,
        max_len=2048,
        local_window=64,  # the copy path: one whole top-level patch back (the study)
    ),
    # one GPU: ~35M parameters
    "base": ModelConfig(
        patch_sizes=(16,),
        d_model=(512, 384),
        n_layers=(8, 4),
        n_heads=(8, 6),
        block_types=("transformer",) * 2,
        max_len=8192,
    ),
    "base3": ModelConfig(
        patch_sizes=(64, 16),
        d_model=(512, 384, 256),
        n_layers=(8, 3, 3),
        n_heads=(8, 6, 4),
        block_types=("transformer",) * 3,
        max_len=8192,
        local_window=64,
    ),
    # bGPT's shape: 12 patch layers, 3 byte layers, width 768, 16-byte patches, 8 KB context
    "bgpt": ModelConfig(
        patch_sizes=(16,),
        d_model=(768, 768),
        n_layers=(12, 3),
        n_heads=(12, 12),
        block_types=("transformer",) * 2,
        max_len=8192,
    ),
}

# `small` with a byte level as deep as its patch level, for the L0 study (docs/training.md): the
# byte level does one instruction's arithmetic; measured no better at equal steps, 1.6x slower
PRESETS["small-deepbytes"] = replace(PRESETS["small"], n_layers=(4, 4))

# `small` whose byte level is as wide and deep as its patch level (4 layers of 256, 4 heads): with
# a local window over the previous state, close to the flat byte transformer of issue 12 (every
# byte attending to the instruction and the previous state at full width)
PRESETS["small-widebytes"] = replace(PRESETS["small"], d_model=(256, 256), n_layers=(4, 4),
                                     n_heads=(4, 4))

# `small` with 4-byte patches: one unit of the patch level is one 32-bit register or instruction
# word, so reading an operand register is attention between units (issue 12's word-aligned
# patches; docs/training.md, the ladder)
PRESETS["small-p4"] = replace(PRESETS["small"], patch_sizes=(4,))

# `small` with 1-byte patches: its patch level is a flat causal byte transformer (4 layers of 256,
# every byte attending to every byte before it, like issue 12's flat baseline), its byte level a
# small head on each position; no hierarchy, for comparison on short sequences
PRESETS["small-flat"] = replace(PRESETS["small"], patch_sizes=(1,), max_len=1024)
PRESETS["tiny-flat"] = replace(PRESETS["tiny"], patch_sizes=(1,))  # the same, for tests

# `small` with gated (SwiGLU) MLPs at both levels, the same parameter count: a hidden unit is a
# product, so selecting a bit by a shift amount is one unit (docs/training.md, the ladder)
PRESETS["small-glu"] = replace(PRESETS["small"], block_options=({"mlp": "swiglu"},) * 2)

# `small` whose top-level patches are also read by a 2-block byte encoder (width 128) inside each
# patch: the music study's test of whether the order of the notes inside one ABC patch is lost in
# the linear patch embedding (docs/music.md)
PRESETS["small-enc"] = replace(PRESETS["small"], patch_encoder=2)
PRESETS["tiny-enc"] = replace(PRESETS["tiny"], patch_encoder=1)  # the same, for tests

# `small` whose byte level splits its width into more heads (4, 8 or 16 heads of 32, 16 or 8, not
# 2 of 64): one instruction's result byte reads several bytes at once (two operand bytes, the
# carry's, the opcode's), one route per head (docs/training.md, the ladder)
PRESETS["small-heads4"] = replace(PRESETS["small"], n_heads=(4, 4))
PRESETS["small-heads8"] = replace(PRESETS["small"], n_heads=(4, 8))
PRESETS["small-heads16"] = replace(PRESETS["small"], n_heads=(4, 16))

# `small` with a patch level twice as deep (8 blocks): grown from a `small` checkpoint with
# `--init-from` (the new blocks start as identities), for the music ladder's plateau
PRESETS["small-deeppatches"] = replace(PRESETS["small"], n_layers=(8, 2))
PRESETS["tiny-deeppatches"] = replace(PRESETS["tiny"], n_layers=(3, 1))  # the same, for tests

# small3's body parameters in narrower, deeper levels (the study's "narrower, deeper" variant)
PRESETS["small3-deep"] = replace(PRESETS["small3"], d_model=(192, 144, 96), n_layers=(7, 4, 4),
                                 n_heads=(3, 3, 2))


def _blocks(cfg: ModelConfig, k: int, shape: LevelShape, n: int) -> Sequence[Any]:
    """n blocks of level k's type and settings, for a level of this shape (an nn.ModuleList)."""
    block, block_config = BLOCKS[cfg.block_types[k]], cfg.block_config(k)
    return cast(Sequence[Any], nn.ModuleList(block(shape, block_config) for _ in range(n)))


class PatchEncoder(nn.Module):
    """Reads the bytes of each unit with blocks of the byte level's type and width, inside the
    unit (each byte sees the unit's bytes up to itself), and maps the U outputs, concatenated, to
    the width of the level the units belong to."""

    offsets: Tensor  # buffer

    def __init__(self, cfg: ModelConfig, unit: int, d_out: int):
        super().__init__()
        d = cfg.d_model[-1]
        self.embed = nn.Embedding(unit * cfg.vocab_size, d)  # one table per slot, as in Level
        self.register_buffer("offsets", torch.arange(unit) * cfg.vocab_size, persistent=False)
        self.blocks = _blocks(cfg, cfg.n_levels - 1, LevelShape(d_model=d, group=None),
                              cfg.patch_encoder)
        self.norm = nn.LayerNorm(d)
        self.to_unit = nn.Linear(unit * d, d_out, bias=False)

    def forward(self, units: Tensor) -> Tensor:
        """(B, L, U) byte ids -> (B, L, D_out)."""
        B, L, U = units.shape
        if B * L == 0:  # generation's prefill of an empty prompt
            return self.to_unit.weight.new_zeros(B, L, self.to_unit.out_features)
        x = self.embed(units + self.offsets).flatten(0, 1)  # (B*L, U, d): one sequence a unit
        pos = Positions(torch.arange(U, device=units.device)[None])  # (1, U)
        for block in self.blocks:
            x = block(x, pos)
        return self.to_unit(self.norm(x).view(B, L, -1))  # (B, L, U*d) -> (B, L, D_out)


class Level(nn.Module):
    """One decoder level: embeds the previous unit, adds the parent's context, runs its blocks."""

    group: int | None  # G_k; None at the top level
    offsets: Tensor  # buffers
    bit_values: Tensor

    def __init__(self, cfg: ModelConfig, k: int):
        super().__init__()
        last = k == cfg.n_levels - 1
        self.unit = 1 if last else cfg.patch_sizes[k]  # U_k
        self.group = None
        self.vocab_size = cfg.vocab_size
        d = cfg.d_model[k]
        self.embed = nn.Embedding(self.unit * cfg.vocab_size, d)  # one table per slot in a unit
        # the bits of the unit's bytes (0 for specials), one linear map over all its slots
        self.bits = nn.Linear(self.unit * 8, d, bias=False) if cfg.bit_embed else None
        self.register_buffer("bit_values", 1 << torch.arange(8), persistent=False)
        self.register_buffer("offsets", torch.arange(self.unit) * cfg.vocab_size, persistent=False)
        self.start = nn.Parameter(torch.zeros(d))
        self.encoder = PatchEncoder(cfg, self.unit, d) if k == 0 and cfg.patch_encoder else None
        if k > 0:
            self.group = group = cfg.patch_sizes[k - 1] // self.unit
            self.from_parent = nn.Linear(cfg.d_model[k - 1], d, bias=False)
            self.slot = nn.Embedding(group, d)
        shape = LevelShape(d_model=d, group=self.group, window=cfg.local_window if last else 0)
        self.blocks = _blocks(cfg, k, shape, cfg.n_layers[k])  # blocks of any registered type
        self.norm = nn.LayerNorm(d)

    def embed_units(self, ids: Tensor) -> Tensor:
        """(B, L*U) byte ids -> (B, L, D): a unit of U bytes is the sum of its slots' embeddings."""
        B = ids.shape[0]
        units = ids.view(B, -1, self.unit)  # (B, L, U)
        x = self.embed(units + self.offsets).sum(2)  # (B, L, D)
        if self.bits is not None:
            bits = (units[..., None] & self.bit_values).ne(0) & (units[..., None] < 256)
            x = x + self.bits(bits.flatten(2).to(x.dtype))  # (B, L, U*8) -> (B, L, D)
        if self.encoder is not None:
            x = x + self.encoder(units)  # (B, L, D)
        return x

    def forward(
        self, x: Tensor, pos: Positions, caches: list | None = None, recompute: bool = False
    ) -> Tensor:
        """(B, L, D) inputs at positions pos (B or 1, L) -> (B, L, D) normalised outputs.
        recompute: checkpoint each block (its activations are recomputed in the backward pass)."""
        for i, block in enumerate(self.blocks):
            if recompute:
                x = checkpoint(block, x, pos, use_reentrant=False)
            else:
                x = block(x, pos, None if caches is None else caches[i])
        return self.norm(x)


class ByteModel(nn.Module):
    """Hierarchical byte model; see the module docstring for the levels and the shift."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        # an nn.ModuleList, typed as the Levels it holds
        self.levels = cast(Sequence[Level], nn.ModuleList(Level(config, k)
                                                          for k in range(config.n_levels)))
        self.head = nn.Linear(config.d_model[-1], config.vocab_size, bias=False)
        self.bit_head = nn.Linear(config.d_model[-1], 8, bias=False) if config.bit_head else None
        ids = torch.arange(config.vocab_size)
        byte_bits = ((ids[:, None] >> torch.arange(8)) & 1) * (ids[:, None] < 256)  # (V, 8)
        self.register_buffer("byte_bits", byte_bits.float(), persistent=False)
        self.apply(self._init_weights)
        self.aux_head: nn.Linear | None = None
        self.add_aux_head(config.aux_outputs)
        # the start vectors are the whole input of a level's first unit: a zero vector there
        # meets LayerNorm's 1/sqrt(eps) and gave a gradient norm of ~3.6e6 at the first step,
        # so clipping shrank every other gradient by as much (docs/training.md)
        for level in self.levels:
            nn.init.normal_(level.start, std=0.02)
        # the parent's context enters a level's residual stream at the scale of a byte embedding
        # (std 0.02 per coordinate): drawn like the other weights, its projection of a normalised
        # parent output was ~16x the byte's own embedding, and no byte-level copy of uniformly
        # random registers formed in 1,000 steps (docs/training.md, "register moves")
        for level, d_parent in zip(self.levels[1:], config.d_model):
            nn.init.normal_(level.from_parent.weight, std=0.02 / math.sqrt(d_parent))
        # GPT-2: the projections into the residual stream are scaled down by depth
        for level, n in zip(self.levels, config.n_layers):
            for name, p in level.named_parameters():
                if name.endswith("out.weight"):
                    depth = config.patch_encoder if name.startswith("encoder.") else n
                    nn.init.normal_(p, std=0.02 / math.sqrt(2 * max(depth, 1)))

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)

    def reshaped(self, config: ModelConfig) -> ByteModel:
        """This model's weights in a model of `config`, which may differ from this model's in what
        no weight's shape depends on (max_len, local_window) and in more blocks at a level: those
        are appended to the level's blocks with their projections into the residual stream
        (`out`) zero, so each starts as the identity and the copy computes what this model does
        (growing a trained model deeper: `simulator train --init-from`)."""
        model = ByteModel(config).to(self.head.weight.device, self.head.weight.dtype)
        missing, unexpected = model.load_state_dict(self.state_dict(), strict=False)
        new_block = [re.match(r"levels\.(\d+)\.blocks\.(\d+)\.", name) for name in missing]
        if unexpected or not all(m and int(m[2]) >= self.config.n_layers[int(m[1])]
                                 for m in new_block):
            raise ValueError(f"config {config} cannot hold this model's weights "
                             f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
        for name, p in model.named_parameters():
            if name in missing and name.endswith("out.weight"):
                nn.init.zeros_(p)
        return model.train(self.training)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, ids: Tensor, aux: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """ids (B, T), T a multiple of patch_sizes[0] and <= max_len -> logits (B, T, V);
        logits[:, t] predicts ids[:, t] from ids[:, :t]. aux=True: also the auxiliary head's
        outputs (B, T, A), from what position t has seen (the model needs `aux_outputs`)."""
        U = self.config.patch_sizes[0]
        if ids.dim() != 2 or ids.shape[1] % U or ids.shape[1] > self.config.max_len:
            raise ValueError(
                f"ids must be (B, T) with T a multiple of {U} and <= max_len {self.config.max_len}, "
                f"got shape {tuple(ids.shape)}"
            )
        logits, hs = self._run(ids)
        if not aux:
            return logits
        if self.aux_head is None:
            raise ValueError("this model has no auxiliary head (ModelConfig.aux_outputs is 0)")
        return logits, self.aux_head(hs[-1])

    def add_aux_head(self, outputs: int) -> None:
        """Give a model (e.g. a loaded checkpoint's) a fresh auxiliary head of `outputs`."""
        self.config.aux_outputs = outputs
        head = nn.Linear(self.config.d_model[-1], outputs) if outputs else None
        if head is not None:
            self._init_weights(head)
            nn.init.zeros_(head.bias)
        self.aux_head = head

    def _run(
        self, ids: Tensor, caches: list | None = None, extend: bool = False
    ) -> tuple[Tensor, list[Tensor]]:
        """The forward pass over all levels; returns logits and each level's outputs.

        ids (B, T), T a multiple of U_0. extend=False: logits (B, T, V), level k outputs (B, L_k, D_k).
        extend=True: one more position at every level, the unit right after the prefix, so logits are
        (B, T+1, V) and logits[:, T] predicts the next byte (generation's prefill).
        caches: per level, per block, a fresh cache to fill.
        """
        B, T = ids.shape
        recompute = (
            self.config.checkpoint_activations
            and self.training
            and caches is None
            and torch.is_grad_enabled()
        )
        hs: list[Tensor] = []  # level k: (B, L_k, D_k)
        for k, level in enumerate(self.levels):
            L = T // level.unit + int(extend)  # L_k
            start = level.start.expand(B, 1, -1)  # (B, 1, D_k)
            x = torch.cat([start, level.embed_units(ids)], 1)[:, :L]  # (B, L_k, D_k): unit m-1 at m
            if k > 0:
                G = level.group
                assert G is not None  # every level below the top has one
                ctx = level.from_parent(hs[-1])  # (B, L_{k-1}, D_k)
                ctx = ctx.repeat_interleave(G, 1)[:, :L]  # (B, L_k, D_k): parent of m
                slots = torch.arange(L, device=ids.device) % G  # (L_k,) m's slot
                x = x + ctx + level.slot(slots)
            pos = Positions(torch.arange(L, device=ids.device)[None])  # (1, L_k)
            hs.append(level(x, pos, None if caches is None else caches[k], recompute))
        return self.logits(hs[-1]), hs  # (B, T, V)

    def logits(self, h: Tensor) -> Tensor:
        """(..., D_last) byte-level outputs -> (..., V) logits."""
        out = self.head(h)
        if self.bit_head is not None:  # (..., 8) per-bit logits -> each byte id's sum
            out = out + self.bit_head(h) @ self.byte_bits.to(h.dtype).T
        return out

    def new_caches(self) -> list[list]:
        return [[block.new_cache() for block in level.blocks] for level in self.levels]

    def generate(
        self, prompts: Sequence[Sequence[int]], max_new: int, **options: Any
    ) -> list[list[int]]:
        """Continue each prompt by up to `max_new` ids (greedy by default, KV-cached); returns the
        new ids per prompt. The options (temperature, top_k, top_p, generator, stop_id, allowed,
        callback, use_cache) are `simulator.generate.generate`'s."""
        return generate(self, prompts, max_new, **options)


__all__ = ["PRESETS", "ByteModel", "ModelConfig"]
