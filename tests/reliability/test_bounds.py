"""Resource bounds and safe loading.

Bounds: an input longer than the model's context is refused with the limit named (never cut);
generation never asks for more bytes than the context holds; an emulator run, a converter or
midi2abc that does not stop is stopped (step cap, time limit) and the stop recorded.
Safe loading: weights load through safetensors only, nothing user-supplied is unpickled, and
the resumable state (optimizer tensors) loads with `torch.load(weights_only=True)`.
"""

import ast
import io
import json
import pickle
import shutil
import time
from pathlib import Path

import pytest
import torch
from helpers import ROOT, assert_one_line_error, in_process, untrained_checkpoint

from bytesim_common.errors import UserError
from datagen.cli import build_parser as datagen_parser
from datagen.cli import main as datagen_main
from datagen.corpus import write_corpus
from datagen.cpu import assemble
from datagen.cpu.build import build_cpu_corpus
from datagen.cpu.harness import DEFAULT_MAX_STEPS, MAX_STEPS_LIMIT, run_program
from datagen.music import convert as conv
from datagen.music.build import music_job, music_spec
from simulator.checkpoint import WEIGHTS_NAME, latest_checkpoint, load_pretrained
from simulator.cli import main as simulator_main
from simulator.codec import END, VOCAB_SIZE, make_codec
from simulator.facade import CPUSimulator, ModelOutputError, MusicConverter
from simulator.train import TrainArgs, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CONTEXT = 256


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {name: untrained_checkpoint(root / name, codec, CONTEXT) for name, codec in {
        "cpu": make_codec("cpu", 16, profile="rv32e-mini").options(),
        "abc2midi": {"task": "abc2midi", "align": 16},
        "midi2abc": {"task": "midi2abc", "align": 16}}.items()}


def sim(*argv: str) -> tuple[int, str, str]:
    return in_process(simulator_main, list(argv))


# ---------------------------------------------------------------------------------------------
# Inputs longer than the context


def test_inputs_longer_than_the_context_are_refused_naming_it(models, tmp_path):
    program = "\n".join(["addi x1, x1, 1"] * 70)  # 280 bytes of code > 256
    status, out, err = sim("cpu", program, "--model", str(models["cpu"]))
    assert_one_line_error(status, err, f"model's {CONTEXT}-byte context")
    assert out == ""
    (tmp_path / "long.abc").write_text("X:1\nK:C\n" + "CDEF|" * 60 + "\n")
    (tmp_path / "long.mid").write_bytes(bytes.fromhex("4d546864000000060000000101e0"
                                                      "4d54726b000001c4") +
                                        bytes.fromhex("00903c40" "60803c40") * 56 +
                                        bytes.fromhex("00ff2f00"))
    for task, src, dst in [("abc2midi", "long.abc", "out.mid"), ("midi2abc", "long.mid",
                                                                  "out.abc")]:
        status, _, err = sim(task, str(tmp_path / src), "-o", str(tmp_path / dst), "--model",
                             str(models[task]), *(["--segment-bars", "0"] if task == "abc2midi"
                                                  else []))
        assert_one_line_error(status, err, f"context is {CONTEXT} bytes")
        assert not (tmp_path / dst).exists()
    # in segments (the default), what this untrained model writes is no MIDI: one line, exit 1
    status, _, err = sim("abc2midi", str(tmp_path / "long.abc"), "-o", str(tmp_path / "o.mid"),
                         "--model", str(models["abc2midi"]))
    assert status == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "o.mid").exists()
    sim_cpu = CPUSimulator.from_pretrained(models["cpu"])
    with pytest.raises(UserError, match=f"{CONTEXT}-byte context"):  # one too long: all refused
        sim_cpu.predict(["nop", program])


def test_max_steps_over_the_limit_is_refused_naming_it(models, tmp_path):
    status, _, err = sim("cpu", "nop", "--model", str(models["cpu"]), "--max-steps",
                         str(MAX_STEPS_LIMIT + 1))
    assert_one_line_error(status, err, f"over the limit of {MAX_STEPS_LIMIT}")
    status, _, err = in_process(datagen_main, ["cpu", "-n", "1", "--max-steps",
                                               str(MAX_STEPS_LIMIT + 1), "--out",
                                               str(tmp_path / "c")])
    assert_one_line_error(status, err, f"over the limit of {MAX_STEPS_LIMIT}")
    assert not (tmp_path / "c").exists()


