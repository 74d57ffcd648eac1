"""Codecs: byte-exact round trips, layout, loss masks and the generation constraint."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.codec import (
    AUX_TARGETS,
    END,
    IR_WORDS,
    PAD,
    RECORD_LAYOUTS,
    VOCAB_SIZE,
    CpuCodec,
    CpuTrace,
    DecodeError,
    MusicCodec,
    MusicPair,
    codec_from_options,
    make_codec,
    rv32_immediate,
)

STATE_SIZE = {"rv32e": 64, "rv32e-mini": 16, "x86": 32}


@st.composite
def traces(draw):
    profile = draw(st.sampled_from(sorted(STATE_SIZE)))
    program = draw(st.binary(min_size=0, max_size=70))
    n = draw(st.integers(1, 6))
    states = draw(st.binary(min_size=n * STATE_SIZE[profile], max_size=n * STATE_SIZE[profile]))
    return CpuTrace(profile, program, states)


@settings(max_examples=150, deadline=None)
@given(traces(), st.sampled_from([16, 64]), st.sampled_from(IR_WORDS))
def test_cpu_round_trip(trace, align, ir_word):
    codec = CpuCodec(align, ir_word=ir_word)
    if ir_word == "executed-operands" and trace.profile == "x86":  # RISC-V fields only
        with pytest.raises(ValueError, match="RISC-V"):
            codec.encode(trace)
        return
    ids, mask = codec.encode(trace)
    assert len(ids) % align == 0 and ids.min() >= 0 and ids.max() <= END
    assert codec.decode(ids) == trace
    prompt = codec.prompt(trace)
    assert (ids[: len(prompt)] == prompt).all() and not mask[: len(prompt)].any()
    # the target is every state after state_0 (with its fetched word) plus the END; an
    # given or executed word is not scored
    n = len(trace.states) // STATE_SIZE[trace.profile] - 1
    scored = STATE_SIZE[trace.profile] + (0 if codec.word_is_given else codec.word(trace.profile))
    assert mask.sum() == n * scored + 1
    pos = codec.state_positions(trace)
    assert bytes(ids[pos].astype(np.uint8).ravel()) == trace.states[STATE_SIZE[trace.profile]:]


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=80), st.binary(max_size=80), st.sampled_from(["abc2midi", "midi2abc"]),
       st.sampled_from([16, 64]))
def test_music_round_trip(abc, midi, task, align):
    codec = MusicCodec(task, align)
    pair = MusicPair(abc, midi)
    ids, mask = codec.encode(pair)
    assert codec.decode(ids) == pair
    target = midi if task == "abc2midi" else abc.encode("utf-8", "surrogateescape")
    assert mask.sum() == len(target) + 2  # the bytes, the terminating PAD, the END
    assert codec.target_bytes(ids[len(codec.prompt(pair)):]) == target


def test_cpu_layout_is_the_spec():
    trace = CpuTrace("rv32e-mini", bytes(range(16)), bytes(range(100, 148)))
    ids, mask = CpuCodec(16).encode(trace)
    patches = ids.reshape(-1, 16)
    assert bytes(patches[0][:14].astype(np.uint8)) == b"cpu:rv32e-mini"
    assert (patches[0][14:] == PAD).all()
    assert list(patches[1]) == list(range(16)) and (patches[2] == PAD).all()  # PAD-terminated
    assert bytes(patches[3][:5].astype(np.uint8)) == b"trace"
    assert list(patches[4]) == list(range(100, 116))  # state_0 ends the prompt
    assert list(patches[7]) == [END] + [PAD] * 15
    assert len(CpuCodec(16).prompt(trace)) == 5 * 16
    assert mask.reshape(-1, 16).sum(1).tolist() == [0, 0, 0, 0, 0, 16, 16, 1]


def test_interleaved_ir_is_the_word_at_pc():
    program = bytes.fromhex("93001000" "13012000")  # two rv32 instructions at 0x1000
    pcs = [0x1000, 0x1004, 0x1008]
    states = b"".join(pc.to_bytes(4, "little") + bytes(12) for pc in pcs)
    codec = CpuCodec(16, ir_word="fetched")
    ids, _ = codec.encode(CpuTrace("rv32e-mini", program, states))
    blocks = ids[len(codec.prompt(CpuTrace("rv32e-mini", program, states))) - 32:-16]
    words = blocks.reshape(-1, 32)[:, 16:20].astype(np.uint8)
    assert [bytes(w).hex() for w in words] == ["93001000", "13012000", "00000000"]


def test_malformed_ids_raise_decode_error():
    codec = CpuCodec(16)
    ids, _ = codec.encode(CpuTrace("rv32e-mini", b"\x01\x02", bytes(32)))
    with pytest.raises(DecodeError):
        codec.decode(ids[:-16])  # no end patch
    bad = ids.copy()
    bad[len(codec.prompt(CpuTrace("rv32e-mini", b"\x01\x02", bytes(32)))) + 3] = PAD
    with pytest.raises(DecodeError):
        codec.decode(bad)


def _walk(constraint, target):
    """Whether every id of `target` is allowed by `constraint` given the ids before it."""
    return all(bool(constraint.allowed(target[:i])[target[i]]) for i in range(len(target)))


@pytest.mark.parametrize("align", [16, 64])
def test_constraint_accepts_valid_targets_and_forces_padding(align):
    trace = CpuTrace("rv32e-mini", b"\x13\x00\x00\x00", bytes(range(48)))
    codec = CpuCodec(align)
    ids, _ = codec.encode(trace)
    c = codec.constraint(trace)
    target = ids[len(codec.prompt(trace)):].tolist()
    assert _walk(c, target)
    first = c.allowed([])
    assert first[:256].all() and first[END] and not first[PAD]
    inside = c.allowed([1, 2, 3])
    assert inside[:256].all() and not inside[END] and not inside[PAD]
    after = c.allowed([END])
    assert after.tolist() == [i == PAD for i in range(len(after))]

    music = MusicCodec("abc2midi", align)
    pair = MusicPair("X:1\nK:C\nCDE|\n", b"MThd" + bytes(range(40)))
    ids, _ = music.encode(pair)
    assert _walk(music.constraint(pair), ids[len(music.prompt(pair)):].tolist())


def test_executed_patch_puts_every_state_on_a_patch_boundary():
    """`executed-patch`: the word in a PAD-padded patch of its own, then the state, which starts
    on a patch boundary; as long per block as `executed` for rv32e-mini (32) and rv32e (80)."""
    state_0 = (0x1000).to_bytes(4, "little") + bytes(range(100, 112))  # pc at the program
    state_1 = (0x1004).to_bytes(4, "little") + bytes(range(200, 212))
    trace = CpuTrace("rv32e-mini", bytes.fromhex("93800000"), state_0 + state_1)
    for profile, stride in (("rv32e-mini", 32), ("rv32e", 80)):
        assert (CpuCodec(16, "executed-patch").stride(profile)
                == CpuCodec(16, "executed").stride(profile) == stride)
    codec = CpuCodec(16, "executed-patch")
    ids, mask = codec.encode(trace)
    at = codec.state_positions(trace)[0]  # state_1's bytes
    assert at[0] % 16 == 0
    block = ids[at[0] - 16: at[0] + 16]
    assert block[:4].tolist() == [0x93, 0x80, 0, 0] and (block[4:16] == PAD).all()
    assert bytes(block[16:].astype(np.uint8)) == state_1
    assert not mask[at[0] - 16: at[0]].any() and mask[at].all()


def test_executed_operands_give_the_values_of_the_source_registers():
    """`executed-operands`: after the executed word, the values that its rs1 and rs2 fields name
    in the state before, given (not scored); x0 and a field past the profile's registers read
    zero; state_0's block (no word yet) reads zeros."""
    x = [(0x1000).to_bytes(4, "little")] + [(0x11111111 * i).to_bytes(4, "little")
                                            for i in (1, 2, 3)]
    state_0 = b"".join(x)
    add = 0x00310233 | (3 << 20) | (2 << 15)  # add x4?, x2, x3: rd is ignored here
    sub = 0x40000033 | (1 << 7) | (0 << 15) | (9 << 20)  # sub x1, x0, x9 (x9: no such register)
    program = add.to_bytes(4, "little") + sub.to_bytes(4, "little")
    state_1 = (0x1004).to_bytes(4, "little") + state_0[4:]
    state_2 = (0x1008).to_bytes(4, "little") + state_0[4:]
    trace = CpuTrace("rv32e-mini", program, state_0 + state_1 + state_2)
    codec = CpuCodec(16, "executed-operands")
    assert codec.stride("rv32e-mini") == 32 and codec.stride("rv32e") == 80
    ids, mask = codec.encode(trace)
    at = codec.state_positions(trace)[:, 0]  # where states 1 and 2 start
    reads = [bytes(ids[a - 8: a].astype(np.uint8)) for a in at]
    assert reads[0] == x[2] + x[3] and reads[1] == bytes(8)
    assert not mask[at[0] - 12: at[0]].any() and mask[at[0]: at[0] + 16].all()
    first = ids[at[0] - 12 - 32: at[0] - 32 + 16]  # state_0's block: zero word, zero reads
    assert (first[:12] == 0).all()
    assert codec.decode(ids) == trace
    wrong = ids.copy()
    wrong[at[0] - 8] ^= 1
    with pytest.raises(DecodeError, match="source-register"):
        codec.decode(wrong)


