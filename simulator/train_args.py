"""The arguments of `simulator train`: one typed dataclass, from whose fields the command's
options are built (each default is defined once), and their checks."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from bytesim_common.cli import option
from bytesim_common.errors import UserError
from simulator.abc_beats import ABC_BODIES
from simulator.abc_slots import ABC_LAYOUTS
from simulator.codec import (
    ABC_HEADERS,
    AUX_TARGETS,
    CPU_LAYOUTS,
    IR_WORDS,
    MIDI_LAYOUTS,
    RECORD_PROMPTS,
    TASKS,
    parse_record_prompt,
)

if TYPE_CHECKING:
    from simulator.distributed import Dist

CONFIG_OVERRIDES = ("max_len", "local_window", "bit_embed", "bit_head")  # TrainArgs that replace the preset's ModelConfig


@dataclass
class TrainArgs:
    """The arguments of a training run: `simulator train`'s options are built from these fields
    (`bytesim_common.cli.add_dataclass_options`), so each default is defined here only."""

    task: str = option(choices=list(TASKS), help="cpu, abc2midi or midi2abc")
    data: str = option(help="corpus folder (made by `datagen`)")
    out: str = option(help="run folder (checkpoints, metrics, loss curve)")
    preset: str = option("tiny", help="model preset (see simulator.model.PRESETS)")
    steps: int = option(1000, help="optimizer steps")
    seed: int = option(0, help="seed of the weights and of the batches")
    save_every: int = option(200, help="checkpoint every K steps")
    resume: bool = option(False, help="continue the run in --out")
    batch_size: int = option(32, help="sequences per step, over all processes and --grad-accum "
                             "micro-steps")
    lr: float = option(1e-3, help="peak learning rate")
    device: str = option("auto", help="auto (default), cpu, cuda, cuda:N")
    grad_accum: int = option(1, help="micro-steps per optimizer step")
    sort_window: int = option(8, help="batches whose sequences are sorted by length together, so "
                              "that a batch pads less (1 = plain shuffling)")
    eval_every: int = option(100, help="validation loss every K steps")
    valid_limit: int | None = option(1000, help="validation rows scored (the split's first N; "
                                     "0 = all)")
    schedule: str = option("constant", choices=["constant", "cosine"],
                           help="constant with a linear decay over the last --decay-frac of the "
                           "steps (default), or cosine")
    warmup: int | None = option(None, help="linear warmup steps (default: 5%% of --steps, at "
                                "most 200)")
    decay_frac: float = option(0.2, help="constant schedule: the last fraction of the steps "
                               "decays linearly")
    min_lr_ratio: float = option(0.1, help="the lowest learning rate, as a fraction of --lr")
    max_len: int | None = option(None, flag="--context", aliases=("--max-len",), metavar="BYTES",
                                 help="longest sequence in bytes (default: the preset's "
                                 "context); longer sequences are left out and counted")
    local_window: int | None = option(None, help="bytes before its patch that the byte level "
                                      "attends to (the copy path; default: the preset's)")
    bit_embed: bool | None = option(None, help="also embed the 8 bits of every byte (default: "
                                    "the preset's)")
    bit_head: bool | None = option(None, help="also score every byte by its 8 bits, one logit "
                                   "per bit shared by all bytes (default: the preset's)")
    checkpoint_activations: bool = option(
        False, help="keep only each block's input and recompute its activations in the backward "
        "pass: much less memory for long contexts, the same gradients")
    weight_decay: float = option(0.1, help="AdamW weight decay (matrices only)")
    clip: float = option(1.0, help="gradient norm clipping")
    ir_word: str = option("executed", choices=list(IR_WORDS),
                          const_flags={"--interleave-ir": "fetched"},
                          help="cpu: an instruction word in each state block: none; fetched (the "
                          "word at the state's pc, after it, predicted: bGPT's IR); given (the "
                          "same, but given, not predicted, and the trace ends where the "
                          "predicted pc leaves the program); executed (the word executed to "
                          "reach the state, before it, given; the default: docs/training.md, "
                          "the ladder); executed-patch (the same word in a patch of its own, so "
                          "that the state starts on a patch boundary); executed-operands "
                          "(RISC-V: the executed word, then the values of the registers it "
                          "reads, given)")
    cpu_layout: str = option("states", choices=list(CPU_LAYOUTS),
                             help="cpu: states (every full state, with --ir-word's word) or "
                             "records (RISC-V commit records: per step the word and the values "
                             "it reads, given, then the next pc, the register written and its "
                             "value; states rebuilt by replay; --ir-word does not apply) or "
                             "decoded-records (records that also give the word's pc and its "
                             "decoded immediate) or bit-records (decoded records with the "
                             "immediate, the values read and the value written one bit per "
                             "byte)")
    record_prompt: str = option("full", metavar="|".join(RECORD_PROMPTS),
                                help="cpu, commit records: what comes before the first record: "
                                "full (the profile's header, the program, the records header "
                                "and state_0; the default), state (the profile's header and "
                                "state_0), header (the profile's header alone), blank (the "
                                "header, then PAD as long as full's rest: a control) or "
                                "blank-N (the header, then N patches of PAD): every value a "
                                "record needs is given in the records, so the shorter prompts "
                                "make shorter sequences (docs/formats.md)")
    midi_codec: str = option("events", choices=list(MIDI_LAYOUTS),
                             help="abc2midi/midi2abc: the MIDI as its event stream, without the "
                             "header chunk and chunk lengths, generated as well-formed events "
                             "only (events, the default); the same with each note starting a "
                             "patch (note-aligned) or with the tracks after the first merged in "
                             "time order (merged-events); or as the file's bytes (file; "
                             "docs/formats.md)")
    abc_layout: str = option("text", choices=list(ABC_LAYOUTS),
                             help="abc2midi/midi2abc: the ABC (prompt or target) as it is (text, "
                             "the default) or with its header padded to a patch and each note "
                             "of its body starting a 4-byte slot of its own (note-slots), or "
                             "each note and each guitar chord (note-gchord-slots; "
                             "docs/formats.md)")
    abc_header: str = option("canonical", choices=list(ABC_HEADERS),
                             help="abc2midi: the ABC prompt's header in canonical form "
                             "(canonical, the default) or without its X: and T: lines "
                             "(untitled), so that the tune's number and title, which do not "
                             "change abc2midi's file, are not read (docs/formats.md)")
    abc_body: str = option("as-written", choices=list(ABC_BODIES),
                           help="abc2midi: the ABC prompt's body as it is written (as-written, "
                           "the default) or with its notes grouped by beats as the synthetic "
                           "generator writes them (beats: abc2midi plays both the same; "
                           "docs/formats.md)")
    aux_targets: str = option("none", choices=list(AUX_TARGETS),
                              help="cpu: also train an auxiliary head against intermediate "
                              "results: none (default) or mul-sums (commit records: the column "
                              "sums of each `mul`; docs/training.md)")
    aux_weight: float = option(1.0, help="the auxiliary loss's weight beside the bytes' loss")
    init_from: str | None = option(None, metavar="CHECKPOINT",
                                   help="start from this checkpoint's weights (e.g. "
                                   "trained/cpu-rv32e) with a fresh optimizer; its shape and "
                                   "codec must be the run's")
    ema: float = option(0.0, metavar="DECAY",
                        help="also keep an exponential moving average of the weights with this "
                        "decay per step (e.g. 0.999; 0: none, the default); checkpoints, "
                        "validation and export then hold the average (docs/training.md)")
    curriculum: int | None = option(None, metavar="STEPS",
                                    help="draw the first STEPS batches from the shortest "
                                    "sequences, widening linearly from the shortest 10%% to all "
                                    "(default: half of --steps; 0: none)")
    scheduled_sampling: float = option(0.0, metavar="P",
                                       help="replace target inputs by the model's own "
                                       "predictions, a share rising linearly to P at the last "
                                       "step (default 0: teacher forcing)")
    quiet: bool = option(False, help="no progress output")

    @classmethod
    def from_namespace(cls, ns: Any) -> TrainArgs:
        return cls(**{f.name: getattr(ns, f.name) for f in fields(cls) if hasattr(ns, f.name)})


def check_args(args: TrainArgs, d: Dist) -> None:
    if args.task not in TASKS:
        raise UserError(f"--task takes {', '.join(TASKS)}; got {args.task!r}")
    if args.schedule not in ("constant", "cosine"):
        raise UserError(f"--schedule takes constant or cosine; got {args.schedule!r}")
    if args.midi_codec not in MIDI_LAYOUTS:
        raise UserError(f"--midi-codec takes {', '.join(MIDI_LAYOUTS)}; "
                        f"got {args.midi_codec!r}")
    try:
        parse_record_prompt(args.record_prompt)
    except ValueError as e:
        raise UserError(f"--record-prompt: {e}") from None
    if args.abc_layout not in ABC_LAYOUTS:
        raise UserError(f"--abc-layout takes {', '.join(ABC_LAYOUTS)}; got {args.abc_layout!r}")
    if args.abc_header not in ABC_HEADERS:
        raise UserError(f"--abc-header takes {', '.join(ABC_HEADERS)}; got {args.abc_header!r}")
    if args.abc_body not in ABC_BODIES:
        raise UserError(f"--abc-body takes {', '.join(ABC_BODIES)}; got {args.abc_body!r}")
    for name in ("steps", "batch_size", "grad_accum", "save_every", "eval_every", "sort_window"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1")
    if args.valid_limit is not None and args.valid_limit < 0:
        raise UserError(f"--valid-limit must be 0 (all) or more; got {args.valid_limit}")
    if args.curriculum is not None and args.curriculum < 0:
        raise UserError(f"--curriculum must be 0 (none) or more steps; got {args.curriculum}")
    if not 0.0 <= args.scheduled_sampling <= 1.0:
        raise UserError(f"--scheduled-sampling must be in [0, 1]; got {args.scheduled_sampling}")
    if args.aux_targets not in AUX_TARGETS:
        raise UserError(f"--aux-targets takes {', '.join(AUX_TARGETS)}; got {args.aux_targets!r}")
    if args.aux_weight < 0:
        raise UserError(f"--aux-weight must be 0 or more; got {args.aux_weight}")
    if not 0.0 <= args.ema < 1.0:
        raise UserError(f"--ema must be in [0, 1); got {args.ema}")
    if args.lr <= 0:
        raise UserError(f"--lr must be positive; got {args.lr}")
    if args.batch_size % (d.world * args.grad_accum):
        raise UserError(f"--batch-size {args.batch_size} must be a multiple of processes x "
                        f"--grad-accum = {d.world} x {args.grad_accum}")
