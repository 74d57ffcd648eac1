"""The MIDI event-stream codec: round trips on corpus MIDI, the grammar, valid output by
construction (random well-formed streams, an untrained model sampling under the constraint),
the merged layout."""

import io
import random

import mido
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from mido.midifiles.midifiles import read_variable_int

from bytesim_common.errors import UserError
from datagen.music.abc_header import canonical_header
from datagen.music.build import make_pair, music_spec
from datagen.music.synthetic import LADDER
from simulator.codec import (
    END,
    PAD,
    VOCAB_SIZE,
    DecodeError,
    EventConstraint,
    MusicCodec,
    MusicPair,
    codec_from_options,
    generation_constraint,
    make_codec,
)
from simulator.metrics import valid_midi
from simulator.midi_events import (
    FILL,
    EventGrammar,
    StreamError,
    align_notes,
    events_to_midi,
    merge_tracks,
    midi_to_events,
    note_spans,
    read_stream,
    split_tracks,
    unalign_notes,
)
from simulator.model import PRESETS, ByteModel
from tests.helpers import needs_abc2midi

pytestmark = needs_abc2midi


def _pairs(sources: list[str], n: int, seed: int, **kw) -> list[MusicPair]:
    spec = music_spec(sources, seed=seed, converter="abc2midi", **kw)
    rows = [make_pair(spec, i) for i in range(n)]
    return [MusicPair(r["abc"], r["midi"]) for r in rows if "midi" in r]


@pytest.fixture(scope="module")
def corpus_pairs() -> list[MusicPair]:
    """Synthetic tunes of every rung (one voice and several tracks) and music21's tunes."""
    pairs = _pairs(["synthetic"], 120, 4) + _pairs(["music21"], 120, 4)
    pairs += _pairs(["synthetic"], 20, 4, synth_mix="gchords=1,parts=1")
    pairs += _pairs(["synthetic"], 20, 4, keep_text=True)
    assert {p.midi[9] for p in pairs} == {0, 1}  # formats 0 and 1 are both there
    return pairs


@pytest.fixture(scope="module")
def m0_pairs() -> list[MusicPair]:
    spec = music_spec(["synthetic"], seed=1, converter="abc2midi")
    from dataclasses import replace
    spec = replace(spec, synth=LADDER["M0"])
    return [MusicPair(r["abc"], r["midi"]) for r in (make_pair(spec, i) for i in range(8))]


def test_every_corpus_midi_round_trips(corpus_pairs):
    for pair in corpus_pairs:
        stream = midi_to_events(pair.midi)
        assert events_to_midi(stream) == pair.midi
        n_tracks = int.from_bytes(pair.midi[10:12], "big")
        # left out: MThd, its length and track count (11 bytes), each track's tag and length
        assert len(stream) == len(pair.midi) - 11 - 8 * n_tracks
        assert stream[0] == pair.midi[9] and stream[1:3] == pair.midi[12:14]
        for task in ("abc2midi", "midi2abc"):
            for align in (16, 64):
                codec = MusicCodec(task, align, "events")
                ids, mask = codec.encode(pair)
                # the ABC comes back with its header in canonical form
                assert codec.decode(ids) == MusicPair(canonical_header(pair.abc), pair.midi)
                if task == "abc2midi":
                    target = ids[len(codec.prompt(pair)):]
                    assert codec.target_bytes(target) == stream
                    assert codec.output_file(codec.target_bytes(target)) == pair.midi
                    assert mask.sum() == len(stream) + 2


def test_note_spans_point_at_the_same_bytes_in_both_layouts(corpus_pairs):
    for pair in corpus_pairs[:60]:
        spans = {lay: MusicCodec("abc2midi", 16, lay).note_spans(pair) for lay in ("file",
                                                                                   "events")}
        stream = midi_to_events(pair.midi)
        assert len(spans["file"]) == len(spans["events"]) == sum(
            m.type == "note_on" and m.velocity > 0
            for t in mido.MidiFile(file=io.BytesIO(pair.midi)).tracks for m in t)
        for f, e in zip(spans["file"], spans["events"]):
            assert pair.midi[f.pitch] == stream[e.pitch]
            assert [pair.midi[p] for p in f.onset] == [stream[p] for p in e.onset]
            assert [pair.midi[p] for p in f.duration] == [stream[p] for p in e.duration]
            assert e.onset and e.duration  # a delta time each, at least


