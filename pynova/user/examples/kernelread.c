/* Read kernel memory at 0xC0000000 from user mode: page fault. */
#include "pynova.h"

int main(void)
{
    return *(volatile int *)0xC0000000;
}
