"""Shared by the benchmarks: the machine's description, the dated rows in RESULTS.md and the
command line of the model benchmarks."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
from collections.abc import Callable
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


def run_benchmark(name: str, doc: str, measure: Callable[[bool, str], dict],
                  argv: list[str] | None = None) -> dict:
    """The command line of a model benchmark: `python -m benchmarks.NAME [--quick] [--json]
    [--no-record] [--device cpu|cuda]`; measure(quick, device) returns the figures."""
    ap = argparse.ArgumentParser(prog=f"python -m benchmarks.{name}", description=doc,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="about two minutes on 2 cores")
    ap.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    ap.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    args = ap.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    where = f"cuda ({torch.cuda.get_device_name()})" if args.device == "cuda" else "cpu"
    figures = {"quick": args.quick, "device": where, "torch_threads": torch.get_num_threads(),
               "load_average_1min": os.getloadavg()[0], **measure(args.quick, args.device)}
    if not args.no_record:
        command = f"python -m benchmarks.{name}" + " --quick" * args.quick
        if args.device != "cpu":
            command += f" --device {args.device}"
        if args.threads:
            command += f" --threads {args.threads}"
        append_results(name, figures, command)
    for key, value in figures.items():
        print(f"{key}: {value}", flush=True)
    if args.json:
        print(json.dumps(figures, sort_keys=True), flush=True)
    return figures
