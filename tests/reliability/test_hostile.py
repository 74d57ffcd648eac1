"""Hostile input: each is a clear one-line error (exit 2), a recorded fault, or a normal result;
never a traceback, a hang or a partial output file.

Programs (random bytes, truncated instructions, bad assembly), ABC (fuzzed with hypothesis, and
with atheris where it is installed: `pip install atheris`), MIDI (truncated, absurd lengths),
checkpoints (internally corrupt safetensors, config.json of the wrong shape), corpora (shards
of another schema, malformed manifests, shards that do not match their sha256).
(Tampering that the sha256 checks catch is in tests/unit/test_checkpoint.py and test_corpus.py.)
"""

import hashlib
import io
import json
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from helpers import (
    ROOT,
    assert_one_line_error,
    env,
    in_process,
    untrained_checkpoint,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bytesim_common.errors import UserError
from datagen.cli import build_parser as datagen_parser
from datagen.cli import main as datagen_main
from datagen.cpu import PROFILES, assemble, disassemble
from datagen.cpu.build import build_cpu_corpus
from datagen.cpu.harness import Emulator, run_program, zero_state
from datagen.music import convert as conv
from datagen.music.build import build_music_corpus
from datagen.music.normalize import BadMidi, normalize_midi
from datagen.music.sources import read_abc_text, split_tunes
from simulator.checkpoint import load_pretrained
from simulator.cli import main as simulator_main
from simulator.codec import make_codec
from simulator.facade import ModelOutputError, MusicConverter
from simulator.metrics import note_f1, valid_midi

pytestmark = pytest.mark.usefixtures("one_torch_thread")
needs_abcmidi = pytest.mark.skipif(not (shutil.which("abc2midi") and shutil.which("midi2abc")),
                                   reason="abcmidi (abc2midi, midi2abc) is not installed")
FUZZ = settings(derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])
TUNE = "X:1\nT:t\nM:3/4\nL:1/8\nK:Bb\nB2 cd ef|g4 fe|[1 d6:|[2 B6|]\n"


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """Untrained checkpoints with a 256-byte context, one per task (CPU: rv32e-mini and x86)."""
    root = tmp_path_factory.mktemp("models")
    return {name: untrained_checkpoint(root / name, codec) for name, codec in {
        "cpu": make_codec("cpu", 16, profile="rv32e-mini").options(),
        "x86": make_codec("cpu", 16, profile="x86").options(),
        "abc2midi": {"task": "abc2midi", "align": 16},
        "midi2abc": {"task": "midi2abc", "align": 16}}.items()}


def sim(*argv: str) -> tuple[int, str, str]:
    return in_process(simulator_main, list(argv))


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ---------------------------------------------------------------------------------------------
# Programs


STOPS = ("end", "max_steps")


@FUZZ
@given(profile=st.sampled_from(list(PROFILES)), code=st.binary(min_size=1, max_size=64))
def test_random_bytes_as_programs_run_to_a_recorded_stop(profile, code):
    trace = run_program(profile, code, max_steps=64)
    assert trace.stop in STOPS or trace.stop.startswith("fault:")
    assert len(trace.states) == (trace.n_steps + 1) * PROFILES[profile].state_size
    assert trace.n_steps <= 64
    disassemble(profile, code)


@pytest.mark.parametrize("profile, code, stop", [
    ("rv32e", "930050", "fault:exception"),  # 3 bytes of `addi x1, x0, 5`: then zeros
    ("rv32e-mini", "93", "fault:exception"),
    ("x86", "b801", "fault:read_unmapped"),  # `mov eax, imm32` cut after one byte
    ("x86", "0f", "fault:write_unmapped"),
    ("x86", "ffff", "fault:insn_invalid"),
])
def test_truncated_instructions_are_recorded_faults(profile, code, stop):
    assert run_program(profile, bytes.fromhex(code)).stop == stop


def test_simulator_cpu_reports_the_fault_of_bad_machine_code(models, tmp_path, monkeypatch):
    code = bytes.fromhex("93005000" "ffffffff")  # addi x1, x0, 5; an illegal word
    (tmp_path / "p.bin").write_bytes(code)
    status, out, err = sim("cpu", str(tmp_path / "p.bin"), "--model", str(models["cpu"]),
                           "--init", "x2=1", "--max-steps", "4")
    assert status == 0 and err == ""
    assert "unicorn fault:exception after 1 steps" in out and ".byte" in out
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(code)))
    status, out, _ = sim("cpu", "-", "--model", str(models["cpu"]), "--json", "--init", "x2=1")
    assert status == 0 and len(json.loads(out)["emulator"]) == 2  # state_0 and state_1


