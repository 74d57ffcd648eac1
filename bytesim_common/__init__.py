"""What both sides of bytesim (datagen and simulator) share, and nothing of either's domain:
one-line user errors, the CLI entry and argument parser that print them, progress output, and
atomic file writes."""
