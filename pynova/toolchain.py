"""Build pynova user programs: static 32-bit i386 ELF files.

A program is ``user/start.S`` + every ``user/libc/*.c`` and ``user/libc/*.S``
+ the caller's sources, linked with ``user/linker.ld``. The bundled examples
(``user/examples/<name>.c``) are built on demand into a cache directory keyed
by a hash of all user sources and the toolchain, so an edit rebuilds them.

Public API: :class:`ToolchainError`, :class:`UnknownExample`,
:class:`Toolchain`, :func:`find_toolchain`, :func:`build_program`,
:func:`build_key`, :func:`examples_dir`, :func:`list_examples`,
:func:`example_path`, :func:`build_examples`. ``python -m pynova.toolchain
[--outdir DIR]`` builds every example.

Running a bundled example that is already built must stay cheap (it is on
the path of every ``pynova run``), so the modules needed only for building
(subprocess, tempfile, concurrent.futures) are imported where they are used.
"""

from __future__ import annotations

import os
import re
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

USER_DIR = Path(__file__).resolve().parent / "user"
LIBC_DIR = USER_DIR / "libc"
START_S = USER_DIR / "start.S"
LINKER_SCRIPT = USER_DIR / "linker.ld"
EXAMPLES_DIR = USER_DIR / "examples"
#: The folder that holds the pynova package: pynova's own user sources are
#: compiled from here with their paths made relative to it, so their debug
#: information (and so the size of every bundled program) is the same
#: wherever the tree lies and whoever builds it.
SOURCE_ROOT = USER_DIR.parent.parent

CFLAGS: tuple[str, ...] = (
    "-m32",
    "-ffreestanding",
    "-fno-pic",
    "-fno-pie",
    "-fno-stack-protector",
    "-fno-asynchronous-unwind-tables",
    "-fno-builtin",
    "-nostdlib",
    "-O1",
    "-g",
    "-Wall",
)

#: ``pynova build --debug``: no inlining, so that gdb's breakpoints and
#: steps land where the source says (appended after CFLAGS' -O1).
DEBUG_CFLAGS: tuple[str, ...] = ("-O0", "-g")
#: What build_program compiles: C, and assembly with or without cpp.
SOURCE_TYPES = (".c", ".S", ".s")

LIBC_ARCHIVE = "libpynova.a"
#: defined in libc/syscall.c; forced into every link so the syscall stubs are
#: always present and the data segment is never empty.
LIBC_ANCHOR = "pynova_libc"
BUILD_DIR_ENV = "PYNOVA_BUILD_DIR"
STAMP_SUFFIX = ".stamp"
MAX_ERROR_CHARS = 4000
MAX_ERROR_LINES = 40

MISSING_COMPILER = (
    "no 32-bit C compiler: need gcc with -m32 (gcc-multilib) or clang, "
    "and ld with elf_i386"
)
MISSING_LINKER = "no i386 linker: need GNU ld with elf_i386 (binutils) or ld.lld"
HEADER_HINT = (
    "hint: pynova programs run on pynova, not on Linux: the C library's headers "
    "(<stdio.h>, <stdlib.h>, <string.h>, ...) are not available. #include \"pynova.h\" "
    "instead: print, printf, snprintf, vprintf, vsnprintf, malloc, calloc, realloc, free, "
    "strlen, strcmp, memcpy, memmove, memset, memcmp, exit, nbrk, thr_create, thr_yield, "
    "thr_exit, thr_self, thread_create (docs/ABI.md). Of the compiler's own headers, "
    "<stdarg.h>, <stddef.h>, <stdint.h> and <stdbool.h> work."
)
#: How gcc and clang say that an #include found no file.
_MISSING_HEADER = re.compile(r"fatal error: (\S+): No such file or directory|"
                             r"fatal error: '(\S+)' file not found")

_PROBE_C = """\
#include <stdarg.h>
#include <stddef.h>
int probe_value;
int probe(int n, ...) { va_list ap; va_start(ap, n); int v = va_arg(ap, int);
va_end(ap); return v + (int)sizeof(size_t) + probe_value; }
void _start(void) { probe(1, 2); for (;;) {} }
"""


class ToolchainError(Exception):
    """A program could not be built: no usable toolchain, or a compile error."""


class UnknownExample(KeyError):
    """No bundled example has this name."""

    def __init__(self, name: str, available: Sequence[str]) -> None:
        self.name = name
        self.available = list(available)
        super().__init__(name)

    def __str__(self) -> str:
        names = ", ".join(self.available) or "(none)"
        return f"unknown example {self.name!r}; available: {names}"


