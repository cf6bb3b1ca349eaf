/* lab malloc: malloc returns memory in the heap that can be written and
 * read back, and free takes it back. */
#include "check.h"

static void one(unsigned int id, unsigned int n)
{
    unsigned char *p = malloc(n);
    printf("check: malloc id=%u n=%u p=%p hdr=%#x brk=%p\n", id, n, (void *)p,
           p ? header_of(p) : 0, nbrk(0));
    if (!p)
        check_stop();
    fill(p, n, id);
    printf("check: filled id=%u\n", id);
    printf("check: verify id=%u bad=%d\n", id, first_bad(p, n, id));
    free(p);
    printf("check: freed id=%u\n", id);
}

int main(void)
{
    check_start();
    one(0, 24);
    one(1, 100);
    one(2, 3000);
    check_done();
}
