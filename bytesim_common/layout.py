"""Segment arithmetic of the byte layout (docs/formats.md), shared by the codecs that build
sequences and by datagen's length filters that must agree with them.

A sequence is segments aligned to the patch: a header patch, then content followed by 1..align
PADs up to the next patch boundary (so its end is always visible), and an end patch.
"""

from __future__ import annotations


def round_up(n: int, align: int) -> int:
    """`n` rounded up to a multiple of `align`."""
    return -(-n // align) * align


def terminated_length(n: int, align: int) -> int:
    """Ids taken by `n` bytes of variable content: the bytes and 1..align PADs."""
    return round_up(n + 1, align)


def pair_length(first: int, second: int, align: int) -> int:
    """Ids of a two-part sequence `[header] [first] [header] [second] [end]` (a music pair)."""
    return 3 * align + terminated_length(first, align) + terminated_length(second, align)
