"""What training and evaluation need installed: reading corpora and training a model import
neither the emulator nor the music converters, so a GPU machine without them can train."""

import subprocess
import sys

from helpers import ROOT

BLOCK = "import sys; sys.modules.update(dict.fromkeys(['unicorn', 'music21']))"  # None: ImportError


def test_training_imports_neither_unicorn_nor_music21():
    code = f"{BLOCK}; import simulator.train, simulator.evaluate, simulator.data, datagen.corpus"
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]


def test_the_block_bites():
    """The check above would catch an import of Unicorn: the emulator's module fails under it."""
    code = f"{BLOCK}; import datagen.cpu.harness"
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode != 0 and "unicorn" in run.stderr
