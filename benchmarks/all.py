"""Every benchmark, one after another in this process, recorded as one dated table in
RESULTS.md (keys prefixed with the benchmark's name). `make bench` runs this.

    python -m benchmarks.all [--quick] [--json] [--no-record] [--device cuda] [--threads N]
"""

from __future__ import annotations

import functools
import sys
import time
import traceback
from collections.abc import Callable

from benchmarks import branches, datagen, generate, memory, train
from benchmarks.results import run_benchmark

MODEL_BENCHMARKS = {"train": train, "generate": generate, "memory": memory, "branches": branches}


def measure(quick: bool, device: str) -> dict:
    """Each benchmark's figures under its name; one that fails is recorded as its error (the
    traceback goes to stderr) and the others still run."""
    runs: dict[str, Callable[[], dict]] = {
        "datagen": lambda: datagen.main(["--no-record"] + ["--quick"] * quick)}
    for name, module in MODEL_BENCHMARKS.items():
        runs[name] = functools.partial(module.measure, quick, device)
    figures: dict = {}
    start = time.perf_counter()
    for name, run in runs.items():
        print(f"== {name} ==", file=sys.stderr, flush=True)
        try:
            figures[name] = run()
        except Exception as e:  # noqa: BLE001 - one failing benchmark must not lose the rest
            traceback.print_exc()
            figures[name] = {"error": f"{type(e).__name__}: {e}"}
    figures["total_s"] = round(time.perf_counter() - start, 1)
    return figures


def main(argv: list[str] | None = None) -> dict:
    return run_benchmark("all", __doc__, measure, argv)


if __name__ == "__main__":
    main()
