"""`simulator eval`: the metrics (docs/metrics.md) of a checkpoint on a corpus split.

Teacher-forced: one forward pass over each whole sequence (loss, bpb, argmax accuracies).
Free-running: the model continues each prompt greedily with `ByteModel.generate`, constrained to
the shape of valid output (`Codec.constraint`), feeding back its own earlier states: the real use.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np
import torch
import torch.nn.functional as F

from bytesim_common.errors import UserError
from bytesim_common.progress import progress_bar
from datagen.music.segments import Unsupported
from simulator.checkpoint import load_pretrained, resolve_model_path
from simulator.codec import (
    END,
    Codec,
    CpuCodec,
    DecodeError,
    MusicCodec,
    MusicPair,
    codec_from_options,
    generation_constraint,
)
from simulator.data import EncodedSplit, encode_rows, load_rows
from simulator.generate import eval_mode
from simulator.long_tunes import UnreadableSegment, convert_tune, plays_more_than
from simulator.metrics import (
    CpuTally,
    MusicTally,
    StepTally,
    bits_per_token,
    plot_by_class,
    state_matches,
)
from simulator.midi_events import StreamError
from simulator.outputs import Output, fits_its_tune, greedy_ids, music_outputs, output_file

if TYPE_CHECKING:
    from simulator.traces import Steps


def gpu_autocast(device: str):
    """bf16 autocast on a GPU; nothing on a CPU."""
    return torch.autocast("cuda", torch.bfloat16, enabled=str(device).startswith("cuda"))


def batches_by_length(split: EncodedSplit, batch_size: int, seqs: np.ndarray | None = None):
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
    rank, world = (d.rank, d.world) if d is not None else (0, 1)
    sums = torch.zeros(2, dtype=torch.float64, device=device)
    with eval_mode(model):
        for seqs in batches_by_length(split, max(1, batch_size), np.arange(rank, len(split), world)):
            ids_np, mask_np = split.batch(seqs)
            ids, mask = torch.from_numpy(ids_np).to(device), torch.from_numpy(mask_np).to(device)
            with gpu_autocast(device):
                logits = model(ids)  # (B, T, V)
            sums[0] += F.cross_entropy(logits[mask].float(), ids[mask], reduction="sum").double()
            sums[1] += mask.sum()
    if d is not None:
        d.all_sum(sums)
    return float(sums[0] / sums[1])


@torch.no_grad()
def _argmax(model, split: EncodedSplit, seqs: np.ndarray, device: str) -> list[np.ndarray]:
    """Teacher-forced greedy predictions, one (length,) array per sequence of `seqs`."""
    ids_np, _ = split.batch(seqs)
    with gpu_autocast(device):
        logits = model(torch.from_numpy(ids_np).to(device))  # (B, T, V)
    pred = logits.argmax(-1).cpu().numpy()
    return [pred[i, : split.lengths[s]] for i, s in enumerate(seqs)]


# ---------------------------------------------------------------------------------------------
# CPU


def _one_step(model, codec: CpuCodec, split: EncodedSplit, seqs: np.ndarray, batch: list,
              steps: list[Steps], chunk: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each state of each trace decoded greedily from the true history before it (the true
    program and states, read from the split's encoded sequences): per trace, the predicted
    states (n, S) and which were predicted at all (n,) (the model may end the trace instead)."""
    stride = codec.stride(batch[0].profile)  # one profile per evaluation
    jobs = []  # (trace index, step, prompt, prompt length of the trace)
    for i, (s, t, st) in enumerate(zip(seqs, batch, steps)):
        ids = split.ids[split.offsets[s]: split.offsets[s + 1]].tolist()
        p0 = len(codec.prompt(t))
        jobs += [(i, k, ids[: p0 + k * stride], p0) for k in range(len(st.truth))]
    preds = [np.zeros_like(st.truth) for st in steps]
    valid = [np.zeros(len(st.truth), bool) for st in steps]
    for c in range(0, len(jobs), chunk):
        part = jobs[c: c + chunk]
        allowed = generation_constraint([codec.constraint(batch[i]) for i, *_ in part],
                                        [p0 for *_, p0 in part])
        outs = model.generate([prompt for _, _, prompt, _ in part], stride, temperature=0.0,
                              stop_id=END, allowed=allowed)
        for (i, k, _, _), out in zip(part, outs):
            states, _ = codec.generated_states(batch[i], out, after=k)
            if len(states):
                preds[i][k], valid[i][k] = states[0], True
    return list(zip(preds, valid))


