/* The spin loop split between two threads that never yield: the
 * preemption quantum alone switches them (issue 8's quantum figure). */
#include "pynova.h"

#ifndef ITER
#define ITER 100000000u
#endif

static volatile int done;

static void spin(void)
{
    volatile unsigned int x = 0;
    for (unsigned int i = 0; i < (unsigned int)(ITER); i++)
        x += i;
}

static void second(void *arg)
{
    (void)arg;
    spin();
    done = 1;
}

int main(void)
{
    thread_create(second, 0);
    spin();
    while (!done)
        thr_yield();
    print("done\n", 5);
    exit(0);
}
