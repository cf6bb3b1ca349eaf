/* Grow the heap by 64 MiB with nbrk one page per call (-DONE_CALL: in one call), touch the last page, shrink back (not with -DKEEP); prints "grew N KiB". */
#include "pynova.h"

#ifndef GROW_KIB
#define GROW_KIB 65536u
#endif
#define PAGE 4096u

int main(void)
{
    char *base = nbrk(0);
    char *end = base + GROW_KIB * 1024u;
#ifdef ONE_CALL
    if (nbrk(end) != base)
        exit(1);
#else
    for (char *brk = base + PAGE; brk <= end; brk += PAGE)
        if (!nbrk(brk))
            exit(1);
#endif
    end[-1] = 1;
    if (nbrk(0) != end)
        exit(2);
#ifndef KEEP
    if (nbrk(base) != end)
        exit(2);
#endif
    printf("grew %u KiB\n", GROW_KIB);
    exit(0);
}
