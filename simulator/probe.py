"""`simulator probe`: single instructions of every class, random operands, against Unicorn.

For each instruction class of the model's profile, `n` one-instruction programs (a load or a
store comes with the `lui` that sets its base register, as the generator writes them; branches
come two at a time, so that the first may skip the second: a lone branch's target is its own
fall-through) with random initial states are run by Unicorn and by the model. A program counts
as right when the model's whole free-running trace is (every state, and it ends where Unicorn's
does): what a user of `CPUSimulator` gets on one instruction. The one-step figures
(docs/metrics.md) come beside it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TextIO

from bytesim_common.errors import UserError
from bytesim_common.files import display_path
from simulator.checkpoint import load_pretrained, resolve_model_path
from simulator.codec import Codec, CpuCodec, codec_from_options
from simulator.evaluate import evaluate_rows, percent


def probe_rows(profile_name: str, cls: str, n: int, seed: int) -> list[dict]:
    """`n` corpus rows of one-group programs of class `cls` (a pure function of the args)."""
    from datagen.cpu import get_profile
    from datagen.cpu.build import make_row, row_seed
    from datagen.cpu.programs import group_length

    profile = get_profile(profile_name)
    length = 2 if cls == "branch" else group_length(profile, cls)  # a branch needs a place to go
    return [make_row(profile_name, row_seed(seed, i), length, length, 16, {cls: 1.0})
            for i in range(n)]


def probe(model_path: str | Path, n: int = 50, seed: int = 0, device: str = "cpu",
          log: TextIO = sys.stderr) -> dict[str, Any]:
    """Per class: programs exact (free-running, whole trace) and one-step figures of the
    checkpoint at `model_path`."""
    folder = resolve_model_path(model_path)
    model, meta = load_pretrained(folder, device)
    return probe_model(model, codec_from_options(meta["codec"]), folder, n, seed, device, log)


def probe_model(model, codec: Codec, folder: Path, n: int = 50, seed: int = 0,
                device: str = "cpu", log: TextIO = sys.stderr) -> dict[str, Any]:
    """`probe` of a loaded model (`folder` names it in the result)."""
    if n < 1:
        raise UserError(f"-n must be at least 1; got {n}")
    if not isinstance(codec, CpuCodec) or codec.profile is None:
        raise UserError(f"{folder} is not a CPU model that records its profile")
    from datagen.cpu import get_profile

    by_class = {}
    for cls in get_profile(codec.profile).classes:
        rows = probe_rows(codec.profile, cls, n, seed)
        r = evaluate_rows(model, codec, rows, f"the {cls} probe", device, show_progress=False,
                          log=log)
        one = r["one_step"]
        by_class[cls] = {"programs": r["n"], "programs_exact": r["final_exact"],
                         "step_exact": r["step_exact"], "write_exact": r["write_exact"],
                         "branch_exact": r["branch_exact"],
                         "pc_advance_step_exact": one["pc_advance"]["step_exact"]}
    total = sum(c["programs"] for c in by_class.values())
    exact = sum(c["programs"] * c["programs_exact"] for c in by_class.values())
    return {"model": str(folder), "profile": codec.profile, "n": n, "seed": seed,
            "programs_exact": exact / total, "by_class": by_class}


def format_probe(r: dict[str, Any]) -> str:
    lines = [(f"{r['profile']} single instructions, {r['n']} random programs per class "
              f"(seed {r['seed']}), model {display_path(r['model'])} against Unicorn"), "",
             ("| class | programs exact | step_exact | write_exact | branch_exact | "
              "pc-advance step_exact |"), "| --- | --- | --- | --- | --- | --- |"]
    for c, v in r["by_class"].items():
        lines.append(f"| {c} | {percent(v['programs_exact'])} | {percent(v['step_exact'])} | "
                     f"{percent(v['write_exact'])} | {percent(v['branch_exact'])} | "
                     f"{percent(v['pc_advance_step_exact'])} |")
    lines.append(f"| all | {percent(r['programs_exact'])} | | | | |")
    return "\n".join(lines)
