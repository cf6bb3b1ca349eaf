/* Check that .bss starts zeroed and is writable. */
#include "pynova.h"

/* Small on purpose: the stack grows down from 0x2000 through the page that
 * holds .data/.bss and the start of .text (see linker.ld), so a big .bss
 * would push code into the stack's way. */
#define N 64
static int zeros[N];
int counter;

int main(void)
{
    volatile int *z = zeros;
    volatile int *c = &counter;

    if (*c != 0) {
        printf("bss: counter = %d\n", *c);
        return 1;
    }
    for (int i = 0; i < N; i++) {
        if (z[i] != 0) {
            printf("bss: zeros[%d] = %d\n", i, z[i]);
            return 1;
        }
    }
    for (int i = 0; i < N; i++)
        z[i] = i * 3 + 1;
    *c = 42;
    for (int i = 0; i < N; i++) {
        if (z[i] != i * 3 + 1) {
            printf("bss: zeros[%d] reads %d after write\n", i, z[i]);
            return 1;
        }
    }
    if (*c != 42) {
        print_str("bss: counter lost its value\n");
        return 1;
    }
    print_str("bss ok\n");
    return 0;
}
