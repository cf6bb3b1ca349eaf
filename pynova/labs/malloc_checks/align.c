/* lab malloc: every block malloc returns is 8-byte aligned, for sizes 1
 * to 40 and some larger ones, all live at once. */
#include "check.h"

static const unsigned int sizes[] = {
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20,
    21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38,
    39, 40, 63, 64, 65, 100, 127, 128, 129, 255, 256, 1000, 1001, 4095,
    4096, 4097, 9999,
};
#define COUNT (sizeof(sizes) / sizeof(sizes[0]))

int main(void)
{
    check_start();
    for (unsigned int i = 0; i < COUNT; i++) {
        unsigned char *p = malloc(sizes[i]);
        printf("check: malloc id=%u n=%u p=%p hdr=%#x\n", i, sizes[i], (void *)p,
               p ? header_of(p) : 0);
        if (!p)
            check_stop();
        fill(p, sizes[i], i);
    }
    check_done();
}