def _cpu_metrics(model, codec: CpuCodec, samples: list, split: EncodedSplit, batch_size: int,
                 device: str, show_progress: bool) -> dict[str, Any]:
    from datagen.cpu import PROFILES
    from simulator.traces import trace_steps

    profiles = sorted({s.profile for s in samples})
    if len(profiles) != 1:
        raise UserError(f"the split mixes CPU profiles ({', '.join(profiles)}); "
                        "evaluate one profile at a time")
    prof = PROFILES[profiles[0]]
    tallies = {mode: CpuTally(prof.registers, prof.register_bytes)
               for mode in ("teacher_forced", "free_running", "copy_previous")}
    one_step = {mode: StepTally(prof.register_bytes)
                for mode in ("model", "copy_previous", "pc_advance")}
    batches = batches_by_length(split, batch_size)
    bar = progress_bar(len(samples), "eval cpu", "traces", show_progress)
    for seqs in batches:
        batch = [samples[s] for s in seqs]
        steps = [trace_steps(t, prof) for t in batch]
        for st in steps:  # the baselines: nothing changes; only the pc moves on
            right = state_matches(st.prev, st.truth)
            tallies["copy_previous"].add(right, st.classes, bool(right[-1].all()))
            ok = np.ones(len(st.truth), bool)
            for mode, pred in (("copy_previous", st.prev), ("pc_advance", st.pc_advanced())):
                one_step[mode].add(pred, ok, st.prev, st.truth, st.taken, st.classes,
                                   st.mnemonics)
        for pred, t, st in zip(_argmax(model, split, seqs, device), batch, steps):
            right = state_matches(codec.teacher_forced_states(t, pred), st.truth)
            tallies["teacher_forced"].add(right, st.classes, bool(right[-1].all()))
        for (pred, ok), st in zip(_one_step(model, codec, split, seqs, batch, steps,
                                            4 * batch_size), steps):
            one_step["model"].add(pred, ok, st.prev, st.truth, st.taken, st.classes, st.mnemonics)
        max_new = max(split.lengths[s] - len(codec.prompt(t)) for s, t in zip(seqs, batch))
        for out, t, st in zip(greedy_ids(model, codec, batch, max_new), batch, steps):
            pred, stopped = codec.generated_states(t, out)
            right = state_matches(pred, st.truth)
            final = stopped and len(pred) == len(st.truth) and bool(right[-1].all())
            tallies["free_running"].add(right, st.classes, final)
        bar.update(len(seqs))
    bar.close()
    res = {mode: t.result() for mode, t in tallies.items()}
    steps_res = {mode: t.result() for mode, t in one_step.items()}
    fr, tf, one = res["free_running"], res["teacher_forced"], steps_res["model"]
    return {"profile": prof.name, "stop_rule": codec.word_is_given,
            "step_exact": one["step_exact"], "write_exact": one["write_exact"],
            "branch_exact": one["branch_exact"], "final_exact": fr["final_exact"],
            "state_exact": fr["state_exact"], "byte_accuracy": fr["byte_accuracy"],
            "byte_accuracy_tf": tf["byte_accuracy"], "state_exact_tf": tf["state_exact"],
            "final_exact_tf": tf["final_exact"],
            "copy_previous_byte_accuracy": res["copy_previous"]["byte_accuracy"],
            "one_step": steps_res, **res}


# ---------------------------------------------------------------------------------------------
# Music


# samples and their prompts (None: the codec's) -> each one's output (`music_outputs`)
Outputs = Callable[[list[MusicPair], list[list[int]] | None], list[Output | None]]


