"""`simulator export`: a run folder -> `trained/NAME`, a checkpoint with its model card.

The card (README.md) says what the model is, what data and command made it, on what hardware,
and, given `simulator eval --json` output, its metrics. With `--average-with`, the weights
exported are the mean of the run's and those of other checkpoints of the same model and codec
(a "model soup": runs that continue one another from the same weights can be averaged).
"""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path
from typing import Any

import torch

from bytesim_common.errors import UserError
from bytesim_common.files import atomic_write, display_path
from datagen.corpus import read_manifest
from simulator.checkpoint import (
    CONFIG,
    LATEST,
    latest_checkpoint,
    load_pretrained,
    load_run_state,
    resolve_model_path,
    save_pretrained,
    weights_id,
)
from simulator.codec import codec_from_options
from simulator.evaluate import format_table

REPO = Path(__file__).resolve().parents[1]
# codec options in which averaged checkpoints may differ (the export keeps the run's): the ABC
# header, canonical or untitled, only decides which lines of the prompt are read, and the ABC
# body, as written or grouped by beats, only where its spaces fall
SOUP_FREE_CODEC = ("header", "body")


def _shown(path: Path | str) -> str:
    """A path as a card states it: relative to the repository, or to the current folder."""
    return display_path(path, REPO, Path.cwd())


def _shown_command(command: str) -> str:
    """A recorded command with its absolute paths made relative as `_shown` does."""
    return shlex.join(_shown(a) if a.startswith("/") else a for a in shlex.split(command))


def _licence_note(manifest: dict[str, Any] | None) -> str:
    if manifest is None:
        return "unknown (the corpus was not found at export time)"
    if manifest.get("kind") == "cpu":
        return "CPU traces made by bytesim's `datagen cpu` (ours; MIT, like the code)."
    sources = manifest.get("args", {}).get("sources") or []
    notes = []
    if "music21" in sources:
        notes.append("tunes from music21's bundled corpus, which is not uniformly free (its "
                     "license.txt files: Essen is for non-commercial use, the Josquin files are "
                     "GPL, other collections state no terms)")
    if "synthetic" in sources:
        notes.append("synthetic tunes from bytesim's generator (ours; MIT)")
    others = [s for s in sources if s not in ("music21", "synthetic")]
    if others:
        notes.append(f"user files ({', '.join(others)}): their owners' terms")
    return "; ".join(notes) + "." if notes else "see the corpus manifest."


def _sequences_note(summary: dict[str, Any], info: dict[str, Any]) -> str:
    seqs = summary.get("sequences")
    if not seqs:
        return "?"
    return (f"train {seqs['train']}, valid {seqs['valid']}; "
            f"{seqs['left_out_longer_than_max_len']} left out as longer than --context "
            f"{info.get('args', {}).get('max_len', '?')}")


