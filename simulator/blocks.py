"""Block types: the layers a decoder level of the byte model is built from, by name.

A block is built from two things: the `LevelShape` its level gives every block (width and the
attention pattern), and its own typed config, a dataclass that the block type declares as
`config_class` (`TransformerConfig` for "transformer"). `ModelConfig.block_types[k]` names the
type of level k's blocks and `ModelConfig.block_options[k]` sets fields of its config, so a new
block type brings its own settings.

A block maps x (B, L, D) -> (B, L, D) causally. Its attention pattern is fixed at construction by
`LevelShape.group` and `LevelShape.window`:

    group None       full causal attention over the whole sequence (the top level)
    group G, window W   the sequence is cut into groups of G positions (the units of the level
                     above); a position sees the earlier positions of its own group and the W
                     positions just before its group (W = 0: inside the group only, bGPT's way)

Positions: `pos` is a `Positions`, the absolute indices (B or 1, L) at the block's level; the
blocks of a level share one, so tables made from the indices (RoPE's) are made once per call of
the level, not once per block.

Incremental decoding: `cache = block.new_cache()`; `block(x, pos, cache)` with a fresh cache runs a
whole prefix and fills the cache; after that, each call with L == 1 runs one new position. A cache
keeps only what later positions can still see, and supports `select(rows)` and
`type(cache).stack([...])` (caches made one prompt at a time, batched; shorter ones are padded on
the left and masked).

New block types (e.g. Mamba): write the config dataclass of its settings, decorate an nn.Module
class taking `__init__(shape: LevelShape, config: ItsConfig)` and naming `config_class = ItsConfig`
with `@register_block("name")`, and give it the same `forward(x, pos, cache=None)` and
`new_cache()` contract. The model builds level k's blocks as
`BLOCKS[name](shape, config.block_config(k))`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, is_dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

BLOCKS: dict[str, Any] = {}  # name -> block class (an nn.Module with a config_class)


def register_block(name: str):
    """Class decorator: make a block type (a class with a `config_class`) available to
    `ModelConfig.block_types` under `name`."""

    def add(cls: type[nn.Module]) -> type[nn.Module]:
        if name in BLOCKS:
            raise ValueError(f"block type {name!r} is already registered")
        if not is_dataclass(getattr(cls, "config_class", None)):
            raise ValueError(f"block type {name!r}: {cls.__name__}.config_class must be the "
                             "dataclass of its settings")
        BLOCKS[name] = cls
        return cls

    return add


@dataclass(frozen=True)
class LevelShape:
    """What a level gives each of its blocks, whatever their type."""

    d_model: int
    group: int | None  # None: full causal attention; else groups of this many positions
    window: int = 0  # positions before the group that are visible too (needs a group)


@dataclass(frozen=True)
class TransformerConfig:
    """The settings of a "transformer" block."""

    n_heads: int
    mlp_ratio: int = 4
    dropout: float = 0.0
    rope_base: float = 10000.0
    mlp: str = "gelu"  # "gelu", or "swiglu": a gated MLP of the same parameter count (see GatedMLP)

    def __post_init__(self) -> None:
        if self.mlp not in MLPS:
            raise ValueError(f"TransformerConfig.mlp must be one of {', '.join(MLPS)}, "
                             f"got {self.mlp!r}")


@dataclass
class KVCache:
    """Rotated keys and values of the positions later queries can still see."""

    k: Tensor  # (B, H, S, dh)
    v: Tensor  # (B, H, S, dh)
    valid: Tensor | None = None  # (B, S) bool, False on left padding; None: all valid
    seen: int = 0  # positions run so far (rows may differ by whole top patches; not by a group)

    def append(self, k: Tensor, v: Tensor) -> None:
        if self.k.shape[2] == 0:  # a fresh cache takes the batch size of its first keys
            self.k, self.v = k, v
            return
        self.k, self.v = torch.cat([self.k, k], 2), torch.cat([self.v, v], 2)
        if self.valid is not None:
            new = self.valid.new_ones(k.shape[0], k.shape[2])
            self.valid = torch.cat([self.valid, new], 1)

    def keep_last(self, n: int) -> None:
        if self.k.shape[2] > n:
            s = self.k.shape[2] - n
            self.k, self.v = self.k[:, :, s:], self.v[:, :, s:]
            if self.valid is not None:
                self.valid = self.valid[:, s:]
                if bool(self.valid.all()):
                    self.valid = None

    def select(self, rows: Tensor) -> None:
        self.k, self.v = self.k[rows], self.v[rows]
        if self.valid is not None:
            self.valid = self.valid[rows]

    def attn_mask(self) -> Tensor | None:  # (B, 1, 1, S) for scaled_dot_product_attention
        return None if self.valid is None else self.valid[:, None, None, :]

    @classmethod
    def stack(cls, caches: list[KVCache]) -> KVCache:
        """One batch from per-prompt caches; shorter ones are left-padded with masked zeros."""
        S = max(c.k.shape[2] for c in caches)
        ks, vs, valids = [], [], []
        for c in caches:
            pad = S - c.k.shape[2]
            ks.append(F.pad(c.k, (0, 0, pad, 0)))
            vs.append(F.pad(c.v, (0, 0, pad, 0)))
            valid = c.k.new_ones(c.k.shape[0], c.k.shape[2], dtype=torch.bool)
            if c.valid is not None:
                valid = c.valid
            valids.append(F.pad(valid, (pad, 0), value=False))
        valid_all = torch.cat(valids)
        return cls(torch.cat(ks), torch.cat(vs), None if bool(valid_all.all()) else valid_all,
                   caches[0].seen)


class Positions:
    """Absolute indices (B or 1, L) of the positions a level runs, with their RoPE tables, made on
    first use and shared by all the blocks of the level."""

    def __init__(self, index: Tensor):
        self.index = index  # (B or 1, L)
        self._rope: dict[tuple, tuple[Tensor, Tensor]] = {}

    def rope(self, head_dim: int, base: float, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """Tables for `rotate`, each (B or 1, 1, L, head_dim) in dtype promoted to >= float32:
        (cos, cos) and (-sin, sin) of the angles index * base^(-i / (head_dim / 2))."""
        dtype = torch.promote_types(dtype, torch.float32)
        key = (head_dim, base, dtype)
        if key not in self._rope:
            inv_freq = _inv_freq(head_dim // 2, base, self.index.device).to(dtype)  # (dh/2,)
            angles = self.index[:, None, :, None].to(dtype) * inv_freq
            cos, sin = angles.cos(), angles.sin()  # (B or 1, 1, L, half)
            self._rope[key] = torch.cat([cos, cos], -1), torch.cat([-sin, sin], -1)
        return self._rope[key]


@functools.cache
def _inv_freq(half: int, base: float, device: torch.device) -> Tensor:
    """RoPE's frequencies base^(-i / half), i < half, in float32 on `device`."""
    return (base ** (-torch.arange(half, dtype=torch.float32) / half)).to(device)


def rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate x (..., B, H, L, dh) by its positions' angles (tables from `Positions.rope`), in
    their dtype: the halves (x1, x2) become (x1 cos - x2 sin, x2 cos + x1 sin)."""
    y = x.to(cos.dtype)
    return (y * cos + y.roll(y.shape[-1] // 2, -1) * sin).to(x.dtype)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with RoPE, full or grouped (+ window), with a KV cache."""

    def __init__(self, shape: LevelShape, config: TransformerConfig):
        super().__init__()
        if shape.window and shape.group is None:
            raise ValueError("an attention window needs a group (full attention sees everything)")
        self.n_heads, self.group, self.window = config.n_heads, shape.group, shape.window
        self.dropout = config.dropout
        self.qkv = nn.Linear(shape.d_model, 3 * shape.d_model, bias=False)
        self.out = nn.Linear(shape.d_model, shape.d_model, bias=False)
        self.head_dim, self.rope_base = shape.d_model // config.n_heads, config.rope_base

    def forward(self, x: Tensor, pos: Positions, cache: KVCache | None = None) -> Tensor:
        B, L, D = x.shape
        qkv = self.qkv(x).view(B, L, 3, self.n_heads, -1).permute(2, 0, 3, 1, 4)  # (3, B, H, L, dh)
        q, k = rotate(qkv[:2], *pos.rope(self.head_dim, self.rope_base, x.dtype)).unbind()
        v = qkv[2]
        if cache is None or cache.seen == 0 and L > 1:
            y = self._attend_sequence(q, k, v)
            if cache is not None:
                cache.append(k, v)
        else:
            if L != 1:
                raise ValueError("a filled KV cache takes one new position per call")
            cache.append(k, v)
            y = F.scaled_dot_product_attention(q, cache.k, cache.v, attn_mask=cache.attn_mask())
        if cache is not None:
            cache.seen += L
            if self.group is not None:  # the next position sees its group so far and the window
                cache.keep_last(cache.seen % self.group + self.window)
        return self.out(y.transpose(1, 2).reshape(B, L, D))

    def _attend_sequence(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """Attention over a whole sequence. q, k, v (B, H, L, dh) -> (B, H, L, dh)."""
        p = self.dropout if self.training else 0.0
        G, W = self.group, self.window
        if G is None:
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p)
        B, H, L, dh = q.shape
        pad = -L % G  # only a prefix ending inside a group (generation's prefill) needs this
        if pad:
            q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
        n = (L + pad) // G  # groups

        def by_group(t: Tensor) -> Tensor:  # (B, H, n*G, dh) -> (B*n, H, G, dh)
            return t.view(B, H, n, G, dh).transpose(1, 2).reshape(B * n, H, G, dh)

        if W == 0:
            y = F.scaled_dot_product_attention(
                by_group(q), by_group(k), by_group(v), is_causal=True, dropout_p=p
            )
        else:
            # keys of group g: the W positions before it and its own G: unfold W+G wide, step G
            def windows(t: Tensor) -> Tensor:  # (B, H, n*G, dh) -> (B*n, H, W+G, dh)
                t = F.pad(t, (0, 0, W, 0)).unfold(2, W + G, G)  # (B, H, n, dh, W+G)
                return t.permute(0, 2, 1, 4, 3).reshape(B * n, H, W + G, dh)

            mask = self._window_mask(n, q.device).repeat(B, 1, 1, 1)  # (B*n, 1, G, W+G)
            y = F.scaled_dot_product_attention(
                by_group(q), windows(k), windows(v), attn_mask=mask, dropout_p=p
            )
        y = y.view(B, n, H, G, dh).transpose(1, 2).reshape(B, H, n * G, dh)
        return y[:, :, :L]

    def _window_mask(self, n: int, device: torch.device) -> Tensor:
        """(n, 1, G, W+G) bool: query i of group g sees window key j (position g*G - W + j)."""
        G, W = self.group, self.window
        assert G is not None, "a window needs a group"
        i = torch.arange(G, device=device)[:, None]
        j = torch.arange(W + G, device=device)[None, :]
        start = torch.arange(n, device=device)[:, None, None] * G - W
        return ((j <= W + i) & (start + j >= 0))[:, None]


