"""What the tests share besides conftest's fixtures: the repository root, running the console
modules (as processes or in this one), one-line error checks, folder listings, killing runs at
seeded random moments, real full or read-only file systems (a tmpfs or a read-only bind mount
in a private mount namespace), and small untrained checkpoints."""

from __future__ import annotations

import contextlib
import io
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
# atomic_write's temporary files (`.NAME.XXXXXXXX.tmp`), its folder probe, and the checkpoint
# folders being written (`.step-N.XXXXXXXX`) or deleted (`.step-N.PID.old`): hidden leftovers
# of a killed run, never read as data.
# tests that run the reference converter
needs_abc2midi = pytest.mark.skipif(shutil.which("abc2midi") is None,
                                    reason="abc2midi is not installed (apt-get install abcmidi)")

LEFTOVER = re.compile(r"\.write-probe|\..+\.\w+\.tmp|\.step-\d+\.\w+(\.old)?")


def env(tmp: Path) -> dict[str, str]:
    """The environment of a console run: this checkout, one thread, scratch files under `tmp`."""
    tmp.mkdir(parents=True, exist_ok=True)
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp)}


def console(module: str, *argv: str, tmp: Path, timeout: float = 300,
            stdin: bytes | None = None) -> subprocess.CompletedProcess:
    """`python -m MODULE ARGV...` run to its end (stdout and stderr as text)."""
    done = subprocess.run([sys.executable, "-m", module, *argv], cwd=ROOT, env=env(tmp),
                          input=stdin, capture_output=True, timeout=timeout, check=False)
    return subprocess.CompletedProcess(done.args, done.returncode,
                                       done.stdout.decode("utf-8", "replace"),
                                       done.stderr.decode("utf-8", "replace"))


def in_process(main: Callable[[list[str]], None], argv: list[str]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of a console `main` run in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def assert_one_line_error(code: int, err: str, *words: str) -> None:
    """Exit 2 with one line on stderr that says `words`, and no traceback."""
    assert code == 2, f"exit {code}, stderr: {err[-2000:]}"
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err[-2000:]
    for w in words:
        assert w in err, err


def visible_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())
            if p.is_file() and not p.name.startswith(".")}


def check_corpus_folder(folder: Path, ref: Path) -> list[str]:
    """After a kill or a failed write: every visible file of `folder` is byte-identical to the
    same file of the uninterrupted corpus `ref` (so no shard, sidecar or manifest is partial or
    wrong) and the rest are hidden leftovers. Returns the complete shards (with their sidecar)."""
    if not folder.exists():
        return []
    want = visible_files(ref)
    for p in folder.iterdir():
        if p.name.startswith("."):
            assert LEFTOVER.fullmatch(p.name), f"unexpected hidden file {p.name}"
        else:
            assert p.name in want, f"unexpected file {p.name}"
            assert p.read_bytes() == want[p.name], f"{p.name} differs from the reference"
    return sorted(p.stem for p in folder.glob("shard-*.json"))


# ---------------------------------------------------------------------------------------------
# Killing at seeded random moments


def _listing(folder: Path) -> frozenset:
    """(entry, inode, mtime, size) of a folder and its `checkpoints/`: changes on any write."""
    seen = set()
    for d in (folder, folder / "checkpoints"):
        try:
            with os.scandir(d) as it:
                for e in it:
                    try:
                        st = e.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    seen.add((d.name, e.name, st.st_ino, st.st_mtime_ns, st.st_size))
        except (FileNotFoundError, NotADirectoryError):
            pass
    return frozenset(seen)


@dataclass
class KillLog:
    kills: int = 0  # runs killed while working
    finished: int = 0  # runs that ended before their kill moment (then checked and restarted)


def kill_at_random_moments(command: Callable[[], list[str]], folder: Path, window: float,
                           kills: int, seed: int, tmp: Path,
                           after_kill: Callable[[], None],
                           after_finish: Callable[[], None], max_runs: int = 200) -> KillLog:
    """Start `command` (argv after `python`) again and again, each time SIGKILLing its process
    group at a moment drawn from a seeded RNG: uniform in [0, window) seconds after the run's
    first write to `folder` (before it, a run has changed nothing). After a kill,
    `after_kill()` checks the folder, and the next run resumes it; a run that ends first is
    checked by `after_finish()`, which starts the folder afresh. Stops after `kills` kills."""
    rng = random.Random(seed)
    log = KillLog()
    tmp.mkdir(parents=True, exist_ok=True)
    for _ in range(max_runs):
        if log.kills >= kills:
            break
        moment = rng.uniform(0, window)
        before = _listing(folder)
        with open(tmp / "stderr.txt", "wb") as err:
            proc = subprocess.Popen([sys.executable, *command()], cwd=ROOT, env=env(tmp),
                                    stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
            deadline = time.monotonic() + 300
            while proc.poll() is None and _listing(folder) == before:
                assert time.monotonic() < deadline, "the run wrote nothing for 300 s"
                time.sleep(0.002)
            time.sleep(moment)
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)  # the run and its children (workers, converters)
                proc.wait(timeout=60)
                log.kills += 1
                after_kill()
                continue
        assert proc.returncode == 0, (tmp / "stderr.txt").read_text()
        log.finished += 1
        after_finish()
    assert log.kills >= kills, f"only {log.kills} kills in {max_runs} runs"
    return log