class Toolchain:
    """A C compiler and a linker that together produce i386 ELF files.

    ``ar`` archives the libc (so a program links only the members it uses);
    without one the libc objects are linked in whole."""

    def __init__(self, cc: str, ld: str, target_flags: tuple[str, ...] = ("-m32",),
                 ld_flags: tuple[str, ...] = ("-m", "elf_i386"),
                 ar: str | None = None) -> None:
        self.cc = cc
        self.ld = ld
        self.target_flags = target_flags
        self.ld_flags = ld_flags
        self.ar = ar
        self._verified = False
        self._identity: str | None = None
        self._includes: tuple[str, ...] | None = None

    def __repr__(self) -> str:
        return f"Toolchain({self.name})"

    @property
    def name(self) -> str:
        return (
            f"{Path(self.cc).name} {' '.join(self.target_flags)} + {Path(self.ld).name}"
        )

    def identity(self) -> str:
        """A string that changes when the compiler or linker changes."""
        if self._identity is None:
            parts = [" ".join(self.target_flags), " ".join(self.ld_flags)]
            for tool in (self.cc, self.ld, self.ar or "no-ar"):
                real = os.path.realpath(tool)
                try:
                    st = os.stat(real)
                    parts.append(f"{real}:{st.st_size}:{st.st_mtime_ns}")
                except OSError:
                    parts.append(real)
            self._identity = "|".join(parts)
        return self._identity

    def verify(self) -> None:
        """Compile and link a tiny file once; raise ToolchainError if that fails."""
        if self._verified:
            return
        import tempfile

        with tempfile.TemporaryDirectory(prefix="pynova-probe-") as tmp:
            src = Path(tmp) / "probe.c"
            obj = Path(tmp) / "probe.o"
            out = Path(tmp) / "probe.elf"
            src.write_text(_PROBE_C)
            _run(
                [self.cc, *self.target_flags, *CFLAGS, *self.include_flags(), "-c", str(src),
                 "-o", str(obj)],
                f"{self.name}: cannot compile a test file",
            )
            _run(
                [
                    self.ld,
                    *self.ld_flags,
                    "-nostdlib",
                    "-e",
                    "_start",
                    str(obj),
                    "-o",
                    str(out),
                ],
                f"{self.name}: cannot link a test file",
            )
        self._verified = True

    def include_flags(self) -> tuple[str, ...]:
        """``-nostdinc`` and the compiler's own header directory (stdarg.h,
        stddef.h, stdint.h): a program that includes the C library's headers
        fails at its own #include line, not deep inside them. Empty when the
        compiler does not say where its headers are."""
        if self._includes is None:
            self._includes = ()
            for query, tail in (("-print-file-name=include", ""),
                                ("-print-resource-dir", "include")):
                found = _output([self.cc, *self.target_flags, query])
                folder = os.path.join(found, tail) if found else ""
                if os.path.isabs(folder) and os.path.isfile(os.path.join(folder, "stdarg.h")):
                    self._includes = ("-nostdinc", "-isystem", folder)
                    break
        return self._includes

    def compile(
        self, source: Path, obj: Path, extra_cflags: Sequence[str] = ()
    ) -> str:
        """Compile one file; return the compiler's warnings (or "")."""
        own = source.resolve().is_relative_to(USER_DIR)
        relative = (f"-ffile-prefix-map={SOURCE_ROOT}=.",) if own else ()
        try:
            return _run(
                [
                    self.cc,
                    *self.target_flags,
                    *CFLAGS,
                    *self.include_flags(),
                    f"-I{LIBC_DIR}",
                    *relative,
                    *extra_cflags,
                    "-c",
                    str(source),
                    "-o",
                    str(obj),
                ],
                f"compiling {source}",
                cwd=SOURCE_ROOT if own else None,
            )
        except ToolchainError as err:
            if _MISSING_HEADER.search(str(err)):
                raise ToolchainError(f"{err}\n{HEADER_HINT}") from None
            raise

    def archive(self, objects: Sequence[Path], output: Path) -> list[Path]:
        """Put ``objects`` in the archive ``output``; return what to link.

        Returns ``[output]``, or ``objects`` themselves without an archiver.
        """
        if not self.ar or not objects:
            return list(objects)
        _run(
            [self.ar, "rcs", str(output), *(str(o) for o in objects)],
            f"archiving {output.name}",
        )
        return [output]

    def link(self, objects: Sequence[Path], output: Path,
             script: Path = LINKER_SCRIPT) -> None:
        _run(
            [
                self.ld,
                *self.ld_flags,
                "-T",
                str(script),
                "-nostdlib",
                "-u",
                LIBC_ANCHOR,
                *(str(o) for o in objects),
                "-o",
                str(output),
            ],
            f"linking {output.name}",
        )


