"""Training speed: bytes/s of one training step (forward, cross-entropy, backward, AdamW)
of our hierarchical model, side by side in one run with, at the same context and batch:

- a flat causal byte transformer of the same parameter count (our blocks, full attention);
- MEGABYTE-pytorch and MBLM (the `[bench]` extra) at matched shapes: two levels, the same patch
  size, widths, layers per level, heads, head width and MLP ratio, rotary positions, and each
  peer's SDPA attention path (`flash_attn` / `use_flash_attn`), so all four use the same kernel.

Widths and heads are the same at both levels because MEGABYTE-pytorch has one `heads` and one
`dim_head` for every stage (bGPT's own shape is 768 wide at both levels too).
Context: 8192 bytes (bGPT's) in the full run; --quick uses 4096 bytes and a narrower model.
Rounds interleave the models (A B C D, A B C D, ...) and each figure is the median, so a load
change on a shared machine hits every model alike.

    python -m benchmarks.train [--quick] [--json] [--no-record] [--device cuda]
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks.results import run_benchmark
from simulator.blocks import LevelShape, Positions, TransformerBlock, TransformerConfig
from simulator.model import ByteModel, ModelConfig

VOCAB = 258
Forward = Callable[[Tensor], Tensor]  # ids (B, T) -> logits (B, T, V)


@dataclass(frozen=True)
class Setup:
    """One comparison: context and batch, and the two-level shape every model gets."""

    context: int  # bytes per sequence
    batch: int
    patch: int  # bytes per top-level patch
    d_model: int  # width at both levels
    n_heads: int  # heads at both levels
    n_layers: tuple[int, int]  # (patch level, byte level)
    rounds: int  # timed steps per model (interleaved)


SETUPS: dict[tuple[str, bool], Setup] = {  # (device, quick) -> setup
    ("cpu", True): Setup(4096, 1, 16, 128, 2, (4, 2), rounds=3),
    ("cpu", False): Setup(8192, 1, 16, 256, 4, (6, 2), rounds=3),
    ("cuda", True): Setup(8192, 8, 16, 768, 12, (12, 3), rounds=5),  # bGPT's shape
    ("cuda", False): Setup(8192, 16, 16, 768, 12, (12, 3), rounds=20),
}


def autocast(device: torch.device):
    """bf16 autocast on CUDA (as `simulator train` does there); plain fp32 on the CPU."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_step(forward: Forward, opt: torch.optim.Optimizer, ids: Tensor) -> None:
    """One training step on ids (B, T): forward, cross-entropy on every byte, backward, AdamW.
    (The peers' logits are next-byte aligned and ours same-byte; the cost is the same.)"""
    with autocast(ids.device):
        logits = forward(ids)  # (B, T, V)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), ids.flatten())
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def num_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def our_config(s: Setup, levels: int = 2) -> ModelConfig:
    """Our model at the setup's shape; levels=3 splits each patch again in four (memory bench)."""
    patches = (s.patch,) if levels == 2 else (s.patch, s.patch // 4)
    return ModelConfig(
        vocab_size=VOCAB,
        patch_sizes=patches,
        d_model=(s.d_model,) * levels,
        n_layers=(s.n_layers[0],) + (s.n_layers[1],) * (levels - 1),
        n_heads=(s.n_heads,) * levels,
        block_types=("transformer",) * levels,
        max_len=s.context,
    )


class FlatByteModel(nn.Module):
    """The baseline: one causal transformer over all bytes (our blocks, full attention, RoPE)."""

    def __init__(self, d_model: int, n_heads: int, n_layers: int, vocab_size: int = VOCAB):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model)
        self.start = nn.Parameter(torch.zeros(d_model))
        shape, config = LevelShape(d_model=d_model, group=None), TransformerConfig(n_heads=n_heads)
        self.blocks = nn.ModuleList(TransformerBlock(shape, config) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)

    def forward(self, ids: Tensor) -> Tensor:
        """ids (B, T) -> logits (B, T, V); logits[:, t] predicts ids[:, t] from ids[:, :t]."""
        B, T = ids.shape
        x = torch.cat([self.start.expand(B, 1, -1), self.embed(ids[:, :-1])], 1)  # (B, T, D)
        pos = Positions(torch.arange(T, device=ids.device)[None])  # (1, T)
        for block in self.blocks:
            x = block(x, pos)
        return self.head(self.norm(x))