def _music_metrics(model, codec: MusicCodec, samples: list, split: EncodedSplit,
                   batch_size: int, device: str, show_progress: bool,
                   long: list[MusicPair], segment_bars: int | None,
                   branches: int = 0) -> dict[str, Any]:
    """Greedy outputs (with `branches`: branched, `music_outputs`) scored as files; abc2midi also
    teacher-forced, note by note (on the files whose MIDI has an event stream, which every
    normalised converter output has). With `segment_bars`, every tune, the `long` ones too
    (whose pair does not fit the context), is converted as the converter converts it
    (`convert_tune`), from the same outputs."""
    outputs: Outputs = partial(music_outputs, model, codec, branches=branches,
                               check=fits_its_tune(codec))
    tally = MusicTally(codec.task)
    policy = codec.task == "abc2midi" and bool(segment_bars)
    wholes: list[tuple[MusicPair, Output | None]] = []
    bar = progress_bar(len(samples) + len(long), f"eval {codec.task}", "files", show_progress)
    for seqs in batches_by_length(split, batch_size):
        batch = [samples[s] for s in seqs]
        prompts = [codec.prompt(p).tolist() for p in batch]
        starts = [len(p) for p in prompts]
        if codec.task == "abc2midi":
            for pred, sample, start, s in zip(_argmax(model, split, seqs, device), batch, starts,
                                              seqs):
                try:
                    spans = codec.note_spans(sample)
                except StreamError:
                    continue
                right = pred == split.ids[split.offsets[s]: split.offsets[s + 1]]  # (length,)
                tally.add_teacher_forced(np.array(
                    [[right[start + n.pitch], right[start + np.array(n.onset)].all(),
                      right[start + np.array(n.duration)].all()] for n in spans],
                    bool).reshape(-1, 3))
        if policy:
            wholes += _whole_outputs(outputs, batch, segment_bars or 0, prompts)
            continue
        for out, sample in zip(outputs(batch, prompts), batch):
            assert out is not None  # every kept sequence fits the context, its output too
            try:
                got = output_file(codec, out)
            except DecodeError:  # an event stream cut short: no file
                got = b""
            if codec.task == "abc2midi":
                tally.add_output(got, sample.midi, got == sample.midi, out.ends)
            else:  # midi2abc: the notes of the predicted ABC, converted, against the input's
                tally.add_output(_abc_as_midi(got), sample.midi,
                                 got == sample.abc.encode("utf-8", "surrogateescape"), out.ends)
            bar.update(1)
    if not policy:
        bar.close()
        return tally.result()
    for i in range(0, len(long), batch_size):
        wholes += _whole_outputs(outputs, long[i:i + batch_size], segment_bars or 0)
    counts = Counter[str]()
    for sample, out in wholes:
        got, how = _converted(outputs, codec, sample, out, segment_bars or 0)
        counts[how] += 1
        tally.add_output(got, sample.midi, got == sample.midi, bool(got))
        bar.update(1)
    bar.close()
    return {**tally.result(), "segment_bars": segment_bars,
            "n_segmented": counts["segments"] + counts["retried"],
            "n_retried": counts["retried"], "n_unsupported": counts["unsupported"]}


def _whole_outputs(outputs: Outputs, batch: list[MusicPair], bars: int,
                   prompts: list[list[int]] | None = None) -> list[tuple[MusicPair, Output | None]]:
    """Each tune with its whole output, made in one batch where the converter asks for one
    (None for a tune it converts in segments first, `plays_more_than`)."""
    first = [plays_more_than(p.abc, bars) for p in batch]
    asked = [i for i, f in enumerate(first) if not f]
    outs = outputs([batch[i] for i in asked],
                   None if prompts is None else [prompts[i] for i in asked]) if asked else []
    whole: dict[int, Output | None] = dict(zip(asked, outs))
    return [(p, whole.get(i)) for i, p in enumerate(batch)]


def _converted(outputs: Outputs, codec: MusicCodec, sample: MusicPair, out: Output | None,
               bars: int) -> tuple[bytes, str]:
    """A tune converted as the converter converts it (`convert_tune`), from its whole
    output (None: not made yet, or its prompt does not fit), and how: "whole", "segments",
    "retried" (whole first, then in segments) or "unsupported" (no file)."""
    asked: list[str] = []

    def whole() -> bytes | None:
        asked.append("whole")
        nonlocal out
        out = out or outputs([sample], None)[0]
        try:
            return output_file(codec, out) if out is not None and out.ends else None
        except DecodeError:  # an event stream cut short: no file
            return None

    def segments(texts: list[str]) -> list[bytes | None]:
        asked.append("segments")
        return _segment_files(outputs, codec, texts)

    try:
        got = convert_tune(sample.abc, whole, segments, bars) or b""
    except (Unsupported, UnreadableSegment):
        return b"", "unsupported"
    if asked[-1] == "whole":
        return got, "whole"
    return got, "retried" if asked[0] == "whole" else "segments"


def _segment_files(outputs: Outputs, codec: MusicCodec, texts: list[str]) -> list[bytes | None]:
    """The model's MIDI files for segment tunes; None for one whose input or output does not
    fit the context (the facade's rule: simulator/outputs.py)."""
    return [output_file(codec, out) if out is not None and out.ends else None
            for out in outputs([MusicPair(text, b"") for text in texts], None)]


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
             show_progress: bool = True, log: TextIO = sys.stderr,
             segment_bars: int | None = None, branches: int = 0) -> dict[str, Any]:
    """All the metrics (docs/metrics.md) of a checkpoint (a run folder or `trained/NAME`) on a
    corpus split; with `segment_bars`, abc2midi tunes longer than the context are scored too,
    converted in segments (simulator/long_tunes.py); with `branches`, music outputs are
    branched at their closest calls (simulator/outputs.py)."""
    folder = resolve_model_path(model_path)
    model, meta = load_pretrained(folder, device)
    codec = codec_from_options(meta["codec"])
    rows = load_rows(data, codec.task, split)
    if limit is not None:
        if limit < 1:
            raise UserError(f"--limit must be at least 1; got {limit}")
        rows = rows[:limit]
    result = evaluate_rows(model, codec, rows, f"the {split} split of {data}", device,
                           batch_size, show_progress, log, segment_bars, branches)
    return {"model": str(folder), "data": str(data), "split": split, **result}


