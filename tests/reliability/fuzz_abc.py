"""Coverage-guided fuzzing of the ABC path with atheris (run by tests/reliability/test_hostile.py;
by hand: `python tests/reliability/fuzz_abc.py -runs=100000`).

An input is the bytes of an `.abc` file. The target reads it as datagen reads users' files,
splits it into tunes, encodes each tune as the abc2midi codec does and decodes it back, and
converts the first tune with the reference converter (abc2midi, where installed). A UserError
is a fine answer; any other exception, or a codec round trip that changes the tune, is a crash.
"""

import shutil
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["datagen", "simulator"]):
    from bytesim_common.errors import UserError
    from datagen.music import convert as conv
    from datagen.music.normalize import BadMidi, normalize_midi
    from datagen.music.sources import read_abc_text, split_tunes
    from simulator.codec import MusicPair, make_codec

CODEC = make_codec("abc2midi")
HAVE_ABC2MIDI = shutil.which("abc2midi") is not None
WORKDIR = tempfile.mkdtemp(prefix="fuzz-abc-")


def test_one_input(data: bytes) -> None:
    path = Path(WORKDIR) / "in.abc"
    path.write_bytes(data)
    try:
        tunes = split_tunes(read_abc_text(path), str(path))
    except UserError:
        return
    for tune in tunes:
        ids, _ = CODEC.encode(MusicPair(tune.abc, b""))
        assert CODEC.decode(ids).abc == tune.abc
    if tunes and HAVE_ABC2MIDI and len(tunes[0].abc) < 2000:
        done = conv.convert(tunes[0].abc, "abc2midi", timeout=10, workdir=WORKDIR)
        assert done.failure in (None, "rejected", "timeout"), done
        if done.midi is not None:
            try:
                normalize_midi(done.midi)
            except BadMidi:
                pass


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
