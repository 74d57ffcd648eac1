"""Shared by the benchmarks: the machine's description and the dated rows in RESULTS.md."""

from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def machine() -> str:
    """CPU model, cores, Python and torch versions, in one line."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f
                         if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = "not installed"
    return (f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"torch {torch_version}")


def _flatten(figures: dict, prefix: str = "") -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = []
    for key, value in figures.items():
        if isinstance(value, dict):
            rows += _flatten(value, f"{prefix}{key}.")
        else:
            rows.append((f"{prefix}{key}", value))
    return rows


def _cell(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def append_results(benchmark: str, figures: dict, command: str, path: Path = RESULTS) -> None:
    """Append a dated table of `figures` (nested dicts flattened to dotted keys) to RESULTS.md."""
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    lines = [f"\n## {benchmark} — {stamp}\n", f"Machine: {machine()}  ", f"Command: `{command}`\n",
             "| figure | value |", "| --- | --- |"]
    lines += [f"| {key} | {_cell(value)} |" for key, value in _flatten(figures)]
    new = not path.exists()
    with open(path, "a") as f:
        if new:
            f.write("# Benchmark results\n\nAppended by `python -m benchmarks.NAME`; newest last.\n")
        f.write("\n".join(lines) + "\n")
