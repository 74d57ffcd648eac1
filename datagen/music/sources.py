"""ABC tunes from files: music21's bundled corpus and users' own `.abc` files.

A multi-tune file is split at its `X:` fields. The file header (the lines before the first
`X:`) applies to every tune of the file, so its fields and `%%` directives are copied into each
tune, right after the `X:` line; its plain `%` comments are not. A tune ends at the first blank
line after its `X:` (ABC 2.1 §2.2: what follows is free text, which converters skip).

Indexing reads the files' text only (a few hundred ms for music21's ~13,000 tunes); no score is
ever parsed here.
"""

from __future__ import annotations

import functools
import hashlib
import os
import random
import re
from dataclasses import dataclass
from pathlib import Path

from bytesim_common.errors import UserError

_FIELD = re.compile(r"^[A-Za-z+]:")
# Fields that name or describe a tune but are no part of its music: left out of the split key.
_INFO_FIELDS = frozenset("XTABCDFGHNORSZ")


@dataclass(frozen=True)
class Tune:
    """One tune of a file: where it came from and its ABC text (header inherited)."""

    path: str  # as shown in rows: relative to the corpus root for music21, as given for files
    index: int  # position of the tune in its file, from 0
    number: str  # the value of its X: field (not always unique within a file)
    abc: str


def read_abc_text(path: Path) -> str:
    """A file's text with `\\n` line ends: UTF-8, or Latin-1 where it is not valid UTF-8."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")


def split_tunes(text: str, path: str = "") -> list[Tune]:
    """Split the text of an ABC file into its tunes (file header copied into each)."""
    lines = [line.rstrip() for line in text.split("\n")]
    starts = [i for i, line in enumerate(lines) if line.startswith("X:")]
    if not starts:
        return []
    inherited = [line for line in lines[: starts[0]]
                 if _FIELD.match(line) or line.startswith("%%")]
    tunes = []
    for k, a in enumerate(starts):
        b = starts[k + 1] if k + 1 < len(starts) else len(lines)
        body = lines[a + 1: b]
        if "" in body:
            body = body[: body.index("")]
        abc = "\n".join([lines[a], *inherited, *body]) + "\n"
        tunes.append(Tune(path, k, lines[a][2:].strip(), abc))
    return tunes


def split_key(abc: str) -> bytes:
    """The content a tune's split is decided by: its ABC minus X:/title/notes-style fields and
    comments, so the same music under another number or title lands in the same split."""
    keep = [line for line in abc.split("\n")
            if not (line[:1] in _INFO_FIELDS and line[1:2] == ":") and not line.startswith("%")]
    return "\n".join(keep).encode()


# ---------------------------------------------------------------------------------------------
# music21's bundled corpus


def music21_corpus_root() -> Path:
    """The folder of music21's bundled corpus (found without importing music21's parsers)."""
    import importlib.util

    spec = importlib.util.find_spec("music21")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("--source music21 needs the music21 package (pip install music21)")
    root = Path(next(iter(spec.submodule_search_locations))) / "corpus"
    if not root.is_dir():
        raise UserError(f"music21 is installed without its corpus (no {root})")
    return root


@functools.cache
def music21_tunes() -> tuple[Tune, ...]:
    """Every ABC tune in music21's corpus, in a fixed order (path, then position in file)."""
    root = music21_corpus_root()
    paths = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.abc"))
    return tuple(t for rel in paths for t in split_tunes(read_abc_text(root / rel), rel))


@functools.cache
def file_tunes(paths: tuple[str, ...]) -> tuple[Tune, ...]:
    """The tunes of the user's `.abc` files, in the order given."""
    tunes: list[Tune] = []
    for p in paths:
        try:
            found = split_tunes(read_abc_text(Path(p)), p)
        except OSError as e:
            raise UserError(f"cannot read {p}: {e.strerror or e}") from None
        if not found:
            raise UserError(f"{p} holds no ABC tune (no line starting with `X:`)")
        tunes.extend(found)
    return tuple(tunes)


def files_digest(paths: tuple[str, ...]) -> str:
    """sha256 over the user's files, kept in the corpus identity so a changed file is noticed."""
    h = hashlib.sha256()
    for p in paths:
        if not os.path.isfile(p):
            raise UserError(f"--source {p}: no such file (sources are music21, synthetic, "
                            "or .abc files)")
        h.update(Path(p).read_bytes())
    return h.hexdigest()


@functools.lru_cache(maxsize=8)
def seeded_order(n: int, seed: int) -> tuple[int, ...]:
    """A permutation of range(n) that depends only on (n, seed)."""
    order = list(range(n))
    random.Random(f"music-order:{seed}").shuffle(order)
    return tuple(order)
