/* 100 000 sum system calls, check the total, print "done". */
#include "pynova.h"

#define CALLS 100000u

int main(void)
{
    unsigned int total = 0;
    for (unsigned int i = 0; i < CALLS; i++)
        total = sum(total, i);
    /* 0 + 1 + ... + 99999 modulo 2^32 */
    if (total == (unsigned int)((unsigned long long)CALLS * (CALLS - 1) / 2))
        print("done\n", 5);
    else
        print("bad total\n", 10);
    return 0;
}
