"""Decoding from a ByteModel: greedy or sampled, constrained, with a KV cache at every level (or a
slow reference that recomputes the whole prefix for every byte). `ByteModel.generate` is the entry
point beside `forward`; this module holds the decoders it drives.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from simulator.blocks import Positions

if TYPE_CHECKING:
    from simulator.model import ByteModel


@contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """The model in eval mode (no dropout) inside the block, back in its own mode after it."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


@torch.no_grad()
def generate(
    model: ByteModel,
    prompts: Sequence[Sequence[int]],
    max_new: int,
    *,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    stop_id: int | None = None,
    allowed: Callable[[int, list[int]], Tensor | None] | None = None,
    callback: Callable[[int, int], None] | None = None,
    use_cache: bool = True,
) -> list[list[int]]:
    """Continue each prompt by up to `max_new` ids; returns the new ids per prompt (not the prompt).

    prompts: a ragged batch; each prompt's length must be a multiple of patch_sizes[0] (it may be
        empty), so that all prompts stand at the same place in a patch at every step.
    temperature: 0 = greedy (argmax); otherwise sample from softmax(logits / temperature),
        restricted to the `top_k` most likely ids and/or the smallest set of probability >= `top_p`,
        drawing from `generator`, a CPU torch.Generator (same state -> same output).
    stop_id: a sequence ends (its output includes stop_id) once it emits stop_id as the first byte
        of a top-level patch (e.g. END); stop_id elsewhere is an ordinary id.
    allowed: allowed(b, seq) -> bool (V,) mask of the ids permitted next for prompt b, where seq is
        prompt + generated so far (so len(seq) is the absolute position); None = no constraint.
    callback: callback(b, new_id) is called once per generated id, in order.
    use_cache: True keeps a KV cache at every level (the top level over the patches so far, each
        lower level over its current unit and window) and prefills it one prompt at a time;
        False recomputes the whole prefix for every byte (bGPT's way; a slow reference).
    """
    U = model.config.patch_sizes[0]
    for b, p in enumerate(prompts):
        if len(p) % U or any(not 0 <= i < model.config.vocab_size for i in p):
            raise ValueError(
                f"prompt {b}: length {len(p)} must be a multiple of {U} and ids in [0, {model.config.vocab_size})"
            )
    if (
        temperature < 0
        or (top_k is not None and top_k < 1)
        or (top_p is not None and not 0 < top_p <= 1)
    ):
        raise ValueError("need temperature >= 0, top_k >= 1 and 0 < top_p <= 1")
    seqs = [list(p) for p in prompts]
    outs: list[list[int]] = [[] for _ in prompts]
    active = list(range(len(prompts)))
    if max_new <= 0 or not active:
        return outs
    with eval_mode(model):
        decoder = (
            _CachedDecoder(model, prompts) if use_cache else _RecomputeDecoder(model, prompts)
        )
        for step in range(max_new):
            logits = decoder.logits()  # (n_active, V)
            if allowed is not None:
                logits = _constrain(logits, [allowed(b, seqs[b]) for b in active])
            ids = _choose(logits, temperature, top_k, top_p, generator)  # (n_active,)
            keep = []
            for i, (b, y) in enumerate(zip(active, ids.tolist())):
                at_patch_start = len(seqs[b]) % U == 0
                seqs[b].append(y)
                outs[b].append(y)
                if callback is not None:
                    callback(b, y)
                if not (y == stop_id and at_patch_start):
                    keep.append(i)
            if not keep or step == max_new - 1:
                break
            if len(keep) < len(active):
                decoder.select(keep)
                ids, active = ids[keep], [active[i] for i in keep]
            decoder.advance(ids)
    return outs


def _constrain(logits: Tensor, masks: list[Tensor | None]) -> Tensor:
    """Set the logits of disallowed ids to -inf. masks: per row a bool (V,) tensor or None."""
    if all(m is None for m in masks):
        return logits
    everything = torch.ones(logits.shape[-1], dtype=torch.bool)
    mask = torch.stack(
        [everything if m is None else torch.as_tensor(m, dtype=torch.bool).cpu() for m in masks]
    )
    empty = (~mask.any(-1)).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"allowed() permits no id for batch row(s) {empty}")
    return logits.masked_fill(~mask.to(logits.device), float("-inf"))


