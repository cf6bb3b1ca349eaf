"""The marked source of the framework tests' lab "toy" (pynova's real labs
mark their regions in the kernel's own modules). The region starts right
after the docstring, so the imports it hands out are the module's own."""

# lab toy: begin
from __future__ import annotations

import struct

PT_LOAD = 1
EH_PHOFF = 28        # e_phoff (System V ABI, "ELF Header")
EH_PHENTSIZE = 42    # e_phentsize, then e_phnum


def count_load_segments(image: bytes) -> int:
    """How many PT_LOAD program headers the ELF file ``image`` has."""
    # TODO(step 1): read e_phoff, e_phentsize and e_phnum from the ELF header
    #   and count the program headers whose p_type is PT_LOAD.
    # solution begin
    (phoff,) = struct.unpack_from("<I", image, EH_PHOFF)
    phentsize, phnum = struct.unpack_from("<HH", image, EH_PHENTSIZE)
    count = 0
    for i in range(phnum):
        (p_type,) = struct.unpack_from("<I", image, phoff + i * phentsize)
        if p_type == PT_LOAD:
            count += 1
    return count
    # solution end


def greeting(program: str) -> str:
    """The line the kernel prints before it starts ``program``."""
    # TODO(step 2): return "toy: starting " followed by the program's name.
    # solution begin: return ""
    return f"toy: starting {program}"
    # solution end
# lab toy: end


def not_handed_out() -> int:
    """Outside the region: never in a workspace."""
    return 42
