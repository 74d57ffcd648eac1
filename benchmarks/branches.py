"""Conversion time with branching: the shipped `trained/abc2midi` converts the same synthetic
tunes (the M1 and M2 rungs' generator, `datagen.music.synthetic`, seed 0) as `simulator
abc2midi` does, one tune at a time, greedy (`branches=0`) and branched at up to three closest calls
(`branches=3`, `simulator.outputs.branched_ids`; where no output passes the tune's test of its
length and notes, at up to 16 more), the two taken in turn tune by tune so that
both see the same load. Figures: seconds per tune each way, their ratio, and how many of the
files the branching changed (whether a change is right is `simulator eval --branches`'s
business, docs/music.md).

    python -m benchmarks.branches [--quick] [--json] [--no-record] [--device cuda]
"""

from __future__ import annotations

import time

import torch

from benchmarks.results import run_benchmark
from benchmarks.train import synchronize
from datagen.music.synthetic import LADDER, synthetic_tune
from simulator.facade import MusicConverter

BRANCHES = 3


def compare(model: str | None, tunes: list[str], device: str = "cpu") -> dict:
    """Greedy against branched conversion of `tunes` with the abc2midi checkpoint `model`
    (None: the shipped one)."""
    converters = {n: MusicConverter.from_pretrained(model, "abc2midi", device, branches=n)
                  for n in (0, BRANCHES)}
    converters[0].abc_to_midi(tunes[0])  # warm-up
    where = torch.device(device)
    seconds = dict.fromkeys(converters, 0.0)
    files: dict[int, list[bytes]] = {n: [] for n in converters}
    for abc in tunes:
        for n, conv in converters.items():
            synchronize(where)
            start = time.perf_counter()
            files[n].append(conv.abc_to_midi(abc))
            synchronize(where)
            seconds[n] += time.perf_counter() - start
    return {"tunes": len(tunes), "branches": BRANCHES,
            "greedy_s_per_tune": seconds[0] / len(tunes),
            "branched_s_per_tune": seconds[BRANCHES] / len(tunes),
            "branched_over_greedy_time": seconds[BRANCHES] / seconds[0],
            "files_changed": sum(a != b for a, b in zip(files[0], files[BRANCHES]))}


def measure(quick: bool, device: str) -> dict:
    """M1's short tunes, and M2's (the full generator: most are converted in 4-bar segments)."""
    n = 10 if quick else 40
    return {rung: compare(None, [synthetic_tune(0, i, LADDER[rung]) for i in range(n)], device)
            for rung in ("M1", "M2")}


def main(argv: list[str] | None = None) -> dict:
    return run_benchmark("branches", __doc__, measure, argv)


if __name__ == "__main__":
    main()
