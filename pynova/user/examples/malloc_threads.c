/* Three threads malloc, fill, check and free blocks at once (run with a small --quantum so malloc gets preempted); prints the error count. */
#include "pynova.h"

#define THREADS 3
#define OPS 1000
#define SLOTS 16

static volatile int finished;
static volatile int errors;

static unsigned int next_random(unsigned int *state)
{
    unsigned int x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *state = x;
}

static int check_and_free(unsigned char *p, unsigned int size, unsigned char tag)
{
    int bad = 0;
    for (unsigned int i = 0; i < size; i++)
        bad |= p[i] != (unsigned char)(tag + i);
    free(p);
    return bad;
}

static void worker(void *arg)
{
    unsigned int rng = 0x9E3779B9u * (unsigned int)arg + 1;
    unsigned char *slot[SLOTS] = {0};
    unsigned int size[SLOTS];
    unsigned char tag = (unsigned char)(unsigned int)arg * 64;
    for (int op = 0; op < OPS; op++) {
        unsigned int i = next_random(&rng) % SLOTS;
        if (slot[i]) {
            __sync_fetch_and_add(&errors, check_and_free(slot[i], size[i], tag));
            slot[i] = 0;
            continue;
        }
        size[i] = 1 + next_random(&rng) % 400;
        slot[i] = malloc(size[i]);
        if (!slot[i] || ((unsigned int)slot[i] & 7)) {
            __sync_fetch_and_add(&errors, 1);
            slot[i] = 0;
            continue;
        }
        for (unsigned int j = 0; j < size[i]; j++)
            slot[i][j] = (unsigned char)(tag + j);
    }
    for (int i = 0; i < SLOTS; i++)
        if (slot[i])
            __sync_fetch_and_add(&errors, check_and_free(slot[i], size[i], tag));
    __sync_fetch_and_add(&finished, 1);
}

int main(void)
{
    for (int t = 1; t <= THREADS; t++)
        if (thread_create(worker, (void *)t) < 0)
            exit(1);
    while (finished < THREADS)
        thr_yield();
    printf("malloc_threads: threads=%d ops=%d errors=%d\n", THREADS, THREADS * OPS, errors);
    exit(errors ? 1 : 0);
}