# ---------------------------------------------------------------------------------------------
# Real full and read-only file systems, in a private mount namespace


def mount_namespace_or_skip(tmp: Path) -> None:
    """Skip unless this user can make a private mount namespace (unshare -Urm), mount a tmpfs
    and remount a bind mount read-only in it."""
    if sys.platform != "linux" or not shutil.which("unshare") or not shutil.which("mount"):
        pytest.skip("needs Linux with unshare and mount (util-linux)")
    d = tmp / "probe-mount"
    d.mkdir(parents=True, exist_ok=True)
    script = (f'mount -t tmpfs -o size=64k tmpfs "{d}" && mount --bind "{d}" "{d}" '
              f'&& mount -o remount,bind,ro "{d}"')
    probe = subprocess.run(["unshare", "-Urm", "sh", "-c", script], capture_output=True,
                           timeout=30, check=False)
    if probe.returncode != 0:
        pytest.skip("cannot mount in a private mount namespace here (user namespaces disabled?)")


def run_in_mount_namespace(script: str, tmp: Path, timeout: float = 300) -> None:
    """Run a shell `script` as root of a private user + mount namespace (its mounts vanish at
    the end), with the console environment (PY = this Python)."""
    path = tmp / "namespace.sh"
    path.write_text("set -u\n" + script)
    done = subprocess.run(["unshare", "-Urm", "sh", str(path)], cwd=ROOT,
                          env={**env(tmp), "PY": sys.executable}, capture_output=True,
                          timeout=timeout, check=False)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()


def fill_then_copy_out(command: str, size_kib: int, work: str, out: Path) -> str:
    """A namespace script: run `command` (a shell line whose output folder is `$WORK/...`) on
    a tmpfs of `size_kib` KiB mounted at `work`, record its exit code and stderr under `out`,
    then copy what it left on the tmpfs to `out/left`."""
    return (f'WORK="{work}"\nmkdir -p "$WORK" "{out}/left"\n'
            f'mount -t tmpfs -o size={size_kib}k tmpfs "$WORK"\n'
            f'{command} 2> "{out}/stderr"; echo $? > "{out}/rc"\n'
            f'cp -a "$WORK/." "{out}/left/"\n')


def readonly_midway(command: str, folder: Path, ready: str, out: Path) -> str:
    """A namespace script: bind-mount `folder` on itself, start `command` in the background,
    wait until the file `ready` (relative to `folder`) exists, then make the folder read-only
    under the running command (retrying while a file is open for writing), and record the
    command's exit code and stderr under `out`."""
    return (f'D="{folder}"\nmkdir -p "$D"\nmount --bind "$D" "$D"\n'
            f'{command} 2> "{out}/stderr" &\npid=$!\n'
            f'while [ ! -e "$D/{ready}" ]; do kill -0 $pid 2>/dev/null || break; sleep 0.005; '
            'done\n'
            'n=0\nuntil mount -o remount,bind,ro "$D" 2>/dev/null; do n=$((n+1)); '
            '[ $n -gt 2000 ] && { echo "cannot remount read-only" >&2; exit 1; }; sleep 0.001; '
            'done\n'
            f'echo made-read-only > "{out}/marker"\n'
            f'wait $pid; echo $? > "{out}/rc"\n')


# ---------------------------------------------------------------------------------------------
# Small untrained checkpoints (fast: input handling does not need a trained model)


def untrained_checkpoint(folder: Path, codec: dict, max_len: int = 256) -> Path:
    """A `tiny` preset model with random weights and a short context, saved in `folder`."""
    from simulator.checkpoint import save_pretrained
    from simulator.model import PRESETS, ByteModel

    torch.manual_seed(0)
    config = PRESETS["tiny"].__class__(**{**PRESETS["tiny"].to_dict(), "max_len": max_len})
    save_pretrained(ByteModel(config), codec, folder, preset="tiny")
    return folder
