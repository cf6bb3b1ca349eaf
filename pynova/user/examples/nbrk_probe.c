/* nbrk rules from user space: query, rejects, grow, zero fill after shrink, OOM rollback, then a page fault after shrink. */
#include "pynova.h"

#define PAGE 4096u

static int zero(const volatile unsigned char *p, unsigned int n)
{
    for (unsigned int i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

static void check(int ok, const char *what)
{
    printf("%s %s\n", what, ok ? "ok" : "FAILED");
}

int main(void)
{
    unsigned char *b0 = nbrk(0);
    printf("initial break %p\n", b0);
    check(((unsigned int)b0 & (PAGE - 1)) == 0, "aligned");

    int rejected = !nbrk(b0 - PAGE) && !nbrk(b0 - 1) && !nbrk((void *)0xBFFFF001u)
        && !nbrk((void *)0xC0000000u) && !nbrk((void *)0xFFFFFFFFu);
    check(rejected && nbrk(0) == b0, "reject");

    unsigned char *end = b0 + 3 * PAGE + 100;
    check(nbrk(end) == b0 && nbrk(0) == end && zero(b0, end - b0), "grow");
    memset(b0, 0xAB, end - b0);

    check(nbrk(b0 + 50) == end && nbrk(0) == b0 + 50, "shrink");
    check(nbrk(b0 + PAGE + 8) == b0 + 50 && zero(b0 + 50, PAGE + 8 - 50)
          && b0[49] == 0xAB, "zero after shrink and grow");

    unsigned char *before = nbrk(0);
    check(!nbrk((void *)0xBFFFF000u) && nbrk(0) == before, "oom rollback");
    check(nbrk(b0 + 3 * PAGE) == before && zero(before, b0 + 3 * PAGE - before), "grow after oom");

    b0[2 * PAGE] = 1;                       /* the TLB now holds this page */
    nbrk(b0 + 10);
    print_str("touching a page given back\n");
    return b0[2 * PAGE];
}
