/* A 64 KiB .bss array and a global counter start zeroed, are writable, and keep every element while the stack is in use: "bss ok". */
#include "pynova.h"

/* 64 KiB: far more than the page the stack has (0x1000-0x2000, below the
 * data segment), so a stack that ran into .bss would show here. */
#define N 16384
static int big[N];
int counter;

/* Uses some stack: printf's frames and a few recursive calls. */
static int stir(int depth)
{
    char line[64];
    snprintf(line, sizeof line, "depth %d", depth);
    return depth ? stir(depth - 1) + (int)strlen(line) : 0;
}

int main(void)
{
    volatile int *z = big;
    volatile int *c = &counter;

    if (*c != 0) {
        printf("bss: counter = %d\n", *c);
        return 1;
    }
    for (int i = 0; i < N; i++) {
        if (z[i] != 0) {
            printf("bss: big[%d] = %d\n", i, z[i]);
            return 1;
        }
    }
    for (int i = 0; i < N; i++)
        z[i] = i * 3 + 1;
    *c = 42;
    printf("stirred %d\n", stir(8));
    for (int i = 0; i < N; i++) {
        if (z[i] != i * 3 + 1) {
            printf("bss: big[%d] reads %d after write\n", i, z[i]);
            return 1;
        }
    }
    if (*c != 42) {
        print_str("bss: counter lost its value\n");
        return 1;
    }
    printf("bss ok: %u bytes\n", (unsigned int)sizeof big);
    return 0;
}
