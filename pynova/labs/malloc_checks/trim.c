/* lab malloc: freeing the block at the top of the heap gives its memory
 * back to the kernel (the break moves down), and what comes after still
 * works: new blocks above the lowered break are mapped again. */
#include "check.h"

#define BIG 65536u

/* Write every page of [p, p+n) and the last byte. */
static void touch(unsigned char *p, unsigned int n)
{
    for (unsigned int i = 0; i < n; i += 4096)
        p[i] = 0x5a;
    p[n - 1] = 0xa5;
}

int main(void)
{
    check_start();
    unsigned char *small = malloc(16);
    printf("check: small p=%p brk=%p\n", (void *)small, nbrk(0));
    if (!small)
        check_stop();
    unsigned char *big = malloc(BIG);
    printf("check: big p=%p n=%u brk=%p\n", (void *)big, BIG, nbrk(0));
    if (!big)
        check_stop();
    touch(big, BIG);
    free(big);
    printf("check: freed brk=%p\n", nbrk(0));
    unsigned char *again = malloc(BIG);
    printf("check: again p=%p n=%u brk=%p\n", (void *)again, BIG, nbrk(0));
    if (!again)
        check_stop();
    touch(again, BIG);
    printf("check: touched\n");
    unsigned char *more = malloc(100);
    printf("check: more p=%p n=100 brk=%p overlap=%d\n", (void *)more, nbrk(0),
           more && (overlap((char *)more, 100, (char *)again, BIG) ||
                    overlap((char *)more, 100, (char *)small, 16)));
    if (more)
        fill(more, 100, 7);
    free(again);
    printf("check: freed2 brk=%p\n", nbrk(0));
    small[0] = 1;
    printf("check: small-ok\n");
    check_done();
}
