"""Atomic file writes: a reader sees the old file or the new one, never a part."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write(path: Path | str, data: bytes) -> None:
    """Write `data` to `path` so that a reader sees the old file or the new, never a part."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_json(path: Path | str, obj: Any) -> None:
    atomic_write(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def is_leftover(path: Path) -> bool:
    """A hidden file that an interrupted writer of ours leaves (atomic_write's temporary file,
    the folder probe): never data, so a folder holding only these counts as empty."""
    return path.name == ".write-probe" or (path.name.startswith(".") and path.name.endswith(".tmp"))


def display_path(path: Path | str, *roots: Path | str) -> str:
    """`path` as a person or a document should see it: relative to the first of `roots` (default:
    the current folder) that holds it, else as given. No machine's absolute paths in cards and
    printed output where a relative one says the same."""
    path = Path(path)
    for root in roots or (Path.cwd(),):
        try:
            return str(path.resolve().relative_to(Path(root).resolve()))
        except ValueError:
            continue
    return str(path)
