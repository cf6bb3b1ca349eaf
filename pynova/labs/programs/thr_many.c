/* Lab threads: 100 threads, each with a stack of its own, take two turns
 * each; the order of the first turns is the circle's. Prints the first
 * turns' order (as a hash and its first ids) and how many ended. */
#include "pynova.h"

#define THREADS 100

static unsigned char stacks[THREADS][512] __attribute__((aligned(16)));
static volatile int finished, turns;
static volatile unsigned int hash = 2166136261u;
static volatile int first[12];

static void worker(void)
{
    int id = thr_self();
    for (int i = 0; i < 2; i++) {
        int n = turns++;
        if (n < 12)
            first[n] = id;
        hash = (hash ^ (unsigned int)id) * 16777619u;
        thr_yield();
    }
    finished++;
    thr_exit();
}

int main(void)
{
    int made = 0;
    for (int i = 0; i < THREADS; i++)
        if (thr_create(worker, stacks[i] + sizeof stacks[i]) == 0)
            made++;
    for (int i = 0; i < 10 * THREADS && finished < made; i++)
        thr_yield();
    printf("check: many made=%d finished=%d turns=%d hash=%#x first=", made, finished, turns,
           hash);
    for (int i = 0; i < 12; i++)
        printf("%d%s", first[i], i < 11 ? "," : "\n");
    printf("check: done\n");
    exit(0);
}