def _choose(
    logits: Tensor,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    generator: torch.Generator | None,
) -> Tensor:
    """(n, V) logits -> (n,) ids: argmax at temperature 0, else a top-k / top-p sample."""
    if temperature == 0:
        return logits.argmax(-1)
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1:
        sorted_logits, order = logits.sort(-1, descending=True)
        probs = sorted_logits.softmax(-1)
        outside = probs.cumsum(-1) - probs >= top_p  # mass before this id already reaches top_p
        logits = logits.scatter(-1, order, sorted_logits.masked_fill(outside, float("-inf")))
    probs = logits.softmax(-1)
    return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1).to(logits.device)


class _CachedDecoder:
    """Incremental decoding with a KV cache at every level.

    State for the byte at absolute position t (per row; all rows share t mod U_0): level k has run
    its positions up to the unit containing t; ctx[k] is the parent's projected output for that unit.
    """

    def __init__(self, model: ByteModel, prompts: Sequence[Sequence[int]]):
        self.model = model
        levels = model.levels
        device = model.head.weight.device
        U0 = levels[0].unit
        caches, ctxs, logits = [], [], []
        for p in prompts:  # prefill one prompt at a time, then batch the caches
            ids = torch.tensor([list(p)], dtype=torch.long, device=device)  # (1, T)
            c = model.new_caches()
            out, hs = model._run(ids, c, extend=True)
            caches.append(c)
            ctxs.append(
                [None] + [levels[k].from_parent(hs[k - 1][:, -1]) for k in range(1, len(levels))]
            )
            logits.append(out[:, -1])
        self.caches = [
            [type(c0).stack([c[k][i] for c in caches]) for i, c0 in enumerate(caches[0][k])]
            for k in range(len(levels))
        ]
        # ctx[k] (n, D_k): level k's context from its parent's current unit
        self.ctx = [None] + [torch.cat([c[k] for c in ctxs]) for k in range(1, len(levels))]
        self.next_logits = torch.cat(logits)  # (n, V)
        self.t = torch.tensor([len(p) for p in prompts], device=device)  # (n,) position to predict
        self.phase = 0  # t mod U_0, the same for every row
        self.tail = torch.zeros(len(prompts), U0, dtype=torch.long, device=device)  # last U_0 bytes
        for i, p in enumerate(prompts):
            if p:
                self.tail[i] = torch.tensor(list(p[-U0:]), device=device)

    def logits(self) -> Tensor:
        return self.next_logits

    def select(self, rows: list[int]) -> None:
        idx = torch.tensor(rows, device=self.t.device)
        for level_caches in self.caches:
            for c in level_caches:
                c.select(idx)
        self.ctx = [None if c is None else c[idx] for c in self.ctx]
        self.t, self.tail = self.t[idx], self.tail[idx]

    def advance(self, ids: Tensor) -> None:
        """Feed the chosen ids (n,) and compute the logits for the next position."""
        self.tail = torch.cat([self.tail[:, 1:], ids[:, None]], 1)
        self.t = self.t + 1
        self.phase = (self.phase + 1) % self.tail.shape[1]
        levels = self.model.levels
        for k, level in enumerate(levels):
            if self.phase % level.unit:
                continue  # this level's current unit is not finished yet
            x = level.embed_units(self.tail[:, self.tail.shape[1] - level.unit :])  # (n, 1, D)
            if k > 0:
                ctx, G = self.ctx[k], level.group
                assert ctx is not None and G is not None  # every level below the top has them
                x = x + ctx[:, None] + level.slot.weight[(self.phase // level.unit) % G]
            h = level(x, Positions((self.t // level.unit)[:, None]), self.caches[k])  # (n, 1, D)
            if k + 1 < len(levels):
                self.ctx[k + 1] = levels[k + 1].from_parent(h[:, -1])
        self.next_logits = self.model.logits(h[:, -1])


class _RecomputeDecoder:
    """The reference: for each byte, run the full forward over the whole prefix (no cache)."""

    def __init__(self, model: ByteModel, prompts: Sequence[Sequence[int]]):
        self.model = model
        self.seqs = [list(p) for p in prompts]

    def logits(self) -> Tensor:
        U = self.model.config.patch_sizes[0]
        device = self.model.head.weight.device
        rows = []
        for s in self.seqs:
            t = len(s)
            filler = [0] * (U - t % U)  # up to the next whole patch; causal, so never seen at t
            ids = torch.tensor([s + filler], dtype=torch.long, device=device)
            rows.append(self.model._run(ids)[0][0, t])
        return torch.stack(rows)

    def select(self, rows: list[int]) -> None:
        self.seqs = [self.seqs[i] for i in rows]

    def advance(self, ids: Tensor) -> None:
        for s, y in zip(self.seqs, ids.tolist()):
            s.append(y)


