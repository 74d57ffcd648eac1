"""`datagen cpu`: rows are a pure function of (seed, row), resumable, with one-line user errors."""

import dataclasses
import json
import subprocess
import sys

import pytest
from helpers import visible_files

from datagen.cli import main
from datagen.corpus import read_table, split_of, write_corpus
from datagen.cpu import assemble
from datagen.cpu.build import cpu_job
from datagen.cpu.profiles import PROFILES
from datagen.schemas import SCHEMAS


def datagen(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "datagen", *args], capture_output=True,
                          text=True, check=False)


def test_same_corpus_in_other_processes_and_with_two_workers(tmp_path):
    base = ["cpu", "--profile", "rv32e", "-n", "120", "--seed", "5", "--quiet"]
    one = datagen(*base, "--out", str(tmp_path / "one"))
    two = datagen(*base, "--out", str(tmp_path / "two"), "--workers", "2")
    assert one.returncode == two.returncode == 0, one.stderr + two.stderr
    main_process = tmp_path / "here"
    with pytest.raises(SystemExit) as e:
        main([*base, "--out", str(main_process)])
    assert e.value.code == 0
    assert visible_files(tmp_path / "one") == visible_files(tmp_path / "two") == visible_files(main_process)


@pytest.mark.parametrize("profile", list(PROFILES))
def test_rows_follow_the_schema(tmp_path, profile):
    write_corpus(tmp_path, cpu_job(profile, 40, seed=2), show_progress=False)
    table = read_table(tmp_path, kind="cpu")
    assert table.schema.equals(SCHEMAS["cpu"]) and table.num_rows == 40
    size = PROFILES[profile].state_size
    for row in table.to_pylist():
        assert len(row["states"]) == (row["n_steps"] + 1) * size
        assert row["stop"] == "end" and 1 <= row["n_steps"] <= 16
        assert row["states"][:4] == PROFILES[profile].code_base.to_bytes(4, "little")
        assert assemble(profile, row["asm"]) == row["program"]  # capstone text of the program
        assert row["split"] == split_of(row["program"])
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["counts"]["stop"] == {"end": 40}
    assert sum(manifest["counts"]["split"].values()) == 40


def test_shards_and_resume_give_the_identical_corpus(tmp_path):
    job = dataclasses.replace(cpu_job("rv32e-mini", 70, seed=9), rows_per_shard=20, chunk_rows=7)
    write_corpus(tmp_path / "ref", job, show_progress=False)
    for k in (1, 0):
        write_corpus(tmp_path / "sharded", job, shard=(k, 2), show_progress=False)
    assert visible_files(tmp_path / "sharded") == visible_files(tmp_path / "ref")
    part = tmp_path / "part"
    write_corpus(part, job, shard=(0, 2), show_progress=False)  # an interrupted run
    (part / "shard-00000.parquet").write_bytes(b"torn")
    write_corpus(part, job, show_progress=False)
    assert visible_files(part) == visible_files(tmp_path / "ref")


