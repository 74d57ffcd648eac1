"""Training: DDP equals one process, resumed runs equal uninterrupted ones, schedules, errors.
(Runs killed at random moments: tests/reliability/test_kill.py.)"""

import contextlib
import itertools
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import ROOT
from safetensors.numpy import load_file

import simulator.train
from bytesim_common.errors import UserError
from datagen.cli import build_parser as datagen_parser
from datagen.cpu.build import build_cpu_corpus
from simulator.checkpoint import load_pretrained, resolve_model_path
from simulator.codec import make_codec
from simulator.data import batch_sequences, curriculum_sequences, encode_rows, load_rows
from simulator.run_folder import read_metrics, resolve_curriculum
from simulator.schedule import lr_at
from simulator.train import TrainArgs, train

DETERMINISTIC = ("step", "loss", "bpb", "lr", "grad_norm", "tokens", "valid_loss", "valid_bpb")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus") / "mini"
    build_cpu_corpus(datagen_parser().parse_args(
        ["cpu", "--profile", "rv32e-mini", "-n", "120", "--seed", "5", "--max-len", "6",
         "--out", str(out), "--quiet"]))
    return str(out)


def _args(corpus, out, **kw):
    base = {"task": "cpu", "data": corpus, "out": str(out), "steps": 6, "batch_size": 8,
            "save_every": 3, "eval_every": 3, "lr": 2e-3, "quiet": True}
    return TrainArgs(**{**base, **kw})


def _cli(*argv):
    return [sys.executable, "-m", "simulator", "train", *argv]


def _argv(a: TrainArgs):
    return ["--task", a.task, "--data", a.data, "--out", a.out, "--steps", str(a.steps),
            "--batch-size", str(a.batch_size), "--save-every", str(a.save_every),
            "--eval-every", str(a.eval_every), "--lr", str(a.lr), "--quiet"]


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _weights(run):
    with open(os.path.join(run, "latest")) as f:
        name = f.read().strip()
    return load_file(os.path.join(run, "checkpoints", name, "model.safetensors"))


@contextlib.contextmanager
def _stopped_at(step):
    """Training inside the block stops (KeyboardInterrupt) when it reaches optimizer step `step`."""
    real_lr_at = simulator.train.lr_at

    def interrupted(s, args, warmup):
        if s == step:
            raise KeyboardInterrupt
        return real_lr_at(s, args, warmup)

    with pytest.MonkeyPatch.context() as mp, pytest.raises(KeyboardInterrupt):
        mp.setattr(simulator.train, "lr_at", interrupted)
        yield


def _curve(run):
    return [{k: r[k] for k in DETERMINISTIC if k in r} for r in read_metrics(run)]


def test_two_processes_give_the_loss_of_one(corpus, tmp_path):
    one = _args(corpus, tmp_path / "one", steps=3, eval_every=3, save_every=3)
    train(one)
    two = _args(corpus, tmp_path / "two", steps=3, eval_every=3, save_every=3)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "simulator", "train", *_argv(two)]
    subprocess.run(cmd, check=True, cwd=ROOT, env=_env(), capture_output=True,
                   timeout=300)
    a, b = read_metrics(one.out), read_metrics(two.out)
    assert [r["tokens"] for r in a] == [r["tokens"] for r in b]
    for ra, rb in zip(a, b, strict=True):
        assert rb["loss"] == pytest.approx(ra["loss"], rel=1e-5)
        assert rb["grad_norm"] == pytest.approx(ra["grad_norm"], rel=1e-4)
    assert b[-1]["valid_loss"] == pytest.approx(a[-1]["valid_loss"], rel=1e-5)
    wa, wb = _weights(one.out), _weights(two.out)
    # Adam divides by sqrt(v) + 1e-8: where a gradient is ~1e-8, the all-reduce's summation
    # order moves the update by ~1e-6 (1/1000 of an lr-sized step); anything larger is a bug
    for k in wa:
        np.testing.assert_allclose(wb[k], wa[k], rtol=1e-4, atol=1e-5)