def test_options_rebuild_the_same_codec():
    for codec in (make_codec("cpu", 64, "fetched"), make_codec("cpu", 16, "executed"),
                  make_codec("midi2abc", 16)):
        again = codec_from_options(codec.options())
        assert again.options() == codec.options()
    with pytest.raises(ValueError):
        make_codec("sort")


@pytest.mark.parametrize("profile", ["rv32e", "x86"])
@pytest.mark.parametrize("ir_word", ["given", "executed", "executed-patch", "executed-operands"])
def test_given_words_are_forced_and_the_trace_ends_where_the_pc_leaves_the_program(profile,
                                                                                   ir_word):
    from datagen.cpu.build import make_row
    from datagen.cpu.programs import parse_mix

    if ir_word == "executed-operands" and profile == "x86":
        pytest.skip("RISC-V register fields only")
    codec = CpuCodec(16, ir_word=ir_word, profile=profile)
    for seed in range(20):
        trace = codec.sample_from_row(make_row(profile, seed, 4, 8, 64, parse_mix(None)))
        ids, mask = codec.encode(trace)
        prompt_len = len(codec.prompt(trace))
        rule = codec.constraint(trace)
        target = ids[prompt_len:].tolist()
        for t, want in enumerate(target):
            allowed = rule.allowed(target[:t])
            assert allowed[want], (seed, t)
            if allowed.sum() == 1:  # forced: a word byte, the END, or PAD after it
                assert not mask[prompt_len + t] or want == END
        # a wrong pc (outside the program) ends the trace at the next block
        stride, off = codec.stride(profile), codec.state_offset(profile)
        wrong = target[:stride]
        wrong[off: off + 4] = [0, 0, 0, 0]
        assert rule.allowed(wrong).tolist() == [i == END for i in range(VOCAB_SIZE)]
        if ir_word == "given":  # the word at a pc outside the program is zeros
            size = STATE_SIZE[profile]
            assert rule.allowed(wrong[:size]).tolist() == [i == 0 for i in range(VOCAB_SIZE)]
        states, ended = codec.generated_states(trace, target)
        assert ended and states.tobytes() == trace.states[STATE_SIZE[profile]:]


