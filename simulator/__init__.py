"""bytesim's learning side: codecs, the hierarchical byte model, training, evaluation, facade."""

__version__ = "0.1.0"
