"""Nothing is lost: `datagen cpu`, `datagen music` and `simulator train` SIGKILLed at seeded
random moments, and a disk that fills up or a folder made read-only under a running job.

After every kill the folder holds only complete files, each byte-identical to the one an
uninterrupted run writes (shards, sidecars, manifest) or a checkpoint that loads and equals the
uninterrupted run's at that step; the resumed run ends byte-identical to the uninterrupted one.
A full disk or a read-only folder ends the job with one line (exit 2) and leaves the last
complete state, from which the job resumes to the same result.

Fast tier: 5 kills of each job. Slow tier (`make test-slow`): 20 of each, on several shards,
with the worker count drawn anew for every run.
"""

import dataclasses
import hashlib
import json
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from helpers import (
    LEFTOVER,
    check_corpus_folder,
    console,
    fill_then_copy_out,
    kill_at_random_moments,
    mount_namespace_or_skip,
    readonly_midway,
    run_in_mount_namespace,
    visible_files,
)

import simulator.train as train_module
from datagen.cli import build_parser as datagen_parser
from datagen.cpu.build import build_cpu_corpus
from datagen.music.build import build_music_corpus
from simulator.checkpoint import latest_checkpoint, load_pretrained, load_run_state
from simulator.cli import build_parser as simulator_parser
from simulator.run_folder import read_metrics
from simulator.train import TrainArgs, train

KILLS_FAST, KILLS_SLOW = 5, 20
CPU = ["cpu", "--profile", "rv32e-mini", "--seed", "7", "--max-len", "4", "--quiet"]
MUSIC = ["music", "--source", "synthetic", "--seed", "3", "--quiet"]
STEPS = 24
TRAIN = ["--task", "cpu", "--steps", str(STEPS), "--save-every", "2", "--batch-size", "8",
         "--eval-every", "4", "--quiet"]
DETERMINISTIC = ("step", "loss", "bpb", "lr", "grad_norm", "tokens", "valid_loss", "valid_bpb")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------
# datagen


def make_reference(argv: list[str], out: Path) -> float:
    """Make the corpus `datagen ARGV --out OUT` uninterrupted (here); return the seconds taken."""
    args = datagen_parser().parse_args([*argv, "--out", str(out)])
    build = {"cpu": build_cpu_corpus, "music": build_music_corpus}[args.command]
    t0 = time.perf_counter()
    build(args)
    return time.perf_counter() - t0


def kill_datagen(tmp_path: Path, argv: list[str], kills: int, seed: int,
                 workers: tuple[int, ...] = (1,)) -> list[int]:
    """Kill `datagen ARGV` `kills` times, then let it finish; return the number of complete
    shards found after each kill."""
    ref, folder = tmp_path / "ref", tmp_path / "corpus"
    window = make_reference(argv, ref)
    n_workers = random.Random(f"workers:{seed}")
    complete: list[int] = []

    def command() -> list[str]:
        return ["-m", "datagen", *argv, "--out", str(folder),
                "--workers", str(n_workers.choice(workers))]

    def finished() -> None:
        assert visible_files(folder) == visible_files(ref)
        shutil.rmtree(folder)

    kill_at_random_moments(command, folder, window, kills, seed, tmp_path / "tmp",
                           after_kill=lambda: complete.append(len(check_corpus_folder(folder, ref))),
                           after_finish=finished)
    done = console("datagen", *command()[2:], tmp=tmp_path / "tmp")
    assert done.returncode == 0, done.stderr
    assert visible_files(folder) == visible_files(ref)
    return complete


def test_datagen_cpu_killed_5_times_resumes_identical(tmp_path):
    kill_datagen(tmp_path, [*CPU, "-n", "3000"], KILLS_FAST, seed=1)


def test_datagen_music_killed_5_times_resumes_identical(tmp_path):
    kill_datagen(tmp_path, [*MUSIC, "-n", "40"], KILLS_FAST, seed=2)


