/* Store into the text segment (a read-only page of its own): page fault. */
#include "pynova.h"

/* Page-aligned, so it shares no page with the data segment. */
__attribute__((aligned(4096), noinline)) void target(void)
{
    __asm__ volatile("nop");
}

int main(void)
{
    *(volatile int *)(void *)target = 0x12;
    return 0;
}