@pytest.mark.parametrize("layout, stride, scored", [("records", 32, 9),
                                                    ("decoded-records", 32, 9),
                                                    ("bit-records", 144, 37)])
@pytest.mark.parametrize("profile", ["rv32e", "rv32e-mini"])
def test_commit_records_rebuild_every_state_and_force_what_is_given(profile, layout, stride,
                                                                    scored):
    """Commit records: one record per step, `scored` ids of it scored (next pc, rd, value: 4
    bytes, or 32 bits in bit-records); the states come back by replay, from generated records as
    from teacher-forced ones."""
    from datagen.cpu.build import make_row
    from datagen.cpu.programs import parse_mix

    codec = make_codec("cpu", 16, layout=layout, profile=profile)
    record = RECORD_LAYOUTS[layout]
    rd_at = record.fields["rd"][0]
    bit_ids = {at + i for at, width in map(record.fields.get, record.bits) for i in range(width)}
    assert codec.stride(profile) == stride and codec_from_options(codec.options()).options() == \
        codec.options()
    size = STATE_SIZE[profile]
    for seed in range(25):
        trace = codec.sample_from_row(make_row(profile, seed, 1, 16, 64, parse_mix(None)))
        ids, mask = codec.encode(trace)
        n = len(trace.states) // size - 1
        assert codec.decode(ids) == trace and mask.sum() == scored * n + 1
        prompt_len = len(codec.prompt(trace))
        assert len(ids) == prompt_len + stride * n + 16
        target, rule = ids[prompt_len:].tolist(), codec.constraint(trace)
        for t, want in enumerate(target):
            allowed = rule.allowed(target[:t])
            assert allowed[want], (seed, t)
            if allowed.sum() == 1:  # forced: the word, the values read, PAD, the END
                assert not mask[prompt_len + t] or want == END
            if t % stride == rd_at:  # rd: a register of the profile
                assert allowed.sum() == size // 4
            if t % stride in bit_ids and t < len(target) - 16:  # a bit: 0 or 1, or forced
                assert allowed[2:].sum() == 0 and want in (0, 1)
        states, ended = codec.generated_states(trace, target)
        assert ended and states.tobytes() == trace.states[size:]
        later, _ = codec.generated_states(trace, target[stride:], after=1)  # from true state_1
        assert later.tobytes() == trace.states[2 * size:]
        forced = codec.teacher_forced_states(trace, ids.astype(np.int64))
        assert forced.astype(np.uint8).tobytes() == trace.states[size:]