# ---------------------------------------------------------------------------------------------
# Generation budget


def test_generation_stops_at_its_byte_budget_without_an_end(models):
    model = MusicConverter.from_pretrained(models["abc2midi"]).model
    no_end = torch.ones(VOCAB_SIZE, dtype=torch.bool)
    no_end[END] = False
    outs = model.generate([[65] * 16, [66] * 32], 37, stop_id=END, allowed=lambda b, s: no_end)
    assert [len(o) for o in outs] == [37, 37] and END not in outs[0] + outs[1]


def _record_budgets(model, monkeypatch, asked: list[int]) -> None:
    """Append to `asked` the prompt length + new bytes of every `model.generate` call."""
    generate = model.generate

    def recording(prompts, max_new, **kw):
        asked.append(max(len(p) for p in prompts) + max_new)
        assert asked[-1] <= CONTEXT + 1, f"asked for {asked[-1]} bytes"  # fail fast, not slow
        return generate(prompts, max_new, **kw)

    monkeypatch.setattr(model, "generate", recording)


def test_facade_generation_never_asks_for_more_than_the_context(models, monkeypatch):
    cpu, asked = CPUSimulator.from_pretrained(models["cpu"]), []
    _record_budgets(cpu.model, monkeypatch, asked)
    trace = cpu.predict("addi x1, x1, 1", "x1=1", max_steps=10**6)
    assert trace.n_steps <= (CONTEXT - 32 - 16) // 16  # prompt: header + program patches
    music = MusicConverter.from_pretrained(models["abc2midi"])
    _record_budgets(music.model, monkeypatch, asked)
    try:
        music.abc_to_midi("X:1\nK:C\nCDE|\n")
    except ModelOutputError as e:  # untrained: not MIDI, or no end within the context
        assert len(e.raw) <= CONTEXT
    assert len(asked) >= 2 and max(asked) <= CONTEXT + 1  # the tune whole, maybe in segments


# ---------------------------------------------------------------------------------------------
# Runs that do not stop


@pytest.mark.parametrize("profile, text", [("rv32e", "beq x0, x0, 0"),
                                           ("rv32e-mini", "loop: addi x1, x1, 1\nbeq x0, x0, loop"),
                                           ("x86", "l: inc eax\njmp l")])
def test_an_endless_program_is_stopped_at_the_step_cap(profile, text):
    trace = run_program(profile, assemble(profile, text))
    assert (trace.n_steps, trace.stop) == (DEFAULT_MAX_STEPS, "max_steps")
    assert run_program(profile, assemble(profile, text), max_steps=7).n_steps == 7


def test_simulator_cpu_records_the_step_cap(models):
    status, out, _ = sim("cpu", "loop: addi x1, x1, 1\nbeq x0, x0, loop", "--model",
                         str(models["cpu"]), "--init", "x1=0")
    assert status == 0 and f"unicorn max_steps after {DEFAULT_MAX_STEPS} steps" in out


def test_a_hanging_music21_conversion_is_a_counted_timeout(monkeypatch, tmp_path):
    music21 = pytest.importorskip("music21")
    monkeypatch.setattr(music21.converter, "parseData", lambda *a, **k: time.sleep(30))
    monkeypatch.setattr(conv, "converter_version", lambda name: "fake")
    t0 = time.monotonic()
    spec = music_spec(["synthetic"], seed=0, converter="music21", timeout=0.3)
    manifest = write_corpus(tmp_path / "c", music_job(spec, 2), show_progress=False)
    assert manifest["failures"]["by_kind"] == {"timeout": 2} and manifest["counts"]["rows"] == 0
    assert time.monotonic() - t0 < 25  # not the 2 x 30 s the converter would take


