/* Lab threads: thr_create refuses what cannot be a user thread (eax =
 * 0xFFFFFFFF), and the caller goes on as the only thread. */
#include "pynova.h"

static unsigned char stack[1024] __attribute__((aligned(16)));

static void never(void)
{
    printf("check: ran id=%d\n", thr_self());
    thr_exit();
}

int main(void)
{
    unsigned int top = (unsigned int)(stack + sizeof stack);
    static const unsigned int cases[][2] = {
        {0xC0001000u, 0}, {0xFFFFFFFFu, 0}, {0, 0xC0001000u}, {0, 0xFFFFFFF0u},
    };
    for (unsigned int i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unsigned int eip = cases[i][0] ? cases[i][0] : (unsigned int)never;
        unsigned int sp = cases[i][1] ? cases[i][1] : top;
        unsigned int r = syscall2(SYS_THR_CREATE, eip, sp);
        printf("check: create eip=%#x top=%#x r=%#x\n", eip, sp, r);
    }
    thr_yield();
    printf("check: alone id=%d\n", thr_self());
    printf("check: done\n");
    exit(0);
}
