"""Data generation speed: traces/s per profile against the unhooked emulator, and
the speed-up of 2 workers over 1. Each part is a function returning JSON-able figures; a new
part (e.g. music pairs/s) is one function plus one line in PARTS.

    python -m benchmarks.datagen [--quick] [--json] [--no-record]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import time
from collections.abc import Callable

from benchmarks.results import append_results
from datagen.cpu.harness import Emulator
from datagen.cpu.profiles import PROFILES
from datagen.cpu.programs import encode_program, random_initial_state, random_program

PROGRAM_LEN = 16


def _programs(profile: str, n: int, seed: int = 0) -> list[tuple[bytes, bytes]]:
    """n (code, state_0) pairs of PROGRAM_LEN-instruction random programs."""
    p, rng = PROFILES[profile], random.Random(seed)
    return [(encode_program(p, random_program(p, rng, PROGRAM_LEN, PROGRAM_LEN)),
             random_initial_state(p, rng)) for _ in range(n)]


def _rate(run: Callable[[bytes, bytes], object], programs: list, repeats: int) -> float:
    """Best-of-`repeats` programs per second."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for code, state in programs:
            run(code, state)
        best = min(best, time.perf_counter() - start)
    return len(programs) / best


def _trace_chunk(chunk: list[tuple[bytes, bytes]]) -> int:
    emu = _worker_emulator()
    return sum(emu.run(code, state).n_steps for code, state in chunk)


_WORKER: dict[str, Emulator] = {}


def _worker_emulator() -> Emulator:
    if "emu" not in _WORKER:
        _WORKER["emu"] = Emulator(PROFILES["rv32e"])
    return _WORKER["emu"]


def _pool_rate(programs: list, workers: int, chunk: int = 250) -> float:
    """Traces/s with a warm pool of `workers` processes, each with its own emulator."""
    chunks = [programs[i:i + chunk] for i in range(0, len(programs), chunk)]
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers) as pool:
        pool.map(_trace_chunk, chunks[:workers], chunksize=1)  # warm-up: emulators made
        start = time.perf_counter()
        pool.map(_trace_chunk, chunks, chunksize=1)
        return len(programs) / (time.perf_counter() - start)


def cpu_part(quick: bool) -> dict:
    n, repeats = (5000, 3) if quick else (20000, 5)
    traces, unhooked, ratio = {}, {}, {}
    for name, profile in PROFILES.items():
        programs = _programs(name, n)
        hooked_emu, plain_emu = Emulator(profile), Emulator(profile, record=False)
        traces[name] = _rate(hooked_emu.run, programs, repeats)
        unhooked[name] = _rate(plain_emu.run_final, programs, repeats)
        ratio[name] = traces[name] / unhooked[name]
    programs = _programs("rv32e", 4 * n, seed=1)
    one, two = _pool_rate(programs, 1), _pool_rate(programs, 2)
    return {"program_len": PROGRAM_LEN, "cpu_traces_per_s": traces,
            "cpu_unhooked_per_s": unhooked, "cpu_ratio_to_unhooked": ratio,
            "cpu_pool_traces_per_s": {"1": one, "2": two}, "cpu_scaling_2_workers": two / one}


def music_part(quick: bool) -> dict:
    """Pairs/s of the real `datagen music` path (convert, normalise, write Parquet) on music21's
    corpus tunes, per converter and worker count; pool start-up included."""
    import tempfile

    from datagen.corpus import write_corpus
    from datagen.music.build import make_pair, music_job, music_spec
    from datagen.music.convert import have_abc2midi

    sizes = {"abc2midi": 1000 if quick else 4000, "music21": 40 if quick else 200}
    rates: dict[str, dict[str, float]] = {}
    for converter, n in sizes.items():
        if converter == "abc2midi" and not have_abc2midi():
            continue
        spec = music_spec(["music21"], seed=0, converter=converter)
        make_pair(spec, 0)  # warm-up: index the corpus, import the converter (once a process)
        rates[converter] = {}
        for workers in (1, 2):
            best = float("inf")
            for _ in range(2 if converter == "abc2midi" else 1):  # best of 2 where affordable
                with tempfile.TemporaryDirectory() as out:
                    start = time.perf_counter()
                    write_corpus(out, music_job(spec, n), workers=workers, show_progress=False)
                    best = min(best, time.perf_counter() - start)
            rates[converter][str(workers)] = n / best
    return {"music_pairs_per_s": rates, "music_source": "music21 corpus tunes"}


PARTS: list[Callable[[bool], dict]] = [cpu_part, music_part]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.datagen", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="about two minutes on 2 cores")
    ap.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    ap.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = ap.parse_args(argv)
    figures: dict = {"quick": args.quick}
    for part in PARTS:
        figures.update(part(args.quick))
    if not args.no_record:
        command = "python -m benchmarks.datagen" + " --quick" * args.quick
        append_results("datagen", figures, command)
    for key, value in figures.items():
        print(f"{key}: {value}", flush=True)
    if args.json:
        print(json.dumps(figures, sort_keys=True), flush=True)
    return figures


if __name__ == "__main__":
    main()