def test_a_hanging_midi2abc_is_stopped_with_one_line(hanging_tool):
    hanging_tool("midi2abc")
    with pytest.raises(UserError, match="midi2abc ran over 0.3 s") as e:
        conv.midi_to_abc(b"MThd\0\0\0\x06\0\0\0\x01\x01\xe0", timeout=0.3)
    assert "\n" not in str(e.value)


# ---------------------------------------------------------------------------------------------
# Safe loading


PRODUCT = ("datagen", "simulator", "benchmarks", "examples")
UNPICKLERS = {"pickle.load", "pickle.loads", "pickle.Unpickler", "torch.jit.load",
              "joblib.load", "dill.load", "dill.loads", "cloudpickle.load", "cloudpickle.loads",
              "marshal.load", "marshal.loads", "shelve.open", "pd.read_pickle",
              "pandas.read_pickle"}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return "?"


def test_product_code_unpickles_nothing_and_torch_load_is_weights_only():
    torch_loads = []
    for folder in PRODUCT:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if not isinstance(node, ast.Call):
                    continue
                name, where = _dotted(node.func), f"{path.relative_to(ROOT)}:{node.lineno}"
                assert name not in UNPICKLERS, f"{where} calls {name}"
                keywords = {k.arg: k.value for k in node.keywords}
                if name in ("np.load", "numpy.load"):
                    allow = keywords.get("allow_pickle")
                    assert allow is None or (isinstance(allow, ast.Constant) and not allow.value)
                if name == "torch.load":
                    torch_loads.append(where)
                    weights_only = keywords.get("weights_only")
                    assert isinstance(weights_only, ast.Constant) and weights_only.value is True, \
                        f"{where}: torch.load without weights_only=True"
    assert [w.split(":")[0] for w in torch_loads] == [str(Path("simulator", "checkpoint.py"))]


def test_shipped_checkpoints_are_safetensors_and_json_only():
    for folder in sorted(p for p in (ROOT / "trained").glob("*") if p.is_dir()):
        for f in folder.iterdir():
            assert (f.name in ("config.json", "README.md", "model.safetensors.index.json")
                    or WEIGHTS_NAME.fullmatch(f.name)), f"trained/{folder.name}/{f.name}"


def test_loading_weights_never_unpickles(models, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a checkpoint was unpickled")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    model, meta = load_pretrained(models["cpu"])
    assert meta["codec"]["task"] == "cpu" and sum(p.numel() for p in model.parameters()) > 0


class _Payload:
    """Unpickling this creates the file `marker` (what a hostile state.pt could do)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


@pytest.fixture
def tiny_run(tmp_path) -> Path:
    corpus, run = tmp_path / "corpus", tmp_path / "run"
    build_cpu_corpus(datagen_parser().parse_args(
        ["cpu", "--profile", "rv32e-mini", "-n", "20", "--max-len", "3", "--out", str(corpus),
         "--quiet"]))
    train(TrainArgs(task="cpu", data=str(corpus), out=str(run), steps=2, batch_size=4,
                    save_every=2, eval_every=2, quiet=True))
    return run


def test_a_hostile_run_state_is_refused_without_running_it(tiny_run, tmp_path):
    marker = tmp_path / "pwned"
    state = latest_checkpoint(tiny_run) / "state.pt"
    good = torch.load(state, weights_only=True)
    buf = io.BytesIO()
    torch.save({**good, "extra": _Payload(marker)}, buf)
    state.write_bytes(buf.getvalue())
    info = json.loads((tiny_run / "run.json").read_text())["args"]
    status, _, err = sim("train", "--task", "cpu", "--data", info["data"], "--out",
                         str(tiny_run), "--steps", "2", "--batch-size", "4", "--save-every", "2",
                         "--eval-every", "2", "--resume", "--quiet")
    assert_one_line_error(status, err, "state.pt is unreadable", "cannot be resumed")
    status, _, err = sim("export", str(tiny_run), str(tmp_path / "exported"))
    assert_one_line_error(status, err, "state.pt is unreadable")
    assert not marker.exists() and not (tmp_path / "exported").exists()
    shutil.rmtree(tiny_run)
