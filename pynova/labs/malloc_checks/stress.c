/* lab malloc: a seeded pseudo-random run of malloc, calloc, realloc and
 * free over 128 slots; every block's bytes, alignment and distance from
 * the other live blocks are checked as it goes. The first problem is
 * reported with the step that caused it. */
#include "check.h"

#ifndef SEED
#define SEED 0x2545F491u
#endif
#define STEPS 6000u
#define SLOTS 128u

static unsigned char *slot[SLOTS];
static unsigned int size[SLOTS];
static unsigned int tag[SLOTS];
static unsigned int rng = SEED;

static unsigned int next_random(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

/* Mostly small blocks, one in sixteen up to 8 KiB. */
static unsigned int random_size(void)
{
    unsigned int r = next_random();
    return (r & 15) == 0 ? 1 + (r >> 8) % 8192 : 1 + (r >> 8) % 200;
}

static __attribute__((noreturn)) void problem(const char *what, unsigned int step,
                                              unsigned int i, const char *op)
{
    printf("check: problem what=%s step=%u slot=%u op=%s p=%p n=%u hdr=%#x\n", what, step, i,
           op, (void *)slot[i], size[i], slot[i] ? header_of(slot[i]) : 0);
    check_stop();
}

/* The new block in slot i: aligned, and sharing no byte with another. */
static void check_new(unsigned int step, unsigned int i, const char *op)
{
    if ((unsigned int)slot[i] & 7)
        problem("misaligned", step, i, op);
    for (unsigned int j = 0; j < SLOTS; j++) {
        if (j != i && slot[j] && overlap((char *)slot[i], size[i], (char *)slot[j], size[j])) {
            printf("check: other slot=%u p=%p n=%u hdr=%#x\n", j, (void *)slot[j], size[j],
                   header_of(slot[j]));
            problem("overlap", step, i, op);
        }
    }
}

static void verify_all(unsigned int step)
{
    for (unsigned int j = 0; j < SLOTS; j++)
        if (slot[j] && first_bad(slot[j], size[j], tag[j]) >= 0)
            problem("corrupt", step, j, "verify");
}

static void allocate(unsigned int step, unsigned int i)
{
    size[i] = random_size();
    tag[i] = step;
    int zeroed = next_random() % 4 == 0;
    slot[i] = zeroed ? calloc(1, size[i]) : malloc(size[i]);
    const char *op = zeroed ? "calloc" : "malloc";
    if (!slot[i])
        problem("null", step, i, op);
    if (zeroed)
        for (unsigned int k = 0; k < size[i]; k++)
            if (slot[i][k])
                problem("calloc-not-zero", step, i, op);
    check_new(step, i, op);
    fill(slot[i], size[i], tag[i]);
}

static void resize(unsigned int step, unsigned int i)
{
    unsigned int n = random_size();
    unsigned int keep = n < size[i] ? n : size[i];
    unsigned char *q = realloc(slot[i], n);
    if (!q)
        problem("null", step, i, "realloc");
    slot[i] = q;
    if (first_bad(q, keep, tag[i]) >= 0)
        problem("realloc-lost", step, i, "realloc");
    size[i] = n;
    tag[i] = step;
    check_new(step, i, "realloc");
    fill(q, n, tag[i]);
}

int main(void)
{
    check_start();
    printf("check: seed value=%#x steps=%u\n", SEED, STEPS);
    unsigned int peak = 0;
    for (unsigned int step = 0; step < STEPS; step++) {
        unsigned int i = next_random() % SLOTS;
        if (!slot[i])
            allocate(step, i);
        else if (next_random() % 3 == 0)
            resize(step, i);
        else {
            free(slot[i]);
            slot[i] = 0;
        }
        if (step % 64 == 63)
            verify_all(step);
        unsigned int used = (unsigned int)((char *)nbrk(0) - heap_start);
        peak = used > peak ? used : peak;
    }
    verify_all(STEPS);
    for (unsigned int j = 0; j < SLOTS; j++)
        free(slot[j]);
    printf("check: stress steps=%u peak=%u\n", STEPS, peak);
    check_done();
}
