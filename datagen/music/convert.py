"""Reference converters: abc2midi (default) or music21, and midi2abc for the reverse.

`convert(abc, converter)` returns a `Conversion`: the converter's raw MIDI bytes, or the kind of
failure. Failure kinds (counted in the manifest, never dropped):

- `rejected`: the converter wrote no file (abc2midi) or raised (music21);
- `timeout`: it ran longer than `timeout` seconds (the process is killed);
- `bad_midi`: it wrote bytes that mido cannot read (found by the normalisation pass).

abc2midi exits 0 whatever happens and reports problems as `Error in line-char ...` lines; when
it still writes a file, that file *is* what the reference converter does, so the pair is kept
and the number of such lines is recorded in the row (`converter_errors`).
"""

from __future__ import annotations

import functools
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from bytesim_common.errors import UserError

CONVERTERS = ("abc2midi", "music21")
DEFAULT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Conversion:
    midi: bytes | None  # the converter's raw output; None on failure
    errors: int = 0  # error messages the converter printed (the file may still be written)
    failure: str | None = None  # "rejected" | "timeout" | "bad_midi"
    detail: str = ""  # first error message, for the manifest's examples


def have_abc2midi() -> bool:
    return shutil.which("abc2midi") is not None


def reference_converter() -> str:
    """The converter a comparison uses: abc2midi where installed, else music21 (quietly)."""
    return "abc2midi" if have_abc2midi() else "music21"


def choose_converter(requested: str | None) -> str:
    """The converter to use: the one asked for, else abc2midi where installed, else music21."""
    if requested is None:
        if have_abc2midi():
            return "abc2midi"
        print("datagen music: abc2midi not found (Debian/Ubuntu: apt-get install abcmidi); "
              "falling back to music21 as the reference converter", file=sys.stderr)
        return "music21"
    if requested not in CONVERTERS:
        raise UserError(f"--converter must be one of {', '.join(CONVERTERS)}; got {requested!r}")
    if requested == "abc2midi" and not have_abc2midi():
        raise UserError("--converter abc2midi: abc2midi is not installed "
                        "(Debian/Ubuntu: apt-get install abcmidi), or use --converter music21")
    return requested


@functools.cache
def converter_version(name: str) -> str:
    """The version of a converter, as recorded in every row (e.g. "4.84 January 20 2023")."""
    if name == "music21":
        import music21

        return str(music21.__version__)
    tool = {"abc2midi": "abc2midi", "midi2abc": "midi2abc"}[name]
    out = subprocess.run([tool, "-ver"], capture_output=True, text=True, timeout=10,
                         check=False).stdout
    return out.strip().removesuffix(tool).strip()


def convert(abc: str, converter: str, timeout: float = DEFAULT_TIMEOUT_S,
            workdir: str | None = None) -> Conversion:
    """Convert one tune's ABC text to MIDI with `converter` (abc2midi's files go in `workdir`,
    a scratch folder the caller may reuse across calls; a fresh one when None)."""
    if converter == "music21":
        return music21_abc_to_midi(abc, timeout)
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="datagen-abc-") as d:
            return abc2midi(abc, d, timeout)
    return abc2midi(abc, workdir, timeout)


def abc2midi(abc: str, workdir: str, timeout: float = DEFAULT_TIMEOUT_S) -> Conversion:
    """Run `abc2midi tune.abc -o tune.mid` in `workdir`."""
    src, dst = Path(workdir) / "tune.abc", Path(workdir) / "tune.mid"
    src.write_bytes(abc.encode("utf-8"))
    dst.unlink(missing_ok=True)
    try:
        run = subprocess.run(["abc2midi", src.name, "-o", dst.name], cwd=workdir,
                             capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return Conversion(None, failure="timeout", detail=f"abc2midi ran over {timeout:g} s")
    messages = run.stdout.decode("utf-8", "replace").splitlines()
    errors = [m for m in messages if m.startswith("Error")]
    if run.returncode != 0 or not dst.exists():
        why = errors[0] if errors else f"abc2midi exited {run.returncode} with no file"
        return Conversion(None, len(errors), "rejected", why)
    return Conversion(dst.read_bytes(), len(errors), None, errors[0] if errors else "")


class _Timeout(Exception):
    pass


def music21_abc_to_midi(abc: str, timeout: float = DEFAULT_TIMEOUT_S) -> Conversion:
    """music21's ABC parser and MIDI writer (in-process; the time limit needs the main thread)."""
    import music21

    def on_alarm(signum, frame):
        raise _Timeout

    use_alarm = threading.current_thread() is threading.main_thread()
    if use_alarm:
        old = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        score = music21.converter.parseData(abc, format="abc")
        midi = music21.midi.translate.music21ObjectToMidiFile(score).writestr()
    except _Timeout:
        return Conversion(None, failure="timeout", detail=f"music21 ran over {timeout:g} s")
    except Exception as e:  # noqa: BLE001 - music21 raises many kinds on bad input
        return Conversion(None, 1, "rejected", f"music21: {type(e).__name__}: {e}"[:300])
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
    return Conversion(bytes(midi))


def midi_to_abc(midi: bytes, timeout: float = DEFAULT_TIMEOUT_S) -> str:
    """The reference MIDI -> ABC conversion: `midi2abc -f tune.mid` (its title line reads
    `T: from tune.mid` whatever the input was called, so the output depends on the bytes only).
    Raises UserError if midi2abc is missing, hangs or prints nothing."""
    if shutil.which("midi2abc") is None:
        raise UserError("midi2abc is not installed (Debian/Ubuntu: apt-get install abcmidi)")
    with tempfile.TemporaryDirectory(prefix="datagen-mid-") as d:
        (Path(d) / "tune.mid").write_bytes(midi)
        try:
            run = subprocess.run(["midi2abc", "-f", "tune.mid"], cwd=d, capture_output=True,
                                 timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise UserError(f"midi2abc ran over {timeout:g} s") from None
    text = run.stdout.decode("utf-8", "replace")
    if run.returncode != 0 or "X:" not in text:
        msg = (run.stderr or run.stdout).decode("utf-8", "replace").strip().splitlines()
        raise UserError(f"midi2abc could not read the MIDI file: {msg[-1] if msg else 'no output'}")
    return text
