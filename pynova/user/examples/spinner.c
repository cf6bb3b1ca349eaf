/* A thread spins forever without yielding; main still prints five ticks (preemption), then exit(0) ends both. */
#include "pynova.h"

/* With -DMAIN_SPINS the roles swap: main spins (never yields) until the
 * thread it created has printed its ticks. */

static volatile unsigned int spins;
static volatile int ticks_done;

static void spin(void *arg)
{
    (void)arg;
    for (;;)
        spins++;
}

static void ticker(void *arg)
{
    (void)arg;
    for (int tick = 0; tick < 5; tick++) {
        printf("tick %d\n", tick);
        thr_yield();
    }
    ticks_done = 1;
}

int main(void)
{
#ifdef MAIN_SPINS
    if (thread_create(ticker, 0) < 0)
        exit(1);
    while (!ticks_done)
        spins++;
#else
    if (thread_create(spin, 0) < 0)
        exit(1);
    ticker(0);
#endif
    print_str(spins ? "spinner ran\n" : "spinner never ran\n");
    exit(0);
}
