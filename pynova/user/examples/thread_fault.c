/* A second thread stores to the unmapped address 0x234 while main yields: the fault report names EC 1. */
#include "pynova.h"

static void faulty(void *arg)
{
    (void)arg;
    print_str("thread faulting\n");
    *((volatile int *)0x234) = 0x12;
    print_str("not reached\n");
}

int main(void)
{
    if (thread_create(faulty, 0) < 0) {
        print_str("thread_create failed\n");
        exit(1);
    }
    for (;;)
        thr_yield();
}
