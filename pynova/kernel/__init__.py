"""The pynova kernel: what the seed's C++ NOVA kernel does, in Python."""

from pynova.kernel.kernel import Kernel, Outcome

__all__ = ["Kernel", "Outcome"]
