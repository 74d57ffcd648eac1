"""`datagen show CORPUS`: a few rows, readably. Dispatches on the manifest's `kind`."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from bytesim_common.errors import UserError
from datagen.corpus import read_manifest, read_table


def format_cpu_row(row: dict, manifest: dict) -> str:
    """A CPU trace: state_0, then each executed instruction beside the registers it changed."""
    from datagen.cpu.isa import disassemble
    from datagen.cpu.profiles import get_profile

    profile = get_profile(row["profile"])
    size, names = profile.state_size, profile.registers
    offsets = [sum(profile.register_bytes[:i]) for i in range(len(names))]

    def registers(k: int) -> list[int]:
        state = row["states"][k * size:(k + 1) * size]
        return [int.from_bytes(state[o:o + w], "little")
                for o, w in zip(offsets, profile.register_bytes)]

    code = {address: (len(data), text)
            for address, data, text in disassemble(profile.name, row["program"])}
    first = registers(0)
    lines = [(f"seed {row['seed']}  {profile.name}  {len(row['program'])} program bytes  "
              f"{row['n_steps']} steps  stop {row['stop']}  split {row['split']}"),
             "  state_0: " + " ".join(f"{n}={v:#x}" for n, v in zip(names, first))]
    before = first
    for k in range(1, row["n_steps"] + 1):
        after = registers(k)
        pc = before[0]
        length, text = code.get(pc, (0, "?"))
        changed = [f"{n}: {a:#x} -> {b:#x}" for n, a, b in zip(names[1:], before[1:], after[1:])
                   if a != b]
        if after[0] != pc + length:
            changed.append(f"jump to {after[0]:#x}")
        lines.append(f"  {pc:#07x}  {text:<28} {'  '.join(changed) or '(no change)'}")
        before = after
    return "\n".join(lines)


# kind -> row formatter (row as a dict, manifest) -> text
def format_music_row(row: dict, manifest: dict) -> str:
    from datagen.music.show import format_music_row as music

    return music(row, manifest)


ROW_FORMATTERS: dict[str, Callable[[dict, dict], str]] = {"cpu": format_cpu_row,
                                                         "music": format_music_row}


def show(corpus: str | Path, n: int = 3, split: str | None = None,
         out: TextIO = sys.stdout) -> None:
    """Print the first `n` rows (of `split`, if given) of a corpus."""
    manifest = read_manifest(corpus)
    kind = manifest.get("kind")
    if kind not in ROW_FORMATTERS:
        raise UserError(f"cannot show a {kind!r} corpus; known kinds: {', '.join(ROW_FORMATTERS)}")
    if n < 1:
        raise UserError(f"-n must be at least 1; got {n}")
    table = read_table(corpus, split=split)
    print(f"{corpus}: {kind} corpus, {table.num_rows} rows"
          + (f" in split {split}" if split else "") + f", counts {manifest['counts']}", file=out)
    for row in table.slice(0, n).to_pylist():
        print("\n" + ROW_FORMATTERS[kind](row, manifest), file=out)