def _trim(text: str) -> str:
    lines = text.strip().splitlines()
    if len(lines) > MAX_ERROR_LINES:
        lines = [
            *lines[:MAX_ERROR_LINES],
            f"... ({len(lines) - MAX_ERROR_LINES} more lines)",
        ]
    out = "\n".join(lines)
    if len(out) > MAX_ERROR_CHARS:
        out = out[:MAX_ERROR_CHARS] + " ..."
    return out


def _run(cmd: Sequence[str], what: str, cwd: Path | None = None) -> str:
    """Run a tool; return what it said on stderr (its warnings), or raise
    ToolchainError with that text when it fails."""
    try:
        import subprocess

        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=cwd)
    except OSError as exc:
        raise ToolchainError(
            f"{what}: cannot run {cmd[0]}: {exc.strerror or exc}"
        ) from exc
    if proc.returncode != 0:
        detail = _trim(proc.stderr or proc.stdout) or f"exit status {proc.returncode}"
        raise ToolchainError(f"{what} failed:\n{detail}")
    return _trim(proc.stderr) if proc.stderr.strip() else ""


def _output(cmd: Sequence[str]) -> str:
    """A query's first line of output, or "" when it fails."""
    try:
        import subprocess

        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError:
        return ""
    lines = proc.stdout.splitlines()
    return lines[0].strip() if proc.returncode == 0 and lines else ""


def _which(program: str) -> str | None:
    """``shutil.which`` for a bare program name (shutil is slow to import,
    and this runs on every ``pynova run`` of a bundled example)."""
    for folder in os.get_exec_path():
        candidate = os.path.join(folder, program)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def _candidates() -> list[Toolchain]:
    """Every toolchain on PATH that could work, most preferred first (unverified)."""
    gnu_ld = _which("ld")
    lld = _which("ld.lld")
    gnu_ar = _which("ar")
    llvm_ar = _which("llvm-ar")
    found: list[Toolchain] = []
    gcc = _which("gcc")
    if gcc and gnu_ld:
        found.append(Toolchain(cc=gcc, ld=gnu_ld, ar=gnu_ar or llvm_ar))
    clang = _which("clang")
    if clang:
        for linker in (lld, gnu_ld):
            if linker:
                found.append(
                    Toolchain(
                        cc=clang,
                        ld=linker,
                        target_flags=("-m32", "--target=i386-pc-none-elf"),
                        ar=llvm_ar or gnu_ar,
                    )
                )
    return found


def find_toolchain() -> Toolchain:
    """Return the first toolchain that really builds an i386 ELF file.

    Prefers ``gcc -m32`` + ``ld -m elf_i386``; falls back to
    ``clang -m32 --target=i386-pc-none-elf`` with ``ld.lld`` or ``ld``.
    """
    candidates = _candidates()
    if not candidates:
        has_cc = _which("gcc") or _which("clang")
        raise ToolchainError(MISSING_LINKER if has_cc else MISSING_COMPILER)
    errors: list[str] = []
    for tc in candidates:
        try:
            tc.verify()
        except ToolchainError as exc:
            errors.append(str(exc).splitlines()[0])
            continue
        return tc
    raise ToolchainError(f"{MISSING_COMPILER} (tried: {'; '.join(errors)})")


def _libc_sources(replace: Mapping[str, Path] | None = None) -> list[Path]:
    """The libc's sources, with ``replace[name]`` compiled in place of the
    file ``name`` (e.g. a student's ``malloc.c``, lab malloc)."""
    sources = sorted([*LIBC_DIR.glob("*.c"), *LIBC_DIR.glob("*.S")])
    if not replace:
        return sources
    names = [src.name for src in sources]
    for name in replace:
        if name not in names:
            raise ToolchainError(f"no libc file {name!r} to replace "
                                 f"(the libc's files: {', '.join(names)})")
    return [Path(replace.get(src.name, src)) for src in sources]


def _tmp_name(output: Path) -> Path:
    return output.with_name(f".{output.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")


