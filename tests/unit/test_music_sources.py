"""Tunes from files: splitting at X:, inherited file headers, music21's corpus index, order."""

from datagen.music.build import locate
from datagen.music.sources import music21_tunes, seeded_order, split_key, split_tunes

FILE = """% a collection
%%MIDI program 73
I:linebreak $

X:1
T:First
M:2/4
K:G
GA|B2
c2|]

free text after the tune

X: 7
T:Second
K:D
d4|]
"""


def test_split_at_x_with_inherited_header_and_blank_line_end():
    first, second = split_tunes(FILE, "book.abc")
    assert (first.path, first.index, first.number) == ("book.abc", 0, "1")
    assert first.abc == "X:1\n%%MIDI program 73\nI:linebreak $\nT:First\nM:2/4\nK:G\nGA|B2\nc2|]\n"
    assert second.number == "7" and second.abc.endswith("K:D\nd4|]\n")
    assert "free text" not in first.abc + second.abc
    assert split_tunes("no tunes here\n") == []


def test_split_key_ignores_number_title_and_comments():
    a = "X:1\nT:One\nN:note\nM:2/4\nK:G\nGA|B2|]\n"
    b = "X:9\nT:Other title\n% comment\nM:2/4\nK:G\nGA|B2|]\n"
    assert split_key(a) == split_key(b)
    assert split_key(a) != split_key(a.replace("B2", "c2"))


def test_music21_corpus_is_indexed_without_parsing():
    tunes = music21_tunes()
    assert len(tunes) > 12000
    assert len({t.path.split("/")[0] for t in tunes}) >= 6  # essenFolksong, oneills1850, ...
    assert all(t.abc.startswith("X:") and "\nK:" in t.abc for t in tunes[:500])


def test_seeded_order_is_a_permutation_that_depends_on_the_seed():
    assert sorted(seeded_order(50, 1)) == list(range(50))
    assert seeded_order(50, 1) == seeded_order(50, 1) != seeded_order(50, 2)


def test_round_robin_with_sources_running_out():
    sizes = (2.0, float("inf"), 4.0)
    got = [locate(sizes, i) for i in range(12)]
    assert got == [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1), (1, 2), (2, 2), (1, 3), (2, 3),
                   (1, 4), (1, 5)]
    assert [locate((5.0,), i) for i in range(5)] == [(0, j) for j in range(5)]