@pytest.mark.parametrize("prompt", ["state", "header", "blank", "blank-0", "blank-2"])
@pytest.mark.parametrize("layout", ["records", "decoded-records"])
@pytest.mark.parametrize("profile", ["rv32e", "rv32e-mini"])
def test_a_short_prompt_leaves_out_the_program(profile, layout, prompt):
    """--record-prompt state / header / blank / blank-N: the profile's header (and state_0, or
    PAD as long as the full prompt's rest or N patches long), then the same records as the full
    prompt's, scored alike but for
    the END (the program, which decides it, is not in the sequence); the states still come back
    by replay, from the sample's state_0."""
    from datagen.cpu.build import make_row
    from datagen.cpu.programs import parse_mix

    full = make_codec("cpu", 16, layout=layout, profile=profile)
    short = make_codec("cpu", 16, layout=layout, profile=profile, prompt=prompt)
    assert codec_from_options(short.options()).options() == short.options()
    size = STATE_SIZE[profile]
    state0 = size if prompt == "state" else 0
    for seed in range(10):
        trace = short.sample_from_row(make_row(profile, seed, 1, 16, 64, parse_mix(None)))
        ids, mask = short.encode(trace)
        full_ids, full_mask = full.encode(trace)
        p, p_full = len(short.prompt(trace)), len(full.prompt(trace))
        assert p == short.prompt_length(trace) and p_full == full.prompt_length(trace)
        assert (ids[:16] == full_ids[:16]).all()  # the profile's header
        if prompt.startswith("blank"):
            assert p == (p_full if prompt == "blank" else 16 + 16 * int(prompt[6:]))
            assert (ids[16:p] == PAD).all()
        else:
            assert p == 16 + state0 < p_full
            assert (ids[16:p] == full_ids[p_full - state0: p_full]).all()  # state_0, or nothing
        assert (ids[p:] == full_ids[p_full:]).all()  # the records and the end patch
        assert (mask[p:-16] == full_mask[p_full:-16]).all()
        assert full_mask[-16] and not mask[-16:].any()  # the END: scored only after the program
        forced = short.teacher_forced_states(trace, ids.astype(np.int64))
        assert forced.astype(np.uint8).tobytes() == trace.states[size:]
        target, rule = ids[p:].tolist(), short.constraint(trace)
        assert all(rule.allowed(target[:t])[want] for t, want in enumerate(target))
        states, ended = short.generated_states(trace, target)
        assert ended and states.tobytes() == trace.states[size:]
        with pytest.raises(DecodeError, match="without the program"):
            short.decode(ids)
    with pytest.raises(ValueError, match="commit records"):
        make_codec("cpu", 16, layout="states", prompt=prompt)
    for wrong in ("none", "blank-", "blank-x", "blank-65", "header-2"):
        with pytest.raises(ValueError, match="prompt"):
            make_codec("cpu", 16, layout="records", prompt=wrong)
    with pytest.raises(ValueError, match="commit records"):
        make_codec("abc2midi", 16, prompt=prompt)


