"""The `name=weight,...` options of datagen's command line (`--mix`, `--mnemonic-weights`,
`--synth-mix`), read one way."""

from __future__ import annotations

import math
from collections.abc import Collection

from bytesim_common.errors import UserError


def parse_weights(text: str, flag: str, known: Collection[str], what: str) -> dict[str, float]:
    """`a=1,b=2.5` -> {"a": 1.0, "b": 2.5}, in the order given; a one-line UserError naming
    `flag` for a name not in `known` (`what` says what the names are), a weight that is not a
    finite number, or a negative one."""
    weights: dict[str, float] = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        name = name.strip()
        if name not in known:
            raise UserError(f"{flag}: unknown {what} {name!r}; known: {', '.join(sorted(known))}")
        try:
            weight = float(value)
        except ValueError:
            weight = math.nan
        if not math.isfinite(weight):
            raise UserError(f"{flag}: weight of {name} must be a number, got {value!r}")
        if weight < 0:
            raise UserError(f"{flag}: weight of {name} must be >= 0, got {value}")
        weights[name] = weight
    return weights
