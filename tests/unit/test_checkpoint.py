"""Checkpoints: round trips (single file and sharded), and one-line refusals of bad folders."""

import hashlib
import json

import pytest
import torch
from helpers import ROOT
from safetensors.torch import load_file, save_file

from bytesim_common.errors import UserError
from simulator.checkpoint import INDEX, load_pretrained, save_pretrained
from simulator.codec import make_codec
from simulator.model import PRESETS, ByteModel

CODEC = make_codec("cpu", 16).options()


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = ByteModel(PRESETS["tiny"])
    save_pretrained(model, CODEC, tmp_path / "ck", preset="tiny")
    return model, tmp_path / "ck"


def _same_outputs(a, b):
    ids = torch.randint(0, 256, (2, 32))
    with torch.no_grad():
        return torch.equal(a.eval()(ids), b.eval()(ids))


def test_round_trip(saved):
    model, path = saved
    loaded, meta = load_pretrained(path)
    assert meta["codec"] == CODEC and meta["preset"] == "tiny"
    assert _same_outputs(model, loaded)
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors"]


def test_sharded_round_trip(tmp_path):
    model = ByteModel(PRESETS["tiny"])
    save_pretrained(model, CODEC, tmp_path, max_shard_bytes=200_000)
    shards = sorted(tmp_path.glob("model-*-of-*.safetensors"))
    assert len(shards) > 1 and (tmp_path / INDEX).exists()
    assert not (tmp_path / "model.safetensors").exists()
    index = json.loads((tmp_path / INDEX).read_text())
    assert set(index["weight_map"].values()) == {p.name for p in shards}
    assert _same_outputs(model, load_pretrained(tmp_path)[0])
    save_pretrained(model, CODEC, tmp_path)  # back to one file: the stale shards go
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]


def _refused(path, match):
    with pytest.raises(UserError, match=match) as e:
        load_pretrained(path)
    assert "\n" not in str(e.value)


def test_truncated_or_tampered_weights(saved):
    _, path = saved
    f = path / "model.safetensors"
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    _refused(path, "truncated or tampered")
    f.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    _refused(path, "truncated or tampered")
    f.unlink()
    _refused(path, "model.safetensors is missing")


def _edit_config(path, **changes):
    cfg = json.loads((path / "config.json").read_text())
    cfg.update(changes)
    (path / "config.json").write_text(json.dumps(cfg))
    return cfg


def test_weights_from_another_preset(saved):
    _, path = saved
    _edit_config(path, model=PRESETS["small"].to_dict())
    _refused(path, "another preset")
    _edit_config(path, model={**PRESETS["tiny"].to_dict(), "d_model": [64, 48]})
    _refused(path, "has shape")


def test_other_version_and_unknown_fields(saved, tmp_path):
    _, path = saved
    cfg = _edit_config(path, format=99)
    _refused(path, "format 99")
    _edit_config(path, format=cfg["format"] - 98, surprise=1)
    _refused(path, "unknown field")
    _edit_config(path, surprise=None)
    cfg = json.loads((path / "config.json").read_text())
    del cfg["surprise"]
    cfg["model"]["wings"] = 2
    (path / "config.json").write_text(json.dumps(cfg))
    _refused(path, "wings")
    _refused(tmp_path / "nowhere", "no checkpoint folder")
    (path / "config.json").write_text("{not json")
    _refused(path, "not valid JSON")


def test_model_card_names_the_music_data_licences():
    from simulator.export import _licence_note

    note = _licence_note({"kind": "music", "args": {"sources": ["music21", "synthetic"]}})
    assert "non-commercial" in note and "GPL" in note and "synthetic" in note


# The shipped checkpoints' outputs on a fixed input, measured before their config.json was read
# through typed block configs (cpu-rv32e and cpu-rv32e-mini: as retrained on 2026-12-01): the argmax
# predictions (a hash) and the logits' sum and |sum|. A retrained checkpoint updates its line.
SHIPPED_OUTPUTS = {
    "cpu-rv32e": ("b7dc56e857912359", -60247.704, 132592.252),
    "cpu-rv32e-mini": ("9cef115298e0de98", -76568.983, 120814.969),
    "abc2midi": ("25fa36ac06d08652", -15808.047, 53738.61),
    "abc2midi-m0t": ("269df3d1befe2aec", -89162.804, 95359.642),
    "abc2midi-real": ("8d3c848640f14183", -2534.274, 47130.157),
    "midi2abc": ("93ecde7579683dda", -90889.802, 99324.469),
}


@pytest.mark.parametrize("name", sorted(SHIPPED_OUTPUTS))
def test_shipped_checkpoints_load_and_give_the_same_outputs(name):
    import hashlib

    model, _ = load_pretrained(ROOT / "trained" / name)
    U = model.config.patch_sizes[0]
    ids = (torch.arange(4 * U) * 37 % 258)[None]
    with torch.no_grad():
        logits = model(ids)
    argmax = hashlib.sha256(logits.argmax(-1).numpy().tobytes()).hexdigest()[:16]
    want_argmax, want_sum, want_abs = SHIPPED_OUTPUTS[name]
    assert argmax == want_argmax
    assert float(logits.double().sum()) == pytest.approx(want_sum, rel=1e-6)
    assert float(logits.double().abs().sum()) == pytest.approx(want_abs, rel=1e-6)


def test_model_card_states_paths_relative_and_the_dates(tiny_cpu, tmp_path, monkeypatch):
    """A card names the run, the data and the command relative to where they were exported
    (the repository or the current folder), never the machine's absolute paths, and is dated."""
    from simulator.export import export_run

    root = tiny_cpu.run.parent
    monkeypatch.chdir(root)
    card = (export_run(tiny_cpu.run.name, tmp_path / "card") / "README.md").read_text()
    assert str(root) not in card
    assert f"exported from `{tiny_cpu.run.name}`" in card
    assert "--data corpus" in card and "| data | `corpus`" in card
    assert "| dates | trained from 20" in card