def test_note_aligned_layout_round_trips_and_scores_what_events_score(corpus_pairs):
    for k, pair in enumerate(corpus_pairs[::4]):  # every source and rung, 70 tunes
        stream = midi_to_events(pair.midi)
        for align in (16, 64) if k % 4 == 0 else (16,):
            aligned = align_notes(stream, align)
            assert unalign_notes(aligned, align) == stream and len(aligned) > len(stream)
            midi2abc = MusicCodec("midi2abc", align, "note-aligned")
            canonical = MusicPair(canonical_header(pair.abc), pair.midi)  # what decoding gives
            assert midi2abc.decode(midi2abc.encode(pair)[0]) == canonical
            codec = MusicCodec("abc2midi", align, "note-aligned")
            events = MusicCodec("abc2midi", align, "events")
            ids, mask = codec.encode(pair)
            assert codec.decode(ids) == canonical
            target = ids[len(codec.prompt(pair)):]
            assert codec.target_bytes(target) == aligned
            assert codec.output_file(aligned) == pair.midi
            # the fill is not scored: the same bytes carry the loss as in the events layout
            assert mask.sum() == events.encode(pair)[1].sum() == len(stream) + 2
            spans, plain = codec.note_spans(pair), events.note_spans(pair)
            for a, e in zip(spans, plain, strict=True):
                assert target[a.pitch] == stream[e.pitch]
                assert [target[p] for p in a.onset] == [stream[p] for p in e.onset]


