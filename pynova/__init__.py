"""pynova: a NOVA-style teaching microkernel in Python on an emulated i386 PC."""

__version__ = "0.1.0"

__all__ = ["__version__", "run"]


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    """``pynova.run`` is imported on first use, so ``import pynova`` stays cheap."""
    if name == "run":
        from pynova.api import run
        return run
    raise AttributeError(f"module 'pynova' has no attribute {name!r}")
