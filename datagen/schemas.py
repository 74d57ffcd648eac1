"""The Parquet schema of each corpus kind's shards (docs/formats.md): what `datagen` writes and
what readers check shards against. Plain data, so that reading a corpus imports no generator
(no emulator, no converter)."""

import pyarrow as pa

CPU = pa.schema([
    ("profile", pa.string()),
    ("seed", pa.int64()),  # the row's own seed: `make_row(profile, seed, ...)` rebuilds the row
    ("program", pa.binary()),
    ("states", pa.binary()),  # (n_steps + 1) * state_size bytes
    ("n_steps", pa.int32()),
    ("stop", pa.string()),
    ("asm", pa.string()),  # capstone text, one instruction per line
    ("split", pa.string()),
])

MUSIC = pa.schema([
    ("id", pa.string()),  # music21:<path>#<k>[/<segment>] | file:<path>#<k>[/<segment>] | synthetic:<seed>:<j>
    ("source", pa.string()),  # music21 | file | synthetic
    ("tune", pa.string()),  # the tune's X: number
    ("abc", pa.string()),
    ("midi", pa.binary()),  # normalised (datagen.music.normalize)
    ("converter", pa.string()),  # abc2midi | music21
    ("converter_version", pa.string()),
    ("converter_errors", pa.int32()),  # error messages printed while still writing a file
    ("split", pa.string()),
])

SCHEMAS = {"cpu": CPU, "music": MUSIC}
