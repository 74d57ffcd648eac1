"""`simulator cpu`, `simulator abc2midi`, `simulator midi2abc` and `python -m simulator.demo`:
outputs, exit codes (0 ok, 1 the model's output is invalid, 2 user error) and one-line errors."""

import io
import json
import os
import shutil
import subprocess
import sys

import mido
import pytest
import torch
from helpers import ROOT, in_process

from simulator.checkpoint import save_pretrained
from simulator.cli import main
from simulator.model import PRESETS, ByteModel

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run(argv, stdin: bytes | None = None, monkeypatch=None) -> tuple[int, str, str]:
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    return in_process(main, argv)


@pytest.fixture(scope="module")
def learned(tiny_cpu):
    """A program the tiny model knows, its state_0 and Unicorn's states."""
    row = tiny_cpu.rows[2]
    return row["program"], row["states"][:16], row["states"]


def _cpu(tiny_cpu, *extra):
    return ["cpu", *extra, "--model", str(tiny_cpu.checkpoint), "--profile", "rv32e-mini"]


def test_cpu_json_on_machine_code_with_an_init_file(tiny_cpu, learned, tmp_path):
    program, init, states = learned
    (tmp_path / "p.bin").write_bytes(program)
    (tmp_path / "init.bin").write_bytes(init)
    code, out, _ = run(_cpu(tiny_cpu, str(tmp_path / "p.bin"), "--init",
                            str(tmp_path / "init.bin"), "--json"))
    assert code == 0
    got = json.loads(out)
    assert list(got) == ["profile", "program_hex", "predicted", "emulator", "byte_accuracy",
                         "state_exact"]
    want = [states[i: i + 16].hex() for i in range(0, len(states), 16)]
    assert got["profile"] == "rv32e-mini" and got["program_hex"] == program.hex()
    assert got["emulator"] == got["predicted"] == want
    assert got["byte_accuracy"] == got["state_exact"] == 1.0


def test_cpu_on_assembly_file_string_and_stdin(tiny_cpu, tmp_path, monkeypatch):
    text = "li x1, 6\nmul x2, x1, x1\n"
    (tmp_path / "p.s").write_text(text)
    outs = []
    for argv, stdin in [((str(tmp_path / "p.s"),), None), ((text,), None), (("-",), text.encode())]:
        code, out, _ = run(_cpu(tiny_cpu, *argv, "--init", "x3=1", "--json"), stdin,
                           monkeypatch)
        assert code == 0
        outs.append(json.loads(out))
    assert outs[0] == outs[1] == outs[2]
    emu = outs[0]["emulator"]
    assert len(emu) == 3 and emu[2][16:24] == (36).to_bytes(4, "little").hex()  # x2 = 6 * 6


def test_cpu_machine_code_on_stdin_and_the_side_by_side_table(tiny_cpu, monkeypatch):
    code, out, _ = run(_cpu(tiny_cpu, "-", "--max-steps", "1", "--init", "x1=1"),
                       bytes.fromhex("93005000"), monkeypatch)  # addi x1, x0, 5
    assert code == 0
    assert "0x1000: addi ra, zero, 5" in out and "reg    model" in out
    assert "x1     " in out and "0x00000005" in out and "unicorn end after 1 steps" in out


@pytest.mark.parametrize("argv, words", [
    (["frob x1"], "unsupported RISC-V instruction 'frob'"),
    (["missing.s"], "no such program file"),
    (["nop", "--init", "x7=1"], "no register 'x7'"),
    (["nop", "--init", "nofile"], "--init: no file nofile"),
    (["nop", "--max-steps", "0"], "max_steps must be at least 1"),
    (["nop", "--bogus"], "unrecognized arguments"),
])
def test_cpu_user_errors_exit_2_with_one_line(tiny_cpu, argv, words):
    code, out, err = run(_cpu(tiny_cpu, *argv))
    assert code == 2 and out == "" and words in err and err.count("\n") == 1


def test_cpu_without_a_model_is_one_line(tmp_path):
    code, _, err = run(["cpu", "nop", "--model", str(tmp_path / "none")])
    assert code == 2 and "no model at" in err and err.count("\n") == 1


def test_music_commands_write_the_converted_files(tiny_abc2midi, tiny_midi2abc, tmp_path):
    row = tiny_abc2midi.rows[0]
    (tmp_path / "in.abc").write_text(row["abc"])
    for branches in ("0", "2"):
        code, out, _ = run(["abc2midi", str(tmp_path / "in.abc"), "-o", str(tmp_path / "out.mid"),
                            "--model", str(tiny_abc2midi.checkpoint), "--branches", branches])
        assert code == 0 and "wrote" in out
        midi = (tmp_path / "out.mid").read_bytes()
        assert midi == row["midi"] and mido.MidiFile(file=io.BytesIO(midi)).tracks
    code, _, _ = run(["midi2abc", str(tmp_path / "out.mid"), "-o", str(tmp_path / "back.abc"),
                      "--model", str(tiny_midi2abc.checkpoint)])
    assert code == 0 and (tmp_path / "back.abc").read_text() == row["abc"]
    code, _, err = run(["midi2abc", str(tmp_path / "in.abc"), "-o", str(tmp_path / "x.abc"),
                        "--model", str(tiny_midi2abc.checkpoint)])
    assert code == 2 and "not a MIDI file" in err and not (tmp_path / "x.abc").exists()
    code, _, err = run(["abc2midi", str(tmp_path / "in.abc"), "-o", str(tmp_path / "no/o.mid"),
                        "--model", str(tiny_abc2midi.checkpoint)])
    assert code == 2 and "no folder" in err
    code, _, err = run(["abc2midi", str(tmp_path / "in.abc"), "-o", str(tmp_path / "o.mid"),
                        "--model", str(tiny_abc2midi.checkpoint), "--segment-bars", "-1"])
    assert code == 2 and "--segment-bars must be 0 or more" in err
    code, _, err = run(["abc2midi", str(tmp_path / "in.abc"), "-o", str(tmp_path / "o.mid"),
                        "--model", str(tiny_abc2midi.checkpoint), "--branches", "-1"])
    assert code == 2 and "branches must be 0 or more" in err and err.count("\n") == 1


