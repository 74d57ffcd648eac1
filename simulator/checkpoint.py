"""Checkpoints (docs/formats.md): `config.json` + safetensors weights (no pickle), and run-folder state.

A checkpoint folder holds `config.json` (model config, codec options, format and bytesim version,
the sha256 of every weights file) and either `model.safetensors` or, when the weights exceed
`max_shard_bytes`, HF-style shards `model-0000i-of-0000n.safetensors` listed in
`model.safetensors.index.json`; no shard holds more than `max_shard_bytes` of tensors, so a
tensor larger than that is stored as row parts `NAME@part0`, `NAME@part1`, ... (joined on
loading). Loading checks everything and fails with one line.

A run folder (`simulator train --out RUN`) keeps its latest resumable state in
`RUN/checkpoints/step-XXXXXXX/` (a checkpoint folder + `state.pt`: optimizer, RNG, step), made
in a temporary folder and renamed into place; `RUN/latest` names it (rewritten atomically).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from bytesim_common.errors import UserError
from bytesim_common.files import atomic_write, atomic_write_json
from simulator import __version__
from simulator.codec import codec_from_options

if TYPE_CHECKING:
    from simulator.model import ByteModel

FORMAT = 1  # bumped whenever the layout of a checkpoint changes
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
INDEX = "model.safetensors.index.json"
STATE = "state.pt"
LATEST = "latest"
MAX_SHARD_BYTES = 15 * 2**20  # files over 16 MB cannot travel back from a remote GPU machine
PART = "@part"  # a tensor over the cap is stored as NAME@part0, NAME@part1, ... (rows of it)
CONFIG_KEYS = {"format", "bytesim_version", "model", "codec", "files", "preset"}
WEIGHTS_NAME = re.compile(r"model(-\d{5}-of-\d{5})?\.safetensors")


# ---------------------------------------------------------------------------------------------
# Weights


def _tied_groups(model: torch.nn.Module) -> list[list[str]]:
    """Names of state-dict entries that share storage (tied weights), first name first."""
    groups: dict[tuple, list[str]] = {}
    for name, t in model.state_dict().items():
        groups.setdefault((t.data_ptr(), t.shape, t.stride()), []).append(name)
    return [g for g in groups.values() if len(g) > 1]


def _unique_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict without the aliases of tied weights, as contiguous CPU tensors."""
    aliases = {n for g in _tied_groups(model) for n in g[1:]}
    return {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()
            if k not in aliases}


def _split_by_rows(name: str, t: torch.Tensor, limit: int) -> dict[str, torch.Tensor]:
    """A tensor of more than `limit` bytes as parts `NAME@partK` of whole rows (dim 0), each of
    at most `limit` bytes; `_join_parts` puts it back."""
    row = t[0].numel() * t.element_size() if t.dim() else t.element_size()
    if t.dim() == 0 or row > limit:
        raise ValueError(f"tensor {name}: one row ({row} bytes) exceeds the shard cap of "
                         f"{limit} bytes")
    rows = limit // row
    return {f"{name}{PART}{k}": t[a: a + rows].clone()
            for k, a in enumerate(range(0, t.shape[0], rows))}


