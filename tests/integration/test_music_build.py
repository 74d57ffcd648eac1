"""`datagen music` end to end: corpora, failures counted, determinism, both converters,
the fallback, show, export-bgpt and midi2abc."""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from bytesim_common.errors import UserError
from datagen.cli import main
from datagen.corpus import read_table, write_corpus
from datagen.music import build
from datagen.music import convert as conv
from datagen.music.build import encoded_length, music_job, music_spec
from datagen.music.normalize import normalize_midi, notes
from datagen.music.show import format_music_row
from tests.helpers import needs_abc2midi

needs_midi2abc = pytest.mark.skipif(shutil.which("midi2abc") is None,
                                    reason="midi2abc is not installed (apt-get install abcmidi)")


def datagen(*argv: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(list(argv))
    assert exit_.value.code == 0


def shards(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.suffix in (".parquet", ".json")}


@needs_abc2midi
def test_synthetic_corpus_rows_and_worker_independence(tmp_path):
    datagen("music", "--source", "synthetic", "-n", "60", "--seed", "4", "--out",
            str(tmp_path / "a"), "--quiet")
    datagen("music", "--source", "synthetic", "-n", "60", "--seed", "4", "--out",
            str(tmp_path / "b"), "--workers", "2", "--quiet")
    assert shards(tmp_path / "a") == shards(tmp_path / "b")
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["kind"] == "music" and manifest["args"]["converter"] == "abc2midi"
    table = read_table(tmp_path / "a")
    rows = table.to_pylist()
    assert len(rows) + manifest["failures"]["total"] == 60
    for row in rows[:20]:
        assert row["source"] == "synthetic" and row["converter"] == "abc2midi"
        assert row["converter_version"] == conv.converter_version("abc2midi")
        assert normalize_midi(row["midi"]) == row["midi"]
        fresh = conv.convert(row["abc"], "abc2midi")
        assert notes(row["midi"]) == notes(fresh.midi)
        assert encoded_length(row["abc"].encode(), row["midi"]) <= 8192
    # datagen's length filter is the codec's own length: exactly, for the file layout at the
    # 16-byte patches it counts; never shorter than the event-stream layout
    from simulator.codec import make_codec

    for row in rows:
        length = encoded_length(row["abc"].encode(), row["midi"])
        for task in ("abc2midi", "midi2abc"):
            codec = make_codec(task, 16, midi="file")
            assert len(codec.encode(codec.sample_from_row(row))[0]) == length
            events = make_codec(task, 16, midi="events")
            assert len(events.encode(events.sample_from_row(row))[0]) <= length


@needs_abc2midi
def test_same_corpus_from_another_process_and_by_shards(tmp_path):
    args = ["music", "--source", "synthetic", "music21", "-n", "40", "--seed", "2", "--quiet"]
    env = {**os.environ, "PYTHONHASHSEED": "7"}
    subprocess.run([sys.executable, "-m", "datagen", *args, "--out", str(tmp_path / "p")],
                   check=True, env=env, capture_output=True)
    spec = music_spec(["synthetic", "music21"], seed=2)
    for k in range(2):
        write_corpus(tmp_path / "s", music_job(spec, 40, rows_per_shard=15), shard=(k, 2),
                     show_progress=False)
    whole = read_table(tmp_path / "p")
    assert whole.equals(read_table(tmp_path / "s"))
    assert set(whole["source"].to_pylist()) == {"synthetic", "music21"}


@needs_abc2midi
def test_music21_source_walks_the_corpus_in_seeded_order(tmp_path):
    datagen("music", "--source", "music21", "-n", "25", "--seed", "1", "--out",
            str(tmp_path / "c"), "--quiet")
    ids = read_table(tmp_path / "c", columns=["id"])["id"].to_pylist()
    assert all(i.startswith("music21:") and "#" in i for i in ids)
    assert len(set(ids)) == len(ids) and ids != sorted(ids)
    spec2 = music_spec(["music21"], seed=2)
    assert music_job(spec2, 10**6).n_rows == music_job(spec2, 20000).n_rows > 12000


def test_an_option_added_later_is_recorded_only_where_set():
    """`plain_lengths` came after corpora recorded every synthetic option: left at 0 it is not in
    a corpus's arguments, so those corpora (and half-made ones) resume unchanged."""
    def mix(text):
        return music_job(music_spec(["synthetic"], seed=1, synth_mix=text), 10).args["synth_mix"]
    assert "plain_lengths" not in mix(None) and "free_titles" in mix(None)
    assert mix("plain_lengths=1")["plain_lengths"] == 1.0


@needs_abc2midi
def test_failures_are_counted_not_dropped(tmp_path, capsys):
    tunes = tmp_path / "mine.abc"
    tunes.write_text("X:1\nT:fine\nM:4/4\nL:1/8\nK:C\nCDEF GABc|]\n\n"
                     "X:2\nT:no key field\nM:4/4\nCDEF|]\n\n"
                     "X:3\nT:long\nM:4/4\nL:1/8\nK:C\n" + "CDEF GABc|" * 300 + "]\n")
    datagen("music", "--source", str(tunes), "-n", "10", "--seed", "0", "--out",
            str(tmp_path / "f"))
    manifest = json.loads((tmp_path / "f" / "manifest.json").read_text())
    assert manifest["counts"]["rows"] == 1 and manifest["args"]["files_sha256"]
    assert manifest["failures"]["by_kind"] == {"rejected": 1, "too_long": 1}
    assert any("K:" in e["detail"] for e in manifest["failures"]["examples"])
    assert "making 3 rows, not 10" in capsys.readouterr().err


@needs_abc2midi
def test_segment_bars_adds_the_segments_a_long_tune_plays(tmp_path, monkeypatch):
    """Each segment is a row in its tune's split, as the converter cuts the tune; a tune of one
    segment comes whole only; without the option nothing changes, and it is not recorded."""
    tunes = tmp_path / "mine.abc"
    tunes.write_text("X:1\nT:long\nM:2/4\nL:1/8\nK:G\n|: GABc | dBAG | FGAB | c2A2 :|\n"
                     "defg | a2g2 | fedc | B4 |]\n\n"
                     "X:2\nT:short\nM:2/4\nL:1/8\nK:D\nDFAd | f2d2 |]\n")
    datagen("music", "--source", str(tunes), "--segment-bars", "4", "-n", "10", "--seed", "0",
            "--out", str(tmp_path / "s"), "--quiet")
    rows = {r["id"].split(":", 1)[1].split("#")[1]: r for r in read_table(tmp_path / "s").to_pylist()}
    # 12 bars played, in three segments: the repeated one once
    assert sorted(rows) == ["0", "0/1", "0/2", "1"]
    assert rows["0/1"]["abc"] == "X:1\nT:long\nM:2/4\nL:1/8\nK:G\nGABc | dBAG | FGAB | c2A2 |]\n"
    assert rows["0/2"]["abc"].endswith("K:G\ndefg | a2g2 | fedc | B4 |]\n")
    assert len({rows[k]["split"] for k in ("0", "0/1", "0/2")}) == 1
    # a split of its own per text, to see that a segment takes its tune's, not its own text's
    monkeypatch.setattr(build, "split_of", lambda key: hashlib.sha256(key).hexdigest()[:8])
    spec = music_spec([str(tunes)], seed=0, segment_bars=4)
    splits = {build.make_pair(spec, i)["id"]: build.make_pair(spec, i)["split"] for i in range(4)}
    assert len(set(splits.values())) == 2  # the long tune's and the short one's
    assert notes(rows["0/2"]["midi"]) == notes(conv.convert(rows["0/2"]["abc"], "abc2midi").midi)
    assert "segment_bars" in json.loads((tmp_path / "s" / "manifest.json").read_text())["args"]
    assert "segment_bars" not in music_job(music_spec([str(tunes)], seed=0), 2).args
    # --segments-only: the long tune as its segments only, the short one whole; recorded
    datagen("music", "--source", str(tunes), "--segment-bars", "4", "--segments-only", "-n",
            "10", "--seed", "0", "--out", str(tmp_path / "o"), "--quiet")
    only = {r["id"].split("#")[1]: r["abc"] for r in read_table(tmp_path / "o").to_pylist()}
    assert sorted(only) == ["0/1", "0/2", "1"] and only["0/1"] == rows["0/1"]["abc"]
    assert json.loads((tmp_path / "o" / "manifest.json").read_text())["args"]["segments_only"]
    assert "segments_only" not in music_job(spec, 2).args
    with pytest.raises(UserError, match="--segments-only needs --segment-bars"):
        music_spec([str(tunes)], seed=0, segments_only=True)


def test_timeout_is_a_counted_failure(tmp_path, monkeypatch, hanging_tool):
    hanging_tool("abc2midi")
    monkeypatch.setattr(conv, "converter_version", lambda name: "fake")
    spec = music_spec(["synthetic"], seed=0, converter="abc2midi", timeout=0.3)
    m = write_corpus(tmp_path / "t", music_job(spec, 2), show_progress=False)
    assert m["counts"]["rows"] == 0 and m["failures"]["by_kind"] == {"timeout": 2}


def test_music21_converter_path(tmp_path):
    datagen("music", "--source", "synthetic", "-n", "3", "--seed", "1", "--converter", "music21",
            "--out", str(tmp_path / "m"), "--quiet")
    rows = read_table(tmp_path / "m").to_pylist()
    assert rows and all(r["converter"] == "music21" for r in rows)
    assert all(notes(r["midi"]) for r in rows)
    bad = conv.convert("X:1\nT:x\nM:4/4\nK:Q#\n((((]]]]\n", "music21")
    assert bad.failure in (None, "rejected")


def test_falls_back_to_music21_without_abc2midi(monkeypatch, capsys):
    monkeypatch.setattr(conv, "have_abc2midi", lambda: False)
    assert conv.choose_converter(None) == "music21"
    assert "abc2midi not found" in capsys.readouterr().err
    with pytest.raises(UserError, match="not installed"):
        conv.choose_converter("abc2midi")


@pytest.mark.parametrize("argv", [
    ["--source", "nosuch.abc"], ["--max-bytes", "-1"], ["--timeout", "0"],
    ["--synth-mix", "chords=9"], ["--segment-bars", "-1"], ["--segment-bars", "4"]])
def test_bad_arguments_are_one_line_errors(tmp_path, argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["music", "-n", "2", "--out", str(tmp_path / "x"), *argv])
    assert exit_.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


@needs_abc2midi
@needs_midi2abc
def test_show_export_and_midi2abc(tmp_path, capsys):
    datagen("music", "--source", "synthetic", "-n", "5", "--seed", "1", "--out",
            str(tmp_path / "c"), "--quiet")
    row = read_table(tmp_path / "c").to_pylist()[0]
    text = format_music_row(row)
    assert row["id"] in text and "MIDI notes" in text
    assert re.search(r"[A-G]#?-?\d@[\d.]+:[\d.]+", text)
    datagen("show", str(tmp_path / "c"), "-n", "2")
    assert "synthetic:1:" in capsys.readouterr().out
    datagen("export-bgpt", str(tmp_path / "c"), str(tmp_path / "x"))
    pairs = sorted(p.name for p in (tmp_path / "x").rglob("*.*") if p.parent != tmp_path / "x")
    assert len(pairs) == 2 * read_table(tmp_path / "c").num_rows
    assert all(p.endswith((".abc", ".mid")) for p in pairs)
    abc = conv.midi_to_abc(row["midi"])
    assert abc.startswith("X:") and "K:" in abc
    assert conv.midi_to_abc(row["midi"]) == abc
    with pytest.raises(UserError):
        conv.midi_to_abc(b"not a midi file")
