"""The model benchmarks' measuring functions at toy sizes: the figures exist and are positive.
(Speed itself is never asserted here; see benchmarks/RESULTS.md.)"""

from __future__ import annotations

import json
import math

import pytest
import torch

from benchmarks import branches, generate, memory, train
from benchmarks.results import run_benchmark
from simulator.model import PRESETS

TOY = train.Setup(context=64, batch=1, patch=16, d_model=32, n_heads=2, n_layers=(1, 1), rounds=1)


def positive(x: object) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_train_compare_reports_every_ratio():
    figures = train.compare(TOY)
    assert positive(figures["ours_bytes_per_s"]) and positive(figures["over_flat"])
    assert all(positive(n) for n in figures["params"].values())
    for peer in ("megabyte", "mblm"):
        if peer in figures.get("notes", {}):
            assert figures[f"over_{peer}"] is None
        else:
            assert positive(figures[f"over_{peer}"])


def test_flat_baseline_matches_parameters_and_is_causal():
    ours = train.num_parameters(train.ByteModel(train.our_config(TOY)))
    flat = train.flat_model(TOY, ours)
    one_layer = train.num_parameters(flat.blocks[0])
    assert abs(train.num_parameters(flat) - ours) <= one_layer / 2 + 1
    ids = torch.randint(0, 256, (2, 48))
    changed = ids.clone()
    changed[:, 20:] = (changed[:, 20:] + 1) % 256
    with torch.no_grad():
        a, b = flat(ids), flat(changed)
    assert torch.allclose(a[:, :21], b[:, :21], atol=1e-5)  # logits[:, t] sees ids[:, :t]
    assert not torch.allclose(a[:, 21:], b[:, 21:])


def test_generate_compare_reports_both_ratios():
    s = generate.Setup(presets=("tiny3",), new_bytes=4, recompute_bytes=2, rounds=1)
    figures = generate.compare(PRESETS["tiny3"], s, prompt_bytes=32)
    for key in ("cached_bytes_per_s", "recompute_bytes_per_s", "batch32_bytes_per_s",
                "cached_over_recompute", "cached_over_recompute_end_to_end",
                "batch32_over_batch1"):
        assert positive(figures[key]), key


def test_branches_compare_times_both_ways(tiny_abc2midi):
    tune = tiny_abc2midi.rows[0]["abc"]
    figures = branches.compare(str(tiny_abc2midi.checkpoint), [tune, tune])
    assert figures["tunes"] == 2 and figures["files_changed"] == 0  # one tune, known by heart
    for key in ("greedy_s_per_tune", "branched_s_per_tune", "branched_over_greedy_time"):
        assert positive(figures[key]), key


def test_memory_points_grow_and_a_capped_point_fails_alone():
    stack = memory.profile_stack("tiny", (256, 2048), "cpu")
    assert stack["notes"] == [] and list(stack["peaks"]) == [256, 2048]
    assert all(positive(p) for p in stack["peaks"].values())
    assert stack["peaks"][2048] >= stack["peaks"][256]
    point = memory._run_point("tiny", 256, "cpu", cap=64 * memory.MIB)
    assert "memory capped at 64 MiB" in point["error"]


def test_run_benchmark_prints_json_last(capsys):
    figures = run_benchmark("toy", "doc", lambda quick, device: {"rate": 2.0, "quick_seen": quick},
                            ["--quick", "--json", "--no-record", "--threads", "1"])
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last == figures and last["rate"] == 2.0 and last["quick_seen"] is True
    assert last["torch_threads"] == 1 and last["device"] == "cpu"


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