def flat_model(s: Setup, target_params: int) -> FlatByteModel:
    """A flat model at the setup's width with the layer count closest to target_params."""
    per_layer = num_parameters(FlatByteModel(s.d_model, s.n_heads, 1)) - num_parameters(
        FlatByteModel(s.d_model, s.n_heads, 0))
    fixed = num_parameters(FlatByteModel(s.d_model, s.n_heads, 0))
    return FlatByteModel(s.d_model, s.n_heads, max(1, round((target_params - fixed) / per_layer)))


def megabyte_model(s: Setup) -> tuple[nn.Module, Forward]:
    from MEGABYTE_pytorch import MEGABYTE

    model = MEGABYTE(
        num_tokens=VOCAB,
        dim=(s.d_model, s.d_model),
        depth=s.n_layers,
        max_seq_len=(s.context // s.patch, s.patch),
        dim_head=s.d_model // s.n_heads,
        heads=s.n_heads,
        ff_mult=4,
        rel_pos=True,
        flash_attn=True,
    )
    return model, model


def mblm_model(s: Setup) -> tuple[nn.Module, Forward]:
    from mblm import MBLM, MBLMModelConfig, MBLMReturnType
    from mblm import TransformerBlock as MBLMBlock

    block = MBLMBlock(
        attn_head_dims=s.d_model // s.n_heads,
        attn_num_heads=s.n_heads,
        attn_use_rot_embs=True,
        ff_multiplier=4,
        use_flash_attn=True,
    )
    model = MBLM(MBLMModelConfig(
        num_tokens=VOCAB,
        pad_token_id=256,
        hidden_dims=(s.d_model, s.d_model),
        num_layers=s.n_layers,
        seq_lens=(s.context // s.patch, s.patch),
        train_checkpoint_chunks=None,
        block=[block, block],
    ))
    return model, functools.partial(model.forward, return_type=MBLMReturnType.LOGITS)


PEERS: dict[str, Callable[[Setup], tuple[nn.Module, Forward]]] = {
    "megabyte": megabyte_model,
    "mblm": mblm_model,
}


def compare(s: Setup, device: str = "cpu") -> dict:
    """Training bytes/s of ours, the flat model and the peers at setup s, and the ratios."""
    dev = torch.device(device)
    torch.manual_seed(0)
    ours = ByteModel(our_config(s))
    models: dict[str, tuple[nn.Module, Forward]] = {"ours": (ours, ours)}
    flat = flat_model(s, num_parameters(ours))
    models["flat"] = (flat, flat)
    notes = {}
    for name, build in PEERS.items():
        try:
            models[name] = build(s)
        except ImportError as e:
            notes[name] = f"skipped: {e.name} is not installed (pip install -e '.[bench]')"
    steps: dict[str, Callable[[], None]] = {}
    ids = torch.randint(0, 256, (s.batch, s.context),
                        generator=torch.Generator().manual_seed(0)).to(dev)
    for name, (module, forward) in models.items():
        module.to(dev).train()
        opt = torch.optim.AdamW(module.parameters(), lr=1e-4)
        steps[name] = functools.partial(train_step, forward, opt, ids)
        steps[name]()  # warm-up: allocator, optimizer state, kernels
    seconds: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(s.rounds):
        for name, step in steps.items():
            synchronize(dev)
            start = time.perf_counter()
            step()
            synchronize(dev)
            seconds[name].append(time.perf_counter() - start)
    rate = {name: s.batch * s.context / statistics.median(t) for name, t in seconds.items()}
    figures = {
        "setup": {k: str(v) if isinstance(v, tuple) else v for k, v in asdict(s).items()},
        "flat_layers": len(flat.blocks),
        "params": {name: num_parameters(module) for name, (module, _) in models.items()},
        "bytes_per_s": rate,
        "ours_bytes_per_s": rate["ours"],
    }
    for name in ("flat", *PEERS):
        figures[f"over_{name}"] = rate["ours"] / rate[name] if name in rate else None
    if notes:
        figures["notes"] = notes
    return figures


def measure(quick: bool, device: str) -> dict:
    return compare(SETUPS[device, quick], device)


def main(argv: list[str] | None = None) -> dict:
    return run_benchmark("train", __doc__, measure, argv)


if __name__ == "__main__":
    main()