class MLP(nn.Module):
    """x -> out(gelu(up(x))), hidden width ratio * d_model."""

    def __init__(self, d_model: int, ratio: int):
        super().__init__()
        self.up = nn.Linear(d_model, ratio * d_model, bias=False)
        self.out = nn.Linear(ratio * d_model, d_model, bias=False)

    def forward(self, x: Tensor) -> Tensor:  # (..., D) -> (..., D)
        return self.out(F.gelu(self.up(x), approximate="tanh"))


class GatedMLP(nn.Module):
    """SwiGLU: x -> out(silu(gate(x)) * up(x)). The hidden width, 2/3 of ratio * d_model (to a
    multiple of 8), keeps MLP's parameter count. Each hidden unit is a product of two linear
    readings of x, so a unit can select one input by another (a bit of an operand by the shift
    amount, say) without the thresholds a GELU unit needs for it."""

    def __init__(self, d_model: int, ratio: int):
        super().__init__()
        hidden = -(-2 * ratio * d_model // 3 // 8) * 8
        self.gate = nn.Linear(d_model, hidden, bias=False)
        self.up = nn.Linear(d_model, hidden, bias=False)
        self.out = nn.Linear(hidden, d_model, bias=False)

    def forward(self, x: Tensor) -> Tensor:  # (..., D) -> (..., D)
        return self.out(F.silu(self.gate(x)) * self.up(x))


MLPS = {"gelu": MLP, "swiglu": GatedMLP}


@register_block("transformer")
class TransformerBlock(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""

    config_class = TransformerConfig

    def __init__(self, shape: LevelShape, config: TransformerConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(shape.d_model)
        self.attn = CausalSelfAttention(shape, config)
        self.norm2 = nn.LayerNorm(shape.d_model)
        self.mlp = MLPS[config.mlp](shape.d_model, config.mlp_ratio)
        self.drop = nn.Dropout(config.dropout) if config.dropout else nn.Identity()

    def new_cache(self) -> KVCache:
        empty = self.attn.qkv.weight.new_zeros(1, self.attn.n_heads, 0, self.attn.head_dim)
        return KVCache(empty, empty.clone())

    def forward(self, x: Tensor, pos: Positions, cache: KVCache | None = None) -> Tensor:
        x = x + self.drop(self.attn(self.norm1(x), pos, cache))
        return x + self.drop(self.mlp(self.norm2(x)))
