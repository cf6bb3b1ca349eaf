"""A GDB remote serial protocol stub for debugging pynova user programs."""