def test_invalid_model_output_exits_1_and_writes_nothing(tmp_path):
    torch.manual_seed(0)
    small = PRESETS["tiny"].__class__(**{**PRESETS["tiny"].to_dict(), "max_len": 256})
    save_pretrained(ByteModel(small), {"task": "abc2midi", "align": 16}, tmp_path / "untrained")
    (tmp_path / "in.abc").write_text("X:1\nK:C\nCDE|\n")
    code, _, err = run(["abc2midi", str(tmp_path / "in.abc"), "-o", str(tmp_path / "out.mid"),
                        "--model", str(tmp_path / "untrained")])
    assert code == 1 and "the model's output" in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.abc", "untrained"]


def _python(*argv) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True,
                          env=env, timeout=300, check=False)


def test_console_entry_and_exit_code(tiny_cpu):
    bad = _python("-m", "simulator", *_cpu(tiny_cpu, "li x1, 0x100000000"))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.count("\n") == 1 and "line 1" in bad.stderr


def test_demo_runs_both_parts_or_says_what_is_missing(tiny_cpu, tiny_abc2midi, tmp_path):
    done = _python("-m", "simulator.demo", "--cpu-model", str(tiny_cpu.run),
                   "--abc2midi-model", str(tiny_abc2midi.checkpoint))
    assert done.returncode == 0, done.stderr
    assert "vs Unicorn" in done.stdout and "reference (" in done.stdout
    assert "single instructions, 10 random programs per class" in done.stdout
    assert "| alu_imm |" in done.stdout and "| all |" in done.stdout
    assert "model (" in done.stdout or "model: the model's output" in done.stdout
    missing = _python("-m", "simulator.demo", "--cpu-model", str(tmp_path / "none"),
                      "--abc2midi-model", str(tiny_abc2midi.checkpoint))
    assert missing.returncode == 0 and "skipping the CPU part: no model at" in missing.stdout
    assert "reference (" in missing.stdout


def test_train_options_are_the_train_args_fields_with_their_defaults(capsys):
    from dataclasses import MISSING, fields

    from simulator.cli import build_parser
    from simulator.run_folder import command_line
    from simulator.train_args import TrainArgs

    args = build_parser().parse_args(["train", "--task", "cpu", "--data", "d", "--out", "o"])
    for f in fields(TrainArgs):
        if f.default is not MISSING:
            assert getattr(args, f.name) == f.default, f.name
    assert TrainArgs.from_namespace(args) == TrainArgs(task="cpu", data="d", out="o")
    # --context is the bytes of a sequence; --max-len, its former name, still works (with a word)
    new = build_parser().parse_args(["train", "--task", "cpu", "--data", "d", "--out", "o",
                                     "--context", "256"])
    assert capsys.readouterr().err == ""
    old = build_parser().parse_args(["train", "--task", "cpu", "--data", "d", "--out", "o",
                                     "--max-len", "256"])
    assert new.max_len == old.max_len == 256
    assert "--max-len is deprecated, use --context" in capsys.readouterr().err
    assert "--context 256" in command_line(TrainArgs.from_namespace(new))
    # the other kind of task's options (as training records them) are not part of the command
    cpu = TrainArgs(task="cpu", data="d", out="o", ir_word="none", midi_codec="file")
    music = TrainArgs(task="abc2midi", data="d", out="o", ir_word="none", midi_codec="file")
    assert "--ir-word none" in command_line(cpu) and "--midi-codec" not in command_line(cpu)
    assert "--midi-codec file" in command_line(music) and "--ir-word" not in command_line(music)


def test_a_non_editable_install_is_pointed_at_trained_in_one_line(tmp_path):
    """`pip install .` (not editable) does not carry trained/: the default model is then
    refused in one line that names BYTESIM_TRAINED, and BYTESIM_TRAINED points at it."""
    site, src = tmp_path / "site", tmp_path / "src"  # built from a copy: no build/ left here
    src.mkdir()
    shutil.copy(ROOT / "pyproject.toml", src)
    shutil.copy(ROOT / "README.md", src)
    for package in ("bytesim_common", "datagen", "simulator"):
        shutil.copytree(ROOT / package, src / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--no-build-isolation", "--target", str(site), str(src)],
                   check=True, capture_output=True)
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    env.pop("BYTESIM_TRAINED", None)
    cmd = [sys.executable, "-m", "simulator", "cpu", "li x1, 5", "--json"]
    where = subprocess.run([sys.executable, "-c", "import simulator; print(simulator.__file__)"],
                           check=True, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert where.stdout.startswith(str(site))  # the installed copy, not this checkout
    r = subprocess.run(cmd, check=False, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "BYTESIM_TRAINED" in r.stderr and "--model" in r.stderr
    r = subprocess.run(cmd, check=False, cwd=tmp_path, capture_output=True, text=True,
                       env={**env, "BYTESIM_TRAINED": str(ROOT / "trained")})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["profile"] == "rv32e"
