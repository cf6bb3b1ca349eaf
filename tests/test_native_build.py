"""native/unicorn/build.py: what `make` does when the library cannot be
built (one line, status 0, the wheel's library stays in use), the pinned
source archive, and the patch's header."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import pytest

NATIVE = Path(__file__).resolve().parent.parent / "native" / "unicorn"


@pytest.fixture
def build():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("pynova_unicorn_build", NATIVE / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_failed_build_is_one_line_and_make_goes_on(build, tmp_path, monkeypatch, capsys):
    def no_network(work, log):  # type: ignore[no-untyped-def]
        raise build.BuildError("pip download failed (status 1)")

    monkeypatch.setattr(build, "download", no_network)
    stale = tmp_path / "lib" / "pynova-unicorn" / build.LIBRARY
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"an older build")
    assert build.main(["--prefix", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("pynova: could not build the patched libunicorn (pip download failed")
    assert "using the wheel's" in err
    assert not (tmp_path / "lib" / "pynova-unicorn" / build.LIBRARY).exists()


def test_an_archive_with_another_checksum_is_refused(build, tmp_path, monkeypatch):
    def fake_pip(cmd, log, cwd=None):  # type: ignore[no-untyped-def]
        (Path(cmd[cmd.index("-d") + 1]) / f"unicorn-{build.VERSION}.tar.gz").write_bytes(b"x")

    monkeypatch.setattr(build, "run", fake_pip)
    with pytest.raises(build.BuildError, match="sha256"):
        build.download(tmp_path, None)
    assert build.SDIST_SHA256 != hashlib.sha256(b"x").hexdigest()


def test_the_patch_says_what_and_why_and_touches_only_the_source(build):
    text = (NATIVE / "pynova.patch").read_text()
    header = text[:text.index("diff --git")]
    for reference in ("PR #2031", "PR #2337", "DIRTY_MEMORY_CODE", "tlb_protect_code",
                      "cpu_physical_memory_is_clean", "check_exit_request", "IRET"):
        assert reference in header, reference
    files = [line.split()[2][2:] for line in text.splitlines() if line.startswith("diff --git")]
    assert files and all(f.startswith("qemu/") or f == "uc.c" for f in files), files
    assert build.PATCHES == [NATIVE / "pynova.patch"]
