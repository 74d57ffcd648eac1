"""What training and evaluation need installed: reading corpora and training a model import
neither the emulator nor the music converters, so a GPU machine without them can train."""

import subprocess
import sys

from helpers import ROOT

BLOCK = "import sys; sys.modules.update(dict.fromkeys(['unicorn', 'music21']))"  # None: ImportError


def _imports(modules: str) -> subprocess.CompletedProcess:
    """`import modules` in a fresh interpreter where Unicorn and music21 cannot be imported."""
    return subprocess.run([sys.executable, "-c", f"{BLOCK}; import {modules}"], check=False,
                          cwd=ROOT, capture_output=True, text=True)


def test_training_imports_neither_unicorn_nor_music21():
    run = _imports("simulator.train, simulator.evaluate, simulator.data, datagen.corpus")
    assert run.returncode == 0, run.stderr[-2000:]


def test_the_block_bites():
    """The check above would catch an import of Unicorn: the emulator's module fails under it."""
    run = _imports("datagen.cpu.harness")
    assert run.returncode != 0 and "unicorn" in run.stderr
