"""`datagen merge`: one corpus holding the rows of several, each keeping its split."""

import json

import pytest
from helpers import assert_one_line_error, in_process, visible_files

from bytesim_common.errors import UserError
from datagen.cli import main
from datagen.corpus import read_manifest, read_table, split_of, write_rows
from datagen.merge import merge_corpora, merged_args


def _music_rows(seed: int, n: int) -> list[dict]:
    rows = []
    for j in range(n):
        abc = f"X:{j}\nT:t\nK:C\n{'CDEFGAB'[j % 7]}{seed}|\n"
        rows.append({"id": f"synthetic:{seed}:{j}", "source": "synthetic", "tune": str(j),
                     "abc": abc, "midi": bytes([seed, j]), "converter": "abc2midi",
                     "converter_version": "4.84", "converter_errors": 0,
                     "split": split_of(abc.encode(), valid=0.2, test=0.2)})
    return rows


def _corpus(folder, seed: int, n: int, sources=("synthetic",)):
    write_rows(folder, "music", {"seed": seed, "sources": list(sources)}, _music_rows(seed, n))
    return folder


def test_merge_keeps_every_row_its_split_and_order_and_records_the_sources(tmp_path):
    a = _corpus(tmp_path / "a", 1, 30)
    b = _corpus(tmp_path / "b", 2, 17, sources=("music21",))
    m = merge_corpora(tmp_path / "ab", [a, b], show_progress=False)
    want = read_table(a).to_pylist() + read_table(b).to_pylist()
    assert read_table(tmp_path / "ab").to_pylist() == want
    assert m["complete"] and m["counts"]["rows"] == 47
    assert m["counts"]["split"] == {s: sum(r["split"] == s for r in want)
                                    for s in sorted({r["split"] for r in want})}
    assert m["args"]["sources"] == ["music21", "synthetic"]  # what a model card's licence reads
    assert [(x["corpus"], x["rows"], x["args"]["seed"]) for x in m["args"]["merged_from"]] == [
        ("a", 30, 1), ("b", 17, 2)]
    # run again: the same folder, nothing rewritten; the other order is another corpus
    before = visible_files(tmp_path / "ab")
    merge_corpora(tmp_path / "ab", [a, b], show_progress=False)
    assert visible_files(tmp_path / "ab") == before
    with pytest.raises(UserError, match="other arguments"):
        merge_corpora(tmp_path / "ab", [b, a], show_progress=False)


def test_merge_refuses_what_would_not_make_one_corpus(tmp_path):
    a = _corpus(tmp_path / "a", 1, 10)
    b = _corpus(tmp_path / "b", 2, 10)
    with pytest.raises(UserError, match="two corpora or more"):
        merge_corpora(tmp_path / "x", [a])
    with pytest.raises(UserError, match="named twice"):
        merge_corpora(tmp_path / "x", [a, tmp_path / "." / "a"])
    with pytest.raises(UserError, match="one of the corpora"):
        merge_corpora(a, [a, b])
    manifest = json.loads((b / "manifest.json").read_text())
    (b / "manifest.json").write_text(json.dumps({**manifest, "complete": False}))
    with pytest.raises(UserError, match="not complete"):
        merge_corpora(tmp_path / "x", [a, b])
    (b / "manifest.json").write_text(json.dumps({**manifest, "kind": "cpu"}))
    with pytest.raises(UserError, match="different kinds"):
        merge_corpora(tmp_path / "x", [a, b])


def test_cpu_corpora_merge_only_within_one_profile():
    def cpu(profile: str, max_len: int) -> dict:
        return {"kind": "cpu", "counts": {"rows": 5}, "args": {"profile": profile, "max_len": max_len}}

    args = merged_args(["p", "q"], [cpu("rv32e", 8), cpu("rv32e", 16)])
    assert (args["profile"], args["max_len"]) == ("rv32e", 16)  # what training and export read
    with pytest.raises(UserError, match="different CPU profiles"):
        merged_args(["p", "q"], [cpu("rv32e", 8), cpu("x86", 8)])


def test_merge_command(tmp_path):
    a = _corpus(tmp_path / "a", 1, 12)
    b = _corpus(tmp_path / "b", 2, 9)
    code, out, _ = in_process(main, ["merge", str(a), str(b), "--out", str(tmp_path / "ab"),
                                     "--quiet"])
    assert code == 0 and "21 rows of 2 corpora" in out
    assert read_manifest(tmp_path / "ab", "music")["counts"]["rows"] == 21
    code, _, err = in_process(main, ["merge", str(a), "--out", str(tmp_path / "c")])
    assert_one_line_error(code, err, "two corpora")
