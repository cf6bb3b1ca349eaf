"""Build pynova's libunicorn: Unicorn 2.1.4 from its PyPI source archive,
x86 only, with pynova.patch (see its header for what and why).

    python native/unicorn/build.py --prefix .venv

installs ``<prefix>/lib/pynova-unicorn/libunicorn.so.2``, which the backend
loads in preference to the wheel's library (pynova/machine/uc_abi.py). Any
failure is one line on stderr and exit status 0: pynova then runs on the
wheel's library, slower. The build's output is kept in ``build.log`` beside
where the library would go.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VERSION = "2.1.4"
#: sha256 of unicorn-2.1.4.tar.gz on PyPI
SDIST_SHA256 = "00567a70e323f749b419cd86bee4f9115beab7ebba32194581c090cbb7c59cff"
HERE = Path(__file__).resolve().parent
PATCHES = sorted(HERE.glob("*.patch"))
LIBRARY = "libunicorn.so.2"
#: x86 only, no tests or samples or static archives, -O2 (-O3 builds
#: longer for no measurable gain here).
CMAKE_OPTIONS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DCMAKE_C_FLAGS_RELEASE=-O2 -DNDEBUG",
    "-DUNICORN_ARCH=x86",
    "-DUNICORN_BUILD_TESTS=OFF",
    "-DUNICORN_INSTALL=OFF",
    "-DUNICORN_LEGACY_STATIC_ARCHIVE=OFF",
    "-DBUILD_SHARED_LIBS=ON",
)


class BuildError(Exception):
    """Why the library was not built (one line)."""


def run(cmd: list[str], log, cwd: Path | None = None) -> None:  # type: ignore[no-untyped-def]
    log.write(f"$ {' '.join(cmd)}\n")
    log.flush()
    result = subprocess.run(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise BuildError(f"{Path(cmd[0]).name} {cmd[1] if len(cmd) > 1 else ''} "
                         f"failed (status {result.returncode})")


def download(work: Path, log) -> Path:  # type: ignore[no-untyped-def]
    run([sys.executable, "-m", "pip", "download", "--quiet", "--no-binary", ":all:",
         "--no-deps", f"unicorn=={VERSION}", "-d", str(work)], log)
    archive = work / f"unicorn-{VERSION}.tar.gz"
    if not archive.exists():
        raise BuildError(f"pip did not download unicorn-{VERSION}.tar.gz")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    if digest != SDIST_SHA256:
        raise BuildError(f"unicorn-{VERSION}.tar.gz has sha256 {digest}, "
                         f"expected {SDIST_SHA256}")
    return archive


def unpack(archive: Path, work: Path) -> Path:
    with tarfile.open(archive) as tar:
        tar.extractall(work, filter="data")
    source = work / f"unicorn-{VERSION}" / "src"
    if not (source / "CMakeLists.txt").exists():
        raise BuildError("the source archive has no src/CMakeLists.txt")
    return source


def apply_patches(source: Path, log) -> None:  # type: ignore[no-untyped-def]
    for patch in PATCHES:
        if shutil.which("patch"):
            run(["patch", "-p1", "--batch", "--forward", "-i", str(patch)], log, cwd=source)
        elif shutil.which("git"):
            run(["git", "apply", "-p1", str(patch)], log, cwd=source)
        else:
            raise BuildError("neither patch nor git is installed")


def cmake_command(log) -> str:  # type: ignore[no-untyped-def]
    """cmake from PATH, else from PyPI into this environment."""
    found = shutil.which("cmake") or shutil.which("cmake", path=str(Path(sys.executable).parent))
    if found:
        return found
    run([sys.executable, "-m", "pip", "install", "--quiet", "cmake>=3.16,<4"], log)
    found = shutil.which("cmake", path=str(Path(sys.executable).parent))
    if not found:
        raise BuildError("cmake is missing and could not be installed")
    return found


def compile_library(source: Path, log) -> Path:  # type: ignore[no-untyped-def]
    cmake = cmake_command(log)
    build = source / "build"
    run([cmake, "-S", str(source), "-B", str(build), *CMAKE_OPTIONS], log)
    jobs = str(os.cpu_count() or 2)
    run([cmake, "--build", str(build), "--target", "unicorn", "--parallel", jobs], log)
    built = build / LIBRARY
    if not built.exists():
        raise BuildError(f"the build made no {LIBRARY}")
    return built


def check(library: Path) -> None:
    """The library loads and is the patched one."""
    import ctypes
    try:
        lib = ctypes.CDLL(str(library))
    except OSError as err:
        raise BuildError(f"the built library does not load: {err}") from None
    if not hasattr(lib, "uc_pynova_counter"):
        raise BuildError("the built library lacks the patch's uc_pynova_counter")


def install(built: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    shutil.copyfile(built, partial)
    check(partial)
    os.replace(partial, target)


def build(prefix: Path) -> Path:
    target = prefix / "lib" / "pynova-unicorn" / LIBRARY
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)  # a failed rebuild leaves the wheel's, not a stale one
    with open(target.parent / "build.log", "w") as log, \
            tempfile.TemporaryDirectory(prefix="unicorn-", dir=target.parent) as tmp:
        work = Path(tmp)
        source = unpack(download(work, log), work)
        apply_patches(source, log)
        install(compile_library(source, log), target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prefix", type=Path, default=Path(sys.prefix),
                        help="the virtual environment to install into (default: this one)")
    args = parser.parse_args(argv)
    try:
        target = build(args.prefix)
    except (BuildError, OSError, tarfile.TarError) as err:
        print(f"pynova: could not build the patched libunicorn ({err}; see "
              f"{args.prefix}/lib/pynova-unicorn/build.log); using the wheel's, "
              f"which runs user code several times slower", file=sys.stderr)
        return 0
    print(f"pynova: built {target} (Unicorn {VERSION} with {', '.join(p.name for p in PATCHES)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