def test_note_aligned_tunes_of_one_voice_have_one_note_per_patch(m0_pairs):
    for pair in m0_pairs:
        spans = MusicCodec("abc2midi", 16, "note-aligned").note_spans(pair)
        assert len({s.pitch // 16 for s in spans}) == len(spans) > 8
        assert len({s.pitch % 16 for s in spans}) == 1  # and at the same place in each patch
        plain = MusicCodec("abc2midi", 16, "events").note_spans(pair)
        assert len({s.pitch // 16 for s in plain}) < len(plain)  # the events layout: not so


def test_misplaced_fill_is_refused(m0_pairs):
    aligned = align_notes(midi_to_events(m0_pairs[0].midi), 16)
    fill_at = aligned.index(bytes([FILL]) * 4, 3)
    with pytest.raises(StreamError, match="fill"):
        unalign_notes(aligned[:fill_at] + b"\x01" + aligned[fill_at + 1:], 16)
    with pytest.raises(StreamError):  # fill left out: the next note starts mid-patch
        unalign_notes(aligned[:fill_at] + aligned[aligned.index(b"\x90", fill_at) - 1:], 16)
    with pytest.raises(DecodeError):
        MusicCodec("abc2midi", 16, "note-aligned").output_file(aligned[:-1])
    with pytest.raises(StreamError, match="ends inside a track"):
        align_notes(midi_to_events(m0_pairs[0].midi)[:-1], 16)


def test_first_note_spans_of_a_plain_tune(m0_pairs):
    stream = midi_to_events(m0_pairs[0].midi)
    first = note_spans(stream)[0]
    on = stream.index(b"\x90")  # the first note-on's status; its key follows
    assert first.pitch == on + 1
    assert first.onset[-1] == on - 1  # its delta time ends right before the status
    assert stream[first.duration[0] - 0] < 0x80 or len(first.duration) > 1


def _walk(rng: random.Random, limit: int, merged: bool = False) -> bytes | None:
    """A random well-formed stream: bytes drawn from what the grammar allows, leaning towards
    short events and ending (merged: of format 1, leaning towards few tracks); None if it has not ended within
    `limit` bytes."""
    grammar, out = EventGrammar(merged), bytearray()
    while len(out) < limit:
        ranges, stop = grammar.allowed()
        if stop and (not ranges or rng.random() < 0.3):
            return bytes(out)
        choices = [b for lo, hi in ranges for b in range(lo, hi + 1)]
        if grammar.state == "format" and merged:
            byte = 1
        elif grammar.state == "track":
            byte = choices[0] if rng.random() < 0.8 else rng.choice(choices[:4])
        elif grammar.state == "meta_type" and rng.random() < 0.3:
            byte = 0x2F  # end of track
        elif grammar.state == "status" and rng.random() < 0.1 and 0xF9 in choices:
            byte = 0xF9  # a track switch
        elif grammar.state == "status" and rng.random() < 0.1 and 0xFF in choices:
            byte = 0xFF
        else:
            byte = min(choices) if rng.random() < 0.5 else rng.choice(choices)
        grammar.feed(byte)
        out.append(byte)
    return None


def test_every_well_formed_stream_is_a_valid_midi_file():
    done = 0
    for seed in range(400):
        stream = _walk(random.Random(seed), 3000)
        if stream is None:
            continue
        done += 1
        midi = events_to_midi(stream)
        assert valid_midi(midi), stream.hex()
        assert midi_to_events(midi) == stream  # canonical: the file gives the stream back
        note_spans(stream)
    assert done > 300


def test_every_well_formed_merged_stream_is_a_valid_midi_file():
    done = switched = 0
    for seed in range(400):
        stream = _walk(random.Random(seed), 3000, merged=True)
        if stream is None:
            continue
        done += 1
        plain = split_tracks(stream)
        assert valid_midi(events_to_midi(plain)), stream.hex()
        switched += len(read_stream(plain).track_ends) > 2
        # merging again gives a stream of the same file (the walk may order ties otherwise)
        assert split_tracks(merge_tracks(plain)) == plain
    assert done > 120 and switched > 25


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=60))
def test_anything_else_is_refused(noise):
    grammar = EventGrammar()
    try:
        for byte in noise:
            grammar.feed(byte)
    except StreamError:
        return
    if grammar.done():  # well-formed after all: then it is a valid file
        assert valid_midi(events_to_midi(noise))
    else:
        with pytest.raises(StreamError):
            events_to_midi(noise)


def test_malformed_streams_and_files_raise(m0_pairs):
    stream = midi_to_events(m0_pairs[0].midi)
    with pytest.raises(StreamError, match="ends inside a track"):
        events_to_midi(stream[:-1])
    with pytest.raises(StreamError, match="not allowed"):  # a second track in format 0
        events_to_midi(stream + stream[3:])
    on = stream.index(b"\x80")  # a note-off; the next one is written with running status?
    with pytest.raises(StreamError):
        events_to_midi(stream[:on + 1] + b"\x80" + stream[on + 1:])  # a data byte > 127
    midi = m0_pairs[0].midi
    for bad in (b"", midi[:13], b"RIFF" + midi[4:], midi + b"\0",
                midi[:10] + b"\x00\x02" + midi[12:]):  # a track count that does not match
        with pytest.raises(StreamError):
            midi_to_events(bad)
    codec = MusicCodec("abc2midi", 16, "events")
    ids, _ = codec.encode(m0_pairs[0])
    prompt = len(codec.prompt(m0_pairs[0]))
    cut = np.concatenate([ids[:prompt], [1, 2, PAD], np.full(13, PAD), ids[-16:]])
    with pytest.raises(DecodeError):
        codec.decode(cut)
    with pytest.raises(DecodeError):
        codec.output_file(b"\x00\x01\xe0\x00\x90")


def test_non_canonical_running_status_is_refused():
    track = b"\x00\x90\x3c\x40\x60\x90\x3c\x00\x00\xff\x2f\x00"  # status repeated, not left out
    midi = b"MThd\0\0\0\x06\0\0\0\x01\x01\xe0MTrk" + len(track).to_bytes(4, "big") + track
    assert valid_midi(midi)
    with pytest.raises(StreamError):
        midi_to_events(midi)


@pytest.mark.parametrize("layout", ["events", "note-aligned", "merged-events"])
def test_constraint_follows_the_grammar_and_stops_only_between_tracks(corpus_pairs, layout):
    codec = MusicCodec("abc2midi", 16, layout)
    several = [p for p in corpus_pairs if _tracks(p) > 2][:3]
    for pair in [p for p in corpus_pairs if p.midi[9] == 1][:3] + several + corpus_pairs[:3]:
        ids, _ = codec.encode(pair)
        n = len(codec.prompt(pair))
        target = ids[n:].tolist()
        c = codec.constraint(pair)
        assert isinstance(c, EventConstraint)
        live = c.for_generate(n)
        stream = codec.midi_content(pair.midi)
        ends = {len(stream)} | ({i for i in range(len(stream)) if stream[i - 3: i] ==
                                 b"\xff\x2f\x00"} if pair.midi[9] else set())
        if layout == "merged-events" and _tracks(pair) > 2:  # after the first track and the last
            ends = {min(ends), len(stream)}
        scored = codec.target_mask(np.array(target))
        for i, y in enumerate(target):
            mask = live(ids[:n + i].tolist())
            assert mask[y]
            if i % 7 == 0 or i in ends:  # the stateless reading is quadratic: sampled
                assert torch.equal(mask, c.allowed(target[:i]))
            if i < len(stream) and not scored[i]:  # fill: forced
                assert mask.sum() == 1 and y == FILL
            if i <= len(stream):
                assert bool(mask[PAD]) == (i in ends), i
                assert not mask[END]


@pytest.mark.parametrize("layout", ["events", "note-aligned", "merged-events"])
def test_an_untrained_model_sampling_under_the_constraint_writes_valid_midi(m0_pairs, layout):
    torch.manual_seed(0)
    model = ByteModel(PRESETS["tiny"])
    # random weights, with logits leaning towards the bytes that end a track (delta 0, FF 2F 00)
    # and the PAD: otherwise sampling almost never finishes a track within the context
    lean = torch.zeros(VOCAB_SIZE)
    lean[[0x00, 0xFF, 0x2F, PAD]] = 3.0
    model.head.register_forward_hook(lambda module, inputs, logits: logits + lean)
    codec = MusicCodec("abc2midi", 16, layout)
    prompts = [codec.prompt(p).tolist() for p in m0_pairs]
    allowed = generation_constraint([codec.constraint(p) for p in m0_pairs],
                                    [len(p) for p in prompts])
    ended = 0
    for seed in range(3):
        outs = model.generate(prompts, 512 - max(map(len, prompts)), temperature=1.0,
                              stop_id=END, allowed=allowed,
                              generator=torch.Generator().manual_seed(seed))
        for prompt, out in zip(prompts, outs):
            if END not in out:
                continue
            ended += 1
            pair = codec.decode(np.array(prompt + out + [PAD] * 15))  # generation stops at END
            assert valid_midi(pair.midi)
            assert codec.output_file(codec.target_bytes(np.array(out))) == pair.midi
    assert ended >= (12 if layout == "events" else 8)  # fill takes part of the 512 ids


def _tracks(pair: MusicPair) -> int:
    return int.from_bytes(pair.midi[10:12], "big")


def test_merged_layout_round_trips_and_merges_only_files_of_several_voices(corpus_pairs):
    codec = MusicCodec("abc2midi", 16, "merged-events")
    merged_files = 0
    for pair in [p for p in corpus_pairs if _tracks(p) > 2][:24] + corpus_pairs[:24]:
        stream = midi_to_events(pair.midi)
        merged = codec.midi_content(pair.midi)
        assert split_tracks(merged) == stream
        ids, mask = codec.encode(pair)
        assert codec.decode(ids) == MusicPair(canonical_header(pair.abc), pair.midi)
        assert codec.output_file(merged) == pair.midi and mask.sum() == len(merged) + 2
        if _tracks(pair) < 3:
            assert merged == stream
            continue
        merged_files += 1
        grammar = read_stream(merged, merged=True)
        first_end = grammar.track_ends[0]
        assert merged[:first_end] == stream[:first_end]  # the tempo track as it was
        assert len(grammar.track_ends) == _tracks(pair)
        # the merged part is in time order: every track's notes, sounding together
        timeline = [(e.track, mido_time) for e, mido_time in _times(merged, grammar)
                    if e.start >= first_end]
        assert [t for _, t in timeline] == sorted(t for _, t in timeline)
        assert {track for track, _ in timeline} == set(range(1, _tracks(pair)))
        midi_file = mido.MidiFile(file=io.BytesIO(pair.midi))
        assert len(timeline) == sum(len(t) for t in midi_file.tracks[1:])
        spans = codec.note_spans(pair)
        assert len(spans) == sum(m.type == "note_on" and m.velocity > 0
                                 for t in midi_file.tracks for m in t)
        assert all(merged[s.pitch] < 0x80 and s.onset and s.duration for s in spans)

        def decided(content, spans):  # the bytes that decide each note
            return sorted((content[s.pitch], bytes(content[p] for p in s.onset),
                           bytes(content[p] for p in s.duration)) for s in spans)

        # the same delta times decide each note as in `events`: each track keeps its own
        assert decided(merged, spans) == decided(stream, note_spans(stream))
    assert merged_files >= 24


def _times(stream: bytes, grammar: EventGrammar) -> list[tuple[object, int]]:
    """Each event with the sum of its track's delta times up to it (read by mido)."""
    out, clock = [], [0] * len(grammar.track_ends)
    for e in grammar.events:
        clock[e.track] += read_variable_int(io.BytesIO(stream[e.start: e.delta_end]))
        out.append((e, clock[e.track]))
    return out


def test_malformed_merged_streams_are_refused(corpus_pairs):
    pair = next(p for p in corpus_pairs if _tracks(p) == 3)
    merged = merge_tracks(midi_to_events(pair.midi))
    switch = merged.index(b"\xf9\x02")
    with pytest.raises(StreamError, match="not allowed"):  # a switch in a plain stream
        read_stream(merged)
    with pytest.raises(StreamError, match="not allowed"):  # a switch to the track it is in
        read_stream(merged[:switch] + b"\xf9\x01" + merged[switch + 2:], merged=True)
    with pytest.raises(StreamError, match="not allowed"):  # two switches in a row
        read_stream(merged[:switch] + b"\xf9\x02\xf9\x01" + merged[switch + 2:], merged=True)
    with pytest.raises(StreamError, match="ends inside a track"):  # track 2 never ends
        read_stream(merged[:switch + 2] + b"\x90\x3c\x40\x00\xf9\x01\xff\x2f\x00",
                    merged=True)
    grammar = EventGrammar(merged=True).feed_all(merged[:switch + 2] + b"\xff\x2f\x00")
    assert grammar.allowed()[0] != ()
    grammar.feed_all(b"\x00")  # track 2 has ended: the next event must switch, not to track 2
    assert grammar.allowed() == (((0xF9, 0xF9),), False)
    grammar.feed(0xF9)
    assert 2 not in [b for lo, hi in grammar.allowed()[0] for b in range(lo, hi + 1)]
    plain = midi_to_events(next(p for p in corpus_pairs if p.midi[9] == 0).midi)
    assert merge_tracks(plain) == plain == split_tracks(plain)  # format 0: nothing to merge


def test_options_keep_old_checkpoints_as_they_were():
    old = codec_from_options({"task": "abc2midi", "align": 16})
    assert isinstance(old, MusicCodec) and old.midi == "file" and old.options() == {
        "task": "abc2midi", "align": 16}
    assert type(old.constraint(MusicPair("", b""))).__name__ == "Constraint"
    new = make_codec("midi2abc", 32, midi="events")
    assert codec_from_options(new.options()).options() == new.options() == {
        "task": "midi2abc", "align": 32, "midi": "events"}
    with pytest.raises(ValueError):
        make_codec("abc2midi", midi="bytes")


def test_masks_are_vocabulary_sized():
    assert EventGrammar().mask(PAD, VOCAB_SIZE).shape == (VOCAB_SIZE,)
    assert EventGrammar().mask(PAD, VOCAB_SIZE)[:3].all()
    assert not EventGrammar().mask(PAD, VOCAB_SIZE)[3:].any()


def test_train_refuses_an_unknown_midi_codec():
    from simulator.train_args import TrainArgs, check_args

    class One:
        world = 1

    with pytest.raises(UserError, match="--midi-codec"):
        check_args(TrainArgs("abc2midi", "x", "y", midi_codec="bytes"), One())
    assert TrainArgs("abc2midi", "x", "y").midi_codec == "events"