def _soup_part(options: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's model config or codec options as averaging compares them: without the
    ABC header and body (SOUP_FREE_CODEC), which only decide how the prompt is read."""
    return {k: v for k, v in options.items() if k not in SOUP_FREE_CODEC}


def average_weights(model: torch.nn.Module, meta: dict[str, Any],
                    others: list[Path | str]) -> list[str]:
    """Set `model`'s floating-point weights to the mean of its own and those of the checkpoints
    `others` (each a checkpoint folder, a run folder or trained/NAME), which must have its model
    config and codec. Returns a card line for each of `others`: its path and weights' hash."""
    own = model.state_dict()
    sums = {k: v.detach().double().clone() for k, v in own.items() if v.is_floating_point()}
    shown = []
    for other in others:
        folder = resolve_model_path(other)
        other_model, other_meta = load_pretrained(folder)
        for part in ("model", "codec"):
            if _soup_part(other_meta[part]) != _soup_part(meta[part]):
                raise UserError(f"--average-with {other}: its {part} differs from the run's; "
                                f"only checkpoints of one model and codec can be averaged")
        weights = other_model.state_dict()
        for k in sums:
            sums[k] += weights[k].double()
        shown.append(f"`{_shown(other)}` (weights {weights_id(other_meta)})")
    model.load_state_dict({k: (sums[k] / (1 + len(others))).to(v.dtype) if k in sums else v
                           for k, v in own.items()})
    return shown


def export_run(run: Path | str, dest: Path | str, eval_json: Path | str | None = None,
               average_with: list[Path | str] | None = None, abc_body: str | None = None) -> Path:
    """Write `dest/` = config.json + weights + README.md (model card) from a run's checkpoint,
    its weights averaged with those of the checkpoints `average_with` where given, and its ABC
    prompt's body read as `abc_body` where given (the run's otherwise: a SOUP_FREE_CODEC option,
    which only decides how a prompt is read)."""
    run, dest = Path(run), Path(dest)
    folder = latest_checkpoint(run) if (run / LATEST).exists() else None
    if folder is None:
        raise UserError(f"{run} is not a run folder with a checkpoint (no {LATEST})")
    model, meta = load_pretrained(folder)
    if abc_body is not None:
        try:
            meta["codec"] = codec_from_options({**meta["codec"], "body": abc_body}).options()
        except ValueError as e:
            raise UserError(f"--abc-body: {e}") from None
    averaged = average_weights(model, meta, average_with) if average_with else []
    info = json.loads((run / "run.json").read_text()) if (run / "run.json").exists() else {}
    summary = json.loads((run / "summary.json").read_text()) \
        if (run / "summary.json").exists() else {}
    step = load_run_state(folder)["step"]
    data = info.get("args", {}).get("data")
    try:
        manifest = read_manifest(data) if data else None
    except UserError:
        manifest = None
    table = ""
    if eval_json is not None:
        try:
            lines = Path(eval_json).read_text().strip().splitlines()
            result = json.loads(lines[-1])
            table = format_table({**result, "data": _shown(result["data"]),
                                  "model": _shown(result["model"])})
        except (OSError, IndexError, json.JSONDecodeError, KeyError) as e:
            raise UserError(f"--eval-json {eval_json}: not `simulator eval --json` output "
                            f"({e})") from None
    if dest.exists() and any(p.name != CONFIG and not p.name.startswith("model")
                             and p.name != "README.md" for p in dest.iterdir()):
        raise UserError(f"{dest} holds other files than a checkpoint; use another folder")
    save_pretrained(model, meta["codec"], dest, meta.get("preset"))
    counts = manifest.get("counts", {}) if manifest else {}
    n_params = sum(p.numel() for p in model.parameters())
    card = [
        f"# {dest.name}", "",
        (f"A bytesim byte model for the `{meta['codec']['task']}` task "
         f"(preset `{meta.get('preset')}`, {n_params / 1e6:.2f}M parameters), "
         f"exported from `{_shown(run)}` at step {step}."), "",
        "| | |", "| --- | --- |",
        (f"| data | `{_shown(data) if data else '?'}` ({counts.get('rows', '?')} rows; "
         f"{manifest.get('generator', '?') if manifest else '?'}, "
         f"args `{json.dumps(manifest.get('args')) if manifest else '?'}`) |"),
        f"| data licence | {_licence_note(manifest)} |",
        f"| sequences | {_sequences_note(summary, info)} |",
        f"| command | `{_shown_command(info['command']) if 'command' in info else '?'}` |",
        f"| steps | {step} of {info.get('args', {}).get('steps', '?')} |",
        *([(f"| weights | the mean of this run's step {step} and {', '.join(averaged)}, "
            f"weighted equally (`--average-with`) |")] if averaged else []),
        f"| wall time | {summary.get('wall_s', '?')} s |",
        f"| dates | trained from {info.get('started', '?')[:10]}, exported {time.strftime('%Y-%m-%d')} |",
        f"| hardware | {info.get('hardware', '?')} x {info.get('processes', 1)} process(es) |",
        f"| codec | `{json.dumps(meta['codec'], sort_keys=True)}` |",
        f"| bytesim | {meta['bytesim_version']} (checkpoint format {meta['format']}) |", "",
        "## Metrics", "",
        table or "Not measured yet: run `simulator eval --model THIS --data CORPUS --json` and "
        "export again with `--eval-json`.", "",
    ]
    atomic_write(dest / "README.md", "\n".join(card).encode())
    return dest
