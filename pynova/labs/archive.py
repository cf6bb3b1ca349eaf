"""Unpacking a submitted archive (.zip, .tar, .tar.gz/.tgz) safely.

Every member is checked before anything is written: a relative path
without ``..``, a regular file or a directory (no links, devices or
fifos), and bounded counts and sizes; the bytes written are counted too,
so a member that claims to be small cannot fill the disk. Files are
written by this module, never by the archive libraries' extract functions.
"""

from __future__ import annotations

import stat
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath
from typing import IO

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")
#: Folders that archivers add and graders ignore.
JUNK = ("__MACOSX",)


class ArchiveError(Exception):
    """The archive is unreadable or was refused (one line)."""


@dataclass(frozen=True)
class Bounds:
    max_files: int = 1000
    max_bytes: int = 64 << 20
    max_depth: int = 16


@dataclass(frozen=True)
class _Member:
    name: PurePosixPath
    is_dir: bool
    size: int
    open: Callable[[], IO[bytes] | None]  # for files


def is_archive(path: Path) -> bool:
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def stem(path: Path) -> str:
    """The submission's name: the archive's name without its suffix."""
    name = path.name
    for suffix in sorted(ARCHIVE_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)] or name
    return name


def extract(archive: Path, target: Path, bounds: Bounds = Bounds()) -> Path:
    """Unpack ``archive`` into the new directory ``target`` and return the
    directory to grade: the archive's single top-level folder if it has
    one, else ``target``."""
    try:
        if archive.name.lower().endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                _write(list(_zip_members(zf)), target, bounds)
        else:
            with tarfile.open(archive, "r:*") as tf:
                _write(list(_tar_members(tf)), target, bounds)
    except ArchiveError:
        raise
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, RuntimeError) as err:
        detail = (str(err).splitlines() or [type(err).__name__])[0].rstrip(":")
        raise ArchiveError(f"not a readable archive: {detail}") from None
    except OSError as err:
        raise ArchiveError(f"cannot unpack: {err.strerror or err}") from None
    return top_folder(target)


def top_folder(target: Path) -> Path:
    entries = [p for p in target.iterdir() if p.name not in JUNK]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return target


def _zip_members(zf: zipfile.ZipFile) -> Iterator[_Member]:
    for info in zf.infolist():
        mode = info.external_attr >> 16
        kind = stat.S_IFMT(mode)
        name = _safe_name(info.filename.replace("\\", "/"))
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise ArchiveError(f"member {info.filename!r} is {_kind(kind)}, not a file")
        if info.flag_bits & 0x1:
            raise ArchiveError(f"member {info.filename!r} is encrypted")
        yield _Member(name, info.is_dir(), info.file_size, partial(zf.open, info))


def _tar_members(tf: tarfile.TarFile) -> Iterator[_Member]:
    for info in tf:
        name = _safe_name(info.name)
        if not (info.isfile() or info.isdir()):
            raise ArchiveError(f"member {info.name!r} is {_tar_kind(info)}, not a file")
        yield _Member(name, info.isdir(), info.size, partial(tf.extractfile, info))


def _kind(kind: int) -> str:
    return {stat.S_IFLNK: "a symbolic link", stat.S_IFCHR: "a device",
            stat.S_IFBLK: "a device", stat.S_IFIFO: "a fifo",
            stat.S_IFSOCK: "a socket"}.get(kind, "a special file")


def _tar_kind(info: tarfile.TarInfo) -> str:
    if info.issym():
        return "a symbolic link"
    if info.islnk():
        return "a hard link"
    if info.isdev():
        return "a device or fifo"
    return "a special file"


def _safe_name(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if not name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise ArchiveError(f"member {name!r} has an absolute path")
    if ".." in path.parts:
        raise ArchiveError(f"member {name!r} leads out of the submission ('..')")
    if any(part.startswith("\0") or "\0" in part for part in path.parts):
        raise ArchiveError(f"member {name!r} has a NUL in its name")
    return path


def _write(members: list[_Member], target: Path, bounds: Bounds) -> None:
    files = [m for m in members if not m.is_dir]
    if len(members) > bounds.max_files:
        raise ArchiveError(f"too many members ({len(members)} > {bounds.max_files})")
    claimed = sum(m.size for m in files)
    if claimed > bounds.max_bytes:
        raise ArchiveError(f"too large ({claimed} bytes unpacked > {bounds.max_bytes})")
    for m in members:
        if len(m.name.parts) > bounds.max_depth:
            raise ArchiveError(f"member {str(m.name)!r} is nested too deep")
    target.mkdir(parents=True)
    written = 0
    for m in members:
        if m.name.parts and m.name.parts[0] in JUNK:
            continue
        dest = target.joinpath(*m.name.parts)
        if m.is_dir:
            dest.mkdir(parents=True, exist_ok=True)
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            raise ArchiveError(f"member {str(m.name)!r} appears twice")
        source = m.open()
        if source is None:
            raise ArchiveError(f"member {str(m.name)!r} cannot be read")
        with source, open(dest, "xb") as out:
            written = _copy(source, out, written, bounds.max_bytes, str(m.name))


def _copy(source: IO[bytes], out: IO[bytes], written: int, limit: int, name: str) -> int:
    while chunk := source.read(1 << 16):
        written += len(chunk)
        if written > limit:
            raise ArchiveError(f"too large: unpacking {name!r} passes {limit} bytes")
        out.write(chunk)
    return written
