"""Corpus -> encoded sequences -> training batches (no per-sample Python in the hot loop).

A split is encoded once into flat arrays (ids, loss mask, offsets). The rows of the global batch
at step s are a pure function of (seed, s): epoch e is a seeded permutation of the rows, and
the batches walk the concatenated epochs. Resuming at step s therefore reads the same batches as
an uninterrupted run, and each DDP rank can compute the whole global batch and take its slice.
"""

from __future__ import annotations

import functools
import itertools
import math
import multiprocessing
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np

from bytesim_common.errors import UserError
from datagen.corpus import read_table
from simulator.codec import PAD, Codec

COLUMNS = {"cpu": ["profile", "program", "states"], "abc2midi": ["abc", "midi"],
           "midi2abc": ["abc", "midi"]}
KIND = {"cpu": "cpu", "abc2midi": "music", "midi2abc": "music"}


@dataclass
class EncodedSplit:
    """Every sequence of one split, end to end: sequence i is ids[offsets[i]:offsets[i+1]]."""

    ids: np.ndarray  # (N,) int16
    mask: np.ndarray  # (N,) bool: the loss mask
    offsets: np.ndarray  # (n + 1,) int64
    rows: np.ndarray  # (n,) int64: the index of each sequence's row in the split's table
    n_targets: np.ndarray  # (n,) int64: scored tokens per sequence
    n_too_long: int  # rows refused because their sequence exceeds max_len
    max_len: int
    # auxiliary targets (`Codec.aux_targets`), if asked for: flat positions into ids, ascending
    aux_at: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (M,)
    aux: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))  # (M, A)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def batch(self, seqs: np.ndarray, length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Sequences `seqs` right-padded with PAD to `length` (default: the longest).

        Returns ids (B, length) int64 and the loss mask (B, length) bool.
        """
        seqs = np.asarray(seqs, dtype=np.int64)
        start, n = self.offsets[seqs], self.lengths[seqs]  # (B,)
        length = int(n.max()) if length is None else length
        pos = np.arange(length)[None, :]  # (1, L)
        inside = pos < n[:, None]  # (B, L)
        flat = np.where(inside, start[:, None] + pos, 0)
        ids = np.where(inside, self.ids[flat], PAD).astype(np.int64)
        return ids, inside & self.mask[flat]

    def aux_batch(self, seqs: np.ndarray, length: int) -> np.ndarray:
        """The auxiliary targets of sequences `seqs` laid out like `batch`'s ids: (B, length, A)
        float32, NaN where a position has none."""
        seqs = np.asarray(seqs, dtype=np.int64)
        out = np.full((len(seqs), length, self.aux.shape[1]), np.nan, np.float32)
        for row, seq in enumerate(seqs):
            start, end = self.offsets[seq], self.offsets[seq + 1]
            lo, hi = np.searchsorted(self.aux_at, [start, end])
            out[row, self.aux_at[lo:hi] - start] = self.aux[lo:hi]
        return out


def load_rows(corpus: Path | str, task: str, split: str) -> list[dict]:
    """The rows of one split, as dicts of the columns the task needs."""
    table = read_table(corpus, split=split, columns=COLUMNS[task], kind=KIND[task])
    return table.to_pylist()


PARALLEL_ROWS = 8192  # splits of at least this many rows are encoded by several processes


def encode_rows(rows: list[dict], codec: Codec, max_len: int, aux: str = "none",
                workers: int | None = None) -> EncodedSplit:
    """Encode rows; refuse (and count) those whose sequence is longer than `max_len`. With
    `aux` (AUX_TARGETS), also each sequence's auxiliary targets of that kind.

    `workers` processes share the rows (default: for a split of at least PARALLEL_ROWS rows,
    this process's share of the cores: under torchrun each rank of a machine encodes the whole
    split, so the ranks divide them); the result does not depend on how many."""
    if workers is None:
        workers = _core_share() if len(rows) >= PARALLEL_ROWS else 1
    if workers <= 1 or os.name != "posix":
        return _encode_chunk(rows, codec, max_len, aux, 0)
    cuts = np.linspace(0, len(rows), 4 * workers + 1).astype(int)  # a few chunks per process
    chunks = [(rows[a:b], codec, max_len, aux, int(a)) for a, b in itertools.pairwise(cuts)]
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        return _concat(pool.starmap(_encode_chunk, chunks), len(rows), max_len)


def _core_share() -> int:
    """The cores this process may use (macOS cannot say which: all of them), divided among the
    processes torchrun started on this machine."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def _encode_chunk(rows: list[dict], codec: Codec, max_len: int, aux: str,
                  first: int) -> EncodedSplit:
    """`encode_rows` serially, for rows numbered from `first` in the split."""
    ids, masks, keep, aux_at, aux_values = [], [], [], [], []
    at = 0  # where the next kept sequence starts in the flat ids
    for i, row in enumerate(rows, first):
        try:
            sample = codec.sample_from_row(row)
            x, m = codec.encode(sample)
            if len(x) > max_len:
                continue
            if aux != "none":
                pos, values = codec.aux_targets(sample, x, aux)
                aux_at.append(at + pos)
                aux_values.append(values)
        except ValueError as e:  # e.g. states that are not whole states, an unknown profile
            raise UserError(f"row {i} of the corpus cannot be encoded for the {codec.task} "
                            f"task: {e} (a corrupt corpus, or one from another version?)") from None
        ids.append(x)
        masks.append(m)
        keep.append(i)
        at += len(x)
    lengths = np.array([len(x) for x in ids], dtype=np.int64)
    extra = {"aux_at": np.concatenate(aux_at).astype(np.int64),
             "aux": np.concatenate(aux_values)} if aux_at else {}
    return EncodedSplit(
        ids=np.concatenate(ids) if ids else np.zeros(0, np.int16),
        mask=np.concatenate(masks) if masks else np.zeros(0, bool),
        offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        rows=np.array(keep, dtype=np.int64),
        n_targets=np.array([int(m.sum()) for m in masks], dtype=np.int64),
        n_too_long=len(rows) - len(keep), max_len=max_len, **extra)


