"""`simulator eval`: SPEC §7 metrics of a checkpoint on a corpus split.

Teacher-forced: one forward pass over each whole sequence (loss, bpb, argmax accuracies).
Free-running: the model continues each prompt greedily with `ByteModel.generate`, constrained to
the shape of valid output (`Codec.constraint`), feeding back its own earlier states: the real use.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch
import torch.nn.functional as F

from datagen.errors import UserError
from datagen.progress import progress_bar
from simulator.checkpoint import load_pretrained, resolve_model_path
from simulator.codec import (
    END,
    Codec,
    CpuCodec,
    MusicCodec,
    codec_from_options,
    generation_constraint,
)
from simulator.data import EncodedSplit, encode_rows, load_rows
from simulator.metrics import (
    CpuTally,
    bits_per_token,
    note_f1,
    plot_by_class,
    state_matches,
    valid_midi,
)


def _autocast(device: str):
    return torch.autocast("cuda", torch.bfloat16, enabled=str(device).startswith("cuda"))


def _batches(split: EncodedSplit, batch_size: int, seqs: np.ndarray | None = None):
    """Sequence indices in batches of similar length (less padding), in a fixed order."""
    seqs = np.arange(len(split)) if seqs is None else seqs
    order = seqs[np.argsort(split.lengths[seqs], kind="stable")]
    return [order[i: i + batch_size] for i in range(0, len(order), batch_size)]


@torch.no_grad()
def split_loss(model, split: EncodedSplit, batch_size: int, device: str, d=None) -> float:
    """Mean loss (nats per target token) of `model` on every sequence of `split`, teacher-forced.

    Under DDP (`d` with world > 1) each rank takes every world-th sequence and the sums are
    all-reduced, so every rank returns the same number.
    """
    was_training = model.training
    model.eval()
    rank, world = (d.rank, d.world) if d is not None else (0, 1)
    sums = torch.zeros(2, dtype=torch.float64, device=device)
    for seqs in _batches(split, max(1, batch_size), np.arange(rank, len(split), world)):
        ids_np, mask_np = split.batch(seqs)
        ids, mask = torch.from_numpy(ids_np).to(device), torch.from_numpy(mask_np).to(device)
        with _autocast(device):
            logits = model(ids)  # (B, T, V)
        sums[0] += F.cross_entropy(logits[mask].float(), ids[mask], reduction="sum").double()
        sums[1] += mask.sum()
    if d is not None:
        d.all_sum(sums)
    model.train(was_training)
    return float(sums[0] / sums[1])


@torch.no_grad()
def _argmax(model, split: EncodedSplit, seqs: np.ndarray, device: str) -> list[np.ndarray]:
    """Teacher-forced greedy predictions, one (length,) array per sequence of `seqs`."""
    ids_np, _ = split.batch(seqs)
    with _autocast(device):
        logits = model(torch.from_numpy(ids_np).to(device))  # (B, T, V)
    pred = logits.argmax(-1).cpu().numpy()
    return [pred[i, : split.lengths[s]] for i, s in enumerate(seqs)]


def _generate(model, codec: Codec, samples: list, max_new: int) -> list[list[int]]:
    prompts = [codec.prompt(s).tolist() for s in samples]
    allowed = generation_constraint([codec.constraint(s) for s in samples],
                                    [len(p) for p in prompts])
    return model.generate(prompts, max_new, temperature=0.0, stop_id=END, allowed=allowed)


# ---------------------------------------------------------------------------------------------
# CPU


def instruction_classes(trace, profile) -> list[str]:
    """The class of the instruction executed at each step (at the pc of state_0 .. state_n-1)."""
    from datagen.cpu import classify

    states = np.frombuffer(trace.states, np.uint8).reshape(-1, profile.state_size)
    width = profile.register_bytes[0]
    pcs = states[:-1, :width].copy().view(f"<u{width}")[:, 0].astype(np.int64)
    out = []
    for pc in pcs - profile.code_base:
        code = trace.program[pc: pc + 16] if 0 <= pc < len(trace.program) else b""
        out.append(classify(profile.name, code))
    return out


def _cpu_metrics(model, codec: CpuCodec, samples: list, split: EncodedSplit, batch_size: int,
                 device: str, show_progress: bool) -> dict[str, Any]:
    from datagen.cpu import PROFILES

    profiles = sorted({s.profile for s in samples})
    if len(profiles) != 1:
        raise UserError(f"the split mixes CPU profiles ({', '.join(profiles)}); "
                        "evaluate one profile at a time")
    prof = PROFILES[profiles[0]]
    size, stride = prof.state_size, codec.stride(prof.name)
    tallies = {mode: CpuTally(prof.registers, prof.register_bytes)
               for mode in ("teacher_forced", "free_running", "copy_previous")}
    batches = _batches(split, batch_size)
    bar = progress_bar(len(samples), "eval cpu", "traces", show_progress)
    for seqs in batches:
        batch = [samples[s] for s in seqs]
        truths = [np.frombuffer(t.states, np.uint8).reshape(-1, size)[1:] for t in batch]
        classes = [instruction_classes(t, prof) for t in batch]
        for t, truth, cls in zip(batch, truths, classes):  # the baseline: nothing changes
            right = state_matches(np.frombuffer(t.states, np.uint8).reshape(-1, size)[:-1], truth)
            tallies["copy_previous"].add(right, cls, bool(right[-1].all()))
        for pred, t, truth, cls in zip(_argmax(model, split, seqs, device), batch, truths,
                                       classes):
            right = state_matches(pred[codec.state_positions(t)], truth)
            tallies["teacher_forced"].add(right, cls, bool(right[-1].all()))
        max_new = max(len(codec.encode(t)[0]) - len(codec.prompt(t)) for t in batch)
        for out, truth, cls in zip(_generate(model, codec, batch, max_new), truths, classes):
            stopped = END in out
            body = out[: out.index(END)] if stopped else out
            n_pred = len(body) // stride
            pred = np.array(body[: n_pred * stride], np.int64).reshape(n_pred, stride)[:, :size]
            right = state_matches(pred, truth)
            final = stopped and n_pred == len(truth) and bool(right[-1].all())
            tallies["free_running"].add(right, cls, final)
        bar.update(len(seqs))
    bar.close()
    res = {mode: t.result() for mode, t in tallies.items()}
    fr, tf = res["free_running"], res["teacher_forced"]
    return {"profile": prof.name, "byte_accuracy": fr["byte_accuracy"],
            "byte_accuracy_tf": tf["byte_accuracy"], "state_exact": fr["state_exact"],
            "state_exact_tf": tf["state_exact"], "final_exact": fr["final_exact"],
            "final_exact_tf": tf["final_exact"],
            "copy_previous_byte_accuracy": res["copy_previous"]["byte_accuracy"], **res}


# ---------------------------------------------------------------------------------------------
# Music


def _music_metrics(model, codec: MusicCodec, samples: list, split: EncodedSplit,
                   batch_size: int, show_progress: bool) -> dict[str, Any]:
    exact, valid, f1 = [], [], []
    bar = progress_bar(len(samples), f"eval {codec.task}", "files", show_progress)
    for seqs in _batches(split, batch_size):
        batch = [samples[s] for s in seqs]
        refs = [codec.target_bytes(codec.encode(p)[0][len(codec.prompt(p)):]) for p in batch]
        max_new = max(len(r) for r in refs) + 2 * codec.align
        for out, ref, sample in zip(_generate(model, codec, batch, max_new), refs, batch):
            got = codec.target_bytes(np.array(out, np.int64))
            exact.append(got == ref)
            if codec.task == "abc2midi":
                valid.append(valid_midi(got))
                f1.append(note_f1(got, ref))
            else:  # midi2abc: the notes of the predicted ABC, converted, against the input's
                f1.append(note_f1(_abc_as_midi(got), sample.midi))
        bar.update(len(seqs))
    bar.close()
    res: dict[str, Any] = {"exact_file": float(np.mean(exact)), "note_f1": float(np.mean(f1))}
    if codec.task == "abc2midi":
        res.update(valid_midi=float(np.mean(valid)))
    return res


def _abc_as_midi(abc: bytes) -> bytes:
    """Predicted ABC through the reference converter and the corpus's MIDI normalization;
    b"" where it does not convert."""
    from datagen.music.convert import convert, reference_converter
    from datagen.music.normalize import BadMidi, normalize_midi

    result = convert(abc.decode("utf-8", "replace"), reference_converter())
    try:
        return normalize_midi(result.midi) if result.midi else b""
    except BadMidi:
        return b""



# ---------------------------------------------------------------------------------------------
# The command


def evaluate(model_path: str | Path, data: str | Path, split: str = "test",
             limit: int | None = None, device: str = "cpu", batch_size: int = 16,
             show_progress: bool = True, log: TextIO = sys.stderr) -> dict[str, Any]:
    """All SPEC §7 metrics of a checkpoint (a run folder or `trained/NAME`) on a corpus split."""
    folder = resolve_model_path(model_path)
    model, meta = load_pretrained(folder, device)
    codec = codec_from_options(meta["codec"])
    rows = load_rows(data, codec.task, split)
    if limit is not None:
        if limit < 1:
            raise UserError(f"--limit must be at least 1; got {limit}")
        rows = rows[:limit]
    enc = encode_rows(rows, codec, model.config.max_len)
    if enc.n_too_long:
        print(f"{enc.n_too_long} of {len(rows)} {split} sequences are longer than the model's "
              f"context ({model.config.max_len}) and are left out", file=log)
    if len(enc) == 0:
        raise UserError(f"nothing to evaluate: the {split} split of {data} has "
                        f"{'no rows' if not rows else 'no sequence that fits the context'}")
    samples = [codec.sample_from_row(rows[i]) for i in enc.rows]
    loss = split_loss(model, enc, batch_size, device)
    result: dict[str, Any] = {"task": codec.task, "model": str(folder), "data": str(data),
                              "split": split, "n": len(enc), "n_too_long": enc.n_too_long,
                              "loss": loss, "bpb": bits_per_token(loss)}
    if isinstance(codec, CpuCodec):
        result.update(_cpu_metrics(model, codec, samples, enc, batch_size, device, show_progress))
    else:
        result.update(_music_metrics(model, codec, samples, enc, batch_size, show_progress))
    return result


def _pct(x: float | None) -> str:
    return "   -  " if x is None else f"{100 * x:6.2f}%"


def format_table(r: dict[str, Any]) -> str:
    """The eval result as a terminal table (Markdown, so a model card can include it)."""
    lines = [f"{r['task']} on the {r['split']} split of {r['data']} ({r['n']} sequences)", ""]
    if r["task"] == "cpu":
        tf, fr, cp = r["teacher_forced"], r["free_running"], r["copy_previous"]
        lines += ["| metric | teacher-forced | free-running | copy-previous baseline |",
                  "| --- | --- | --- | --- |",
                  f"| loss (nats/token) | {r['loss']:.4f} | | |", f"| bpb | {r['bpb']:.4f} | | |"]
        for k in ("byte_accuracy", "state_exact", "final_exact"):
            lines.append(f"| {k} | {_pct(r[k + '_tf'])} | {_pct(r[k])} | {_pct(cp[k])} |")
        lines += ["", "| register | teacher-forced | free-running | copy-previous |",
                  "| --- | --- | --- | --- |"]
        lines += [f"| {reg} | {_pct(tf['by_register'][reg])} | {_pct(fr['by_register'][reg])} | "
                  f"{_pct(cp['by_register'][reg])} |" for reg in tf["by_register"]]
        lines += ["", ("| instruction class | steps | byte acc. (tf) | byte acc. (free) | "
                       "state exact (free) | byte acc. (copy-previous) |"),
                  "| --- | --- | --- | --- | --- | --- |"]
        for c, v in fr["by_class"].items():
            lines.append(f"| {c} | {v['steps']} | {_pct(tf['by_class'][c]['byte_accuracy'])} | "
                         f"{_pct(v['byte_accuracy'])} | {_pct(v['state_exact'])} | "
                         f"{_pct(cp['by_class'][c]['byte_accuracy'])} |")
    else:
        lines += ["| metric | value |", "| --- | --- |",
                  f"| loss (nats/token) | {r['loss']:.4f} |", f"| bpb | {r['bpb']:.4f} |"]
        for k in ("exact_file", "valid_midi", "note_f1"):
            if k in r:
                lines.append(f"| {k} | {_pct(r[k])} |")
    return "\n".join(lines)


def plot_result(r: dict[str, Any], path: str | Path) -> None:
    """The by-instruction-class PNG of a CPU eval result."""
    plot_by_class({"teacher-forced": r["teacher_forced"], "free-running": r["free_running"],
                   "copy-previous baseline": r["copy_previous"]},
                  path, title=f"{r['profile']}: byte accuracy by instruction class")
