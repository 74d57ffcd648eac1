"""`datagen export-bgpt` (bGPT's file layout) and `datagen show`."""

import io
import json

import pytest

from bytesim_common.errors import UserError
from datagen.cli import main
from datagen.corpus import read_table, write_corpus
from datagen.cpu.build import cpu_job
from datagen.export_bgpt import export_bgpt
from datagen.show import show


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    write_corpus(folder, cpu_job("x86", 60, seed=4), show_progress=False)
    return folder


def test_export_writes_one_bgpt_file_per_row(corpus, tmp_path):
    out = tmp_path / "bgpt"
    info = export_bgpt(corpus, out)
    rows = read_table(corpus).to_pylist()
    assert sorted(p.name for p in out.iterdir()) == ["export.json"] + sorted(info["files"])
    assert json.loads((out / "export.json").read_text())["program_bytes"] == 112  # 16 * 7 -> 112
    for i, row in enumerate(rows):
        data = (out / row["split"] / f"{i:08d}.bin").read_bytes()
        memory, states = data[:info["program_bytes"]], data[info["program_bytes"]:]
        assert memory == row["program"].ljust(len(memory), b"\0") and states == row["states"]
    assert sum(info["files"].values()) == len(rows)


def test_export_refuses_a_full_folder_and_a_non_corpus(corpus, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep me")
    with pytest.raises(UserError, match="not an empty folder"):
        export_bgpt(corpus, tmp_path / "full")
    with pytest.raises(UserError, match="not a corpus"):
        export_bgpt(tmp_path, tmp_path / "out")
    assert (tmp_path / "full" / "x").read_text() == "keep me"


def test_show_prints_instructions_beside_changed_registers(corpus):
    out = io.StringIO()
    show(corpus, n=2, out=out)
    text = out.getvalue()
    first = read_table(corpus).to_pylist()[0]
    assert f"seed {first['seed']}" in text and "state_0: eip=0x1000" in text
    assert first["asm"].splitlines()[0] in text and "->" in text


def test_show_cli_errors_are_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["show", str(tmp_path)])
    assert e.value.code == 2 and len(capsys.readouterr().err.strip().splitlines()) == 1
