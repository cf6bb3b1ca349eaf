/* Read the unmapped user address 0x40000000: page fault. */
#include "pynova.h"

int main(void)
{
    return *(volatile int *)0x40000000;
}