def _compile_all(
    toolchain: Toolchain,
    jobs: Sequence[tuple[Path, Path, Sequence[str]]],
) -> list[str]:
    """Compile (source, object, extra flags) jobs in parallel; return the
    warnings in job order. The first error wins."""
    if not jobs:
        return []
    workers = min(len(jobs), os.cpu_count() or 2, 8)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [
            pool.submit(toolchain.compile, src, obj, flags) for src, obj, flags in jobs
        ]
        return [text for text in (fut.result() for fut in futures) if text]


def _link_atomic(toolchain: Toolchain, objects: Sequence[Path], output: Path,
                 script: Path = LINKER_SCRIPT) -> Path:
    tmp = _tmp_name(output)
    try:
        toolchain.link(objects, tmp, script)
        os.replace(tmp, output)
    except OSError as exc:
        raise ToolchainError(f"cannot write {output}: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return output


def _check_sources(sources: Sequence[Path]) -> None:
    for src in sources:
        if src.suffix not in SOURCE_TYPES:
            raise ToolchainError(f"{src}: unsupported source type "
                                 f"{src.suffix or '(no suffix)'!r}: use .c, .S or .s")
        if src.is_dir():
            raise ToolchainError(f"{src}: is a directory, not a source file")
        if not src.is_file():
            raise ToolchainError(f"source file not found: {src}")


def _check_output(output: Path) -> None:
    """The program file can be written: not a directory, in one that exists."""
    if output.is_dir():
        raise ToolchainError(f"-o {output}: is a directory; name the program file "
                             f"(e.g. {output / 'prog'})")
    folder = output.parent
    if not folder.is_dir():
        raise ToolchainError(f"-o {output}: no such directory: {folder}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ToolchainError(f"-o {output}: cannot write into {folder}")


def _object_name(index: int, source: Path) -> str:
    return f"{index:03d}-{source.stem}{source.suffix.replace('.', '_')}.o"


def build_program(
    sources: Sequence[Path | str],
    output: Path | str,
    *,
    toolchain: Toolchain | None = None,
    extra_cflags: Sequence[str] = (),
    linker_script: Path | str | None = None,
    warn: Callable[[str], None] | None = None,
    libc_replace: Mapping[str, Path | str] | None = None,
) -> Path:
    """Compile start.S + libc + ``sources`` and link them into ``output``
    (with the seed's linker.ld unless ``linker_script`` names another).

    ``libc_replace`` maps libc file names to sources compiled in their
    place: ``{"malloc.c": Path("mywork/malloc.c")}`` links a program with
    another allocator (lab malloc). Naming a file the libc lacks is an error.

    ``extra_cflags`` go to the C files only (the program's and the libc's),
    not to assembly. The compiler's warnings (``-Wall``) go to ``warn``,
    by default to stderr; only errors fail the build. The output is a
    static i386 ELF file with symbols and debug info, written atomically
    into an existing directory. Raises ToolchainError on a missing
    toolchain, an unsupported or missing source, an output path that
    cannot be written, or a compile or link error (the message carries the
    tool's stderr).
    """
    srcs = [Path(s) for s in sources]
    _check_sources(srcs)
    libc_sources = _libc_sources({k: Path(v) for k, v in (libc_replace or {}).items()})
    _check_sources(libc_sources)
    output = Path(output)
    _check_output(output)
    tc = toolchain or find_toolchain()
    tc.verify()
    import tempfile

    with tempfile.TemporaryDirectory(prefix="pynova-build-") as tmp:
        tmpdir = Path(tmp)
        flags = tuple(extra_cflags)
        cache = None if flags else _runtime_cache(tc)
        jobs: list[tuple[Path, Path, Sequence[str]]] = []
        stores: list[tuple[Path, Path]] = []
        objs = []
        for i, src in enumerate([START_S, *srcs, *libc_sources]):
            obj = tmpdir / _object_name(i, src)
            kept = cache / f"{src.name}.o" if cache and _is_runtime(src) else None
            if kept is not None and kept.is_file():
                obj = kept
            else:
                jobs.append((src, obj, flags if src.suffix == ".c" else ()))
                if kept is not None:
                    stores.append((obj, kept))
            objs.append(obj)
        for text in _compile_all(tc, jobs):
            (warn or _to_stderr)(text)
        for built, kept in stores:
            _keep(built, kept)
        libc = tc.archive(objs[1 + len(srcs) :], tmpdir / LIBC_ARCHIVE)
        script = Path(linker_script) if linker_script else LINKER_SCRIPT
        return _link_atomic(tc, [*objs[: 1 + len(srcs)], *libc], output, script)


def _is_runtime(src: Path) -> bool:
    """start.S or a file of the libc (not a replacement from elsewhere)."""
    return src == START_S or src.resolve().parent == LIBC_DIR


def _runtime_cache(tc: Toolchain) -> Path | None:
    """Where start.S and the libc compiled by ``tc`` without extra flags
    are kept, keyed by every user source, this module and the toolchain
    (None when it cannot be made): a build then compiles only its own
    sources and any libc file it replaces."""
    key = _content_key([_sources_hash().encode(), b"\n", tc.identity().encode()])
    env = os.environ.get(BUILD_DIR_ENV)
    base = Path(env) if env else Path.home() / ".cache" / "pynova"
    folder = base / f"runtime-{key}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder


def _keep(built: Path, kept: Path) -> None:
    """Copy a fresh object into the runtime cache, atomically (another
    build may be doing the same); a cache that cannot be written is skipped."""
    import shutil

    tmp = _tmp_name(kept)
    try:
        shutil.copyfile(built, tmp)
        os.replace(tmp, kept)
    except OSError:
        tmp.unlink(missing_ok=True)


def build_key(sources: Sequence[Path | str], *, toolchain: Toolchain,
              extra_cflags: Sequence[str] = (),
              libc_replace: Mapping[str, Path | str] | None = None) -> str:
    """A key of everything ``build_program`` reads for these arguments, for
    a cache of its output: this module and CFLAGS, every file under user/
    (start.S, the libc, linker.ld), the sources and the headers beside
    them, the replaced libc files' contents and the toolchain. SHA-256,
    not the examples' cheap checksum: a student's file must not be able
    to pass for another (lab malloc caches its checks' programs with it).
    Raises OSError for a source that cannot be read."""
    import hashlib

    def chunks() -> Iterator[bytes]:
        yield from _source_chunks()
        yield "\0".join(["toolchain", toolchain.identity(), *extra_cflags]).encode()
        given = [("source", Path(s)) for s in sources]
        given += [(f"libc {name}", Path(s)) for name, s in sorted((libc_replace or {}).items())]
        folders = sorted({path.resolve().parent for _, path in given})
        given += [("header", h) for folder in folders for h in sorted(folder.glob("*.h"))]
        for what, path in given:
            data = path.read_bytes()
            yield f"\0{what} {path.name} {len(data)}\0".encode() + data
    digest = hashlib.sha256()
    for chunk in chunks():
        digest.update(chunk)
    return digest.hexdigest()[:32]


def _to_stderr(text: str) -> None:
    print(text, file=sys.stderr)


def examples_dir() -> Path:
    """The directory holding the bundled example sources."""
    return EXAMPLES_DIR


def _example_sources() -> dict[str, Path]:
    return {p.stem: p for p in sorted(EXAMPLES_DIR.glob("*.c"))}


def _description(source: Path) -> str:
    for raw in source.read_text(errors="replace").splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("/*"):
            text = line[2:]
            text = text.split("*/", 1)[0]
            return text.strip()
        if line.startswith("//"):
            return line[2:].strip()
        break
    return ""


def list_examples() -> list[tuple[str, str]]:
    """(name, one-line description) of every bundled example, sorted by name."""
    return [(name, _description(path)) for name, path in _example_sources().items()]


def _content_key(chunks: Iterable[bytes]) -> str:
    """A 64-bit key of the chunks' contents (CRC-32 and Adler-32) for the
    build cache: enough to tell source versions apart, and unlike hashlib's
    SHA-256 (whose import costs more than a whole run) nearly free."""
    crc, adler = 0, 1
    for chunk in chunks:
        crc, adler = zlib.crc32(chunk, crc), zlib.adler32(chunk, adler)
    return f"{crc:08x}{adler:08x}"


def _user_files() -> list[str]:
    """Paths of the user sources relative to user/, sorted (os.walk: pathlib's
    rglob costs milliseconds on every run)."""
    found = []
    for folder, dirs, files in os.walk(USER_DIR):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        rel = os.path.relpath(folder, USER_DIR)
        found += [name if rel == "." else f"{rel}/{name}" for name in files
                  if not name.endswith((".o", ".pyc"))]
    return sorted(found)


def _source_chunks() -> Iterator[bytes]:
    yield "\0".join(CFLAGS).encode()
    with open(__file__, "rb") as recipe:  # the build recipe itself
        yield recipe.read()
    for rel in _user_files():
        yield b"\0" + rel.encode() + b"\0"
        with open(os.path.join(USER_DIR, rel), "rb") as source:
            yield source.read()


def _sources_hash() -> str:
    """Key of every file under user/, the compiler flags and this module."""
    return _content_key(_source_chunks())


def _default_build_dir(sources_hash: str, identity: str) -> Path:
    env = os.environ.get(BUILD_DIR_ENV)
    if env:
        return Path(env)
    key = _content_key([sources_hash.encode(), b"\n", identity.encode()])[:12]
    return Path.home() / ".cache" / "pynova" / f"build-{key}"


def _stamp_text(sources_hash: str, identity: str) -> str:
    return f"{sources_hash}\n{identity}\n"


def _is_fresh(binary: Path, sources_hash: str, identities: Sequence[str]) -> bool:
    """True when ``binary`` exists and was built from these sources.

    Any available toolchain's build counts; with no toolchain at all, a build
    from the same sources is used as it is.
    """
    stamp = binary.with_name(binary.name + STAMP_SUFFIX)
    try:
        if not binary.is_file():
            return False
        lines = stamp.read_text().splitlines()
    except OSError:
        return False
    if len(lines) < 2 or lines[0] != sources_hash:
        return False
    return not identities or lines[1] in identities


def _write_stamp(binary: Path, sources_hash: str, identity: str) -> None:
    stamp = binary.with_name(binary.name + STAMP_SUFFIX)
    tmp = _tmp_name(stamp)
    try:
        tmp.write_text(_stamp_text(sources_hash, identity))
        os.replace(tmp, stamp)
    finally:
        tmp.unlink(missing_ok=True)


def _ensure_examples(names: Sequence[str], outdir: Path | None) -> dict[str, Path]:
    available = _example_sources()
    for name in names:
        if name not in available:
            raise UnknownExample(name, sorted(available))
    sources_hash = _sources_hash()
    candidates = _candidates()
    identities = [tc.identity() for tc in candidates]
    first_identity = identities[0] if identities else "none"
    build_dir = (
        Path(outdir)
        if outdir is not None
        else _default_build_dir(sources_hash, first_identity)
    )

    result = {name: build_dir / name for name in names}
    stale = [n for n in names if not _is_fresh(result[n], sources_hash, identities)]
    if not stale:
        return result

    tc = find_toolchain()
    build_dir.mkdir(parents=True, exist_ok=True)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="pynova-build-") as tmp:
        tmpdir = Path(tmp)
        common = [START_S, *_libc_sources()]
        jobs: list[tuple[Path, Path, Sequence[str]]] = [
            (src, tmpdir / _object_name(i, src), ()) for i, src in enumerate(common)
        ]
        start_obj, libc_objs = jobs[0][1], [obj for _, obj, _ in jobs[1:]]
        user_objs: dict[str, Path] = {}
        for name in stale:
            obj = tmpdir / f"ex-{name}.o"
            user_objs[name] = obj
            jobs.append((available[name], obj, ()))
        for text in _compile_all(tc, jobs):
            _to_stderr(text)
        libc = tc.archive(libc_objs, tmpdir / LIBC_ARCHIVE)
        for name in stale:
            _link_atomic(tc, [start_obj, user_objs[name], *libc], result[name])
            _write_stamp(result[name], sources_hash, tc.identity())
    return result


def example_path(name: str) -> Path:
    """The built binary of the bundled example ``name``, built if needed.

    Binaries go to ``$PYNOVA_BUILD_DIR`` if set, else to
    ``~/.cache/pynova/build-<hash>/``. Raises UnknownExample for an unknown
    name and ToolchainError when it has to build and cannot.
    """
    return _ensure_examples([name], None)[name]


def build_examples(outdir: Path | None = None) -> dict[str, Path]:
    """Build every bundled example (into ``outdir`` or the cache directory)."""
    return _ensure_examples(list(_example_sources()), outdir)


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m pynova.toolchain",
        description="Build every bundled pynova example program.",
    )
    parser.add_argument("--outdir", type=Path, help="directory for the binaries")
    args = parser.parse_args(argv)
    try:
        built = build_examples(args.outdir)
    except ToolchainError as exc:
        print(f"pynova.toolchain: {exc}", file=sys.stderr)
        return 1
    try:
        for name, path in built.items():
            print(f"{name:<14} {path}")
    except BrokenPipeError:  # e.g. piped into head
        sys.stderr.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