def evaluate_rows(model, codec: Codec, rows: list[dict], what: str, device: str = "cpu",
                  batch_size: int = 16, show_progress: bool = True,
                  log: TextIO = sys.stderr, segment_bars: int | None = None,
                  branches: int = 0) -> dict[str, Any]:
    """All the metrics of `model` on corpus rows (`what` names them in messages)."""
    if branches < 0 or (branches and not isinstance(codec, MusicCodec)):
        raise UserError(f"--branches is for music models, 0 or more; got {branches} for a "
                        f"{codec.task} model")
    if segment_bars is not None and (segment_bars < 1 or codec.task != "abc2midi"):
        raise UserError(f"--segment-bars is for abc2midi models, at least 1; got {segment_bars} "
                        f"for a {codec.task} model")
    enc = encode_rows(rows, codec, model.config.max_len)
    kept = set(enc.rows.tolist())
    long = ([codec.sample_from_row(r) for i, r in enumerate(rows) if i not in kept]
            if segment_bars else [])  # scored in segments
    if enc.n_too_long:
        fate = (f"are converted {segment_bars} bars at a time" if segment_bars
                else "are left out")
        print(f"{enc.n_too_long} of {len(rows)} sequences of {what} are longer than the model's "
              f"context ({model.config.max_len}) and {fate}", file=log)
    if len(enc) == 0:
        raise UserError(f"nothing to evaluate: {what} has "
                        f"{'no rows' if not rows else 'no sequence that fits the context'}")
    samples = [codec.sample_from_row(rows[i]) for i in enc.rows]
    loss = split_loss(model, enc, batch_size, device)
    result: dict[str, Any] = {"task": codec.task, "n": len(enc), "n_too_long": enc.n_too_long,
                              "loss": loss, "bpb": bits_per_token(loss)}
    if isinstance(codec, CpuCodec):
        result.update(_cpu_metrics(model, codec, samples, enc, batch_size, device, show_progress))
    else:
        result.update(_music_metrics(model, codec, samples, enc, batch_size, device,
                                     show_progress, long, segment_bars, branches))
        if branches:
            result["branches"] = branches
    return result


MUSIC_LEADING = ("notes_exact", "ends", "valid_midi", "meta_exact", "exact_file")  # after note_f1


def percent(x: float | None) -> str:
    return "   -  " if x is None else f"{100 * x:6.2f}%"


