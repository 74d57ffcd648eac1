"""Does an abc2midi model convert the demo tune and its variants? Against abc2midi.

    python examples/demo_variants.py [--model PATH]

`make demo` converts one tune (`simulator.demo.EXAMPLE_TUNE`: 3/4, eighth-note unit, key D). A
model can get that one tune right by heart, so this converts 20 of its neighbours as well: the
tune's header in five keys (D, G, A, F, Bb) with each of four short bodies (the demo's own, a
second arpeggio, a scale down, a tune with a dotted note), and counts the outputs whose notes
are exactly abc2midi's. It prints each wrong variant, whether the demo tune's file is
byte-identical to abc2midi's, and the count.
"""

from bytesim_common.cli import OneLineErrorParser, cli_entry
from bytesim_common.errors import UserError
from simulator.demo import EXAMPLE_TUNE
from simulator.facade import MusicConverter
from simulator.metrics import notes_exact

KEYS = ("D", "G", "A", "F", "Bb")
BODIES = ("A2 | d2 f2 a2 | g2 e2 c2 | d4 A2 | d6 |]",
          "F2 | A2 d2 f2 | e2 c2 A2 | B4 c2 | d6 |]",
          "d2 | c2 B2 A2 | G2 F2 E2 | F4 E2 | D6 |]",
          "A | d3 e f2 | g2 f2 e2 | d2 c2 B2 | A6 |]")


def variant(key: str, body: str) -> str:
    """The demo tune with another key and body."""
    header = EXAMPLE_TUNE.split("\nK:", 1)[0]
    return f"{header}\nK:{key}\n{body}\n"


def convert(conv: MusicConverter, abc: str, label: str) -> bytes | None:
    """The model's MIDI file for `abc`, or None (said in one line, with `label`) where it makes
    none."""
    try:
        return conv.abc_to_midi(abc)
    except UserError as e:  # the output is not a MIDI file
        print(f"no file: {label} ({e})")
        return None


@cli_entry("examples/demo_variants.py")
def main(argv: list[str] | None = None) -> None:
    p = OneLineErrorParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None, help="checkpoint (default: trained/abc2midi)")
    p.add_argument("--fast", action="store_true", help="2 variants")
    args = p.parse_args(argv)

    conv = MusicConverter.from_pretrained(args.model, task="abc2midi")
    variants = [(key, body) for key in KEYS for body in BODIES]
    right = 0
    for key, body in variants[:2 if args.fast else None]:
        abc = variant(key, body)
        predicted = convert(conv, abc, f"K:{key} {body}")
        if predicted is None:
            continue
        ok = notes_exact(predicted, conv.reference_abc_to_midi(abc))
        right += ok
        if not ok:
            print(f"wrong: K:{key} {body}")
    identical = convert(conv, EXAMPLE_TUNE, "the demo tune") == conv.reference_abc_to_midi(EXAMPLE_TUNE)
    print(f"demo tune byte-identical to abc2midi's: {'yes' if identical else 'no'}")
    print(f"variants right: {right} of {2 if args.fast else len(variants)}")


if __name__ == "__main__":
    main()
