/* Recurse until the stack (page 0x1000, the stack's alone) runs into the unmapped page 0: Page Fault, explained as a stack overflow. */
#include "pynova.h"

static volatile int limit = 1 << 30;

static int depth(int n)
{
    volatile char frame[64];

    frame[0] = (char)n;
    if (n == limit)
        return 0;
    return depth(n + 1) + frame[0];
}

int main(void)
{
    printf("depth %d\n", depth(0));
    return 0;
}