def format_table(r: dict[str, Any]) -> str:
    """The eval result as a terminal table (Markdown, so a model card can include it)."""
    more = (f", and {r['n_too_long']} longer than the context" if "segment_bars" in r
            and r["n_too_long"] else "")
    lines = [f"{r['task']} on the {r['split']} split of {r['data']} ({r['n']} sequences{more})",
             ""]
    if r["task"] == "cpu":
        tf, fr, cp = r["teacher_forced"], r["free_running"], r["copy_previous"]
        one = r["one_step"]
        lines += ["One step from the true history (the metrics a copying model scores 0 on):", "",
                  "| metric | model | copy-previous baseline | pc-advance baseline |",
                  "| --- | --- | --- | --- |"]
        for k, n in (("step_exact", "steps"), ("write_exact", "writes"),
                     ("branch_exact", "taken")):
            lines.append(f"| {k} ({one['model'][n]} {n}) | {percent(one['model'][k])} | "
                         f"{percent(one['copy_previous'][k])} | {percent(one['pc_advance'][k])} |")
        end = ("the trace ends where the predicted pc leaves the program" if r["stop_rule"]
               else "the trace ends where the model writes its end marker")
        lines += ["", f"Free-running (the model's own states fed back; {end}):", "",
                  "| metric | model | copy-previous baseline |", "| --- | --- | --- |",
                  f"| final_exact | {percent(r['final_exact'])} | {percent(cp['final_exact'])} |",
                  f"| state_exact | {percent(r['state_exact'])} | {percent(cp['state_exact'])} |",
                  f"| byte_accuracy | {percent(r['byte_accuracy'])} | {percent(cp['byte_accuracy'])} |",
                  "", "One step, by instruction class:", "",
                  ("| class | steps | step_exact | write_exact (writes) | branch_exact (taken) | "
                   "pc-advance step_exact |"), "| --- | --- | --- | --- | --- | --- |"]
        for c, v in one["model"]["by_class"].items():
            base = one["pc_advance"]["by_class"][c]
            lines.append(f"| {c} | {v['steps']} | {percent(v['step_exact'])} | "
                         f"{percent(v['write_exact'])} ({v['writes']}) | "
                         f"{percent(v['branch_exact'])} ({v['taken']}) | {percent(base['step_exact'])} |")
        lines += ["", "One step, by mnemonic:", "",
                  "| mnemonic | steps | step_exact | write_exact |", "| --- | --- | --- | --- |"]
        lines += [f"| {m} | {v['steps']} | {percent(v['step_exact'])} | {percent(v['write_exact'])} |"
                  for m, v in one["model"]["by_mnemonic"].items()]
        lines += ["", "Secondary: bytes (a copying model scores high on these):", "",
                  "| metric | teacher-forced | free-running | copy-previous baseline |",
                  "| --- | --- | --- | --- |",
                  f"| loss (nats/token) | {r['loss']:.4f} | | |", f"| bpb | {r['bpb']:.4f} | | |"]
        for k in ("byte_accuracy", "state_exact", "final_exact"):
            lines.append(f"| {k} | {percent(r[k + '_tf'])} | {percent(r[k])} | {percent(cp[k])} |")
        lines += ["", "| register | teacher-forced | free-running | copy-previous |",
                  "| --- | --- | --- | --- |"]
        lines += [f"| {reg} | {percent(tf['by_register'][reg])} | {percent(fr['by_register'][reg])} | "
                  f"{percent(cp['by_register'][reg])} |" for reg in tf["by_register"]]
        lines += ["", ("| instruction class | steps | byte acc. (tf) | byte acc. (free) | "
                       "state exact (free) | byte acc. (copy-previous) |"),
                  "| --- | --- | --- | --- | --- | --- |"]
        for c, v in fr["by_class"].items():
            lines.append(f"| {c} | {v['steps']} | {percent(tf['by_class'][c]['byte_accuracy'])} | "
                         f"{percent(v['byte_accuracy'])} | {percent(v['state_exact'])} | "
                         f"{percent(cp['by_class'][c]['byte_accuracy'])} |")
    else:
        how = (f"greedy output, branched at up to {r['branches']} closest calls"
               if r.get("branches") else "greedy output")
        lines += [f"| metric ({how}) | value |", "| --- | --- |",
                  f"| note_f1 | {r['note_f1']:.4f} |"]
        lines += [f"| {k} | {percent(r[k])} |" for k in MUSIC_LEADING if k in r]
        if "segment_bars" in r:
            lines += ["", (f"As the converter does, a tune that plays more than {r['segment_bars']} "
                           "bars beside a pickup was converted that many bars at a time, and so "
                           "was a shorter one whose whole output did not fit, did not end or "
                           f"ended with fewer notes than the tune plays: {r['n_segmented']} tunes "
                           "in segments "
                           f"({r['n_retried']} after their whole output), {r['n_unsupported']} "
                           "with no file (they could not be cut); the teacher-forced figures "
                           f"below are on the {r['n']} that fit.")]
        if "note_tf" in r:
            lines += ["", f"Teacher-forced, per note of the reference ({r['tf_notes']} notes):",
                      "", "| pitch, onset and duration right | pitch | onset | duration |",
                      "| --- | --- | --- | --- |",
                      (f"| {percent(r['note_tf'])} | {percent(r['pitch_tf'])} | "
                       f"{percent(r['onset_tf'])} | {percent(r['duration_tf'])} |")]
        if "first_error" in r:
            lines += ["", "Where the outputs with wrong notes first go wrong (notes in time order):",
                      "", "| first error | share of wrong outputs |", "| --- | --- |"]
            lines += [f"| {k} | {percent(v)} |" for k, v in r["first_error"].items()]
        lines += ["", (f"Secondary: bpb {r['bpb']:.4f} (loss {r['loss']:.4f} nats/token), "
                       "teacher-forced.")]
    return "\n".join(lines)


def plot_result(r: dict[str, Any], path: str | Path) -> None:
    """The by-instruction-class PNG of a CPU eval result."""
    plot_by_class({"teacher-forced": r["teacher_forced"], "free-running": r["free_running"],
                   "copy-previous baseline": r["copy_previous"]},
                  path, title=f"{r['profile']}: byte accuracy by instruction class")