@pytest.mark.parametrize("args, message", [
    (["--profile", "arm"], "unknown CPU profile 'arm'"),
    (["-n", "0"], "-n must be a positive"),
    (["--min-len", "5", "--max-len", "2"], "--min-len and --max-len"),
    (["--max-steps", "0"], "--max-steps must be at least 1"),
    (["--mix", "alu=1,jump=2"], "unknown instruction class 'jump'"),
    (["--mix", "load=1"], "other than load and store"),
    (["--shard", "2/2"], "--shard"),
    (["--mnemonics", "addi,jump"], "unknown mnemonic(s) jump"),
    (["--mix", "alu=1", "--mnemonics", "addi"], "none of them is in a class"),
    (["--profile", "x86", "--mnemonics", "addi"], "--mnemonics is for the RISC-V profiles"),
    (["--mnemonic-weights", "mul=2,jump=1"], "unknown mnemonic 'jump'"),
    (["--mnemonic-weights", "mul=-1"], "weight of mul must be >= 0"),
    (["--mnemonic-weights", "mul=x"], "weight of mul must be a number"),
    (["--mix", "alu=nan"], "weight of alu must be a number"),
    (["--mix", "muldiv=1", "--mnemonics", "mul", "--mnemonic-weights", "mul=0"],
     "every mnemonic drawn from class muldiv has weight 0"),
    (["--profile", "x86", "--mnemonic-weights", "mul=2"], "--mnemonic-weights is for the RISC-V"),
    (["--imm", "huge"], "--imm must be one of"),
    (["--values", "odd"], "--values must be one of"),
    (["--split-by", "seed"], "--split-by must be one of"),
])
def test_bad_arguments_exit_2_with_one_line(tmp_path, capsys, args, message):
    argv = ["cpu", "-n", "5", "--out", str(tmp_path / "c"), "--quiet", *args]
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_unwritable_folder_and_other_profile_exit_2(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    bad = datagen("cpu", "-n", "5", "--out", str(tmp_path / "file" / "corpus"), "--quiet")
    assert bad.returncode == 2 and "cannot write" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    out = str(tmp_path / "c")
    assert datagen("cpu", "--profile", "rv32e-mini", "-n", "5", "--out", out,
                   "--quiet").returncode == 0
    other = datagen("cpu", "--profile", "rv32e", "-n", "5", "--out", out, "--quiet")
    assert other.returncode == 2 and "profile: 'rv32e-mini' there, 'rv32e' asked" in other.stderr
    assert len(other.stderr.strip().splitlines()) == 1


def test_operand_options_draw_what_they_say(tmp_path):
    """`--mnemonics addi --imm zero --values uniform --split-by trace`: register moves of uniform
    values, split by program and state_0 (12 distinct programs still fill every split)."""
    job = cpu_job("rv32e-mini", 200, seed=3, min_len=1, max_len=1, mix="alu_imm=1",
                  mnemonics="addi", imm="zero", values="uniform", split_by="trace")
    assert {"mnemonics": ["addi"], "imm": "zero", "values": "uniform",
            "split_by": "trace"}.items() <= job.args.items()
    write_corpus(tmp_path, job, show_progress=False)
    rows = read_table(tmp_path, kind="cpu").to_pylist()
    assert all(row["asm"].startswith(("mv ", "addi ", "nop", "li ")) for row in rows), \
        {row["asm"] for row in rows}
    registers = [int.from_bytes(row["states"][i:i + 4], "little")
                 for row in rows for i in (4, 8, 12)]
    assert sum(v > 0xFFFF for v in registers) > 0.95 * len(registers)  # uniform: few small ones
    assert {row["split"] for row in rows} == {"train", "valid", "test"}
    assert all(row["split"] == split_of(row["program"] + row["states"][:16]) for row in rows)


def test_uniform_shift_values_draw_uniform_registers_for_shifts_only(tmp_path):
    """`--values uniform-shifts`: state_0 of 32 uniform bits where the program shifts, the mixed
    draw (a third small or at a sign edge) elsewhere; `uniform-arith`: `addi` too;
    `half-uniform-shifts`: a shift's registers uniform or mixed, half the time each."""
    def small_registers(values: str) -> dict[bool, list[bool]]:
        """Whether each register of state_0 is at most 0xffff, for shifts (True) and the rest."""
        job = cpu_job("rv32e-mini", 300, seed=4, min_len=1, max_len=1, mix="alu_imm=1",
                      values=values)
        write_corpus(tmp_path / values, job, show_progress=False)
        small: dict[bool, list[bool]] = {True: [], False: []}
        for row in read_table(tmp_path / values, kind="cpu").to_pylist():
            shift = row["asm"].split()[0] in ("slli", "srli", "srai")
            small[shift] += [int.from_bytes(row["states"][i:i + 4], "little") <= 0xFFFF
                             for i in (4, 8, 12)]
        return small

    small = small_registers("uniform-shifts")
    assert sum(small[True]) < 0.05 * len(small[True])
    assert sum(small[False]) > 0.25 * len(small[False])
    arith = cpu_job("rv32e-mini", 300, seed=4, min_len=1, max_len=1, mix="alu_imm=1",
                    values="uniform-arith")
    write_corpus(tmp_path / "arith", arith, show_progress=False)
    for row in read_table(tmp_path / "arith", kind="cpu").to_pylist():
        if row["asm"].startswith("addi "):
            assert min(int.from_bytes(row["states"][i:i + 4], "little")
                       for i in (4, 8, 12)) > 0xFFFF, row["asm"]
    small = small_registers("half-uniform-shifts")
    # a shift's registers: uniform half the time, the mixed draw (about a third small) the rest
    assert 0.08 * len(small[True]) < sum(small[True]) < 0.25 * len(small[True])
    assert sum(small[False]) > 0.25 * len(small[False])


def test_mnemonic_weights_draw_in_proportion_and_resume(tmp_path):
    """`--mnemonic-weights mul=8`: within mul/div, mul drawn 8 times as often as each of the
    other seven (8/15 of the draws); weight 0 never draws; the corpus's args record the weights
    and the same job rebuilt from them makes the same rows."""
    job = cpu_job("rv32e-mini", 600, seed=2, min_len=1, max_len=1, mix="muldiv=1",
                  mnemonic_weights="mul=8,div=0")
    assert job.args["weights"] == {"mul": 8.0, "div": 0.0}
    write_corpus(tmp_path / "a", job, show_progress=False)
    names = [row["asm"].split()[0] for row in read_table(tmp_path / "a", kind="cpu").to_pylist()]
    assert "div" not in names
    assert 0.45 < names.count("mul") / len(names) < 0.62, names.count("mul")
    assert {"mulh", "mulhsu", "mulhu", "divu", "rem", "remu"} <= set(names)
    again = cpu_job("rv32e-mini", 600, seed=2, min_len=1, max_len=1, mix="muldiv=1",
                    mnemonic_weights="mul=8,div=0")
    write_corpus(tmp_path / "b", again, shard=(1, 2), show_progress=False)
    write_corpus(tmp_path / "b", again, show_progress=False)
    assert visible_files(tmp_path / "b") == visible_files(tmp_path / "a")


def test_default_operands_leave_the_args_as_before():
    """Corpora made before the operand options existed resume: their args have none of them."""
    assert set(cpu_job("rv32e", 5).args) == {"profile", "seed", "min_len", "max_len",
                                             "max_steps", "mix"}
