/* Two threads and main print three steps each, yielding after every step: a fixed round-robin interleaving. */
#include "pynova.h"

static void worker(void *arg)
{
    const char *name = arg;
    for (int step = 0; step < 3; step++) {
        printf("%s step %d (EC %d)\n", name, step, thr_self());
        thr_yield();
    }
    printf("%s done\n", name);
}

int main(void)
{
    if (thread_create(worker, "A") < 0 || thread_create(worker, "B") < 0) {
        print_str("thread_create failed\n");
        exit(1);
    }
    for (int step = 0; step < 3; step++) {
        printf("main step %d (EC %d)\n", step, thr_self());
        thr_yield();
    }
    print_str("main done\n");
    thr_exit();
}