def test_resume_may_change_the_steps_where_the_done_schedule_stays(corpus, tmp_path):
    kw = {"warmup": 2, "save_every": 4, "eval_every": 4, "curriculum": 4}
    whole = _args(corpus, tmp_path / "whole", steps=12, **kw)
    train(whole)
    with _stopped_at(9):  # a 20-step run stopped after its checkpoint at 8
        train(_args(corpus, tmp_path / "cut", steps=20, **kw))
    with pytest.raises(UserError, match="schedule"):  # warmup 1 (5% of 12) would change step 0
        train(_args(corpus, tmp_path / "cut", steps=12, save_every=4, eval_every=4, resume=True))
    train(_args(corpus, tmp_path / "cut", steps=12, resume=True, **kw))
    assert _curve(tmp_path / "cut") == _curve(whole.out)
    wa, wb = _weights(whole.out), _weights(tmp_path / "cut")
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)
    assert "--steps 12" in json.loads((tmp_path / "cut" / "run.json").read_text())["command"]
    with pytest.raises(UserError, match="differs at step 11"):  # its decay began at step 11
        train(_args(corpus, tmp_path / "cut", steps=30, resume=True, **kw))


def _run_state(run):
    with open(os.path.join(run, "latest")) as f:
        name = f.read().strip()
    return torch.load(os.path.join(run, "checkpoints", name, "state.pt"), weights_only=True)


def test_ema_checkpoints_the_average_leaves_training_as_it_was_and_resumes(corpus, tmp_path):
    kw = {"steps": 8, "save_every": 4, "eval_every": 4, "curriculum": 0}
    plain = _args(corpus, tmp_path / "plain", **kw)
    train(plain)
    whole = _args(corpus, tmp_path / "whole", ema=0.9, **kw)
    train(whole)
    trained = _run_state(whole.out)["weights"]  # the weights trained, beside the average
    raw, average = _weights(plain.out), _weights(whole.out)
    assert all(np.array_equal(trained[k].numpy(), raw[k]) for k in raw)
    assert not all(np.array_equal(average[k], raw[k]) for k in raw)
    a, b = read_metrics(plain.out), read_metrics(whole.out)
    assert [r["loss"] for r in a] == [r["loss"] for r in b]  # the same training ...
    assert a[-1]["valid_loss"] != b[-1]["valid_loss"]  # ... validated on the average
    with _stopped_at(5):  # stopped after its checkpoint at step 4
        train(_args(corpus, tmp_path / "cut", ema=0.9, **kw))
    with pytest.raises(UserError, match="--ema 0.9 there, 0.0 now"):
        train(_args(corpus, tmp_path / "cut", resume=True, **kw))
    train(_args(corpus, tmp_path / "cut", ema=0.9, resume=True, **kw))
    assert _curve(tmp_path / "cut") == _curve(whole.out)
    cut = _weights(tmp_path / "cut")
    assert all(np.array_equal(cut[k], average[k]) for k in average)
    with pytest.raises(UserError, match="--ema must be in"):
        train(_args(corpus, tmp_path / "bad", ema=1.0))


def test_the_average_forgets_its_start_within_the_first_steps():
    assert simulator.train.average_decay(0.999, 0) == pytest.approx(0.1)
    assert simulator.train.average_decay(0.999, 90) == pytest.approx(0.91)
    assert simulator.train.average_decay(0.999, 100_000) == 0.999


def test_curriculum_and_scheduled_sampling_resume_bit_identical(corpus, tmp_path):
    levers = {"steps": 10, "save_every": 3, "eval_every": 5, "curriculum": 6,
              "scheduled_sampling": 0.5}
    whole = _args(corpus, tmp_path / "whole", **levers)
    train(whole)
    with _stopped_at(7):  # stopped after its checkpoint at step 6
        train(_args(corpus, tmp_path / "cut", **levers))
    train(_args(corpus, tmp_path / "cut", resume=True, **levers))
    assert _curve(tmp_path / "cut") == _curve(whole.out)
    train(_args(corpus, tmp_path / "plain", steps=10, save_every=3, eval_every=5, curriculum=0))
    plain, both = read_metrics(tmp_path / "plain"), read_metrics(whole.out)
    assert both[0]["tokens"] < plain[0]["tokens"]  # the curriculum starts with short traces
    assert both[-1]["loss"] != plain[-1]["loss"]


def test_scheduled_sampling_is_the_same_for_any_split_of_the_batch(corpus, tmp_path):
    train(_args(corpus, tmp_path / "one", steps=4, scheduled_sampling=1.0))
    train(_args(corpus, tmp_path / "two", steps=4, scheduled_sampling=1.0, grad_accum=2))
    for a, b in zip(read_metrics(tmp_path / "one"), read_metrics(tmp_path / "two"), strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)


