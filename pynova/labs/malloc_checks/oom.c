/* lab malloc: when the kernel has no memory left (nbrk returns 0), malloc
 * returns NULL and the heap stays usable. Run with a small --mem: blocks
 * of 256 KiB are taken (each page written) until malloc says NULL; then
 * all are freed and a block of that size must be had again. */
#include "check.h"

#define CHUNK (256u << 10)
#define MAX_CHUNKS 64

static unsigned char *chunk[MAX_CHUNKS];

static void touch(unsigned char *p, unsigned int n)
{
    for (unsigned int i = 0; i < n; i += 4096)
        p[i] = 0x5a;
    p[n - 1] = 0xa5;
}

int main(void)
{
    check_start();
    unsigned int got = 0;
    while (got < MAX_CHUNKS) {
        printf("check: try id=%u n=%u brk=%p\n", got, CHUNK, nbrk(0));
        unsigned char *p = malloc(CHUNK);
        printf("check: malloc id=%u p=%p brk=%p\n", got, (void *)p, nbrk(0));
        if (!p)
            break;
        touch(p, CHUNK);
        chunk[got++] = p;
    }
    unsigned char *small = malloc(64);
    printf("check: small p=%p\n", (void *)small);
    if (small)
        fill(small, 64, 1);
    for (unsigned int i = 0; i < got; i++)
        free(chunk[i]);
    printf("check: freed count=%u brk=%p\n", got, nbrk(0));
    unsigned char *again = malloc(CHUNK);
    printf("check: again p=%p brk=%p\n", (void *)again, nbrk(0));
    if (again)
        touch(again, CHUNK);
    printf("check: touched\n");
    check_done();
}
