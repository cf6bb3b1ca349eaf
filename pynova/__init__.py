"""pynova: a NOVA-style teaching microkernel in Python on an emulated i386 PC."""

__version__ = "0.1.0"
