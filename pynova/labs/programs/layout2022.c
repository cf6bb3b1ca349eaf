/* A program linked for the course's 2022 layout (layout2022.ld): text at
 * 0x1000 and stack_top = 0xC0000000, so the stack page is 0xBFFFF000. */
#include "pynova.h"

static int depth(int n)
{
    volatile int pad[8];
    pad[0] = n;
    return n ? pad[0] + depth(n - 1) : 0;
}

int main(void)
{
    int local;
    unsigned int where = (unsigned int)&local;
    printf("2022 layout: stack at %s, sum %d\n",
           where >= 0xBFFFF000u ? "0xbffff000" : "the wrong page", depth(10));
    exit(where >= 0xBFFFF000u ? 0 : 1);
}
