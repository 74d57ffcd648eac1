"""Device names: what `--device` becomes before torch sees it."""

import pytest
import torch

from bytesim_common.errors import UserError
from simulator.distributed import Dist, pick_device


@pytest.mark.parametrize(("asked", "rank", "expected"), [
    ("cuda", 0, "cuda:0"), ("auto", 0, "cuda:0"), ("cuda", 3, "cuda:3"), ("cuda:1", 3, "cuda:1")])
def test_a_cuda_device_always_gets_an_index(monkeypatch, asked, rank, expected):
    """torch.cuda.set_device refuses a bare "cuda" (found on the first GPU run): a process of
    its own takes GPU 0, a torchrun rank its local rank, and an index given is kept."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    d = Dist(rank=rank, world=4 if rank else 1, local_rank=rank)
    assert pick_device(asked, d) == expected


def test_cpu_stays_and_bad_names_are_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("auto") == "cpu"
    with pytest.raises(UserError, match="sees no CUDA device"):
        pick_device("cuda")
    with pytest.raises(UserError, match="--device takes"):
        pick_device("tpu")
