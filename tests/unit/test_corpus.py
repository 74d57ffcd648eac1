"""The shared corpus writer: atomic shards, resume, --shard K/N, worker independence."""

import json
from functools import partial

import pyarrow as pa
import pytest
from helpers import visible_files

from bytesim_common.errors import UserError
from datagen.corpus import CorpusJob, RowBatch, parse_shard, read_table, split_of, write_corpus

SCHEMA = pa.schema([("i", pa.int64()), ("payload", pa.binary()), ("split", pa.string())])


def _rows(start: int, stop: int, seed: int) -> RowBatch:
    rows, failures = [], []
    for i in range(start, stop):
        if i % 7 == 3:
            failures.append({"kind": "odd", "row": i, "detail": "every seventh row fails"})
            continue
        payload = bytes((seed * 31 + i * k) % 256 for k in range(8))
        rows.append({"i": i, "payload": payload, "split": split_of(payload)})
    return RowBatch(rows, failures)


def _job(n: int = 95, seed: int = 1) -> CorpusJob:
    return CorpusJob(kind="toy", args={"seed": seed}, n_rows=n, schema=SCHEMA,
                     make_rows=partial(_rows, seed=seed), rows_per_shard=20, chunk_rows=6)


def test_workers_and_shards_give_identical_corpus(tmp_path):
    a = write_corpus(tmp_path / "a", _job(), workers=1, show_progress=False)
    write_corpus(tmp_path / "b", _job(), workers=2, show_progress=False)
    for k in range(3):
        write_corpus(tmp_path / "c", _job(), shard=(k, 3), show_progress=False)
    assert a["complete"] and a["counts"]["rows"] == 95 - len([i for i in range(95) if i % 7 == 3])
    assert a["failures"]["by_kind"] == {"odd": 14}
    assert visible_files(tmp_path / "a") == visible_files(tmp_path / "b") == visible_files(tmp_path / "c")


def test_resume_skips_complete_shards_and_redoes_broken_ones(tmp_path):
    ref = tmp_path / "ref"
    write_corpus(ref, _job(), show_progress=False)
    d = tmp_path / "d"
    write_corpus(d, _job(), shard=(0, 2), show_progress=False)
    (d / "shard-00000.parquet").write_bytes(b"half a shard")  # a torn write from elsewhere
    m = write_corpus(d, _job(), show_progress=False)
    assert m["complete"]
    assert visible_files(d) == visible_files(ref)
    assert read_table(d).num_rows == m["counts"]["rows"]


def test_other_arguments_are_refused(tmp_path):
    write_corpus(tmp_path, _job(seed=1), show_progress=False)
    with pytest.raises(UserError, match="other arguments"):
        write_corpus(tmp_path, _job(seed=2), show_progress=False)


def test_tampered_shard_is_detected(tmp_path):
    write_corpus(tmp_path, _job(), show_progress=False)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    name = min(manifest["shards"])
    data = bytearray((tmp_path / name).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / name).write_bytes(bytes(data))
    with pytest.raises(UserError, match="sha256"):
        read_table(tmp_path)


@pytest.mark.parametrize("text", ["3/3", "x/2", "1", "-1/2"])
def test_bad_shard_argument(text):
    with pytest.raises(UserError):
        parse_shard(text)


def test_split_of_is_content_hash():
    assert split_of(b"abc") == split_of(b"abc")
    counts = {s: 0 for s in ("train", "valid", "test")}
    for i in range(4000):
        counts[split_of(i.to_bytes(4, "little"))] += 1
    assert 100 < counts["test"] < 300 and 100 < counts["valid"] < 300