def test_default_curriculum_is_half_the_steps_and_kept_on_resume(corpus, tmp_path):
    train(_args(corpus, tmp_path / "r", steps=8))
    assert "--curriculum 4" in json.loads((tmp_path / "r" / "run.json").read_text())["command"]
    longer, fresh = (_args(corpus, tmp_path / "r", steps=20, resume=True),
                     _args(corpus, tmp_path / "s", steps=20))
    resolve_curriculum(longer)
    resolve_curriculum(fresh)
    assert (longer.curriculum, fresh.curriculum) == (4, 10)  # a resumed run keeps its own


def test_init_from_starts_with_the_checkpoint_weights(corpus, tmp_path):
    train(_args(corpus, tmp_path / "first", steps=30, curriculum=0))
    train(_args(corpus, tmp_path / "fresh", steps=1, curriculum=0))
    train(_args(corpus, tmp_path / "more", steps=1, curriculum=0, init_from=str(tmp_path / "first")))
    first, fresh, more = (read_metrics(tmp_path / n) for n in ("first", "fresh", "more"))
    assert more[0]["loss"] < 0.8 * fresh[0]["loss"]
    assert abs(more[0]["loss"] - first[-1]["loss"]) < abs(fresh[0]["loss"] - first[-1]["loss"])
    # a deeper preset grows the checkpoint: the new blocks start as identities, same first loss
    train(_args(corpus, tmp_path / "deeper", steps=1, curriculum=0, preset="tiny-deeppatches",
                init_from=str(tmp_path / "first")))
    assert read_metrics(tmp_path / "deeper")[0]["loss"] == pytest.approx(more[0]["loss"], rel=1e-5)
    assert load_pretrained(resolve_model_path(tmp_path / "deeper"))[0].config.n_layers == (3, 1)
    with pytest.raises(UserError, match="does not fit this run: patch_sizes"):
        train(_args(corpus, tmp_path / "other", preset="tiny3", init_from=str(tmp_path / "first")))
    with pytest.raises(UserError, match="codec ir_word 'executed' there, 'none' here"):
        train(_args(corpus, tmp_path / "layout", ir_word="none",
                    init_from=str(tmp_path / "first")))
    assert not (tmp_path / "layout").exists()  # refused before the run folder was made


def test_init_from_climbs_to_another_profile(corpus, tmp_path):
    """A ladder: rv32e-mini weights start an rv32e run (the model knows nothing of state sizes)."""
    big = tmp_path / "rv32e"
    build_cpu_corpus(datagen_parser().parse_args(
        ["cpu", "--profile", "rv32e", "-n", "20", "--seed", "5", "--max-len", "3",
         "--out", str(big), "--quiet"]))
    train(_args(corpus, tmp_path / "mini", steps=2, curriculum=0))
    train(_args(str(big), tmp_path / "up", steps=1, curriculum=0, max_len=1024, local_window=80,
                init_from=str(tmp_path / "mini")))  # another context and window too
    assert json.loads((tmp_path / "up" / "run.json").read_text())["args"]["init_from"]
    assert load_pretrained(resolve_model_path(tmp_path / "up"))[0].config.local_window == 80  # the run's, not 0


def test_curriculum_widens_from_the_shortest_sequences():
    lengths = np.random.default_rng(2).integers(1, 1000, 1000)
    by_length = np.argsort(lengths, kind="stable")
    first = curriculum_sequences(by_length, 0, 0, 32, ramp=100)
    assert len(set(first)) == 32 and lengths[first].max() <= np.sort(lengths)[99]
    assert np.array_equal(curriculum_sequences(by_length, 0, 0, 32, ramp=100), first)
    late = np.concatenate([curriculum_sequences(by_length, 0, s, 32, ramp=100)
                           for s in range(90, 100)])
    assert lengths[late].max() > np.sort(lengths)[800]


def test_same_seed_same_curve_other_seed_other_curve(corpus, tmp_path):
    train(_args(corpus, tmp_path / "a", steps=3))
    train(_args(corpus, tmp_path / "b", steps=3))
    train(_args(corpus, tmp_path / "c", steps=3, seed=1))
    assert _curve(tmp_path / "a") == _curve(tmp_path / "b") != _curve(tmp_path / "c")


