"""bytesim's data side: real emulators and real converters -> corpora of Parquet shards.

datagen knows nothing of the model: it writes corpora that `simulator` reads.
"""

__version__ = "0.1.0"

# Bumped whenever the bytes a given (seed, arguments) produce, or the schema, change.
CORPUS_FORMAT = 1
