/* Dump call 0, unknown call 7, a wrapping sum and a zero-length print. */
#include "pynova.h"

int main(void)
{
    sys_dump(0x11223344, 0xaabbccdd);
    /* An unknown call must leave eax unchanged (it still holds 7). */
    if (syscall2(7, 0, 0) != 7)
        print_str("syscall 7 changed eax\n");
    if (sum(0xffffffff, 2) == 1)
        print("sum ok\n", 7);
    else
        print_str("sum bad\n");
    print("", 0);
    return 0;
}
