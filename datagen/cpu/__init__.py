"""CPU traces: profiles, random programs, the Unicorn harness and the `datagen cpu` corpus.

The package exports what reading and scoring traces needs; the emulator (`datagen.cpu.harness`:
`run_program`, `zero_state`, `Trace`) is imported from its module, so that only code that runs
programs needs Unicorn."""

from datagen.cpu.isa import assemble, classify, disassemble
from datagen.cpu.profiles import CLASSES, PROFILES, Profile, get_profile
from datagen.cpu.programs import random_initial_state, random_program

__all__ = ["CLASSES", "PROFILES", "Profile", "assemble", "classify", "disassemble",
           "get_profile", "random_initial_state", "random_program"]
