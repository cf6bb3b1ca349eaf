/* Spin 200 million iterations of x += i on a volatile, then print "done". */
#include "pynova.h"

#ifndef ITER
#define ITER 200000000u
#endif

int main(void)
{
    volatile unsigned int x = 0;
    for (unsigned int i = 0; i < (unsigned int)(ITER); i++)
        x += i;
    print("done\n", 5);
    return 0;
}
