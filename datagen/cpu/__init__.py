"""CPU traces: profiles, random programs, the Unicorn harness and the `datagen cpu` corpus."""

from datagen.cpu.harness import Trace, run_program, zero_state
from datagen.cpu.isa import assemble, classify, disassemble
from datagen.cpu.profiles import CLASSES, PROFILES, Profile, get_profile
from datagen.cpu.programs import random_initial_state, random_program

__all__ = ["CLASSES", "PROFILES", "Profile", "Trace", "assemble", "classify", "disassemble",
           "get_profile", "random_initial_state", "random_program", "run_program", "zero_state"]
