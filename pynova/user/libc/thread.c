/* thread_create: a thread on a malloc'ed stack that ends with thr_exit. */
#include "pynova.h"

/* A thread's function returns here (its stack holds this address where a
 * caller's return address would be). */
static void thread_return(void)
{
    thr_exit();
}

int thread_create(void (*fn)(void *), void *arg)
{
    unsigned int *stack = malloc(THREAD_STACK_SIZE);
    if (!stack)
        return -1;
    /* The new context starts at fn with esp pointing at a return address
     * and the argument above it, as if fn had just been called. */
    unsigned int *sp = stack + THREAD_STACK_SIZE / sizeof(unsigned int) - 4;
    sp[0] = (unsigned int)thread_return;
    sp[1] = (unsigned int)arg;
    if (thr_create((void (*)(void))fn, sp) < 0) {
        free(stack);
        return -1;
    }
    return 0;
}
