"""`datagen merge`: one corpus holding the rows of several, in the order given.

A training run reads one corpus. To train on a mix that no single `datagen` command makes (M2's
wide tunes beside M1's narrow ones with runs of rests, say), make each part with its own
command and merge them: every row keeps its split, the shards are written as `datagen` writes
them (atomically, resumable, with sidecars), and the manifest records each source's arguments
and row count under `merged_from`, so the mix can be made again from its parts' commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bytesim_common.errors import UserError
from datagen.corpus import read_manifest, read_table, write_rows


def merged_args(corpora: list[str | Path], manifests: list[dict[str, Any]]) -> dict[str, Any]:
    """The merged corpus's manifest `args`: the sources' own, and what readers of a corpus of
    that kind look for (the sources of a music corpus; the profile and longest program of a CPU
    one, which must agree)."""
    kind = manifests[0]["kind"]
    args: dict[str, Any] = {"merged_from": [
        {"corpus": Path(c).name, "rows": m["counts"]["rows"], "args": m["args"]}
        for c, m in zip(corpora, manifests)]}
    if kind == "music":
        args["sources"] = sorted({s for m in manifests for s in m["args"].get("sources", [])})
    elif kind == "cpu":
        profiles = {m["args"]["profile"] for m in manifests}
        if len(profiles) > 1:
            raise UserError(f"the corpora trace different CPU profiles ({', '.join(sorted(profiles))}); "
                            "merge corpora of one profile")
        args["profile"] = profiles.pop()
        args["max_len"] = max(m["args"]["max_len"] for m in manifests)
    return args


def merge_corpora(out: str | Path, corpora: list[str | Path],
                  show_progress: bool = True) -> dict[str, Any]:
    """Write the rows of `corpora` (complete corpora of one kind) to `out`; return its
    manifest. Run again with the same corpora to resume."""
    if len(corpora) < 2:
        raise UserError("datagen merge takes two corpora or more")
    folders = [Path(c).resolve() for c in corpora]
    if len(set(folders)) < len(folders):
        raise UserError("a corpus is named twice; merge each once")
    if Path(out).resolve() in folders:
        raise UserError(f"--out {out} is one of the corpora to merge; use another folder")
    manifests = [read_manifest(c) for c in corpora]
    kinds = {m.get("kind") for m in manifests}
    if len(kinds) > 1:
        raise UserError(f"the corpora are of different kinds ({', '.join(sorted(map(str, kinds)))}); "
                        "merge corpora of one kind")
    for c, m in zip(corpora, manifests):
        if not m.get("complete"):
            raise UserError(f"{c} is not complete; finish it (run its datagen command again) "
                            "before merging")
    args = merged_args(corpora, manifests)
    rows = [row for c in corpora for row in read_table(c).to_pylist()]
    return write_rows(out, manifests[0]["kind"], args, rows, show_progress)
