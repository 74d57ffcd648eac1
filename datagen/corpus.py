"""Corpus on disk (docs/formats.md): Parquet shards + per-shard sidecars + `manifest.json`.

Shared by every generator (CPU traces, music pairs). A generator describes its rows as a
`CorpusJob`: a pure function `make_rows(start, stop)` of the row indices, the Parquet schema,
and the columns to tally in the manifest. This module does the rest:

- row i always lands in shard `i // rows_per_shard`, whatever the worker count or `--shard`;
- each shard is written atomically (temporary name, then rename), followed by its sidecar
  `shard-XXXXX.json` (sha256, row count, tallies, failures); a shard counts as complete only
  when its sidecar exists and the sha256 matches, so an interrupted run resumes where it stopped
  and ends byte-identical to an uninterrupted one;
- `--shard K/N` (K counted from 0) makes only the shards whose index is K modulo N, so N
  machines under any scheduler together write exactly the shards one machine would;
- `manifest.json` aggregates the sidecars present (rewritten atomically at the end of each run,
  or by `rebuild_manifest`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import multiprocessing
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bytesim_common.errors import UserError
from bytesim_common.files import atomic_write, atomic_write_json, is_leftover
from bytesim_common.progress import progress_bar
from datagen import CORPUS_FORMAT, __version__
from datagen.schemas import SCHEMAS

MANIFEST = "manifest.json"
SPLITS = ("train", "valid", "test")
MAX_FAILURE_EXAMPLES = 5
SHARD_NAME = re.compile(r"shard-\d{5,}\.parquet")
SIDECAR_KEYS = frozenset({"sha256", "rows", "counts", "failures", "failure_examples"})


@dataclass
class RowBatch:
    """What `make_rows(start, stop)` returns: the rows, and the rows it could not make."""

    rows: list[dict[str, Any]]
    # Each failure: {"kind": "timeout", "row": 17, "detail": "..."}; counted, never dropped.
    failures: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class CorpusJob:
    """A corpus to make: everything that decides its bytes, and how to make rows."""

    kind: str  # "cpu" | "music"
    args: dict[str, Any]  # the arguments that decide the rows (JSON-able), kept in the manifest
    n_rows: int
    schema: pa.Schema
    make_rows: Callable[[int, int], RowBatch]  # picklable (a module-level function or partial)
    tally: tuple[str, ...] = ("split",)  # columns whose values are counted in the manifest
    rows_per_shard: int = 1000
    chunk_rows: int = 25  # rows per task handed to a worker

    @property
    def n_shards(self) -> int:
        return -(-self.n_rows // self.rows_per_shard)

    def identity(self) -> dict[str, Any]:
        """What must match for a folder to be resumed rather than refused."""
        return {"kind": self.kind, "format": CORPUS_FORMAT, "args": self.args,
                "n_rows": self.n_rows, "rows_per_shard": self.rows_per_shard}


# ---------------------------------------------------------------------------------------------
# Small helpers


def split_of(key: bytes, valid: float = 0.05, test: float = 0.05) -> str:
    """The split of a row, decided by a hash of its content (so one content, one split)."""
    h = int.from_bytes(hashlib.sha256(key).digest()[:8], "little") / 2**64
    if h < test:
        return "test"
    if h < test + valid:
        return "valid"
    return "train"


def parse_shard(text: str | None) -> tuple[int, int]:
    """Parse `--shard K/N` (K counted from 0)."""
    if text is None:
        return 0, 1
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise UserError(f"--shard takes K/N with whole numbers, e.g. 0/4; got {text!r}") from None
    if n < 1 or not 0 <= k < n:
        raise UserError(f"--shard K/N needs 0 <= K < N; got {text!r}")
    return k, n


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def shard_name(i: int) -> str:
    return f"shard-{i:05d}.parquet"


def _sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def _table_bytes(rows: list[dict[str, Any]], schema: pa.Schema) -> bytes:
    table = pa.Table.from_pylist(rows, schema=schema)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


# ---------------------------------------------------------------------------------------------
# Writing


def _prepare_folder(out: Path, job: CorpusJob) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise UserError(f"cannot write to the output folder {out}: {e.strerror or e}") from None
    ident_path = out / "corpus.json"
    if ident_path.exists():
        try:
            have = json.loads(ident_path.read_text())
        except (OSError, ValueError):  # ValueError: bad JSON or not UTF-8
            have = None
        if not isinstance(have, dict):
            raise UserError(f"{ident_path} is unreadable; is {out} a corpus folder?")
        want = job.identity()
        if have != want:
            diff = _describe_difference(have, want)
            raise UserError(f"{out} holds a corpus made with other arguments ({diff}); "
                            "use another --out, or the same arguments to resume")
    else:
        if not all(is_leftover(p) for p in out.iterdir()):
            raise UserError(f"{out} is not empty and is not a corpus folder; use another --out")
        atomic_write_json(ident_path, job.identity())


def _describe_difference(have: dict, want: dict) -> str:
    flat_have = {**{k: v for k, v in have.items() if k != "args"}, **have.get("args", {})}
    flat_want = {**{k: v for k, v in want.items() if k != "args"}, **want.get("args", {})}
    keys = sorted(set(flat_have) | set(flat_want))
    parts = [f"{k}: {flat_have.get(k)!r} there, {flat_want.get(k)!r} asked"
             for k in keys if flat_have.get(k) != flat_want.get(k)]
    return "; ".join(parts[:3]) or "unknown difference"


def shard_is_complete(path: Path) -> bool:
    side = _sidecar(path)
    if not (path.exists() and side.exists()):
        return False
    try:
        info = json.loads(side.read_text())
        return (isinstance(info, dict) and SIDECAR_KEYS <= info.keys()
                and info["sha256"] == sha256_file(path))
    except (OSError, ValueError):  # ValueError: bad JSON or not UTF-8
        return False


def _call_make_rows(task: tuple[Callable[[int, int], RowBatch], int, int]) -> RowBatch:
    make_rows, start, stop = task
    return make_rows(start, stop)


def _chunks(job: CorpusJob, shard_ids: list[int]) -> Iterator[tuple[int, int, int]]:
    for s in shard_ids:
        lo, hi = s * job.rows_per_shard, min((s + 1) * job.rows_per_shard, job.n_rows)
        for a in range(lo, hi, job.chunk_rows):
            yield s, a, min(a + job.chunk_rows, hi)


def _write_shard(out: Path, job: CorpusJob, s: int, batches: list[RowBatch]) -> None:
    rows = [r for b in batches for r in b.rows]
    failures = [f for b in batches for f in b.failures]
    path = out / shard_name(s)
    data = _table_bytes(rows, job.schema)
    atomic_write(path, data)
    counts = {col: dict(sorted(Counter(str(r[col]) for r in rows).items())) for col in job.tally}
    atomic_write_json(_sidecar(path), {
        "sha256": hashlib.sha256(data).hexdigest(),
        "rows": len(rows),
        "row_range": [s * job.rows_per_shard, min((s + 1) * job.rows_per_shard, job.n_rows)],
        "counts": counts,
        "failures": dict(sorted(Counter(f["kind"] for f in failures).items())),
        "failure_examples": failures[:MAX_FAILURE_EXAMPLES],
    })


def _rows_slice(rows: list[dict[str, Any]], start: int, stop: int) -> RowBatch:
    """`make_rows` of a corpus whose rows are already made (bind `rows` with a partial)."""
    return RowBatch(rows[start:stop])


def write_rows(out: Path | str, kind: str, args: dict[str, Any], rows: list[dict[str, Any]],
               show_progress: bool = False) -> dict:
    """Write `rows` (made already, e.g. taken from other corpora) as a corpus of `kind` whose
    manifest records `args`; return the manifest."""
    job = CorpusJob(kind=kind, args=args, n_rows=len(rows), schema=SCHEMAS[kind],
                    make_rows=functools.partial(_rows_slice, rows))
    return write_corpus(out, job, show_progress=show_progress)


def write_corpus(out: Path | str, job: CorpusJob, workers: int = 1,
                 shard: tuple[int, int] = (0, 1), show_progress: bool = True) -> dict:
    """Make (or resume) the corpus `job` in `out`; return the manifest."""
    out = Path(out)
    if job.n_rows <= 0:
        raise UserError(f"-n must be a positive number of rows; got {job.n_rows}")
    if workers < 1:
        raise UserError(f"--workers must be at least 1; got {workers}")
    _prepare_folder(out, job)
    k, n = shard
    mine = [s for s in range(job.n_shards) if s % n == k]
    todo = [s for s in mine if not shard_is_complete(out / shard_name(s))]
    done_rows = sum(min((s + 1) * job.rows_per_shard, job.n_rows) - s * job.rows_per_shard
                    for s in mine if s not in todo)
    total_rows = sum(min((s + 1) * job.rows_per_shard, job.n_rows) - s * job.rows_per_shard
                     for s in mine)
    bar = progress_bar(total_rows, f"datagen {job.kind}", "rows", show_progress, done_rows)
    if done_rows:
        bar.set_postfix_str(f"resumed: {len(mine) - len(todo)} shards complete")
    chunks = list(_chunks(job, todo))
    tasks = [(job.make_rows, a, b) for _, a, b in chunks]
    pending: dict[int, list[RowBatch]] = {}
    left = Counter(s for s, _, _ in chunks)

    def consume(results: Iterable[RowBatch]) -> None:
        for (s, a, b), batch in zip(chunks, results):
            pending.setdefault(s, []).append(batch)
            left[s] -= 1
            bar.update(b - a)
            if left[s] == 0:
                _write_shard(out, job, s, pending.pop(s))

    try:
        if workers == 1 or len(tasks) <= 1:
            consume(map(_call_make_rows, tasks))
        else:
            ctx = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
            with ctx.Pool(workers) as pool:
                consume(pool.imap(_call_make_rows, tasks))
    except OSError as e:
        raise UserError(f"writing the corpus in {out} failed: {e.strerror or e}; "
                        "the shards written so far are complete, run again to resume") from None
    finally:
        bar.close()
    return rebuild_manifest(out)


def rebuild_manifest(out: Path | str) -> dict:
    """Aggregate the complete shards' sidecars into `manifest.json` and return it."""
    out = Path(out)
    ident = json.loads((out / "corpus.json").read_text())
    shards: dict[str, Any] = {}
    totals: dict[str, Counter] = {}
    failures: Counter = Counter()
    examples: list[dict] = []
    n_shards = -(-ident["n_rows"] // ident["rows_per_shard"])
    for s in range(n_shards):
        path = out / shard_name(s)
        if not shard_is_complete(path):
            continue
        side = json.loads(_sidecar(path).read_text())
        shards[path.name] = {"sha256": side["sha256"], "rows": side["rows"]}
        for col, c in side["counts"].items():
            totals.setdefault(col, Counter()).update(c)
        failures.update(side["failures"])
        examples.extend(side["failure_examples"][: MAX_FAILURE_EXAMPLES - len(examples)])
    manifest = {
        "generator": f"datagen {__version__}",
        **ident,
        "n_shards": n_shards,
        "complete": len(shards) == n_shards,
        "counts": {"rows": sum(v["rows"] for v in shards.values()),
                   **{col: dict(sorted(c.items())) for col, c in totals.items()}},
        "failures": {"total": sum(failures.values()), "by_kind": dict(sorted(failures.items())),
                     "examples": examples},
        "shards": shards,
    }
    atomic_write_json(out / MANIFEST, manifest)
    return manifest


# ---------------------------------------------------------------------------------------------
# Reading


def read_manifest(corpus: Path | str, kind: str | None = None) -> dict:
    """Load and check a corpus's manifest (exists, our format, the expected kind)."""
    corpus = Path(corpus)
    path = corpus / MANIFEST
    if not path.exists():
        raise UserError(f"{corpus} is not a corpus: no {MANIFEST} (make one with `datagen`)")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as e:  # ValueError: bad JSON or not UTF-8
        raise UserError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(manifest, dict):
        raise UserError(f"{path} is not a JSON object")
    if manifest.get("format") != CORPUS_FORMAT:
        raise UserError(f"{corpus} is a corpus of format {manifest.get('format')!r}; this "
                        f"datagen reads format {CORPUS_FORMAT} (regenerate it)")
    if kind is not None and manifest.get("kind") != kind:
        raise UserError(f"{corpus} is a {manifest.get('kind')} corpus, not a {kind} corpus")
    shards = manifest.get("shards")
    if not (isinstance(manifest.get("args"), dict) and isinstance(shards, dict)
            and all(isinstance(v, dict) and isinstance(v.get("sha256"), str)
                    for v in shards.values())):
        raise UserError(f"{path} lacks the `args` or `shards` that datagen writes; regenerate "
                        "the corpus")
    foreign = [name for name in shards if not SHARD_NAME.fullmatch(name)]
    if foreign:
        raise UserError(f"{path} lists {foreign[0]!r}, which is not a shard of this folder "
                        "(shard-NNNNN.parquet)")
    return manifest


def kind_schema(kind: str | None) -> pa.Schema | None:
    """The Parquet schema of the shards of a corpus kind (else None)."""
    return None if kind is None else SCHEMAS.get(kind)


def _check_columns(t: pa.Table, columns: list[str], schema: pa.Schema | None, path: Path) -> None:
    """Refuse a shard whose columns have other types than this datagen writes, or nulls."""
    for c in columns:
        have = t.schema.field(c).type
        if schema is not None and c in schema.names and have != schema.field(c).type:
            raise UserError(f"{path}: column {c} holds {have}, not {schema.field(c).type} "
                            "(a shard from another schema or version?)")
        if t.column(c).null_count:
            raise UserError(f"{path}: column {c} has {t.column(c).null_count} empty (null) "
                            "values (a shard from another schema or version?)")


def read_table(corpus: Path | str, split: str | None = None,
               columns: list[str] | None = None, kind: str | None = None,
               verify: bool = True) -> pa.Table:
    """All complete shards of a corpus as one table (optionally one split, some columns)."""
    corpus = Path(corpus)
    manifest = read_manifest(corpus, kind)
    if not manifest["shards"]:
        raise UserError(f"{corpus} has no complete shard yet")
    schema = kind_schema(manifest.get("kind"))
    tables = []
    for name, info in sorted(manifest["shards"].items()):
        path = corpus / name
        if not path.exists():
            raise UserError(f"{path} is listed in the manifest but missing")
        if verify and sha256_file(path) != info["sha256"]:
            raise UserError(f"{path} does not match the sha256 in the manifest (corrupt or "
                            "tampered); regenerate that shard")
        try:
            t = pq.read_table(path)
        except (pa.ArrowInvalid, OSError) as e:
            raise UserError(f"{path} is not a readable Parquet file: {e}") from None
        want = columns or (schema.names if schema is not None else t.column_names)
        missing = [c for c in want + (["split"] if split else []) if c not in t.column_names]
        if missing:
            raise UserError(f"{path} lacks column(s) {', '.join(missing)} "
                            "(a corpus from another version?)")
        _check_columns(t, want + (["split"] if split else []), schema, path)
        if split is not None:
            t = t.filter(pc.equal(t["split"], split))
        tables.append(t.select(want))
    return pa.concat_tables(tables)