def test_schedules_warm_up_and_decay():
    a = TrainArgs(task="cpu", data="", out="", steps=100, lr=1.0, schedule="constant")
    lrs = [lr_at(s, a, warmup=10) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[10:80] == [1.0] * 70  # constant, then a linear decay over the last 20%
    assert all(x > y for x, y in itertools.pairwise(lrs[80:])) and lrs[-1] < 0.2
    a.schedule = "cosine"
    cos = [lr_at(s, a, warmup=10) for s in range(100)]
    assert all(x >= y for x, y in itertools.pairwise(cos[9:])) and cos[55] < 0.6


@pytest.mark.parametrize("window", [1, 3])
def test_batches_are_a_pure_function_of_seed_and_step(window):
    lengths = np.random.default_rng(0).integers(1, 100, 12)
    steps = [batch_sequences(lengths, 3, s, 4, window) for s in range(6)]
    assert np.array_equal(batch_sequences(lengths, 3, 3, 4, window), steps[3])
    first_epoch = np.concatenate(steps)[:12]
    assert sorted(first_epoch) == list(range(12))  # every sequence once per epoch
    assert not np.array_equal(batch_sequences(lengths, 4, 0, 4, window), steps[0])


def test_sorting_window_makes_batches_pad_less():
    lengths = np.random.default_rng(1).integers(16, 4096, 4096)

    def padded(window: int) -> int:
        return sum(4 * lengths[batch_sequences(lengths, 0, s, 4, window)].max() for s in range(512))

    assert padded(16) < 0.7 * padded(1)


def test_bad_runs_are_refused_in_one_line(corpus, tmp_path):
    train(_args(corpus, tmp_path / "r", steps=1))
    with pytest.raises(UserError, match="already holds a run"):
        train(_args(corpus, tmp_path / "r", steps=1))
    with pytest.raises(UserError, match="other arguments"):
        train(_args(corpus, tmp_path / "r", steps=1, seed=5, resume=True))
    with pytest.raises(UserError, match="schedule"):
        train(_args(corpus, tmp_path / "r", steps=1, lr=1.0, resume=True))
    with pytest.raises(UserError, match="longer than --context 16"):
        train(_args(corpus, tmp_path / "s", max_len=16))
    with pytest.raises(UserError, match="scheduled-sampling"):
        train(_args(corpus, tmp_path / "v", scheduled_sampling=1.5))
    with pytest.raises(UserError, match="multiple of processes"):
        train(_args(corpus, tmp_path / "t", batch_size=6, grad_accum=4))
    with pytest.raises(UserError, match="a 'header' prompt needs commit records"):
        train(_args(corpus, tmp_path / "h", record_prompt="header"))
    with pytest.raises(UserError, match="--record-prompt: .* got 'blank-x'"):
        train(_args(corpus, tmp_path / "b", record_prompt="blank-x"))
    x86 = tmp_path / "x86"
    build_cpu_corpus(datagen_parser().parse_args(
        ["cpu", "--profile", "x86", "-n", "20", "--seed", "1", "--out", str(x86), "--quiet"]))
    with pytest.raises(UserError, match="--cpu-layout records reads RISC-V"):
        train(_args(str(x86), tmp_path / "w", cpu_layout="records"))
    assert not (tmp_path / "w").exists()
    out = subprocess.run(_cli("--task", "cpu", "--data", str(tmp_path / "nope"), "--out",
                              str(tmp_path / "u")), cwd=ROOT, env=_env(), capture_output=True,
                         text=True, timeout=120, check=False)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert "not a corpus" in out.stderr


def test_a_run_from_before_midi_codec_resumes(corpus, tmp_path):
    """CPU runs record the MIDI layout runs had before the option, so that a run.json without
    it (written before) still resumes under the new default."""
    train(_args(corpus, tmp_path / "r", steps=6, save_every=3))
    info = tmp_path / "r" / "run.json"
    run = json.loads(info.read_text())
    assert run["identity"]["midi_codec"] == "file"
    del run["identity"]["midi_codec"]
    info.write_text(json.dumps(run))
    train(_args(corpus, tmp_path / "r", steps=6, resume=True))


def test_a_run_from_before_the_executed_word_default_resumes(corpus, tmp_path):
    """A run.json without `ir_word` is a run from before the option: the layout it had, none,
    and not today's default; a run made with none says so when resumed under the default."""
    train(_args(corpus, tmp_path / "r", steps=6, save_every=3, ir_word="none"))
    info = tmp_path / "r" / "run.json"
    run = json.loads(info.read_text())
    del run["identity"]["ir_word"]
    info.write_text(json.dumps(run))
    train(_args(corpus, tmp_path / "r", steps=6, resume=True, ir_word="none"))
    with pytest.raises(UserError, match="--ir-word 'none' there, 'executed' now"):
        train(_args(corpus, tmp_path / "r", steps=9, resume=True))


def test_four_byte_patches_train_on_the_16_byte_layout(corpus, tmp_path):
    """`small-p4`'s 4-byte patches: the codec still aligns segments to 16 bytes (lcm), the
    checkpoint records that, and the loaded model generates under the layout's constraint."""
    from simulator.checkpoint import load_pretrained
    from simulator.codec import codec_from_options
    from simulator.data import load_rows
    from simulator.evaluate import evaluate_rows

    train(_args(corpus, tmp_path / "p4", preset="small-p4", steps=2, save_every=2,
                eval_every=2, max_len=256))
    model, meta = load_pretrained(tmp_path / "p4" / "checkpoints" / "step-0000002")
    assert model.config.patch_sizes == (4,) and meta["codec"]["align"] == 16
    r = evaluate_rows(model, codec_from_options(meta["codec"]), load_rows(corpus, "cpu", "test")[:2],
                      "p4", show_progress=False)
    assert r["one_step"]["model"]["steps"] > 0


def test_aux_targets_train_a_head_added_to_a_checkpoint(corpus, tmp_path):
    """--aux-targets mul-sums: commit records of muls give the auxiliary head its targets; a
    checkpoint without the head starts such a run (the head drawn afresh), and the loss it
    logs falls as the head learns; full states have no such targets."""
    muls = tmp_path / "muls"
    build_cpu_corpus(datagen_parser().parse_args(
        ["cpu", "--profile", "rv32e-mini", "-n", "60", "--seed", "3", "--max-len", "1",
         "--mix", "muldiv=1", "--mnemonics", "mul", "--split-by", "trace", "--out", str(muls),
         "--quiet"]))
    records = {"cpu_layout": "decoded-records", "curriculum": 0}
    train(_args(str(muls), tmp_path / "plain", steps=2, **records))
    train(_args(str(muls), tmp_path / "aux", steps=20, aux_targets="mul-sums",
                init_from=str(tmp_path / "plain"), **records))
    curve = [r["aux_loss"] for r in read_metrics(tmp_path / "aux")]
    assert np.mean(curve[-3:]) < 0.8 * curve[0]
    config = json.loads((tmp_path / "aux" / "run.json").read_text())["args"]
    assert config["aux_targets"] == "mul-sums"
    assert "aux_head.weight" in _weights(tmp_path / "aux")
    with pytest.raises(UserError, match="--aux-targets mul-sums needs commit records"):
        train(_args(corpus, tmp_path / "states", aux_targets="mul-sums"))


def test_encoding_by_several_processes_gives_the_split_of_one(tmp_path):
    """A split encoded by 3 processes (chunks of rows, some sequences refused as too long, the
    auxiliary targets of muls) is the one a single process encodes, array for array."""
    mixed = tmp_path / "mixed"
    build_cpu_corpus(datagen_parser().parse_args(
        ["cpu", "--profile", "rv32e-mini", "-n", "90", "--seed", "8", "--max-len", "3",
         "--mix", "muldiv=1,alu=1", "--out", str(mixed), "--quiet"]))
    rows = load_rows(mixed, "cpu", "train")
    codec = make_codec("cpu", profile="rv32e-mini", layout="decoded-records")
    one = encode_rows(rows, codec, 150, aux="mul-sums", workers=1)
    three = encode_rows(rows, codec, 150, aux="mul-sums", workers=3)
    assert 0 < one.n_too_long < len(rows) and len(one.aux_at) > 0
    assert one.n_too_long == three.n_too_long
    for name in ("ids", "mask", "offsets", "rows", "n_targets", "aux_at", "aux"):
        assert np.array_equal(getattr(one, name), getattr(three, name)), name


def test_encoding_processes_share_the_cores_among_torchrun_ranks(monkeypatch):
    """Each rank encodes the whole split, so the ranks of one machine divide its cores; where
    the OS cannot say which cores a process may use (macOS), it counts them all."""
    from simulator import data

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert data._core_share() == 2
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "16")
    assert data._core_share() == 1
    monkeypatch.delattr(os, "sched_getaffinity")
    monkeypatch.setattr(os, "cpu_count", lambda: 12)
    monkeypatch.delenv("LOCAL_WORLD_SIZE")
    assert data._core_share() == 12
