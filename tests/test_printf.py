"""The libc's printf: 64-bit integers (the ``ll`` length modifier) and
``%f`` print what glibc prints, never garbage (issue 10)."""

from __future__ import annotations

import pytest

from pynova.toolchain import build_program

from conftest import needs_toolchain, pynova_cli

pytestmark = needs_toolchain

PROGRAM = '''#include "pynova.h"

static volatile double third = 1.0 / 3.0;

int main(void)
{
    char buf[16];
    volatile unsigned int size = sizeof buf;
    int n;

    printf("[%lld] [%llu] [%llx] [%llX] [%lli]\\n", -9223372036854775807LL - 1,
           18446744073709551615ULL, 0x123456789abcdefULL, 0xfedcba9876543210ULL,
           1234567890123LL);
    printf("[%d] [%5d] [%-5d|] [%05d] [%+d] [% d] [%.3d] [%.0d] [%x] [%#x] [%#o] [%o]\\n",
           -42, 42, 42, -42, 42, 42, 7, 0, 255, 255, 8, 8);
    printf("[%hhd] [%hd] [%hhu] [%ld] [%lu] [%zu] [%10lld|] [%-6llu|]\\n", 300, 70000,
           300, -5L, 5UL, (size_t)7, -1LL, 12ULL);
    printf("[%f] [%.2f] [%.0f] [%#.0f] [%10.3f] [%-10.3f|] [%010.3f] [%+f] [% f]\\n",
           3.14159, 2.675, 2.5, 3.0, -1.5, 1.5, -1.5, 1.0, 1.0);
    printf("[%f] [%f] [%f] [%.10f] [%.20f] [%f] [%f]\\n", 0.0, -0.0, 1e-7, 0.1, 0.1,
           123456789.125, 1e20);
    printf("[%f] [%F] [%5f] [%.3f] [%.1f] [%.1f] [%.15f]\\n", 1.0 / 0.0, -1.0 / 0.0,
           0.0 / 0.0, 0.0005, 0.25, 0.35, third);
    printf("[%f]\\n", 1.7976931348623157e308);
    printf("[%.30f] [%f] [%.2f]\\n", 4.9406564584124654e-324, 2.2250738585072014e-308,
           999.995);
    printf("[%s] [%.2s] [%5s] [%-5s|] [%c] [%3c] [%%] [%*d] [%-*d|] [%.*f]\\n", "abc", "abc",
           "ab", "ab", 'x', 'y', 6, 1, 4, 2, 3, 3.14159);
    n = snprintf(buf, size, "%lld|%.3f", 1LL << 40, 2.0 / 3.0);
    printf("[%s] %d\\n", buf, n);
    return 0;
}
'''

#: What glibc's printf prints for the same program (built for the host with
#: ``gcc -O1``), line for line: pynova's libc formats like it.
GLIBC = [
    '[-9223372036854775808] [18446744073709551615] [123456789abcdef] [FEDCBA9876543210] ['
    '1234567890123]',
    '[-42] [   42] [42   |] [-0042] [+42] [ 42] [007] [] [ff] [0xff] [010] [10]',
    '[44] [4464] [44] [-5] [5] [7] [        -1|] [12    |]',
    '[3.141590] [2.67] [2] [3.] [    -1.500] [1.500     |] [-00001.500] [+1.000000] [ 1.000000]',
    '[0.000000] [-0.000000] [0.000000] [0.1000000000] [0.10000000000000000555] [123456789'
    '.125000] [100000000000000000000.000000]',
    '[inf] [-INF] [ -nan] [0.001] [0.2] [0.3] [0.333333333333333]',
    '[17976931348623157081452742373170435679807056752584499659891747680315726078002853876'
    '058955863276687817154045895351438246423432132688946418276846754670353751698604991057'
    '655128207624549009038932894407586850845513394230458323690322294816580855933212334827'
    '4797826204144723168738177180919299881250404026184124858368.000000]',
    '[0.000000000000000000000000000000] [0.000000] [1000.00]',
    '[abc] [ab] [   ab] [ab   |] [x] [  y] [%] [     1] [2   |] [3.142]',
    '[1099511627776|0] 19',
]


@pytest.fixture(scope="module")
def printed(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    folder = tmp_path_factory.mktemp("printf")
    source = folder / "formats.c"
    source.write_text(PROGRAM)
    warnings: list[str] = []
    program = build_program([source], folder / "formats", warn=warnings.append)
    assert warnings == []  # the format attribute found nothing to complain about
    result = pynova_cli("run", "--quiet", str(program))
    assert result.returncode == 132, result.stderr
    return result.stdout.splitlines()


def test_output_is_glibcs_line_for_line(printed: list[str]) -> None:
    assert printed == GLIBC


def test_long_long_is_64_bits_wide(printed: list[str]) -> None:
    assert printed[0] == ("[-9223372036854775808] [18446744073709551615] [123456789abcdef] "
                          "[FEDCBA9876543210] [1234567890123]")


def test_doubles_are_exact_and_rounded(printed: list[str]) -> None:
    assert printed[4].endswith("[0.10000000000000000555] [123456789.125000] "
                               "[100000000000000000000.000000]")
    assert printed[6].startswith("[17976931348623157081452742373170435679807056752584499659891")
    assert printed[6].endswith(".000000]")


def test_a_wrong_argument_type_is_a_compile_time_warning(tmp_path) -> None:
    source = tmp_path / "bad.c"
    source.write_text('#include "pynova.h"\nint main(void) { printf("%f %lld\\n", 1, 2); '
                      'return 0; }\n')
    warnings: list[str] = []
    build_program([source], tmp_path / "bad", warn=warnings.append)
    text = "\n".join(warnings)
    assert "format '%f' expects argument of type 'double'" in text.replace("\u2018", "'") \
        .replace("\u2019", "'")
    assert "[-Wformat=]" in text
