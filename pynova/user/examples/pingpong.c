/* Two contexts yield to each other 50 000 times each (100 000 thr_yield switches), then print "switches N". */
#include "pynova.h"

#ifndef ROUNDS
#define ROUNDS 50000
#endif

static volatile int turns[2];

static void ping(void *arg)
{
    int me = (int)arg;
    for (int i = 0; i < ROUNDS; i++) {
        turns[me]++;
        thr_yield();
    }
}

int main(void)
{
    if (thread_create(ping, (void *)1) < 0)
        exit(1);
    ping((void *)0);
    while (turns[1] < ROUNDS)
        thr_yield();
    printf("switches %d\n", turns[0] + turns[1]);
    exit(turns[0] == ROUNDS && turns[1] == ROUNDS ? 0 : 3);
}