def test_export_averages_with_other_checkpoints(tiny_cpu, tiny_abc2midi, tmp_path):
    """`--average-with`: the exported weights are the mean of the run's and the others'
    (here the run's own weights times 3: the mean is twice the run's), the card names them, and
    a checkpoint of another model or codec is refused in one line."""
    from simulator.export import export_run

    model, meta = load_pretrained(tiny_cpu.checkpoint)
    tripled = {k: 3 * v if v.is_floating_point() else v for k, v in model.state_dict().items()}
    model.load_state_dict(tripled)
    save_pretrained(model, meta["codec"], tmp_path / "tripled", meta.get("preset"))
    out = export_run(tiny_cpu.run, tmp_path / "mean", average_with=[tmp_path / "tripled"])
    own, averaged = load_pretrained(tiny_cpu.checkpoint)[0], load_pretrained(out)[0]
    weights = averaged.state_dict()
    for k, v in own.state_dict().items():
        assert torch.allclose(weights[k], 2 * v if v.is_floating_point() else v)
    assert "| weights | the mean of this run's step" in (out / "README.md").read_text()
    with pytest.raises(UserError, match="differs from the run's"):
        export_run(tiny_cpu.run, tmp_path / "mixed", average_with=[tiny_abc2midi.checkpoint])


def test_a_soup_may_mix_abc_headers_and_keeps_the_runs(tiny_abc2midi, tmp_path):
    """Checkpoints that differ only in the ABC header (which prompt lines are read) can be
    averaged; the export keeps the run's codec."""
    from simulator.export import export_run

    model, meta = load_pretrained(tiny_abc2midi.checkpoint)
    untitled = {**meta["codec"], "header": "untitled"}
    save_pretrained(model, untitled, tmp_path / "untitled", meta.get("preset"))
    out = export_run(tiny_abc2midi.run, tmp_path / "mean", average_with=[tmp_path / "untitled"])
    assert load_pretrained(out)[1]["codec"] == meta["codec"]
    save_pretrained(model, {**untitled, "abc": "note-slots"}, tmp_path / "slots",
                    meta.get("preset"))
    with pytest.raises(UserError, match="its codec differs"):
        export_run(tiny_abc2midi.run, tmp_path / "mixed", average_with=[tmp_path / "slots"])


def test_export_can_read_the_abc_body_grouped_by_beats(tiny_abc2midi, tmp_path):
    """`--abc-body beats`: the same weights, the codec's body option set (it only decides how a
    prompt is read); a soup may mix bodies, and an unknown body is refused in one line."""
    from simulator.export import export_run

    out = export_run(tiny_abc2midi.run, tmp_path / "beats", abc_body="beats")
    (model, meta), (own, own_meta) = load_pretrained(out), load_pretrained(tiny_abc2midi.checkpoint)
    assert meta["codec"] == {**own_meta["codec"], "body": "beats"}
    for k, v in own.state_dict().items():
        assert torch.equal(model.state_dict()[k], v)
    assert export_run(tiny_abc2midi.run, tmp_path / "mean", average_with=[out])
    with pytest.raises(UserError, match="--abc-body"):
        export_run(tiny_abc2midi.run, tmp_path / "bad", abc_body="sideways")


def test_a_tensor_over_the_shard_cap_is_split_and_joined(tmp_path):
    """No shard holds more than the cap: a bigger tensor (tiny's 1 MB top-level embedding
    against a 200 kB cap) is stored as row parts and comes back whole."""
    model = ByteModel(PRESETS["tiny"])
    cap = 200_000
    big = "levels.0.embed.weight"
    assert model.state_dict()[big].numel() * 4 > cap
    save_pretrained(model, CODEC, tmp_path, max_shard_bytes=cap)
    weight_map = json.loads((tmp_path / INDEX).read_text())["weight_map"]
    assert big not in weight_map and f"{big}@part0" in weight_map
    for shard in tmp_path.glob("model-*-of-*.safetensors"):
        tensors = load_file(shard)
        assert sum(t.numel() * t.element_size() for t in tensors.values()) <= cap
    loaded = load_pretrained(tmp_path)[0]
    assert torch.equal(loaded.state_dict()[big], model.state_dict()[big])
    assert _same_outputs(model, loaded)
    # a part gone missing is refused in one line
    shard = tmp_path / weight_map[f"{big}@part1"]
    tensors = {k: v for k, v in load_file(shard).items() if k != f"{big}@part1"}
    save_file(tensors, shard)
    config = json.loads((tmp_path / "config.json").read_text())
    config["files"][shard.name] = hashlib.sha256(shard.read_bytes()).hexdigest()
    (tmp_path / "config.json").write_text(json.dumps(config))
    _refused(tmp_path, "parts")


def test_the_largest_shipped_checkpoint_saves_under_the_cap(tmp_path):
    """trained/cpu-rv32e (its top level's 4.2 MB embedding among 19 MB of weights), saved
    again: every file under the 15 MiB cap."""
    from simulator.checkpoint import MAX_SHARD_BYTES

    model, meta = load_pretrained(ROOT / "trained" / "cpu-rv32e")
    save_pretrained(model, meta["codec"], tmp_path, meta["preset"])
    assert max(p.stat().st_size for p in tmp_path.glob("*.safetensors")) < MAX_SHARD_BYTES + 2**16
    again = load_pretrained(tmp_path)[0].state_dict()
    assert all(torch.equal(t, again[k]) for k, t in model.state_dict().items())
