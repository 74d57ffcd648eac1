"""`datagen export-bgpt CORPUS OUT`: a corpus in bGPT's own file layout.

bGPT (sanderwood/bgpt, train-gen.py) trains on folders of files, one sample per file: it walks
`TRAIN_FOLDERS` / `EVAL_FOLDERS`, reads each file's bytes, and puts the file extension in the
first patch. So OUT gets one folder per split (`OUT/train`, `OUT/valid`, `OUT/test`) of files
`<row>.<ext>`; point bGPT's config at `OUT/train` and `OUT/test` (or `OUT/valid`).

CPU rows become `.bin` files laid out as bGPT's own `cpu_states` data (cpu-simulation.py): the
program as a fixed-size memory image (zero-padded to `program_bytes`, the same for every file of
the corpus) followed by state_0 .. state_n. `OUT/export.json` (outside the split folders, so
bGPT does not read it) records the layout. The export is written to a temporary folder and
renamed into place at the end, so OUT is either absent or complete.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from bytesim_common.errors import UserError
from bytesim_common.progress import track
from datagen.corpus import read_manifest, read_table


def _export_cpu(corpus: Path, manifest: dict, tmp: Path) -> dict:
    from datagen.cpu.isa import isa_module
    from datagen.cpu.profiles import get_profile

    profile = get_profile(manifest["args"]["profile"])
    raw = manifest["args"]["max_len"] * isa_module(profile).MAX_INSN_BYTES
    program_bytes = -(-raw // 16) * 16  # whole patches, so state_0 starts on a patch boundary
    table = read_table(corpus, columns=["program", "states", "split"], kind="cpu")
    counts: dict[str, int] = {}
    for i, row in enumerate(track(table.to_pylist(), table.num_rows, "export-bgpt", "files")):
        folder = tmp / row["split"]
        folder.mkdir(exist_ok=True)
        if len(row["program"]) > program_bytes:
            raise UserError(f"row {i}: a {len(row['program'])}-byte program does not fit the "
                            f"{program_bytes}-byte memory image of this corpus's --max-len")
        memory = row["program"].ljust(program_bytes, b"\0")
        (folder / f"{i:08d}.bin").write_bytes(memory + row["states"])
        counts[row["split"]] = counts.get(row["split"], 0) + 1
    return {"kind": "cpu", "profile": profile.name, "extension": "bin",
            "layout": "program zero-padded to program_bytes, then state_0 .. state_n",
            "program_bytes": program_bytes, "state_size": profile.state_size,
            "registers": list(profile.registers), "files": counts}


def _export_music(corpus: Path, manifest: dict, tmp: Path) -> dict:
    """Each pair as `<row>.abc` beside `<row>.mid`: bGPT's conversion mode (CONVERSION_MODE
    "abc->mid", "mid->abc" or "abc&mid") pairs files whose names differ only in extension."""
    table = read_table(corpus, columns=["abc", "midi", "split"], kind="music")
    counts: dict[str, int] = {}
    for i, row in enumerate(track(table.to_pylist(), table.num_rows, "export-bgpt", "pairs")):
        folder = tmp / row["split"]
        folder.mkdir(exist_ok=True)
        (folder / f"{i:08d}.abc").write_bytes(row["abc"].encode("utf-8"))
        (folder / f"{i:08d}.mid").write_bytes(row["midi"])
        counts[row["split"]] = counts.get(row["split"], 0) + 1
    return {"kind": "music", "extensions": ["abc", "mid"],
            "layout": "one pair per row: <row>.abc (UTF-8 ABC) and <row>.mid (normalised MIDI)",
            "converter": manifest["args"]["converter"], "pairs": counts}


# kind -> exporter(corpus, manifest, temporary folder) -> description for export.json
EXPORTERS: dict[str, Callable[[Path, dict, Path], dict]] = {"cpu": _export_cpu,
                                                            "music": _export_music}


def export_bgpt(corpus: str | Path, out: str | Path) -> dict:
    """Write `corpus` in bGPT's layout under `out` (absent or empty); return the description."""
    corpus, out = Path(corpus), Path(out)
    manifest = read_manifest(corpus)
    if manifest.get("kind") not in EXPORTERS:
        raise UserError(f"export-bgpt handles {', '.join(EXPORTERS)} corpora; "
                        f"{corpus} is a {manifest.get('kind')} corpus")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} exists and is not an empty folder; choose another OUT")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as e:
        raise UserError(f"cannot write next to {out}: {e.strerror or e}") from None
    try:
        info = EXPORTERS[manifest["kind"]](corpus, manifest, tmp)
        info["corpus"] = str(corpus)
        (tmp / "export.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, out)
    except OSError as e:
        raise UserError(f"writing the export to {out} failed: {e.strerror or e}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return info
