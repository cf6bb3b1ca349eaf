/* lab malloc: blocks that are live at the same time never share a byte,
 * and no malloc or free changes a live block's bytes. A script of mallocs
 * and frees; after each step every live block is compared with the
 * others and its pattern checked; the first problem is reported. */
#include "check.h"

#define MAX_BLOCKS 64

/* n > 0: malloc(n) as the next block; n <= 0: free block -n. */
static const int script[] = {
    24, 40, 16, 100, 8, 64, 200, 32,
    -1, -3, 16, 48,                 /* reuse freed blocks, split them */
    -0, -2, 56, 8, 120,             /* neighbours freed, a bigger block */
    -6, -5, -4, 300, 24, 24,        /* a run of neighbours freed */
    -12, 1000, -15, 12, 40, -9, 80, 16, 500, -20, -21, 64, 8, 2000,
};
#define STEPS (sizeof(script) / sizeof(script[0]))

static unsigned char *block[MAX_BLOCKS];
static unsigned int size[MAX_BLOCKS];
static unsigned int count;

static void report_block(const char *kind, unsigned int id)
{
    printf("check: %s id=%u p=%p n=%u hdr=%#x\n", kind, id, (void *)block[id], size[id],
           header_of(block[id]));
}

/* Stop at the first live block the new block id shares bytes with. */
static void check_overlap(unsigned int id, unsigned int step)
{
    for (unsigned int j = 0; j < count; j++) {
        if (j == id || !block[j])
            continue;
        if (overlap((char *)block[id], size[id], (char *)block[j], size[j])) {
            printf("check: overlap step=%u new=%u old=%u\n", step, id, j);
            report_block("block", id);
            report_block("block", j);
            check_stop();
        }
    }
}

/* Stop at the first live block whose pattern changed. */
static void check_patterns(unsigned int step)
{
    for (unsigned int j = 0; j < count; j++) {
        if (!block[j])
            continue;
        int bad = first_bad(block[j], size[j], j);
        if (bad >= 0) {
            printf("check: corrupt step=%u id=%u off=%d got=%#x want=%#x\n", step, j, bad,
                   block[j][bad], pattern(j, (unsigned int)bad));
            report_block("block", j);
            check_stop();
        }
    }
}

int main(void)
{
    check_start();
    for (unsigned int step = 0; step < STEPS; step++) {
        int op = script[step];
        if (op > 0) {
            unsigned int id = count++;
            size[id] = (unsigned int)op;
            block[id] = malloc(size[id]);
            printf("check: malloc step=%u id=%u n=%u p=%p hdr=%#x\n", step, id, size[id],
                   (void *)block[id], header_of(block[id]));
            if (!block[id])
                check_stop();
            check_overlap(id, step);
            fill(block[id], size[id], id);
        } else {
            unsigned int id = (unsigned int)-op;
            printf("check: free step=%u id=%u p=%p\n", step, id, (void *)block[id]);
            free(block[id]);
            block[id] = 0;
        }
        check_patterns(step);
    }
    for (unsigned int j = 0; j < count; j++)
        if (block[j])
            report_block("live", j);
    check_done();
}
