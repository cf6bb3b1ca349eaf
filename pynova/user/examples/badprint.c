/* print() with a kernel-space and an unmapped buffer; then exit(3). */
#include "pynova.h"

int main(void)
{
    int r = print((const char *)0xC0001000, 4);
    printf("print(kernel) = %d\n", r);
    r = print((const char *)0x30000000, 4);
    printf("print(unmapped) = %d\n", r);
    exit(3);
}
