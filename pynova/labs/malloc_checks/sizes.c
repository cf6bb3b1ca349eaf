/* lab malloc: many sizes live at once, from 0 to 3 MiB, each filled and
 * checked; sizes no heap can hold fail with NULL; then all are freed. */
#include "check.h"

static const unsigned int sizes[] = {
    0, 1, 2, 3, 4, 5, 7, 8, 9, 12, 15, 16, 17, 23, 24, 25, 31, 32, 33, 63, 64,
    65, 127, 128, 129, 255, 256, 257, 511, 512, 1000, 1024, 2047, 2048, 4000,
    4095, 4096, 4097, 8191, 8192, 8193, 65535, 65536, 65537, 1u << 20, 3u << 20,
};
#define COUNT (sizeof(sizes) / sizeof(sizes[0]))

/* No pynova machine has this much memory for a heap. */
static const unsigned int too_big[] = {0xFFFFFFFFu, 0xFFFFFFF0u, 0xC0000000u, 0x80000000u};

static unsigned char *block[COUNT];

int main(void)
{
    check_start();
    for (unsigned int i = 0; i < COUNT; i++) {
        block[i] = malloc(sizes[i]);
        printf("check: malloc id=%u n=%u p=%p\n", i, sizes[i], (void *)block[i]);
        if (block[i])
            fill(block[i], sizes[i], i);
    }
    for (unsigned int i = 0; i < COUNT; i++) {
        int bad = block[i] ? first_bad(block[i], sizes[i], i) : -1;
        if (bad >= 0)
            printf("check: corrupt id=%u off=%d\n", i, bad);
    }
    for (unsigned int i = 0; i < sizeof(too_big) / sizeof(too_big[0]); i++)
        printf("check: huge n=%#x p=%p\n", too_big[i], malloc(too_big[i]));
    printf("check: calloc count=%#x size=%#x p=%p\n", 0x10000u, 0x10001u,
           calloc(0x10000u, 0x10001u));
    for (unsigned int i = 1; i < COUNT; i += 2)     /* odd ones first, then even */
        free(block[i]);
    for (unsigned int i = 0; i < COUNT; i += 2)
        free(block[i]);
    printf("check: freed\n");
    free(0);
    printf("check: free-null\n");
    check_done();
}