def test_a_program_runs_the_same_whatever_ran_before_it():
    """Hostile programs (an x86 far jump that changes CS, writes to esp or to RISC-V x16..x31,
    none of them in the state) leave nothing behind for the next program on the same emulator."""
    probes = {"x86": ["ffff", "8b c4 8b c5"],  # an invalid opcode; mov eax, esp; mov eax, ebp
              "rv32e": ["b3000a00"]}  # add x1, x20, x0
    hostile = {"x86": ["b4d2ea1bdce8fa82f36eac88", "bc78563412bd11111111"],  # ljmp; mov esp/ebp
               "rv32e": ["130a7000"]}  # addi x20, x0, 7
    for profile, codes in probes.items():
        fresh = [Emulator(PROFILES[profile]).run(bytes.fromhex(c), zero_state(PROFILES[profile]))
                 for c in codes]
        for bad in hostile[profile]:
            run_program(profile, bytes.fromhex(bad))
            assert [run_program(profile, bytes.fromhex(c)) for c in codes] == fresh


ASM_TOKENS = ["addi", "add", "lw", "sw", "li", "mv", "beq", "bnez", "lui", "mul", "div", "nop",
              "mov", "inc", "jmp", "imul", "x1", "x3", "x15", "x16", "eax", "[", "]", "0x", "-",
              "99999999999", "4096", "-2049", ",", "(", ")", "dword ptr", "l:", "\n", "#", "\0"]


@settings(FUZZ, max_examples=300)
@given(profile=st.sampled_from(list(PROFILES)),
       text=st.one_of(st.text(max_size=40),
                      st.lists(st.sampled_from(ASM_TOKENS), max_size=10).map(" ".join)))
def test_fuzzed_assembly_is_code_or_a_one_line_error(profile, text):
    try:
        assert isinstance(assemble(profile, text), bytes)
    except UserError as e:
        assert "\n" not in str(e)


@pytest.mark.parametrize("model, text, words", [
    ("cpu", "vadd x1, x2, x3", "unsupported RISC-V instruction 'vadd'"),
    ("cpu", "addi x1, x1, 2048", "immediate 2048 out of range (-2048..2047)"),
    ("cpu", "slli x1, x1, 32", "immediate 32 out of range (0..31)"),
    ("cpu", "lui x1, 0x100000", "out of range"),
    ("cpu", "beq x1, x2, 3", "out of range (-4096..4094 and even)"),
    ("cpu", "addi x4, x1, 1", "register x4 is outside this profile"),
    ("x86", "frob eax", "unsupported x86 instruction 'frob eax'"),
    ("x86", "mov eax, 0x100000000", "does not fit in 32 bits"),
    ("x86", "add eax, [", "neither a register, a number nor a known label"),
])
def test_bad_assembly_exits_2_with_one_line(models, model, text, words):
    status, out, err = sim("cpu", text, "--model", str(models[model]))
    assert_one_line_error(status, err, "line 1", words)
    assert out == ""


# ---------------------------------------------------------------------------------------------
# ABC


ABC_ALPHABET = st.sampled_from(list("ABCDEFGabcdefgz^_=,'/|:[]()<>{}-~.234 \n%\"!+") +
                               ["X:1\n", "K:C\n", "K:Zz\n", "M:0/0\n", "L:1/0\n", "V:1\n",
                                "|:", ":|", "[1", "(3", "\\\n", "%%MIDI program 200\n"])


@needs_abcmidi
@settings(FUZZ, max_examples=40)
@given(body=st.lists(ABC_ALPHABET, max_size=60).map("".join))
def test_fuzzed_abc_converts_or_is_a_counted_failure(body):
    done = conv.convert("X:1\nT:fuzz\n" + body, "abc2midi", timeout=10)
    assert done.failure in (None, "rejected", "timeout")
    if done.midi is not None:
        try:
            normalize_midi(done.midi)
        except BadMidi:  # counted as bad_midi by datagen music
            pass


