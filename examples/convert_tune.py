"""Convert an ABC tune to MIDI with a byte model, beside the reference converter (abc2midi).

    python examples/convert_tune.py [tune.abc] [--model trained/abc2midi] [-o out.mid]
"""

from pathlib import Path

from bytesim_common.cli import OneLineErrorParser, cli_entry
from bytesim_common.errors import UserError
from simulator.demo import show_abc_to_midi
from simulator.facade import MusicConverter

TUNE = """\
X:1
T:Example
M:4/4
L:1/8
K:G
GABc dedB | d2 g2 B2 d2 |]
"""


@cli_entry("examples/convert_tune.py")
def main(argv: list[str] | None = None) -> None:
    p = OneLineErrorParser(description=__doc__.split("\n")[0])
    p.add_argument("tune", nargs="?", default=None, help="an .abc file (default: a built-in tune)")
    p.add_argument("--model", default=None, help="checkpoint (default: trained/abc2midi)")
    p.add_argument("-o", "--output", default=None, help="write the model's MIDI file here")
    p.add_argument("--fast", action="store_true", help="accepted for the tests; nothing to skip")
    args = p.parse_args(argv)

    try:
        abc = Path(args.tune).read_text(encoding="utf-8") if args.tune else TUNE
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read {args.tune}: {getattr(e, 'strerror', None) or e}") from None
    midi = show_abc_to_midi(MusicConverter.from_pretrained(args.model, task="abc2midi"), abc)
    if midi is not None and args.output:
        Path(args.output).write_bytes(midi)
        print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
