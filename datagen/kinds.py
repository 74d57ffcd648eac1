"""Every corpus kind this datagen makes. Importing this module imports each generator, which
registers its kind's shard schema with `datagen.corpus`, so that reading a corpus checks its
columns; a reader of corpora imports it."""

from datagen.cpu import build as cpu_build
from datagen.music import build as music_build

KINDS = {"cpu": cpu_build, "music": music_build}
