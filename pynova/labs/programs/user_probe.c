/* Reads the word at 0x10000000, a page the check maps itself: the CPU
 * must refuse the read when the mapping lacks USER. */
#include "pynova.h"

int main(void)
{
    int value = *(volatile int *)0x10000000;
    printf("read %d\n", value);
    exit(0);
}
