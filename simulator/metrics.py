"""The metrics of docs/metrics.md, defined once: CPU state accuracies, music file scores, bits per byte.

CPU metrics are computed on target states only (state_1 .. state_n of each trace):
- byte_accuracy: the fraction of target state bytes right (bGPT's metric);
- state_exact: the fraction of target states right in every byte;
- final_exact: the fraction of traces whose last state is right (free-running: also the trace
  must stop after exactly n states);
- by_register: byte accuracy per register; by_class: byte accuracy and state exactness of the
  state after each instruction, by the class of that instruction.
Music, on greedy output, in the order they lead (`MusicTally`):
- note_f1: note-level F1 (channel, pitch, onset, duration) of the output against the reference;
- notes_exact: the fraction of files whose notes are all right (and no others);
- ends: the fraction of outputs that end (END) inside the model's context;
- valid_midi (abc2midi): the fraction of outputs that mido reads as a MIDI file;
- meta_exact: the fraction of outputs whose time signature, key signature and tempo events
  are the reference's (at the same times): what note_f1 does not see, as notes are timed in beats;
- exact_file: the fraction of outputs byte-identical to the reference;
and, teacher-forced, per note of the reference MIDI (abc2midi): whether its pitch, onset and
duration bytes are all predicted right (`note_tf`), and each apart: a diagnostic that moves long
before whole files come out right. bpb (bits per target token under teacher forcing) follows.
"""

from __future__ import annotations

import io
import itertools
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from mido.midifiles.meta import KeySignatureError

LN2 = math.log(2)
# what mido raises on bytes that are not a well-formed MIDI file (KeySignatureError: a key
# signature meta event with an impossible key, e.g. 112 flats)
MIDI_ERRORS = (OSError, EOFError, ValueError, KeyError, IndexError, TypeError, KeySignatureError)


def bits_per_token(loss_nats: float) -> float:
    """Mean loss in nats per target token -> bits per target token (the `bpb` of docs/metrics.md)."""
    return loss_nats / LN2


class CpuTally:
    """Accumulates CPU metrics over traces; `result()` gives the numbers of docs/metrics.md."""

    def __init__(self, registers: Sequence[str], register_bytes: Sequence[int]):
        self.registers = list(registers)
        edges = np.cumsum([0, *register_bytes])
        self.slices = [slice(int(a), int(b)) for a, b in itertools.pairwise(edges)]
        self.bytes_right = self.bytes_total = 0
        self.states_right = self.states_total = 0
        self.finals_right = self.traces = 0
        self.reg_right = np.zeros(len(self.registers), np.int64)
        self.reg_total = np.zeros(len(self.registers), np.int64)
        self.cls: dict[str, Counter] = defaultdict(Counter)

    def add(self, right: np.ndarray, classes: Sequence[str], final_right: bool) -> None:
        """One trace: right (n, state_size) bool per target byte; classes (n,) per step."""
        n, size = right.shape
        self.bytes_right += int(right.sum())
        self.bytes_total += right.size
        exact = right.all(axis=1)  # (n,)
        self.states_right += int(exact.sum())
        self.states_total += n
        self.finals_right += int(final_right)
        self.traces += 1
        for i, s in enumerate(self.slices):
            self.reg_right[i] += int(right[:, s].sum())
            self.reg_total[i] += right[:, s].size
        for k, c in enumerate(classes):
            tally = self.cls[c]
            tally["steps"] += 1
            tally["bytes_right"] += int(right[k].sum())
            tally["bytes"] += size
            tally["exact"] += int(exact[k])

    def result(self) -> dict[str, Any]:
        return {
            "byte_accuracy": _ratio(self.bytes_right, self.bytes_total),
            "state_exact": _ratio(self.states_right, self.states_total),
            "final_exact": _ratio(self.finals_right, self.traces),
            "by_register": {r: _ratio(int(a), int(b)) for r, a, b in
                            zip(self.registers, self.reg_right, self.reg_total)},
            "by_class": {c: {"steps": t["steps"],
                             "byte_accuracy": _ratio(t["bytes_right"], t["bytes"]),
                             "state_exact": _ratio(t["exact"], t["steps"])}
                         for c, t in sorted(self.cls.items())},
        }