def _join_parts(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of `_split_by_rows` over a whole state dict."""
    parts: dict[str, dict[int, torch.Tensor]] = {}
    out = {}
    for key, t in tensors.items():
        name, sep, k = key.rpartition(PART)
        if sep and k.isdigit():
            parts.setdefault(name, {})[int(k)] = t
        else:
            out[key] = t
    for name, pieces in parts.items():
        if sorted(pieces) != list(range(len(pieces))):
            raise ValueError(f"tensor {name}: parts {sorted(pieces)} are not 0..{len(pieces) - 1}")
        out[name] = torch.cat([pieces[k] for k in range(len(pieces))])
    return out


def _shards(tensors: dict[str, torch.Tensor], limit: int) -> list[dict[str, torch.Tensor]]:
    """Pack tensors, in order, into shards of at most `limit` bytes; a bigger tensor is split."""
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for big_name, big in tensors.items():
        n_big = big.numel() * big.element_size()
        pieces = _split_by_rows(big_name, big, limit) if n_big > limit else {big_name: big}
        for name, t in pieces.items():
            n = t.numel() * t.element_size()
            if shards[-1] and size + n > limit:
                shards.append({})
                size = 0
            shards[-1][name] = t
            size += n
    return shards


def save_pretrained(model: ByteModel, codec_info: dict[str, Any], path: Path | str,
                    preset: str | None = None, max_shard_bytes: int = MAX_SHARD_BYTES) -> None:
    """Write `config.json` and the weights of `model` (a `ByteModel`) to the folder `path`."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    shards = _shards(_unique_tensors(model), max_shard_bytes)
    n = len(shards)
    names = [WEIGHTS] if n == 1 else [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]
    files = {}
    for name, shard in zip(names, shards):
        data = st_save(shard, metadata={"format": "pt"})
        atomic_write(path / name, data)
        files[name] = hashlib.sha256(data).hexdigest()
    if n > 1:
        atomic_write_json(path / INDEX, {
            "metadata": {"total_size": sum(t.numel() * t.element_size()
                                           for s in shards for t in s.values())},
            "weight_map": {k: name for name, s in zip(names, shards) for k in s}})
    for stale in path.glob("model*.safetensors*"):
        if stale.name not in files and stale.name != (INDEX if n > 1 else None):
            stale.unlink()
    atomic_write_json(path / CONFIG, {
        "format": FORMAT, "bytesim_version": __version__, "preset": preset,
        "model": model.config.to_dict(), "codec": dict(codec_info), "files": files})


def read_config(path: Path | str) -> dict[str, Any]:
    """`config.json` of a checkpoint folder, checked for format and unknown fields."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"no checkpoint folder {path}")
    cfg_path = path / CONFIG
    if not cfg_path.exists():
        raise UserError(f"{path} is not a checkpoint: no {CONFIG}")
    try:
        cfg = json.loads(cfg_path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{cfg_path} is not valid JSON: {e}") from None
    if not isinstance(cfg, dict):
        raise UserError(f"{cfg_path} is not a JSON object")
    if cfg.get("format") != FORMAT:
        raise UserError(f"{path} was saved by bytesim {cfg.get('bytesim_version', '?')} in "
                        f"checkpoint format {cfg.get('format')!r}; this bytesim ({__version__}) "
                        f"reads format {FORMAT}")
    unknown = sorted(set(cfg) - CONFIG_KEYS)
    missing = sorted(CONFIG_KEYS - set(cfg))
    if unknown or missing:
        what = (f"unknown field(s) {', '.join(unknown)}" if unknown
                else f"missing field(s) {', '.join(missing)}")
        raise UserError(f"{cfg_path} has {what}")
    return cfg


def model_config_from_dict(fields: dict[str, Any], where: str):
    """A `ModelConfig` from its JSON form, refusing unknown fields."""
    from simulator.model import ModelConfig

    try:
        return ModelConfig.from_dict(fields)
    except (TypeError, ValueError) as e:
        raise UserError(f"{where}: invalid model config: {e}") from None


def _read_weights(path: Path, files: dict[str, str]) -> dict[str, torch.Tensor]:
    if not isinstance(files, dict) or not files:
        raise UserError(f"{path / CONFIG} lists no weights files")
    tensors: dict[str, torch.Tensor] = {}
    for name, sha in sorted(files.items()):
        if not WEIGHTS_NAME.fullmatch(name):  # safetensors files of this folder only
            raise UserError(f"{path / CONFIG} lists {name!r}, which is not a weights file of "
                            f"this folder ({WEIGHTS} or model-NNNNN-of-NNNNN.safetensors)")
        f = path / name
        if not f.is_file():
            raise UserError(f"{path} is incomplete: {name} is missing")
        data = f.read_bytes()
        if hashlib.sha256(data).hexdigest() != sha:
            raise UserError(f"{f} does not match the sha256 in {CONFIG} (truncated or tampered)")
        try:
            tensors.update(st_load(data))
        except (SafetensorError, ValueError) as e:
            raise UserError(f"{f} is not a readable safetensors file: {e}") from None
    try:
        return _join_parts(tensors)
    except (ValueError, RuntimeError) as e:  # missing parts, parts of other widths
        raise UserError(f"{path}: {e}") from None


def _check_tensors(model: torch.nn.Module, tensors: dict[str, torch.Tensor], where: str) -> None:
    want = model.state_dict()
    aliases = {n for g in _tied_groups(model) for n in g[1:]}
    missing = sorted(set(want) - set(tensors) - aliases)
    unexpected = sorted(set(tensors) - set(want))
    if missing or unexpected:
        what = (f"lacks tensor {missing[0]}" if missing else f"has unknown tensor {unexpected[0]}")
        n = len(missing) + len(unexpected)
        more = f" (and {n - 1} more)" if n > 1 else ""
        raise UserError(f"{where} {what}{more}: the weights are not those of the model its "
                        f"{CONFIG} describes (weights from another preset?)")
    for name, t in tensors.items():
        if tuple(t.shape) != tuple(want[name].shape):
            raise UserError(f"{where}: tensor {name} has shape {tuple(t.shape)} but the config "
                            f"makes {tuple(want[name].shape)} (weights from another preset?)")


def weights_id(meta: dict[str, Any]) -> str:
    """A short name for a checkpoint's weights (from its `config.json`): a hash of the sha256
    of its weights files, as model cards and mined corpora cite them."""
    return hashlib.sha256(json.dumps(meta["files"], sort_keys=True).encode()).hexdigest()[:16]


def load_pretrained(path: Path | str, device: str | torch.device = "cpu"):
    """(model, meta): the `ByteModel` saved in `path` (in eval mode) and its `config.json`."""
    from simulator.model import ByteModel

    path = Path(path)
    meta = read_config(path)
    config = model_config_from_dict(meta["model"], str(path / CONFIG))
    try:
        codec_from_options(meta["codec"])
    except (TypeError, ValueError, KeyError) as e:
        raise UserError(f"{path / CONFIG}: invalid codec options {meta['codec']!r}: {e}") from None
    tensors = _read_weights(path, meta["files"])
    try:
        model = ByteModel(config)
    except (RuntimeError, ValueError) as e:  # e.g. a negative width
        raise UserError(f"{path / CONFIG}: invalid model config: {e}") from None
    _check_tensors(model, tensors, str(path))
    model.load_state_dict(tensors, strict=False)
    return model.to(device).eval(), meta


# ---------------------------------------------------------------------------------------------
# Run folders


def save_run_state(run: Path | str, model: ByteModel, codec_info: dict[str, Any],
                   preset: str | None, state: dict[str, Any]) -> Path:
    """Atomically store a resumable checkpoint of a run; return its folder."""
    run = Path(run)
    root = run / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{state['step']:07d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
    try:
        save_pretrained(model, codec_info, tmp, preset)
        try:
            torch.save(state, tmp / STATE)
        except RuntimeError as e:  # torch's zip writer reports a full disk this way
            raise OSError(f"writing {STATE} failed ({e})") from None
        final = root / name
        if final.exists():  # left by an earlier, interrupted attempt; `latest` names another
            _discard(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write(run / LATEST, (name + "\n").encode())
    for old in root.iterdir():
        if old.name != name:
            _discard(old)
    return final


def _discard(folder: Path) -> None:
    """Delete a folder so that it is never seen half-deleted: hide it (rename), then delete."""
    if not folder.name.startswith("."):
        try:
            folder = folder.rename(folder.with_name(f".{folder.name}.{os.getpid()}.old"))
        except OSError:
            pass
    shutil.rmtree(folder, ignore_errors=True)


def latest_checkpoint(run: Path | str) -> Path | None:
    """The folder of a run's latest checkpoint, or None when it has none yet."""
    run = Path(run)
    pointer = run / LATEST
    if not pointer.exists():
        return None
    folder = run / "checkpoints" / pointer.read_text().strip()
    if not folder.is_dir():
        raise UserError(f"{pointer} names {folder.name}, which is missing")
    return folder


def load_run_state(folder: Path | str) -> dict[str, Any]:
    """The optimizer/RNG/step state saved beside a run checkpoint (no pickle)."""
    path = Path(folder) / STATE
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{path} is missing; the run cannot be resumed") from None
    except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError) as e:
        raise UserError(f"{path} is unreadable ({type(e).__name__}); the run cannot be "
                        "resumed") from None


def resolve_model_path(path: Path | str) -> Path:
    """A checkpoint folder from `RUN` (its latest checkpoint) or `trained/NAME`."""
    path = Path(path)
    if (path / CONFIG).exists():
        return path
    folder = latest_checkpoint(path)  # None: not a run folder, or one without a checkpoint yet
    if folder is not None:
        return folder
    if not path.exists():
        raise UserError(f"no model at {path}")
    raise UserError(f"{path} is neither a checkpoint (no {CONFIG}) nor a run folder "
                    f"(no {LATEST}; has it saved a checkpoint yet?)")