@settings(FUZZ, max_examples=150)
@given(data=st.one_of(st.binary(max_size=400),
                      st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
                      st.binary(max_size=100).map(lambda b: b"X:1\nK:C\n" + b + b"\n\nX:2\n")))
def test_abc_files_of_any_bytes_split_into_tunes(data):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "in.abc"
        path.write_bytes(data)
        tunes = split_tunes(read_abc_text(path), str(path))
    for tune in tunes:
        assert tune.abc.startswith("X:") and tune.abc.endswith("\n")
        codec = make_codec("abc2midi")
        ids, _ = codec.encode(codec.sample_from_row({"abc": tune.abc, "midi": b""}))
        assert codec.decode(ids).abc == tune.abc


@needs_abcmidi
def test_datagen_music_on_binary_latin1_and_huge_files(tmp_path):
    (tmp_path / "bin.abc").write_bytes(b"X:1\n" + bytes(range(256)) * 8)
    (tmp_path / "latin1.abc").write_bytes(b"X:1\nT:caf\xe9\nM:4/4\nL:1/8\nK:C\nCDEF GABc|]\n")
    (tmp_path / "huge.abc").write_bytes(b"X:1\nL:1/8\nK:C\n" + b"CDEF GABc|" * 150_000 + b"\n")
    out = tmp_path / "c"
    status, _, err = in_process(datagen_main, [
        "music", "--source", *(str(tmp_path / f) for f in ("bin.abc", "latin1.abc", "huge.abc")),
        "-n", "3", "--out", str(out), "--quiet"])
    assert status == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["rows"] + manifest["failures"]["total"] == 3
    assert manifest["counts"]["rows"] >= 1  # the Latin-1 tune converts
    assert files_in(out) == ["corpus.json", "manifest.json", "shard-00000.json",
                             "shard-00000.parquet"]
    status, _, err = in_process(datagen_main, ["music", "--source", str(tmp_path / "none.abc"),
                                               "-n", "1", "--out", str(tmp_path / "d")])
    assert_one_line_error(status, err, "none.abc")
    assert not (tmp_path / "d").exists()


def hostile_abc() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=300),  # binary
        st.binary(min_size=1, max_size=40).map(lambda b: b"X:1\nK:C\n\xff" + b),  # not UTF-8
        st.text(max_size=150).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.integers(1, 2_000_000).map(lambda n: b"X:1\nK:C\n" + b"C" * n),  # huge
        st.lists(ABC_ALPHABET, max_size=40).map(lambda x: ("X:1\n" + "".join(x)).encode()))


@settings(FUZZ, max_examples=25)
@given(data=hostile_abc())
def test_simulator_abc2midi_on_hostile_input_never_leaves_a_partial_file(models, data):
    with tempfile.TemporaryDirectory() as d:
        src, dst = Path(d) / "in.abc", Path(d) / "out.mid"
        src.write_bytes(data)
        status, _, err = sim("abc2midi", str(src), "-o", str(dst), "--model",
                             str(models["abc2midi"]))
        assert status in (0, 1, 2) and "Traceback" not in err
        if status == 0:
            assert valid_midi(dst.read_bytes())
        else:
            assert len(err.strip().splitlines()) == 1 and not dst.exists()
        assert sorted(p.name for p in Path(d).iterdir()) == ["in.abc"] + ["out.mid"] * (not status)


def test_atheris_fuzzes_abc(tmp_path):
    """Coverage-guided fuzzing of the ABC path (tests/reliability/fuzz_abc.py) for a few
    hundred inputs; any exception other than UserError is a crash."""
    pytest.importorskip("atheris")
    seeds = tmp_path / "seeds"  # the fuzzer's corpus: it adds the inputs that find new code
    seeds.mkdir()
    (seeds / "tune.abc").write_text(TUNE)
    (seeds / "two.abc").write_text("X:1\nK:C\nCDE|\n\nX:2\nM:6/8\nK:Am\n(3ABc [CEG]2 z|]\n")
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "reliability" / "fuzz_abc.py"),
                           "-runs=400", "-seed=7", "-max_len=600", f"-artifact_prefix={tmp_path}/",
                           str(seeds)], cwd=ROOT, env=env(tmp_path / "tmp"), capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Done 400 runs" in done.stderr


# ---------------------------------------------------------------------------------------------
# MIDI


