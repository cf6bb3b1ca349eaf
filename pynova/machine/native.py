"""Finding the native libraries that PyPI wheels ship, without importing
the wheels' Python bindings (which cost more to import than a boot)."""

from __future__ import annotations

import importlib.machinery
import os


def packaged_library(package: str, names: tuple[str, ...]) -> str | None:
    """Path of the first of ``names`` in ``<package>/lib/``, or None.

    ``PathFinder.find_spec`` locates the installed package without running
    its ``__init__`` (and without importing importlib.util)."""
    spec = importlib.machinery.PathFinder.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        for name in names:
            candidate = os.path.join(folder, "lib", name)
            if os.path.exists(candidate):
                return candidate
    return None