def test_commit_records_refuse_what_they_cannot_hold():
    from datagen.cpu.build import make_row
    from datagen.cpu.programs import parse_mix

    with pytest.raises(ValueError, match="RISC-V"):
        make_codec("cpu", 16, layout="records").block("x86")
    with pytest.raises(ValueError, match="layout"):
        make_codec("cpu", 16, layout="stack")
    codec = make_codec("cpu", 16, layout="records")
    trace = codec.sample_from_row(make_row("rv32e-mini", 3, 2, 2, 64, parse_mix("alu_imm=1")))
    states = bytearray(trace.states)
    states[16 + 4] ^= 1  # x1 and x2 both change in step 1: one record cannot say so
    states[16 + 8] ^= 1
    with pytest.raises(ValueError, match="commit records cannot hold"):
        codec.encode(CpuTrace(trace.profile, trace.program, bytes(states)))
    ids, _ = codec.encode(trace)
    at = len(codec.prompt(trace)) + 16  # record 1's rd
    wrong = ids.copy()
    wrong[at] = 9  # rv32e-mini has x0..x3
    with pytest.raises(DecodeError, match="does not have"):
        codec.decode(wrong)
    wrong = ids.copy()
    wrong[at - 12] ^= 1  # a value read that is not the register's
    with pytest.raises(DecodeError, match="do not match"):
        codec.decode(wrong)


@pytest.mark.parametrize("text, imm", [
    ("addi x1, x2, -1", -1), ("xori x3, x1, 2047", 2047), ("srai x1, x1, 3", 0x403),
    ("lw x1, -4(x2)", -4), ("sw x2, -2048(x1)", -2048), ("sb x3, 17(x1)", 17),
    ("beq x1, x2, -8", -8), ("bne x1, x2, 4094", 4094), ("lui x1, 0xfffff", -4096),
    ("auipc x2, 0x12345", 0x12345000), ("jal x1, -1048576", -1048576), ("jal x1, 2050", 2050),
    ("jalr x1, -3(x2)", -3), ("add x1, x2, x3", 0)])
def test_rv32_immediate_decodes_every_format(text, imm):
    """The immediate `decoded-records` gives, sign-extended, as the assembler encoded it."""
    from datagen.cpu.isa import assemble

    word = np.frombuffer(assemble("rv32e", text), np.uint8)[None, :4]
    assert rv32_immediate(word)[0].tobytes() == (imm & 0xFFFFFFFF).to_bytes(4, "little")