@pytest.fixture(scope="module")
def midi() -> bytes:
    """abc2midi's file for a short tune, normalised (as in corpora)."""
    if not shutil.which("abc2midi"):
        pytest.skip("abc2midi is not installed")
    return normalize_midi(conv.convert(TUNE, "abc2midi").midi)


def absurd(midi: bytes) -> dict[str, bytes]:
    track = midi.index(b"MTrk")
    return {
        "header length 2**32-1": midi[:4] + b"\xff\xff\xff\xff" + midi[8:],
        "track length 2**32-1": midi[:track + 4] + b"\xff\xff\xff\xff" + midi[track + 8:],
        "track length 2**31-1": midi[:track + 4] + b"\x7f\xff\xff\xff" + midi[track + 8:],
        "65535 tracks": midi[:10] + b"\xff\xff" + midi[12:],
        "delta of 2**28-1": midi[:track + 8] + b"\xff\xff\xff\x7f\x90\x3c\x40" + midi[track + 8:],
        "meta of length 2**28-1": midi[:track + 8] + b"\x00\xff\x01\xff\xff\xff\x7f" + midi[
            track + 8:],
        "key with 112 flats": midi[:track + 8] + b"\x00\xff\x59\x02\x90\x00" + midi[track + 8:],
        "sysex of length 2**28-1": midi[:track + 8] + b"\x00\xf0\xff\xff\xff\x7f" + midi[
            track + 8:],
        "running status first": midi[:track + 8] + b"\x00\x3c\x40" + midi[track + 8:],
        "header only": midi[:14],
        "empty": b"",
    }


def test_truncated_and_absurd_midi_never_crash_the_readers(midi):
    cases = [midi[:k] for k in range(len(midi))] + list(absurd(midi).values())
    for data in cases:
        try:
            assert normalize_midi(data)
        except BadMidi:
            pass
        assert valid_midi(data) in (True, False)
        assert 0.0 <= note_f1(data, midi) <= 1.0


def test_midi_input_of_a_converter_is_refused_in_one_line(models, midi):
    conv_model = MusicConverter.from_pretrained(models["midi2abc"])
    for data in [midi[:k] for k in range(0, len(midi), 7)] + list(absurd(midi).values()):
        try:
            assert isinstance(conv_model.midi_to_abc(data), str)
        except ModelOutputError:  # read fine; the untrained model wrote no ABC
            pass
        except UserError as e:
            assert "\n" not in str(e)


@needs_abcmidi
@pytest.mark.parametrize("case", ["track length 2**32-1", "65535 tracks", "key with 112 flats",
                                  "delta of 2**28-1", "header only"])
def test_midi2abc_paths_on_absurd_midi(models, midi, tmp_path, case):
    data = absurd(midi)[case]
    try:
        assert "X:" in conv.midi_to_abc(data, timeout=20)  # the reference converter
    except UserError as e:
        assert "\n" not in str(e)
    (tmp_path / "in.mid").write_bytes(data)
    status, _, err = sim("midi2abc", str(tmp_path / "in.mid"), "-o", str(tmp_path / "out.abc"),
                         "--model", str(models["midi2abc"]))
    assert status in (0, 1, 2) and "Traceback" not in err
    assert (tmp_path / "out.abc").exists() == (status == 0)


# ---------------------------------------------------------------------------------------------
# Checkpoints: internally corrupt weights (with a matching sha256) and config.json


def _rehash(folder: Path, name: str = "model.safetensors") -> None:
    """Record the current sha256 of a weights file in config.json (as a tamperer would)."""
    cfg = json.loads((folder / "config.json").read_text())
    cfg["files"] = {name: hashlib.sha256((folder / name).read_bytes()).hexdigest()}
    (folder / "config.json").write_text(json.dumps(cfg))


def _pickled_weights() -> bytes:
    buf = io.BytesIO()
    torch.save({"x": torch.zeros(2)}, buf)
    return buf.getvalue()


