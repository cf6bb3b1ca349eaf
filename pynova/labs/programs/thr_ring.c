/* Lab threads: main and three threads take turns, each yielding after
 * every turn: the order they run in is the circle's. Prints "check:
 * turn id=N round=R" for every turn. */
#include "pynova.h"

#define THREADS 3
#define ROUNDS 3

static unsigned char stacks[THREADS][2048] __attribute__((aligned(16)));
static volatile int finished;

static void turns(void)
{
    for (int round = 0; round < ROUNDS; round++) {
        printf("check: turn id=%d round=%d\n", thr_self(), round);
        thr_yield();
    }
}

static void worker(void)
{
    turns();
    finished++;
    thr_exit();
}

int main(void)
{
    for (int i = 0; i < THREADS; i++)
        if (thr_create(worker, stacks[i] + sizeof stacks[i]) < 0) {
            printf("check: create failed i=%d\n", i);
            exit(1);
        }
    turns();
    /* The others may still have turns: give them the CPU (a bounded
     * number of times, so that a yield that never switches ends too). */
    for (int i = 0; i < 4 * THREADS * ROUNDS && finished < THREADS; i++)
        thr_yield();
    printf("check: done finished=%d\n", finished);
    exit(0);
}
