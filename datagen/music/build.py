"""`datagen music`: ABC -> MIDI pairs from a reference converter, as a `CorpusJob` (docs/formats.md).

Rows are a pure function of (arguments, row index). The sources given are interleaved round
robin; a source that runs out (music21's ~13,000 tunes, the user's files) drops out of the
rotation, synthetic tunes never run out. Corpus tunes are taken in a seeded order; synthetic
tune j of a corpus is `synthetic_tune(seed, j)`. Without an endless source, -n is capped at the
number of tunes there are.

With `segment_bars` N, a corpus tune of more than N bars also comes as the distinct segments it
plays (`datagen.music.segments`, as the converter cuts a tune longer than a model's context),
each a row of its own in the seeded order, with the tune's split; a tune a segment cannot carry
comes whole only. With `segments_only` as well, a tune that plays more than one segment comes as
its distinct segments only, as the converter gives a long tune to a model.

A row whose conversion fails, or whose pair does not fit `max_bytes` once laid out as the
music codec's file layout lays it out at 16-byte patches (`encoded_length`; the event-stream
layout is never longer), is counted in the manifest by kind (`rejected`, `timeout`, `bad_midi`, `too_long`)
with examples; the row index then holds no row.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import functools
import sys
import tempfile
from dataclasses import dataclass
from typing import Any

from bytesim_common.errors import UserError
from bytesim_common.layout import pair_length
from datagen.corpus import CorpusJob, RowBatch, parse_shard, split_of, write_corpus
from datagen.music import convert as conv
from datagen.music.normalize import BadMidi, normalize_midi
from datagen.music.segments import Unsupported, play_segments
from datagen.music.sources import (
    Tune,
    file_tunes,
    files_digest,
    music21_tunes,
    seeded_order,
    split_key,
)
from datagen.music.synthetic import LADDER, SynthOptions, synthetic_tune
from datagen.schemas import SCHEMAS

PATCH = 16
DEFAULT_MAX_BYTES = 8192  # bGPT's context: 512 patches of 16 bytes


def encoded_length(abc: bytes, midi: bytes) -> int:
    """Ids of the pair in the music codec's file layout at 16-byte patches: `[abc] [abc bytes,
    PAD-terminated] [mid] [midi bytes, PAD-terminated] [end]` (the same arithmetic as the codec's,
    from bytesim_common.layout; a test checks that they agree)."""
    return pair_length(len(abc), len(midi), PATCH)


@dataclass(frozen=True)
class MusicSpec:
    """Everything that decides the rows (small and picklable: sent with every chunk)."""

    sources: tuple[str, ...]  # "music21", "files", "synthetic", in rotation order
    files: tuple[str, ...]
    seed: int
    converter: str
    max_bytes: int
    keep_text: bool
    timeout: float
    synth: SynthOptions
    segment_bars: int = 0  # 0: tunes whole only; N: longer tunes also as segments of N bars
    segments_only: bool = False  # a tune of more than one segment: its segments, not the tune


@dataclass(frozen=True)
class _Unit:
    """One row's worth of a corpus source: a tune, or one of its segments."""

    tune: Tune
    segment: int  # 0: the whole tune; k: its k-th distinct segment
    abc: str


@functools.cache
def _source_units(source: str, files: tuple[str, ...], segment_bars: int,
                  segments_only: bool) -> tuple[_Unit, ...]:
    tunes = music21_tunes() if source == "music21" else file_tunes(files)
    units = []
    for tune in tunes:
        played = []
        if segment_bars:
            with contextlib.suppress(Unsupported):
                played = play_segments(tune.abc, segment_bars)
        segments = list(dict.fromkeys(played))  # the distinct ones
        cut = len(played) > 1 and segments_only  # the converter gives a model its segments
        if not cut:
            units.append(_Unit(tune, 0, tune.abc))
        if len(segments) > 1 or cut:
            units += [_Unit(tune, k, seg.text) for k, seg in enumerate(segments, 1)]
    return tuple(units)


def source_sizes(spec: MusicSpec) -> tuple[float, ...]:
    return tuple(float("inf") if s == "synthetic"
                 else len(_source_units(s, spec.files, spec.segment_bars, spec.segments_only))
                 for s in spec.sources)


def locate(sizes: tuple[float, ...], i: int) -> tuple[int, int]:
    """Row i of a round robin over sources of these sizes -> (source number, its j-th tune).

    After t full rounds R(t) = sum(min(size, t)) rows are out; row i is in round t, the largest
    t with R(t) <= i, at position i - R(t) among the sources still running in that round."""
    def rows_before(t: int) -> float:
        return sum(min(s, t) for s in sizes)

    t = bisect.bisect_right(range(i + 2), i, key=rows_before) - 1
    alive = [m for m, s in enumerate(sizes) if s > t]
    return alive[int(i - rows_before(t))], t


def _tune_of(spec: MusicSpec, i: int) -> tuple[str, str, str, str, str]:
    """Row i's (id, source, tune number, abc, the abc its split is decided by)."""
    m, j = locate(source_sizes(spec), i)
    source = spec.sources[m]
    if source == "synthetic":
        abc = synthetic_tune(spec.seed, j, spec.synth)
        return f"synthetic:{spec.seed}:{j}", "synthetic", str(j + 1), abc, abc
    units = _source_units(source, spec.files, spec.segment_bars, spec.segments_only)
    unit = units[seeded_order(len(units), spec.seed)[j]]
    name = "music21" if source == "music21" else "file"
    rid = f"{name}:{unit.tune.path}#{unit.tune.index}" + (f"/{unit.segment}" if unit.segment else "")
    return rid, name, unit.tune.number, unit.abc, unit.tune.abc


def make_pair(spec: MusicSpec, i: int, workdir: str | None = None) -> dict[str, Any]:
    """Row i as a dict of the music schema (datagen.schemas), or a failure {"kind", "row", "id", "detail"}."""
    rid, source, number, abc, whole = _tune_of(spec, i)
    done = conv.convert(abc, spec.converter, spec.timeout, workdir)

    def failure(kind: str, detail: str) -> dict[str, Any]:
        return {"kind": kind, "row": i, "id": rid, "detail": detail}

    if done.failure:
        return failure(done.failure, done.detail)
    try:
        midi = normalize_midi(done.midi or b"", spec.keep_text)
    except BadMidi as e:
        return failure("bad_midi", str(e))
    length = encoded_length(abc.encode("utf-8"), midi)
    if spec.max_bytes and length > spec.max_bytes:
        return failure("too_long", f"{length} bytes encoded > {spec.max_bytes}")
    return {"id": rid, "source": source, "tune": number, "abc": abc, "midi": midi,
            "converter": spec.converter, "converter_version": conv.converter_version(spec.converter),
            "converter_errors": done.errors, "split": split_of(split_key(whole))}


def make_rows(spec: MusicSpec, start: int, stop: int) -> RowBatch:
    batch = RowBatch([])
    with tempfile.TemporaryDirectory(prefix="datagen-music-") as workdir:
        for i in range(start, stop):
            out = make_pair(spec, i, workdir)
            (batch.failures if "kind" in out else batch.rows).append(out)
    return batch


def music_spec(sources: list[str], seed: int, converter: str | None = None,
               max_bytes: int = DEFAULT_MAX_BYTES, keep_text: bool = False,
               timeout: float = conv.DEFAULT_TIMEOUT_S, synth_mix: str | None = None,
               ladder: str | None = None, segment_bars: int = 0,
               segments_only: bool = False) -> MusicSpec:
    """Check the arguments and resolve them into a MusicSpec (`ladder`: a rung of LADDER as
    the synthetic mix that `synth_mix` changes)."""
    names, files = [], []
    for s in sources:
        if s in ("music21", "synthetic"):
            if s not in names:
                names.append(s)
        else:
            files.append(s)
            if "files" not in names:
                names.append("files")
    if not names:
        raise UserError("--source needs music21, synthetic, or .abc files")
    if max_bytes < 0:
        raise UserError(f"--max-bytes must be 0 (no limit) or positive; got {max_bytes}")
    if timeout <= 0:
        raise UserError(f"--timeout must be positive; got {timeout}")
    if ladder is not None and ladder not in LADDER:
        raise UserError(f"--ladder takes {', '.join(LADDER)} (M3 is --source music21); "
                        f"got {ladder!r}")
    if segment_bars < 0:
        raise UserError(f"--segment-bars must be 0 (tunes whole only) or positive; got {segment_bars}")
    if segments_only and not segment_bars:
        raise UserError("--segments-only needs --segment-bars N (the length of the segments)")
    if segment_bars and names == ["synthetic"]:
        raise UserError("--segment-bars cuts the tunes of music21 or .abc files; the sources are "
                        "synthetic only")
    base = LADDER[ladder] if ladder else None
    return MusicSpec(tuple(names), tuple(files), seed, conv.choose_converter(converter),
                     max_bytes, keep_text, timeout, SynthOptions.parse(synth_mix, base),
                     segment_bars, segments_only)


def music_job(spec: MusicSpec, n: int, rows_per_shard: int = 1000) -> CorpusJob:
    """The CorpusJob for n rows of `spec` (n capped when every source is finite)."""
    total = sum(source_sizes(spec))
    if n > total:
        print(f"datagen music: the sources hold {int(total)} tunes; making {int(total)} rows, "
              f"not {n}", file=sys.stderr)
        n = int(total)
    args = {"sources": list(spec.sources), "files": list(spec.files),
            "files_sha256": files_digest(spec.files) if spec.files else None,
            "seed": spec.seed, "converter": spec.converter,
            "converter_version": conv.converter_version(spec.converter),
            "max_bytes": spec.max_bytes, "keep_text": spec.keep_text, "timeout": spec.timeout,
            "synth_mix": spec.synth.recorded() if "synthetic" in spec.sources else None,
            # recorded only where set, so that corpora made before the option resume unchanged
            **({"segment_bars": spec.segment_bars} if spec.segment_bars else {}),
            **({"segments_only": True} if spec.segments_only else {})}
    return CorpusJob(kind="music", args=args, n_rows=n, schema=SCHEMAS["music"],
                     make_rows=functools.partial(make_rows, spec), tally=("split", "source"),
                     rows_per_shard=rows_per_shard)


def build_music_corpus(args: argparse.Namespace) -> dict:
    """`datagen music ...`: make (or resume) the corpus; return its manifest."""
    spec = music_spec(args.source, args.seed, args.converter, args.max_bytes, args.keep_text,
                      args.timeout, args.synth_mix, args.ladder, args.segment_bars,
                      args.segments_only)
    job = music_job(spec, args.n)
    manifest = write_corpus(args.out, job, workers=args.workers, shard=parse_shard(args.shard),
                            show_progress=not args.quiet)
    if not args.quiet:
        c, f = manifest["counts"], manifest["failures"]
        splits = ", ".join(f"{k} {v}" for k, v in c.get("split", {}).items())
        fails = ", ".join(f"{k} {v}" for k, v in f["by_kind"].items()) or "none"
        print(f"datagen music: {c['rows']} pairs in {args.out} ({splits}); "
              f"failures: {fails}", file=sys.stderr)
    return manifest