CORRUPT_WEIGHTS = {
    "truncated": lambda d: d[: len(d) // 2],
    "empty": lambda d: b"",
    "header length 2**60": lambda d: struct.pack("<Q", 2**60) + d[8:],
    "header not JSON": lambda d: d[:8] + b"\xff" * 32 + d[40:],
    "a pickle": lambda d: _pickled_weights(),
}


@pytest.mark.parametrize("case", list(CORRUPT_WEIGHTS))
def test_internally_corrupt_safetensors_are_refused(models, tmp_path, case):
    folder = tmp_path / "ck"
    shutil.copytree(models["cpu"], folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(CORRUPT_WEIGHTS[case](weights.read_bytes()))
    _rehash(folder)
    with pytest.raises(UserError, match="not a readable safetensors file") as e:
        load_pretrained(folder)
    assert "\n" not in str(e.value)


# case -> (the path of a config.json field, its new value, words of the error)
BAD_CONFIGS = {
    "negative width": (("model", "d_model"), [-64, 32], "invalid model config"),
    "model as text": (("model",), "tiny", "invalid model config"),
    "model null": (("model",), None, "invalid model config"),
    "patch size 0": (("model", "patch_sizes"), [0], "invalid model config"),
    "codec as a number": (("codec",), 5, "invalid codec options"),
    "unknown task": (("codec", "task"), "gpu", "invalid codec options"),
    "files as a list": (("files",), ["model.safetensors"], "lists no weights files"),
    "a file elsewhere": (("files",), {"../other/model.safetensors": "0" * 64},
                         "not a weights file of this folder"),
    "an absolute path": (("files",), {"/etc/passwd": "0" * 64},
                         "not a weights file of this folder"),
    "a pickle file": (("files",), {"pytorch_model.bin": "0" * 64},
                      "not a weights file of this folder"),
    "a missing shard": (("files",), {"model-00001-of-00002.safetensors": "0" * 64},
                        "is missing"),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_config_json_of_the_wrong_shape_is_refused(models, tmp_path, case):
    path, value, words = BAD_CONFIGS[case]
    folder = tmp_path / "ck"
    shutil.copytree(models["cpu"], folder)
    cfg = json.loads((folder / "config.json").read_text())
    field = cfg
    for key in path[:-1]:
        field = field[key]
    field[path[-1]] = value
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError, match=words) as e:
        load_pretrained(folder)
    assert "\n" not in str(e.value)


def test_a_broken_checkpoint_through_the_cli_is_exit_2(models, tmp_path):
    folder = tmp_path / "ck"
    shutil.copytree(models["cpu"], folder)
    (folder / "config.json").write_bytes(b"\xff\xfe not json")
    status, _, err = sim("cpu", "nop", "--model", str(folder))
    assert_one_line_error(status, err, "config.json is not valid JSON")
    status, _, err = sim("eval", "--model", str(tmp_path / "missing"), "--data", str(tmp_path))
    assert_one_line_error(status, err, "simulator: error:", "no model at")


# ---------------------------------------------------------------------------------------------
# Corpora: shards of another schema, malformed manifests, sha256 mismatches


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("corpora")
    build_cpu_corpus(datagen_parser().parse_args(
        ["cpu", "--profile", "rv32e-mini", "-n", "40", "--max-len", "4", "--out",
         str(root / "cpu"), "--quiet"]))
    made = {"cpu": root / "cpu"}
    if shutil.which("abc2midi"):
        build_music_corpus(datagen_parser().parse_args(
            ["music", "--source", "synthetic", "-n", "6", "--out", str(root / "music"),
             "--quiet"]))
        made["music"] = root / "music"
    return made


def _with_shard(src: Path, dst: Path, table: pa.Table) -> Path:
    """A copy of corpus `src` whose first shard is `table`, the manifest updated to match."""
    shutil.copytree(src, dst)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    data = sink.getvalue().to_pybytes()
    (dst / "shard-00000.parquet").write_bytes(data)
    manifest = json.loads((dst / "manifest.json").read_text())
    manifest["shards"]["shard-00000.parquet"]["sha256"] = hashlib.sha256(data).hexdigest()
    (dst / "manifest.json").write_text(json.dumps(manifest))
    return dst


def _replace(t: pa.Table, column: str, values: pa.Array) -> pa.Table:
    return t.set_column(t.column_names.index(column), column, values)


SHARD_EDITS = {
    "program as text": (lambda t: _replace(t, "program", pa.array(
        [b.hex() for b in t["program"].to_pylist()])), "column program holds string"),
    "states as numbers": (lambda t: _replace(t, "states", pa.array(range(t.num_rows))),
                          "column states holds int64"),
    "null states": (lambda t: _replace(t, "states", pa.nulls(t.num_rows, pa.binary())),
                    "empty (null) values"),
    "split as numbers": (lambda t: _replace(t, "split", pa.array([0] * t.num_rows)),
                         "column split holds int64"),
    "states cut short": (lambda t: _replace(t, "states", pa.array([b"\0" * 5] * t.num_rows)),
                         "cannot be encoded"),
    "unknown profile": (lambda t: _replace(t, "profile", pa.array(["arm"] * t.num_rows)),
                        "unknown CPU profile 'arm'"),
    "no states column": (lambda t: t.drop_columns(["states"]), "lacks column(s) states"),
}


@pytest.mark.parametrize("case", list(SHARD_EDITS))
def test_shards_of_another_schema_are_refused_and_no_run_is_made(corpora, tmp_path, case):
    edit, words = SHARD_EDITS[case]
    corpus = _with_shard(corpora["cpu"], tmp_path / "c",
                         edit(pq.read_table(corpora["cpu"] / "shard-00000.parquet")))
    status, _, err = sim("train", "--task", "cpu", "--data", str(corpus), "--out",
                         str(tmp_path / "run"), "--steps", "1", "--quiet")
    assert_one_line_error(status, err, words)
    assert not (tmp_path / "run").exists()


def test_a_music_shard_in_a_cpu_corpus_is_refused(corpora, tmp_path):
    if "music" not in corpora:
        pytest.skip("abc2midi is not installed")
    corpus = _with_shard(corpora["cpu"], tmp_path / "c",
                         pq.read_table(corpora["music"] / "shard-00000.parquet"))
    status, _, err = in_process(datagen_main, ["export-bgpt", str(corpus), str(tmp_path / "x")])
    assert_one_line_error(status, err, "lacks column(s) program")
    assert files_in(tmp_path) == ["c"]


MANIFEST_EDITS = {
    "a list": (lambda m: [m], "is not a JSON object"),
    "no shards": (lambda m: {k: v for k, v in m.items() if k != "shards"}, "lacks the `args`"),
    "shards as a list": (lambda m: {**m, "shards": list(m["shards"])}, "lacks the `args`"),
    "no args": (lambda m: {k: v for k, v in m.items() if k != "args"}, "lacks the `args`"),
    "a shard elsewhere": (lambda m: {**m, "shards": {f"../x/{k}": v for k, v in
                                                     m["shards"].items()}}, "not a shard of"),
    "another format": (lambda m: {**m, "format": 0}, "format 0"),
    "another kind": (lambda m: {**m, "kind": "music"}, "is a music corpus, not a cpu corpus"),
}


@pytest.mark.parametrize("case", [*MANIFEST_EDITS, "not UTF-8"])
def test_malformed_manifests_are_one_line_errors(corpora, tmp_path, case):
    corpus = tmp_path / "c"
    shutil.copytree(corpora["cpu"], corpus)
    if case == "not UTF-8":
        (corpus / "manifest.json").write_bytes(b"\xff\xfe{}")
        words = "not valid JSON"
    else:
        edit, words = MANIFEST_EDITS[case]
        manifest = json.loads((corpus / "manifest.json").read_text())
        (corpus / "manifest.json").write_text(json.dumps(edit(manifest)))
    status, _, err = sim("train", "--task", "cpu", "--data", str(corpus), "--out",
                         str(tmp_path / "run"), "--steps", "1", "--quiet")
    assert_one_line_error(status, err, words)
    assert not (tmp_path / "run").exists()
    status, _, err = in_process(datagen_main, ["show", str(corpus)])
    assert status == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_shard_that_does_not_match_its_sha256_stops_every_reader(corpora, models, tmp_path):
    corpus = tmp_path / "c"
    shutil.copytree(corpora["cpu"], corpus)
    shard = corpus / "shard-00000.parquet"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x01
    shard.write_bytes(bytes(data))
    for run in [
        lambda: sim("train", "--task", "cpu", "--data", str(corpus), "--out",
                    str(tmp_path / "run"), "--steps", "1", "--quiet"),
        lambda: sim("eval", "--model", str(models["cpu"]), "--data", str(corpus), "--quiet"),
        lambda: in_process(datagen_main, ["export-bgpt", str(corpus), str(tmp_path / "x")]),
        lambda: in_process(datagen_main, ["show", str(corpus)]),
    ]:
        status, _, err = run()
        assert_one_line_error(status, err, "does not match the sha256 in the manifest")
    assert files_in(tmp_path) == ["c"]
