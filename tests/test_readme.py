"""The README's samples are what pynova prints (see readme_samples.py)."""

from __future__ import annotations

import pytest

from readme_samples import README, compiler, normalized, run, samples

FOUND = samples(README.read_text())


def test_the_readme_has_its_samples():
    commands = [s.command for s in FOUND]
    assert "pynova run example:hello" in commands              # what `make run` shows
    assert any("textwrite" in c or "pagefault" in c for c in commands)  # a fault report
    assert all(s.compiler for s in FOUND), "run `make readme` to record the compiler"


@pytest.mark.parametrize("sample", FOUND, ids=[s.command for s in FOUND])
def test_sample_is_real_output(sample):
    loose = sample.compiler != compiler()
    assert normalized(run(sample.command), loose) == normalized(sample.output, loose), (
        f"README.md's sample of `{sample.command}` is stale: `make readme` rewrites it")


def test_a_stale_sample_is_caught():
    stale = FOUND[0].output.replace("Hello world!", "Hello, world!")
    assert normalized(run(FOUND[0].command), False) != normalized(stale, False)
    assert normalized("eip=0x300a [Python 3.11.7, Unicorn 2.1]", True) == \
        normalized("eip=0x200c [Python 3.12.1, Unicorn 2.1.4]", True)
