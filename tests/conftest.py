"""Shared fixtures: tiny checkpoints trained in seconds, for the facade, CLI and example tests.

Each model is overfit on a handful of samples made by datagen, so it reproduces them exactly:
tests can then check that prediction and ground truth agree (and where they must differ).
"""

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from datagen.cli import build_parser as datagen_parser
from datagen.corpus import read_table
from datagen.cpu.build import build_cpu_corpus
from datagen.music.build import build_music_corpus
from simulator.export import export_run
from simulator.train import TrainArgs, train


@pytest.fixture
def hanging_tool(tmp_path, monkeypatch):
    """Put a command of the given name that never finishes first on PATH (for timeout tests)."""
    def install(name: str) -> None:
        fake = tmp_path / "hanging-bin"
        fake.mkdir(exist_ok=True)
        (fake / name).write_text("#!/bin/sh\nexec sleep 30\n")
        (fake / name).chmod(0o755)
        monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")

    return install


TWO_TUNES = """\
X:1
T:a
M:4/4
L:1/4
K:C
CDEF|GABc|

X:2
T:b
M:3/4
L:1/4
K:G
GAB|d2B|
"""


@dataclass
class TinyModel:
    corpus: Path
    run: Path  # the run folder (records the corpus, hence the CPU profile)
    checkpoint: Path  # `simulator export` of the run, like trained/NAME
    rows: list[dict]  # the training split: what the model knows by heart


def _datagen(*argv: str) -> None:
    args = datagen_parser().parse_args([*argv, "--quiet"])
    {"cpu": build_cpu_corpus, "music": build_music_corpus}[args.command](args)


def _train(task: str, corpus: Path, root: Path, steps: int, batch_size: int) -> TinyModel:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # fast on a busy 2-core machine
    try:
        train(TrainArgs(task=task, data=str(corpus), out=str(root / f"run-{task}"), steps=steps,
                        batch_size=batch_size, lr=3e-3, save_every=steps, eval_every=steps,
                        quiet=True))
    finally:
        torch.set_num_threads(threads)
    checkpoint = export_run(root / f"run-{task}", root / f"ckpt-{task}")
    return TinyModel(corpus, root / f"run-{task}", checkpoint,
                     read_table(corpus, "train").to_pylist())


@pytest.fixture
def one_torch_thread():
    """One torch thread during a test: on a busy 2-core machine, more threads only contend."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _tiny_cpu_model(root: Path, profile: str) -> TinyModel:
    """A tiny model of `profile` that knows 7 short traces by heart (~6 s)."""
    _datagen("cpu", "--profile", profile, "-n", "8", "--seed", "3", "--max-len", "4",
             "--out", str(root / "corpus"))
    return _train("cpu", root / "corpus", root, steps=150, batch_size=8)


@pytest.fixture(scope="session")
def tiny_cpu(tmp_path_factory) -> TinyModel:
    """rv32e-mini, the CPU model of most tests."""
    return _tiny_cpu_model(tmp_path_factory.mktemp("tiny-cpu"), "rv32e-mini")


@pytest.fixture(scope="session")
def tiny_x86(tmp_path_factory) -> TinyModel:
    """The same for x86."""
    return _tiny_cpu_model(tmp_path_factory.mktemp("tiny-x86"), "x86")


def _music_corpus(root: Path) -> Path:
    if shutil.which("abc2midi") is None or shutil.which("midi2abc") is None:
        pytest.skip("abcmidi (abc2midi, midi2abc) is not installed")
    (root / "two.abc").write_text(TWO_TUNES)
    _datagen("music", "--source", str(root / "two.abc"), "-n", "2", "--seed", "0",
             "--out", str(root / "corpus"))
    return root / "corpus"


@pytest.fixture(scope="session")
def tiny_music_corpus(tmp_path_factory) -> Path:
    return _music_corpus(tmp_path_factory.mktemp("tiny-music"))


@pytest.fixture(scope="session")
def tiny_abc2midi(tiny_music_corpus) -> TinyModel:
    """A tiny ABC -> MIDI model that knows its one training tune by heart (~5 s)."""
    return _train("abc2midi", tiny_music_corpus, tiny_music_corpus.parent, 150, 2)


@pytest.fixture(scope="session")
def tiny_midi2abc(tiny_music_corpus) -> TinyModel:
    """The mirror image: MIDI -> ABC on the same tune (~5 s)."""
    return _train("midi2abc", tiny_music_corpus, tiny_music_corpus.parent, 150, 2)
