"""`simulator mine`: the train rows a model gets wrong teacher-forced, as a corpus of their own."""

import io

import mido
import pytest
from helpers import assert_one_line_error, in_process

from datagen.corpus import CorpusJob, RowBatch, read_manifest, read_table, write_corpus
from datagen.schemas import SCHEMAS
from simulator.checkpoint import read_config, weights_id
from simulator.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _transposed(midi: bytes, semitones: int) -> bytes:
    """The same file with every note `semitones` higher."""
    f = mido.MidiFile(file=io.BytesIO(midi))
    for track in f.tracks:
        for i, msg in enumerate(track):
            if msg.type in ("note_on", "note_off"):
                track[i] = msg.copy(note=msg.note + semitones)
    out = io.BytesIO()
    f.save(file=out)
    return out.getvalue()


def _corpus(out, rows: list[dict], args: dict) -> None:
    """Write `rows` as a music corpus in `out`."""
    write_corpus(out, CorpusJob(kind="music", args=args, n_rows=len(rows),
                                schema=SCHEMAS["music"],
                                make_rows=lambda a, b: RowBatch(rows[a:b])),
                 show_progress=False)


@pytest.fixture(scope="module")
def known_and_altered(tiny_abc2midi, tmp_path_factory):
    """A corpus whose train split holds the tune the tiny model knows by heart and the same
    tune with a MIDI file two semitones higher (which the model cannot predict), then the
    source corpus's other rows."""
    rows = read_table(tiny_abc2midi.corpus).to_pylist()
    known = [r for r in rows if r["split"] == "train"]
    altered = [{**r, "id": r["id"] + "/up2", "midi": _transposed(r["midi"], 2)} for r in known]
    mixed = known + altered + [r for r in rows if r["split"] != "train"]
    out = tmp_path_factory.mktemp("mine") / "corpus"
    _corpus(out, mixed, {"test": "mine"})
    return out, known, altered, [r for r in rows if r["split"] != "train"]


def test_mine_keeps_the_rows_the_model_gets_wrong(tiny_abc2midi, known_and_altered, tmp_path):
    corpus, known, altered, others = known_and_altered
    model = str(tiny_abc2midi.checkpoint)
    code, out, err = in_process(main, ["mine", "--model", model, "--data", str(corpus),
                                       "--out", str(tmp_path / "hard"), "--easy-per-hard", "0",
                                       "--quiet"])
    assert code == 0, err
    assert f"{len(altered)} of {len(known) + len(altered)} train rows wrong" in out
    assert [r["id"] for r in read_table(tmp_path / "hard", "train").to_pylist()] == \
        [r["id"] for r in altered]
    for split in ("valid", "test"):
        assert read_table(tmp_path / "hard", split).to_pylist() == \
            [r for r in others if r["split"] == split]
    args = read_manifest(tmp_path / "hard")["args"]
    assert args["model_weights"] == weights_id(read_config(tiny_abc2midi.checkpoint))
    assert (args["hard"], args["easy"], args["mined_from"]) == \
        (len(altered), 0, {"test": "mine"})

    # with as many right rows as wrong ones: the known tune comes back, in the source's order
    code, _, err = in_process(main, ["mine", "--model", model, "--data", str(corpus),
                                     "--out", str(tmp_path / "both"), "--quiet"])
    assert code == 0, err
    assert [r["id"] for r in read_table(tmp_path / "both", "train").to_pylist()] == \
        [r["id"] for r in known + altered]


def test_mine_refuses_with_one_line(tiny_abc2midi, known_and_altered, tmp_path):
    model = str(tiny_abc2midi.checkpoint)
    rows = read_table(tiny_abc2midi.corpus).to_pylist()
    too_long = [{**r, "abc": r["abc"] + "%" * 5000} if r["split"] == "train" else r for r in rows]
    _corpus(tmp_path / "long", too_long, {"test": "long"})
    code, _, err = in_process(main, ["mine", "--model", model, "--data", str(tmp_path / "long"),
                                     "--out", str(tmp_path / "none"), "--quiet"])
    assert_one_line_error(code, err, "fits", "context: nothing to mine")
    code, _, err = in_process(main, ["mine", "--model", model, "--data",
                                     str(tiny_abc2midi.corpus), "--out", str(tmp_path / "a"),
                                     "--quiet"])
    assert_one_line_error(code, err, "right teacher-forced: nothing to mine")
    code, _, err = in_process(main, ["mine", "--model", model, "--data",
                                     str(known_and_altered[0]), "--out", str(tmp_path / "b"),
                                     "--easy-per-hard", "-1"])
    assert_one_line_error(code, err, "--easy-per-hard must be a number >= 0")
    code, _, err = in_process(main, ["mine", "--model", model, "--data",
                                     str(known_and_altered[0]), "--out", str(tmp_path / "c"),
                                     "--easy-per-hard", "nan"])
    assert_one_line_error(code, err, "--easy-per-hard must be a number >= 0")
