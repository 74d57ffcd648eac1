"""Progress for long jobs: a tqdm bar on a terminal, plain log lines otherwise."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


class _LogLines:
    """Minimal tqdm stand-in that prints a line every `every` seconds and at the end."""

    def __init__(self, total: int | None, desc: str, unit: str, every: float = 10.0):
        self.total, self.desc, self.unit, self.every = total, desc, unit, every
        self.n = 0
        self.start = self.last = time.monotonic()
        self.postfix = ""

    def update(self, k: int = 1) -> None:
        self.n += k
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self._print(now)

    def set_postfix_str(self, s: str) -> None:
        self.postfix = s

    def _print(self, now: float) -> None:
        rate = self.n / max(now - self.start, 1e-9)
        of = f"/{self.total}" if self.total is not None else ""
        extra = f" {self.postfix}" if self.postfix else ""
        print(f"{self.desc}: {self.n}{of} {self.unit} ({rate:.1f} {self.unit}/s){extra}",
              file=sys.stderr, flush=True)

    def close(self) -> None:
        self._print(time.monotonic())


def progress_bar(total: int | None, desc: str, unit: str = "it", enabled: bool = True,
                 initial: int = 0):
    """A bar with `.update(k)`, `.set_postfix_str(s)` and `.close()`; silent if not enabled."""
    if not enabled:
        return tqdm(total=total, disable=True)
    if sys.stderr.isatty():
        return tqdm(total=total, desc=desc, unit=unit, initial=initial, dynamic_ncols=True)
    bar = _LogLines(total, desc, unit)
    bar.n = initial
    return bar


def track(items: Iterable[T], total: int | None, desc: str, unit: str = "it",
          enabled: bool = True) -> Iterator[T]:
    """Iterate over `items` while showing progress."""
    bar = progress_bar(total, desc, unit, enabled)
    try:
        for x in items:
            yield x
            bar.update(1)
    finally:
        bar.close()
