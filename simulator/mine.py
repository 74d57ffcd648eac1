"""`simulator mine`: the training rows a model still gets wrong, as a corpus of their own.

Teacher-forced, a model reads the right output and predicts each byte of it; a row whose
greedy byte differs from the right one anywhere is one greedy decoding would get wrong from
that byte on (the model prefers its own output there). `mine` runs a checkpoint over the train
split of a corpus, keeps every such "hard" row and `easy_per_hard` times as many of the others
(drawn with `seed`, so that a run on the mined corpus still sees what the model gets right),
and writes them as a new corpus in datagen's format, the source's valid and test rows
unchanged. The mined corpus's manifest names the source corpus, the checkpoint (by the hash
of its weights) and the counts.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from bytesim_common.errors import UserError
from bytesim_common.progress import progress_bar
from datagen.corpus import read_manifest, read_table, write_rows
from simulator.checkpoint import load_pretrained, resolve_model_path, weights_id
from simulator.codec import codec_from_options
from simulator.data import COLUMNS, KIND, encode_rows
from simulator.evaluate import batches_by_length, gpu_autocast


@torch.no_grad()
def wrong_bytes(model, split, batch_size: int, device: str = "cpu",
                show_progress: bool = False) -> np.ndarray:
    """(n,) int: for each sequence of `split`, the scored bytes whose teacher-forced greedy
    prediction is not the byte there."""
    wrong = np.zeros(len(split), np.int64)
    bar = progress_bar(len(split), "mine", "rows", show_progress)
    for seqs in batches_by_length(split, batch_size):
        ids_np, mask_np = split.batch(seqs)
        ids = torch.from_numpy(ids_np).to(device)
        with gpu_autocast(device):
            pred = model(ids).argmax(-1)  # (B, T): logits[:, t] predicts ids[:, t]
        wrong[seqs] = ((pred != ids).cpu().numpy() & mask_np).sum(1)
        bar.update(len(seqs))
    bar.close()
    return wrong


def mine(model_path: str | Path, data: str | Path, out: str | Path, easy_per_hard: float = 1.0,
         seed: int = 0, batch_size: int = 32, device: str = "cpu",
         show_progress: bool = True) -> dict[str, Any]:
    """Write the mined corpus of `model_path` on `data`'s train split to `out`; return its
    manifest."""
    if not math.isfinite(easy_per_hard) or easy_per_hard < 0:
        raise UserError(f"--easy-per-hard must be a number >= 0; got {easy_per_hard}")
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1; got {batch_size}")
    folder = resolve_model_path(model_path)
    model, meta = load_pretrained(folder, device)
    codec = codec_from_options(meta["codec"])
    kind = KIND[codec.task]
    source = read_manifest(data, kind)
    table = read_table(data, kind=kind)
    train = table.filter(pc.equal(table["split"], "train"))
    if train.num_rows == 0:
        raise UserError(f"{data} has no train rows to mine")
    split = encode_rows(train.select(COLUMNS[codec.task]).to_pylist(), codec,
                        int(meta["model"]["max_len"]))
    if len(split) == 0:
        raise UserError(f"none of the {train.num_rows} train rows of {data} fits {folder}'s "
                        "context: nothing to mine")
    wrong = wrong_bytes(model, split, batch_size, device, show_progress)
    if not wrong.any():
        raise UserError(f"{folder} gets every one of the {len(split)} train rows of {data} "
                        "right teacher-forced: nothing to mine")
    about = {"mined_from": source["args"], "source_rows": source["counts"]["rows"],
             "model_weights": weights_id(meta)}
    others = table.filter(pc.not_equal(table["split"], "train"))
    return write_mined(out, train, others, split.rows, wrong, about, kind, easy_per_hard, seed)


def write_mined(out: str | Path, train: pa.Table, others: pa.Table, rows_read: np.ndarray,
                wrong: np.ndarray, about: dict[str, Any], kind: str, easy_per_hard: float,
                seed: int) -> dict[str, Any]:
    """Write the corpus of the rows `rows_read[wrong > 0]` of `train` (a corpus's train rows),
    `easy_per_hard` times as many of the rows `rows_read[wrong == 0]` drawn with `seed`, and
    every row of `others` (its valid and test rows); `about` (what was mined, by what) goes
    into its manifest's args. Returns the manifest."""
    hard, easy = rows_read[wrong > 0], rows_read[wrong == 0]
    n_easy = min(len(easy), round(easy_per_hard * len(hard)))
    drawn = np.random.default_rng(seed).choice(easy, n_easy, replace=False)
    keep = np.sort(np.concatenate([hard, drawn]))
    rows = train.take(pa.array(keep, pa.int64())).to_pylist() + others.to_pylist()
    args = {**about, "easy_per_hard": easy_per_hard, "seed": seed, "rows_read": len(rows_read),
            "hard": len(hard), "easy": n_easy}
    return write_rows(out, kind, args, rows)
