/* Store to the unmapped address 0x234 (page 0): the seed's page fault. */
#include "pynova.h"

int main(void)
{
    /* The first memory access of main: movl $0x12, 0x234 */
    *((volatile int *)0x234) = 0x12;
    return 0;
}
