"""Training memory: the peak memory of one training step (forward, cross-entropy,
backward, AdamW) at growing context lengths, batch 1, for a two- and a three-level model, with
activation checkpointing (`ModelConfig.checkpoint_activations`, `simulator train
--checkpoint-activations`): the way to train on long contexts. One point without it, at the
largest --quick context, shows what it saves.

Each point runs in a fresh Python process, so one point's allocations never hide another's:
on the CPU the figure is that process's peak resident set (VmHWM in /proc/self/status: Python,
torch, weights, optimizer state and activations; not ru_maxrss, which Linux carries over from
the parent through fork and exec); on CUDA `torch.cuda.max_memory_allocated`. Points go up in
context until the 1M-byte step; a point whose linear projection from the last two does not fit
in the memory available now is skipped, and the children run under an RLIMIT_DATA cap, so a
too-large step fails alone instead of pushing a shared machine into swap or the OOM killer.
--quick stops at 128 KB and projects the 1M-byte figure linearly from its largest two points.
A point that runs longer than POINT_TIMEOUT_S is stopped and named in the notes.

    python -m benchmarks.memory [--quick] [--json] [--no-record] [--device cuda]
"""

from __future__ import annotations

import dataclasses
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

from benchmarks.results import run_benchmark
from benchmarks.train import synchronize, train_step
from simulator.model import PRESETS, ByteModel

MIB = 1 << 20
FULL_CONTEXT = 1 << 20  # the target: a 1M-byte training step with three levels
STACKS: dict[str, dict[str, str]] = {  # device -> {levels: preset}
    "cpu": {"2_levels": "small", "3_levels": "small3"},
    "cuda": {"2_levels": "base", "3_levels": "base3"},
}
CONTEXTS = {True: (8192, 32768, 131072), False: (8192, 32768, 131072, 524288, FULL_CONTEXT)}
UNCHECKPOINTED = 131072  # the context of the point without activation checkpointing
POINT_TIMEOUT_S = 3600


def _proc_kib(path: str, field: str) -> int:
    """A `field: N kB` line of a /proc file, in bytes."""
    with open(path) as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))


def device_memory(device: str) -> int:
    """All the memory there is: the machine's RAM, or the GPU's."""
    if device == "cuda":
        return torch.cuda.get_device_properties(0).total_memory
    return _proc_kib("/proc/meminfo", "MemTotal")


def free_memory(device: str) -> int:
    if device == "cuda":
        return torch.cuda.mem_get_info()[0]
    return _proc_kib("/proc/meminfo", "MemAvailable")


def one_step(preset: str, context: int, device: str, threads: int, cap: int,
             checkpoint: bool = True) -> dict:
    """In a fresh process: one training step at `context` bytes, with activation checkpointing
    or not; prints and returns its peak. On the CPU the process's private memory is capped at
    `cap` bytes first."""
    if device == "cpu":
        resource.setrlimit(resource.RLIMIT_DATA, (cap, cap))
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    dev = torch.device(device)
    config = dataclasses.replace(PRESETS[preset], max_len=context, checkpoint_activations=checkpoint)
    model = ByteModel(config).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(0, 256, (1, context), device=dev)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    start = time.perf_counter()
    train_step(model, opt, ids)
    synchronize(dev)
    seconds = time.perf_counter() - start
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated(dev)
    else:
        peak = _proc_kib("/proc/self/status", "VmHWM")
    result = {"peak_bytes": peak, "step_s": seconds}
    print(json.dumps(result), flush=True)
    return result


def _run_point(preset: str, context: int, device: str, cap: int, checkpoint: bool = True) -> dict:
    """one_step in a child process whose private memory is capped at `cap` bytes (CPU)."""
    code = ("from benchmarks.memory import one_step; "
            f"one_step({preset!r}, {context}, {device!r}, {torch.get_num_threads()}, {cap}, "
            f"{checkpoint})")
    try:
        proc = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1],
                              capture_output=True, text=True, check=False, timeout=POINT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"error": f"stopped after {POINT_TIMEOUT_S} s"}
    if proc.returncode:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        capped = f", memory capped at {cap / MIB:.0f} MiB" if device == "cpu" else ""
        return {"error": f"exit {proc.returncode}{capped}: {last[:200]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _projection(points: dict[int, int], context: int) -> int:
    """Linear in context through the two largest points measured."""
    (c1, p1), (c2, p2) = sorted(points.items())[-2:]
    return round(p2 + (p2 - p1) * (context - c2) / (c2 - c1))


def profile_stack(preset: str, contexts: tuple[int, ...], device: str) -> dict:
    """Peak bytes and step seconds per context, ascending, stopping at the first that cannot
    run; skipped or failed points are named in `notes`."""
    peaks: dict[int, int] = {}
    seconds: dict[int, float] = {}
    notes: list[str] = []
    for context in contexts:
        available = free_memory(device)
        if len(peaks) >= 2 and _projection(peaks, context) > 0.9 * available:
            notes.append(f"{context} bytes skipped: projected {_projection(peaks, context) / MIB:.0f}"
                         f" MiB > 90% of the {available / MIB:.0f} MiB available")
            break
        point = _run_point(preset, context, device, cap=int(0.9 * available))
        if "error" in point:
            notes.append(f"{context} bytes failed ({point['error']})")
            break
        peaks[context], seconds[context] = point["peak_bytes"], point["step_s"]
    return {"peaks": peaks, "seconds": seconds, "notes": notes}


def measure(quick: bool, device: str) -> dict:
    stacks = {levels: profile_stack(preset, CONTEXTS[quick], device)
              for levels, preset in STACKS[device].items()}
    preset3 = STACKS[device]["3_levels"]
    plain = _run_point(preset3, UNCHECKPOINTED, device, cap=int(0.9 * free_memory(device)),
                       checkpoint=False)
    total = device_memory(device)
    three, three_seconds = stacks["3_levels"]["peaks"], stacks["3_levels"]["seconds"]
    full = three.get(FULL_CONTEXT)
    figures: dict = {
        "presets": STACKS[device],
        "memory_total_bytes": total,
        "peak_bytes_by_context": {k: {str(c): p for c, p in v["peaks"].items()}
                                  for k, v in stacks.items()},
        "step_s_by_context": {k: {str(c): round(t, 2) for c, t in v["seconds"].items()}
                              for k, v in stacks.items()},
        "full_context_peak_bytes_3_levels": full,
    }
    if full is None and len(three) >= 2:
        full = figures["projected_full_context_peak_bytes_3_levels"] = _projection(
            three, FULL_CONTEXT)
    figures["full_context_fits"] = None if full is None else full <= total
    with_ckpt = three.get(UNCHECKPOINTED)
    if "error" in plain:
        stacks["3_levels"]["notes"].append(f"{UNCHECKPOINTED} bytes without activation "
                                           f"checkpointing failed ({plain['error']})")
    elif with_ckpt:
        figures["no_checkpointing_3_levels"] = {
            "context": UNCHECKPOINTED, "peak_bytes": plain["peak_bytes"],
            "step_s": round(plain["step_s"], 2),
            "peak_over_checkpointed": plain["peak_bytes"] / with_ckpt,
            "step_s_over_checkpointed": plain["step_s"] / three_seconds[UNCHECKPOINTED]}
    notes = [f"{k}: {n}" for k, v in stacks.items() for n in v["notes"]]
    if notes:
        figures["notes"] = "; ".join(notes)
    return figures


def main(argv: list[str] | None = None) -> dict:
    return run_benchmark("memory", __doc__, measure, argv)


if __name__ == "__main__":
    main()
