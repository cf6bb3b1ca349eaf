/* lab malloc: free merges neighbouring free blocks. Two (or three)
 * neighbours of 20000 bytes are freed; a block that fits only in them
 * merged must come from them, without growing the heap. A fence block
 * above each group keeps it off the top of the heap. */
#include "check.h"

#define SIZE 20000u

/* Free the group's blocks in the given order, then ask for want bytes. */
static void scenario(const char *name, unsigned int blocks, const unsigned int *order,
                     unsigned int want)
{
    unsigned char *b[3] = {0, 0, 0};
    for (unsigned int i = 0; i < blocks; i++) {
        b[i] = malloc(SIZE);
        if (!b[i]) {
            printf("check: malloc n=%u p=%p\n", SIZE, (void *)0);
            check_stop();
        }
    }
    void *fence = malloc(16);
    unsigned int lo = (unsigned int)b[0], hi = lo;
    for (unsigned int i = 0; i < blocks; i++) {
        unsigned int p = (unsigned int)b[i];
        lo = p < lo ? p : lo;
        hi = p + SIZE > hi ? p + SIZE : hi;
    }
    for (unsigned int i = 0; i < blocks; i++)
        free(b[order[i]]);
    char *brk = nbrk(0);
    unsigned char *p = malloc(want);
    printf("check: scenario name=%s lo=%#x hi=%#x fence=%p want=%u p=%p brk=%p after=%p\n",
           name, lo, hi, fence, want, (void *)p, brk, nbrk(0));
    if (p)
        fill(p, want, 1);
}

int main(void)
{
    static const unsigned int upper_first[] = {1, 0};
    static const unsigned int lower_first[] = {0, 1};
    static const unsigned int middle_last[] = {0, 2, 1};
    check_start();
    scenario("next", 2, upper_first, 30000);
    scenario("prev", 2, lower_first, 30000);
    scenario("both", 3, middle_last, 50000);
    check_done();
}