@pytest.mark.slow
def test_datagen_cpu_killed_20_times_any_workers_resumes_identical(tmp_path):
    complete = kill_datagen(tmp_path, [*CPU, "-n", "6000"], KILLS_SLOW, seed=11, workers=(1, 2))
    assert max(complete) >= 1  # some kills left complete shards, which the next run kept


@pytest.mark.slow
def test_datagen_music_killed_20_times_any_workers_resumes_identical(tmp_path):
    kill_datagen(tmp_path, [*MUSIC, "-n", "200"], KILLS_SLOW, seed=12, workers=(1, 2))


def test_full_disk_mid_corpus_is_one_line_and_resumes(tmp_path):
    mount_namespace_or_skip(tmp_path)
    argv = [*CPU, "-n", "3000"]
    ref = tmp_path / "ref"
    make_reference(argv, ref)
    page = os.sysconf("SC_PAGE_SIZE")  # a tmpfs counts whole pages
    pages = {p.name: -(-p.stat().st_size // page) for p in ref.iterdir()}
    # room for corpus.json, shard 0 and its sidecar, and half of shard 1
    kib = page // 1024 * (pages["corpus.json"] + pages["shard-00000.parquet"]
                          + pages["shard-00000.json"] + pages["shard-00001.parquet"] // 2)
    out = tmp_path / "out"
    run_in_mount_namespace(fill_then_copy_out(
        f'"$PY" -m datagen {" ".join(argv)} --out "$WORK/c"', kib, str(tmp_path / "small"), out),
        tmp_path)
    err = (out / "stderr").read_text()
    assert (out / "rc").read_text().strip() == "2" and len(err.strip().splitlines()) == 1, err
    assert "No space left on device" in err and "run again to resume" in err
    left = out / "left" / "c"
    assert check_corpus_folder(left, ref) == ["shard-00000"]
    done = console("datagen", *argv, "--out", str(left), tmp=tmp_path / "tmp")
    assert done.returncode == 0, done.stderr
    assert visible_files(left) == visible_files(ref)


def test_folder_made_read_only_mid_corpus_is_one_line_and_resumes(tmp_path):
    mount_namespace_or_skip(tmp_path)
    argv = [*CPU, "-n", "8000"]
    ref, folder, out = tmp_path / "ref", tmp_path / "corpus", tmp_path / "out"
    make_reference(argv, ref)
    out.mkdir()
    run_in_mount_namespace(readonly_midway(
        f'"$PY" -m datagen {" ".join(argv)} --out "$D"', folder, "shard-00000.json", out),
        tmp_path)
    err = (out / "stderr").read_text()
    assert (out / "rc").read_text().strip() == "2" and len(err.strip().splitlines()) == 1, err
    assert "Read-only file system" in err
    complete = check_corpus_folder(folder, ref)
    assert 1 <= len(complete) < 8
    done = console("datagen", *argv, "--out", str(folder), tmp=tmp_path / "tmp")
    assert done.returncode == 0, done.stderr
    assert visible_files(folder) == visible_files(ref)


# ---------------------------------------------------------------------------------------------
# simulator train


@dataclass
class TrainReference:
    corpus: Path
    run: Path
    weights: dict[int, str]  # step -> sha256 of model.safetensors of its checkpoint
    seconds: float


def train_args(corpus: Path, run: Path, resume: bool = False) -> TrainArgs:
    """The TrainArgs that `simulator train TRAIN --data CORPUS --out RUN` runs with."""
    argv = ["train", *TRAIN, "--data", str(corpus), "--out", str(run)]
    return TrainArgs.from_namespace(simulator_parser().parse_args(argv + ["--resume"] * resume))


def train_argv(corpus: Path, run: Path) -> list[str]:
    """`-m simulator train ...`, with --resume once the run exists."""
    resume = ["--resume"] if (run / "run.json").exists() else []
    return ["-m", "simulator", "train", *TRAIN, "--data", str(corpus), "--out", str(run), *resume]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> TrainReference:
    """An uninterrupted run (in this process, one thread, as `OMP_NUM_THREADS=1` subprocesses),
    with the hash of the weights at every checkpoint it saved."""
    root = tmp_path_factory.mktemp("train-reference")
    corpus, run = root / "corpus", root / "run"
    build_cpu_corpus(datagen_parser().parse_args(
        ["cpu", "--profile", "rv32e-mini", "-n", "60", "--seed", "5", "--max-len", "4",
         "--out", str(corpus), "--quiet"]))
    weights: dict[int, str] = {}
    save = train_module.save_run_state

    def recording_save(run_, model, codec_info, preset, state):
        folder = save(run_, model, codec_info, preset, state)
        weights[state["step"]] = sha256(folder / "model.safetensors")
        return folder

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(train_module, "save_run_state", recording_save)
            t0 = time.perf_counter()
            train(train_args(corpus, run))
            seconds = time.perf_counter() - t0
    finally:
        torch.set_num_threads(threads)
    return TrainReference(corpus, run, weights, seconds)


def check_run(run: Path, ref: TrainReference) -> int:
    """After a kill: only hidden leftovers beside complete files; every visible checkpoint
    loads (weights sha-checked, state with weights_only) and equals the uninterrupted run's at
    its step; the metrics log holds whole records of consecutive steps. Returns the step of the
    latest checkpoint (0 when there is none)."""
    if not run.exists():
        return 0
    for p in [*run.iterdir(), *(run / "checkpoints").glob(".*")]:
        assert not p.name.startswith(".") or LEFTOVER.fullmatch(p.name), p.name
    if (run / "run.json").exists():
        json.loads((run / "run.json").read_text())
    steps = [r["step"] for r in read_metrics(run)]
    assert steps == list(range(1, len(steps) + 1))
    folders = list((run / "checkpoints").glob("step-*"))
    for folder in folders:
        step = int(folder.name.split("-")[1])
        load_pretrained(folder)
        assert load_run_state(folder)["step"] == step
        assert sha256(folder / "model.safetensors") == ref.weights[step]
    latest = latest_checkpoint(run)
    if latest is None:
        return 0
    assert latest in folders
    return int(latest.name.split("-")[1])


def curve(run: Path) -> list[dict]:
    return [{k: r[k] for k in DETERMINISTIC if k in r} for r in read_metrics(run)]


def assert_same_run(run: Path, ref: TrainReference) -> None:
    """The run ended where the uninterrupted one did: same weights, config, optimizer state,
    RNG state and loss curve."""
    a, b = latest_checkpoint(run), latest_checkpoint(ref.run)
    assert a.name == b.name
    for name in ("model.safetensors", "config.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    sa, sb = load_run_state(a), load_run_state(b)
    assert sa["step"] == sb["step"] and torch.equal(sa["rng_torch"], sb["rng_torch"])
    oa, ob = sa["optimizer"], sb["optimizer"]
    assert oa["param_groups"] == ob["param_groups"] and oa["state"].keys() == ob["state"].keys()
    for k in oa["state"]:
        for name, t in oa["state"][k].items():
            assert torch.equal(t, ob["state"][k][name])
    assert curve(run) == curve(ref.run)


def kill_training(tmp_path: Path, ref: TrainReference, kills: int, seed: int,
                  finish_here: bool) -> list[int]:
    """Kill the training `kills` times, then let it finish (here, or as a command); return the
    step of the latest checkpoint found after each kill."""
    run, latest = tmp_path / "run", []

    def finished() -> None:
        assert check_run(run, ref) == STEPS
        assert_same_run(run, ref)
        shutil.rmtree(run)

    def killed() -> None:
        latest.append(check_run(run, ref))
        if latest[-1] == STEPS:  # killed after its last step: check it, start afresh
            finished()

    kill_at_random_moments(lambda: train_argv(ref.corpus, run), run, ref.seconds, kills, seed,
                           tmp_path / "tmp", after_kill=killed, after_finish=finished)
    resume = (run / "run.json").exists()
    if finish_here:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            train(train_args(ref.corpus, run, resume=resume))
        finally:
            torch.set_num_threads(threads)
    else:
        done = console(*train_argv(ref.corpus, run)[1:], tmp=tmp_path / "tmp")
        assert done.returncode == 0, done.stderr
    assert_same_run(run, ref)
    return latest


def test_training_killed_5_times_resumes_identical(tmp_path, reference):
    latest = kill_training(tmp_path, reference, KILLS_FAST, seed=3, finish_here=True)
    assert any(0 < step < STEPS for step in latest)  # some kills came between checkpoints


@pytest.mark.slow
def test_training_killed_20_times_resumes_identical(tmp_path, reference):
    latest = kill_training(tmp_path, reference, KILLS_SLOW, seed=13, finish_here=False)
    assert any(0 < step < STEPS for step in latest)  # some kills came between checkpoints


def resume_here(corpus: Path, run: Path) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(train_args(corpus, run, resume=True))
    finally:
        torch.set_num_threads(threads)


def test_run_folder_made_read_only_mid_training_is_one_line_and_resumes(tmp_path, reference):
    mount_namespace_or_skip(tmp_path)
    run, out = tmp_path / "run", tmp_path / "out"
    out.mkdir()
    argv = " ".join(train_argv(reference.corpus, run))
    run_in_mount_namespace(readonly_midway(f'"$PY" {argv}', run, "latest", out), tmp_path)
    err = (out / "stderr").read_text()
    assert (out / "rc").read_text().strip() == "2" and len(err.strip().splitlines()) == 1, err
    assert "Read-only file system" in err and "--resume" in err
    assert 2 <= check_run(run, reference) < STEPS
    resume_here(reference.corpus, run)
    assert_same_run(run, reference)


@pytest.mark.slow
def test_full_disk_mid_training_is_one_line_and_resumes(tmp_path, reference):
    mount_namespace_or_skip(tmp_path)
    one = latest_checkpoint(reference.run)
    checkpoint_kib = sum(p.stat().st_size for p in one.iterdir()) // 1024
    out = tmp_path / "out"
    argv = " ".join(train_argv(reference.corpus, Path("$WORK/run")))
    # room for one checkpoint and a half: the second save finds the disk full
    run_in_mount_namespace(fill_then_copy_out(f'"$PY" {argv}', checkpoint_kib * 3 // 2 + 64,
                                              str(tmp_path / "small"), out), tmp_path)
    err = (out / "stderr").read_text()
    assert (out / "rc").read_text().strip() == "2" and len(err.strip().splitlines()) == 1, err
    assert "writing the run folder" in err and "--resume" in err
    run = out / "left" / "run"
    assert check_run(run, reference) == 2
    resume_here(reference.corpus, run)
    assert_same_run(run, reference)


def test_a_kill_during_the_first_write_does_not_block_the_rerun(tmp_path, reference):
    """Killed while writing corpus.json or run.json, a job leaves only its temporary file (and
    datagen's folder probe): running the same command again in that folder works."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / ".corpus.json.k1113d00.tmp").write_bytes(b'{"kind": "cp')
    (corpus / ".write-probe").write_bytes(b"")
    make_reference([*CPU, "-n", "50"], corpus)
    assert check_corpus_folder(corpus, corpus) == ["shard-00000"]
    run = tmp_path / "run"
    run.mkdir()
    (run / ".run.json.k1113d00.tmp").write_bytes(b"{")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(dataclasses.replace(train_args(reference.corpus, run), steps=2))
    finally:
        torch.set_num_threads(threads)
    assert latest_checkpoint(run).name == "step-0000002"
