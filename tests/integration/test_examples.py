"""Every script in examples/ runs (in its fast mode, on the tiny test checkpoints) and is
referenced from the README."""

import os
import subprocess
import sys

from helpers import ROOT

EXAMPLES = sorted(p.name for p in (ROOT / "examples").glob("*.py"))


def _run(script: str, *args: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "examples" / script), "--fast", *args],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_every_example_is_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    assert EXAMPLES == ["compare_own_program.py", "convert_tune.py", "predict_program.py",
                        "register_moves.py", "train_tiny.py"]
    assert all(f"examples/{name}" in readme for name in EXAMPLES)


def test_predict_program(tiny_cpu):
    out = _run("predict_program.py", "--model", str(tiny_cpu.run))
    assert "0x1000: addi ra, zero, 0xa" in out and "state 0: pc=0x1000" in out


def test_compare_own_program(tiny_cpu, tmp_path):
    (tmp_path / "mine.s").write_text("li x1, 9\naddi x2, x1, 1\n")
    out = _run("compare_own_program.py", str(tmp_path / "mine.s"), "--init", "x3=4",
               "--model", str(tiny_cpu.checkpoint), "--profile", "rv32e-mini")
    assert "0x1004: addi sp, ra, 1" in out and '"byte_accuracy"' in out
    assert "0x0000000a" in out  # Unicorn's x2 = 10


def test_register_moves(tiny_cpu):
    out = _run("register_moves.py", "--model", str(tiny_cpu.checkpoint), "--imm", "random")
    lines = out.splitlines()
    assert len(lines) == 5 and lines[-2].endswith("of 3 destination registers right")
    assert all(line.startswith("addi x") and "unicorn 0x" in line for line in lines[:3])
    routes = lines[-1].removeprefix("by route: ").split(", ")  # "x2<-x1 0/1", ...
    assert sum(int(r.split()[1].split("/")[1]) for r in routes) == 3


def test_convert_tune(tiny_abc2midi):
    out = _run("convert_tune.py", "--model", str(tiny_abc2midi.checkpoint))
    assert "reference MIDI" in out and ("model MIDI" in out or "model: the model's" in out)


def test_train_tiny(tmp_path):
    out = _run("train_tiny.py", "--out", str(tmp_path))
    assert (tmp_path / "checkpoint" / "model.safetensors").exists()
    assert "unicorn end after 3 steps" in out