def test_bit_records_hold_the_numbers_of_decoded_records_as_bits():
    """bit-records: the same fields as decoded-records, the immediate, the values read and the
    value written as one 0/1 id per bit, least significant first; no mul-sums targets."""
    from datagen.cpu.build import make_row
    from datagen.cpu.programs import parse_mix

    byte_codec = make_codec("cpu", 16, layout="decoded-records", profile="rv32e")
    bit_codec = make_codec("cpu", 16, layout="bit-records", profile="rv32e")
    bytes_layout, bits_layout = RECORD_LAYOUTS["decoded-records"], RECORD_LAYOUTS["bit-records"]
    for seed in range(10):
        trace = byte_codec.sample_from_row(make_row("rv32e", seed, 1, 16, 64, parse_mix(None)))
        byte_records = byte_codec._records(trace).astype(np.int64)
        bit_records = bit_codec._records(trace).astype(np.int64)
        for name in bytes_layout.fields:
            assert (bits_layout.get(bit_records, name) == bytes_layout.get(byte_records, name)).all()
        value_at = bits_layout.fields["value"][0]
        value = byte_records[:, 28:32] @ (1 << 8 * np.arange(4))
        first = bit_records[:, value_at: value_at + 32]
        assert set(np.unique(first)) <= {0, 1}
        assert (first @ (1 << np.arange(32)) == value).all()  # bit i is bit i of the value
    ids, _ = bit_codec.encode(trace)
    alone = CpuTrace(trace.profile, trace.program, trace.states[:64])  # state_0 only: a prompt
    assert bit_codec.prompt(alone).tolist() == ids[:len(bit_codec.prompt(trace))].tolist()
    with pytest.raises(ValueError, match="in bits"):
        bit_codec.aux_targets(trace, ids, "mul-sums")


@pytest.mark.parametrize("layout", ["records", "decoded-records"])
def test_mul_sums_are_the_column_sums_of_each_mul(layout):
    """`mul-sums` at the 4 value bytes of each `mul` record: bits 0-7 the byte itself, bits 8-17
    the carry into the next byte, from the partial products of the operands' bytes."""
    from datagen.cpu.build import make_row
    from datagen.cpu.programs import Operands, parse_mix

    codec = make_codec("cpu", 16, layout=layout, profile="rv32e")
    value_at = RECORD_LAYOUTS[layout].fields["value"][0]
    muls = 0
    for seed in range(12):
        row = make_row("rv32e", seed, 2, 6, 64, parse_mix("muldiv=1,alu=1"),
                       Operands(mnemonics=("mul", "mulhu", "add")))
        trace = codec.sample_from_row(row)
        ids, _ = codec.encode(trace)
        pos, bits = codec.aux_targets(trace, ids, "mul-sums")
        assert pos.shape == (len(bits),) and bits.shape[1] == AUX_TARGETS["mul-sums"] == 18
        sums = (bits.astype(np.int64) << np.arange(18)).sum(1)  # c_k
        assert (sums & 0xFF == ids[pos]).all()  # the value's bytes
        mul_lines = [ln for ln in row["asm"].splitlines() if ln.split()[0] == "mul"]
        for k, start in enumerate(pos[::4]):  # one record a mul: check against the operands
            c = sums[4 * k: 4 * k + 4]
            record = ids[start - value_at: start - value_at + 32].astype(np.int64)
            reads = RECORD_LAYOUTS[layout].fields["reads"][0]
            a, b = (int.from_bytes(bytes(record[reads + o: reads + o + 4].astype(np.uint8)),
                                   "little") for o in (0, 4))
            low = sum(int(c[j]) - (int(c[j - 1]) >> 8 if j else 0) << 8 * j for j in range(4))
            assert low == sum(((a >> 8 * i) & 0xFF) * ((b >> 8 * j) & 0xFF) << 8 * (i + j)
                              for i in range(4) for j in range(4) if i + j < 4)
            assert sum(int(c[j] & 0xFF) << 8 * j for j in range(4)) == a * b % 2**32
        muls += len(pos) // 4
        assert len(pos) // 4 <= len(mul_lines)  # a mul to x0 writes nothing: no targets
    assert muls >= 5
    with pytest.raises(ValueError, match="no 'mul-sums' targets"):
        make_codec("cpu", 16).aux_targets(trace, ids, "mul-sums")