def _concat(parts: list[EncodedSplit], n_rows: int, max_len: int) -> EncodedSplit:
    """The chunks of one split, end to end, as one split (positions shifted to the whole)."""
    starts = np.cumsum([0] + [len(p.ids) for p in parts])  # where each chunk's ids begin
    lengths = np.concatenate([p.lengths for p in parts])
    extra = {"aux_at": np.concatenate([p.aux_at + s for p, s in zip(parts, starts)]),
             "aux": np.concatenate([p.aux for p in parts if len(p.aux_at)])} \
        if any(len(p.aux_at) for p in parts) else {}
    return EncodedSplit(
        ids=np.concatenate([p.ids for p in parts]),
        mask=np.concatenate([p.mask for p in parts]),
        offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        rows=np.concatenate([p.rows for p in parts]),
        n_targets=np.concatenate([p.n_targets for p in parts]),
        n_too_long=n_rows - len(lengths), max_len=max_len, **extra)


def load_split(corpus: Path | str, task: str, codec: Codec, split: str, max_len: int,
               required: bool = True, log: TextIO | None = sys.stderr,
               limit: int | None = None, aux: str = "none") -> EncodedSplit:
    """Read and encode one split of a corpus (its first `limit` rows), saying how many rows were
    refused and why."""
    rows = load_rows(corpus, task, split)[:limit]
    enc = encode_rows(rows, codec, max_len, aux)
    if enc.n_too_long and log is not None:
        print(f"{split}: {enc.n_too_long} of {len(rows)} sequences are longer than the context "
              f"(--context {max_len}) and are left out", file=log)
    if required and len(enc) == 0:
        why = (f"all {len(rows)} sequences are longer than --context {max_len}" if rows
               else "it has no rows")
        raise UserError(f"cannot use the {split} split of {corpus}: {why}")
    return enc


@functools.lru_cache(maxsize=4)
def _permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)


def _epoch_walk(n: int, seed: int, k: np.ndarray) -> np.ndarray:
    """The sequence at positions `k` of the endless walk through seeded per-epoch permutations."""
    epochs = k // n
    out = np.empty(len(k), dtype=np.int64)
    for e in np.unique(epochs):
        sel = epochs == e
        out[sel] = _permutation(n, seed, int(e))[k[sel] % n]
    return out


def batch_sequences(lengths: np.ndarray, seed: int, step: int, batch_size: int,
                    sort_window: int = 1) -> np.ndarray:
    """The sequence indices of the global batch at `step` (B,), a pure function of its args.

    Every sequence comes once per epoch. With `sort_window` W > 1, the sequences of each W
    consecutive batches are sorted by length and the W batches cut from them are taken in a
    seeded order, so a batch holds sequences of similar length and pads less. W is capped at
    n // B, so that a sorted span never holds a sequence twice over (a tiny corpus keeps batches
    as varied as plain shuffling makes them).
    """
    n = len(lengths)
    sort_window = min(sort_window, n // batch_size)
    if sort_window <= 1:
        return _epoch_walk(n, seed, step * batch_size + np.arange(batch_size, dtype=np.int64))
    group, slot = divmod(step, sort_window)
    span = sort_window * batch_size
    idx = _epoch_walk(n, seed, group * span + np.arange(span, dtype=np.int64))
    idx = idx[np.argsort(lengths[idx], kind="stable")]
    slot = int(np.random.default_rng([seed, group, 1]).permutation(sort_window)[slot])
    return idx[slot * batch_size:(slot + 1) * batch_size]


def curriculum_sequences(by_length: np.ndarray, seed: int, step: int, batch_size: int,
                         ramp: int, start_frac: float = 0.1) -> np.ndarray:
    """The global batch at `step` of a curriculum from short sequences (B,).

    `by_length` is the split's sequence indices sorted by length. Step s < `ramp` draws its batch
    (seeded by (seed, s), without replacement) from the shortest fraction f of the split, f growing
    linearly from `start_frac` at step 0 to the whole split at step `ramp`.
    """
    n = len(by_length)
    frac = start_frac + (1.0 - start_frac) * step / ramp
    pool = min(n, max(batch_size, math.ceil(frac * n)))
    pick = np.random.default_rng([seed, step, 2]).choice(pool, size=min(batch_size, pool),
                                                        replace=False)
    return by_length[np.sort(pick)]