class StepTally:
    """One-step simulation (docs/metrics.md): each state predicted from the true history.

    Per step: `step_exact` (the whole state right); on steps that write a register (a register
    other than the pc changes value), `write_exact` (every changed register right); on steps
    where the pc does not fall through to the next instruction (a taken branch),
    `branch_exact` (the pc right). A copy of the previous state scores 0 on all three. Counted
    overall, by instruction class and by mnemonic.
    """

    def __init__(self, register_bytes: Sequence[int]):
        edges = np.cumsum([0, *register_bytes])
        self.slices = [slice(int(a), int(b)) for a, b in itertools.pairwise(edges)]
        self.total: Counter = Counter()
        self.by_class: dict[str, Counter] = defaultdict(Counter)
        self.by_mnemonic: dict[str, Counter] = defaultdict(Counter)

    def add(self, pred: np.ndarray, valid: np.ndarray, prev: np.ndarray, truth: np.ndarray,
            taken: np.ndarray, classes: Sequence[str], mnemonics: Sequence[str]) -> None:
        """One trace. pred, prev, truth (n, S) uint8: the predicted state, the true state before
        and the true state of each step; valid (n,): a state was predicted at all; taken (n,):
        the pc did not fall through."""
        right = (pred == truth) & valid[:, None]  # (n, S)
        regs = self.slices[1:]  # every register but the pc
        changed = np.stack([(prev[:, s] != truth[:, s]).any(1) for s in regs], 1)  # (n, R)
        reg_right = np.stack([right[:, s].all(1) for s in regs], 1)  # (n, R)
        counts = {"steps": np.ones(len(truth), bool), "exact": right.all(1),
                  "writes": changed.any(1), "writes_right": changed.any(1)
                  & (reg_right | ~changed).all(1),
                  "taken": taken, "taken_right": taken & right[:, self.slices[0]].all(1)}
        for k, (c, m) in enumerate(zip(classes, mnemonics)):
            for tally in (self.total, self.by_class[c], self.by_mnemonic[m]):
                tally.update({key: int(v[k]) for key, v in counts.items()})

    @staticmethod
    def _figures(t: Counter) -> dict[str, Any]:
        return {"steps": t["steps"], "step_exact": _ratio(t["exact"], t["steps"]),
                "writes": t["writes"], "write_exact": _ratio(t["writes_right"], t["writes"]),
                "taken": t["taken"], "branch_exact": _ratio(t["taken_right"], t["taken"])}

    def result(self) -> dict[str, Any]:
        return {**self._figures(self.total),
                "by_class": {c: self._figures(t) for c, t in sorted(self.by_class.items())},
                "by_mnemonic": {m: self._figures(t) for m, t in sorted(self.by_mnemonic.items())}}


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def state_matches(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """predicted (m, S) (m may differ from n; missing states count as wrong), truth (n, S)
    -> (n, S) bool."""
    right = np.zeros(truth.shape, dtype=bool)
    m = min(len(predicted), len(truth))
    right[:m] = predicted[:m] == truth[:m]
    return right


# ---------------------------------------------------------------------------------------------
# Music


def valid_midi(data: bytes) -> bool:
    """Whether mido parses `data` as a MIDI file."""
    return _readable(data) is not None


Note = tuple[int, int, float, float]  # (channel, pitch, onset, duration)
Notes = list[Note]


def _read(data: bytes):
    """The mido.MidiFile of `data` (one of MIDI_ERRORS if it is not a MIDI file)."""
    import mido

    return mido.MidiFile(file=io.BytesIO(data))


def _readable(data: bytes):
    """`_read`, or None if the file is unreadable."""
    try:
        return _read(data)
    except MIDI_ERRORS:
        return None


def midi_notes(data: bytes) -> Notes:
    """Notes of a MIDI file as (channel, pitch, onset, duration), times in beats (rounded)."""
    return _notes(_read(data))


def _notes(mid) -> Notes:
    tpb = mid.ticks_per_beat or 480
    notes = []
    for track in mid.tracks:
        now, sounding = 0, {}
        for msg in track:
            now += msg.time
            if msg.type == "note_on" and msg.velocity > 0:
                sounding.setdefault((msg.channel, msg.note), []).append(now)
            elif msg.type in ("note_off", "note_on") and sounding.get((msg.channel, msg.note)):
                start = sounding[(msg.channel, msg.note)].pop(0)
                notes.append((msg.channel, msg.note, round(start / tpb, 3),
                              round((now - start) / tpb, 3)))
    return notes


def _readable_notes(data: bytes) -> Notes | None:
    """`midi_notes`, or None if the file is unreadable."""
    mid = _readable(data)
    return None if mid is None else _notes(mid)


# The meta events that say how a file is played and written out beside its notes: its meter,
# its key and its tempo (abc2midi writes them from the M:, K: and Q: fields).
META_TYPES = ("time_signature", "key_signature", "set_tempo")
Meta = list[tuple[float, str, tuple]]  # (time in beats, type, the event's values)


def midi_meta(data: bytes) -> Meta:
    """The time signature, key signature and tempo events of a MIDI file, in time order (times
    in beats, rounded), with their values (e.g. numerator 4, denominator 4)."""
    return _meta(_read(data))


def _meta(mid) -> Meta:
    tpb = mid.ticks_per_beat or 480
    events = []
    for track in mid.tracks:
        now = 0
        for msg in track:
            now += msg.time
            if msg.type in META_TYPES:
                values = {k: v for k, v in msg.dict().items() if k not in ("type", "time")}
                events.append((round(now / tpb, 3), msg.type, tuple(sorted(values.items()))))
    return sorted(events)


def note_f1(predicted: bytes, reference: bytes) -> float:
    """Note-level F1 (pitch, onset, duration; channel) of a predicted MIDI file; 0 if unreadable."""
    return notes_f1(_readable_notes(predicted), midi_notes(reference))


def notes_exact(predicted: bytes, reference: bytes) -> bool:
    """Whether a predicted MIDI file has exactly the reference's notes (False if unreadable)."""
    return _exact(_readable_notes(predicted), midi_notes(reference))


FIRST_ERRORS = ("swapped_notes", "skipped_note", "repeated_note", "wrong_pitch", "wrong_timing",
                "missing", "extra", "unreadable")


def first_error(predicted: bytes, reference: bytes) -> str | None:
    """Where a predicted MIDI file first departs from the reference, in the notes of both taken in
    time order; None where they have the same notes. "swapped_notes": this note and the next
    have the reference's two pitches in the other order; "skipped_note": the predicted note has
    the pitch of the reference's next note, and the next one does not have this one's (the
    output lost its place in the tune, ahead);
    "repeated_note": that of the previous one (behind); "wrong_pitch": another pitch;
    "wrong_timing": the right pitch at a wrong onset or duration (or channel); "missing" / "extra":
    one list is a prefix of the other; "unreadable": not a MIDI file."""
    return notes_first_error(_readable_notes(predicted), midi_notes(reference))


# The three above on notes already read (None: an unreadable prediction), so that a tally reads
# each file once; and the notes where two lists first differ.

def notes_f1(predicted: Notes | None, reference: Notes) -> float:
    """`note_f1` of notes already read (as `midi_notes` gives them; None: unreadable)."""
    if predicted is None:  # an unreadable prediction has no notes
        return 0.0
    pred, ref = Counter(predicted), Counter(reference)
    hits = sum((pred & ref).values())
    if not pred and not ref:
        return 1.0
    if hits == 0:
        return 0.0
    precision, recall = hits / sum(pred.values()), hits / sum(ref.values())
    return 2 * precision * recall / (precision + recall)


def _exact(predicted: Notes | None, reference: Notes) -> bool:
    return predicted is not None and Counter(predicted) == Counter(reference)


def notes_first_error(predicted: Notes | None, reference: Notes) -> str | None:
    """`first_error` of notes already read (None: unreadable)."""
    if predicted is None:
        return "unreadable"
    pred, ref, i = _first_departure(predicted, reference)
    if i == len(pred) == len(ref):
        return None
    if i == len(pred) or i == len(ref):
        return "missing" if i == len(pred) else "extra"
    pitch, want = pred[i][1], ref[i][1]
    if pitch == want:
        return "wrong_timing"
    if i + 1 < len(ref) and pitch == ref[i + 1][1]:
        swapped = i + 1 < len(pred) and pred[i + 1][1] == want
        return "swapped_notes" if swapped else "skipped_note"
    if i > 0 and pitch == ref[i - 1][1]:
        return "repeated_note"
    return "wrong_pitch"


def first_difference(predicted: Notes, reference: Notes) -> tuple[int, Note | None,
                                                                   Note | None] | None:
    """Where two lists of notes first differ, both taken in time order (as `first_error` takes
    them): the index and the note of each list there (None past the end of the shorter one);
    None where they hold the same notes."""
    pred, ref, i = _first_departure(predicted, reference)
    if i == len(pred) == len(ref):
        return None
    return i, pred[i] if i < len(pred) else None, ref[i] if i < len(ref) else None


def _first_departure(predicted: Notes, reference: Notes) -> tuple[Notes, Notes, int]:
    """Both lists in time order, and the first index where they differ (the shorter one's
    length where it is the start of the other)."""
    pred, ref = sorted(predicted, key=_time_order), sorted(reference, key=_time_order)
    i = next((k for k, (p, r) in enumerate(zip(pred, ref)) if p != r), min(len(pred), len(ref)))
    return pred, ref, i


def _time_order(note: Note) -> tuple[float, int, int, float]:
    """Onset first; the rest of the note breaks ties, so that files with the same notes (as
    note_f1 and notes_exact count them) list them in the same order."""
    channel, pitch, onset, duration = note
    return onset, channel, pitch, duration


TF_PARTS = ("pitch", "onset", "duration")


class MusicTally:
    """Accumulates the music metrics over files; `result()` gives them, leading ones first."""

    def __init__(self, task: str):
        self.task = task
        self.files: dict[str, list[float]] = defaultdict(list)
        self.tf = np.zeros(len(TF_PARTS) + 1, np.int64)  # notes right in each part; in all
        self.tf_notes = 0  # notes seen teacher-forced
        self.first_errors: Counter = Counter()  # outputs by how they first go wrong

    def add_output(self, predicted: bytes, reference: bytes, exact_file: bool,
                   ends: bool) -> None:
        """One greedy output: `predicted` and `reference` are MIDI files (midi2abc: the
        predicted ABC converted; b"" where there is none). Each file is read once."""
        pred_mid, ref_mid = _readable(predicted), _read(reference)
        pred, ref = None if pred_mid is None else _notes(pred_mid), _notes(ref_mid)
        self.files["note_f1"].append(notes_f1(pred, ref))
        self.files["notes_exact"].append(_exact(pred, ref))
        self.files["ends"].append(ends)
        if self.task == "abc2midi":
            self.files["valid_midi"].append(pred_mid is not None)
        self.files["meta_exact"].append(pred_mid is not None
                                        and _meta(pred_mid) == _meta(ref_mid))
        self.files["exact_file"].append(exact_file)
        self.first_errors[notes_first_error(pred, ref)] += 1

    def add_teacher_forced(self, right: np.ndarray) -> None:
        """One file's notes under teacher forcing: right (n_notes, 3) bool for pitch, onset and
        duration."""
        self.tf[:3] += right.sum(axis=0)
        self.tf[3] += int(right.all(axis=1).sum())
        self.tf_notes += len(right)

    def result(self) -> dict[str, Any]:
        res: dict[str, Any] = {k: float(np.mean(v)) for k, v in self.files.items()}
        if self.tf_notes:
            res["note_tf"] = float(self.tf[3] / self.tf_notes)
            res.update({f"{k}_tf": float(n / self.tf_notes) for k, n in zip(TF_PARTS, self.tf)})
            res["tf_notes"] = self.tf_notes
        wrong = sum(n for k, n in self.first_errors.items() if k is not None)
        if wrong:  # of the outputs whose notes are wrong, the share by first error
            res["first_error"] = {k: self.first_errors[k] / wrong for k in FIRST_ERRORS
                                  if self.first_errors[k]}
        return res


# ---------------------------------------------------------------------------------------------
# Figures


def _save_png(fig, path) -> None:
    """Write a figure as a PNG atomically (a killed run never leaves half an image)."""
    from bytesim_common.files import atomic_write

    buf = io.BytesIO()
    fig.savefig(buf, dpi=110, format="png")
    atomic_write(Path(path), buf.getvalue())


def plot_losses(records: list[dict[str, Any]], path, title: str = "") -> None:
    """Training (and validation) bits per target token against the step, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([r["step"] for r in records], [r["bpb"] for r in records], label="train", lw=1)
    valid = [r for r in records if "valid_bpb" in r]
    if valid:
        ax.plot([r["step"] for r in valid], [r["valid_bpb"] for r in valid], "o-", label="valid")
    ax.set(xlabel="step", ylabel="bits per target byte", yscale="log", title=title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _save_png(fig, path)
    plt.close(fig)


def plot_by_class(by_mode: dict[str, dict[str, Any]], path, title: str = "") -> None:
    """Byte accuracy by instruction class, one bar per mode (e.g. teacher-forced, free-running)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = sorted({c for r in by_mode.values() for c in r["by_class"]})
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / max(1, len(by_mode))
    for i, (mode, r) in enumerate(by_mode.items()):
        acc = [r["by_class"].get(c, {}).get("byte_accuracy") or 0.0 for c in classes]
        ax.bar(np.arange(len(classes)) + i * width, acc, width, label=mode)
    ax.set_xticks(np.arange(len(classes)) + width * (len(by_mode) - 1) / 2, classes)
    ax.set(ylabel="byte accuracy", ylim=(0, 1), title=title)
    ax.legend()
    fig.tight_layout()
    _save_png(fig, path)
    plt.close(fig)
