/* Divide an integer by a volatile zero: divide error. */
#include "pynova.h"

int main(void)
{
    volatile int zero = 0;
    volatile int ten = 10;
    return ten / zero;
}
