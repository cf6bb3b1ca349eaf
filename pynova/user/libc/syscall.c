/* System-call stubs (docs/ABI.md). */
#include "pynova.h"

/* Every program links this (the toolchain passes `-u pynova_libc`), so the
 * syscall stubs are always there and the data segment is never empty. */
const char pynova_libc[] = "pynova libc";

unsigned int syscall2(unsigned int nr, unsigned int a, unsigned int b)
{
    return pynova_syscall(nr, a, b);
}

void sys_dump(unsigned int a, unsigned int b)
{
    pynova_syscall(SYS_DUMP, a, b);
}

int print(const char *buf, unsigned int len)
{
    unsigned int r = pynova_syscall(SYS_PRINT, (unsigned int)buf, len);
    return r == 0xFFFFFFFFu ? -1 : 0;
}

int print_str(const char *s)
{
    return print(s, strlen(s));
}

unsigned int sum(unsigned int a, unsigned int b)
{
    return pynova_syscall(SYS_SUM, a, b);
}

void *nbrk(void *new_break)
{
    return (void *)pynova_syscall(SYS_NBRK, (unsigned int)new_break, 0);
}

int thr_create(void (*eip)(void), void *stack_top)
{
    unsigned int r = pynova_syscall(SYS_THR_CREATE, (unsigned int)eip,
                                    (unsigned int)stack_top);
    return r == 0 ? 0 : -1;
}

void thr_yield(void)
{
    pynova_syscall(SYS_THR_YIELD, 0, 0);
}

void exit(int status)
{
    pynova_syscall(SYS_EXIT, (unsigned int)status, 0);
    for (;;)
        __asm__ volatile("ud2");
}

void thr_exit(void)
{
    pynova_syscall(SYS_THR_EXIT, 0, 0);
    for (;;)
        __asm__ volatile("ud2");
}

int thr_self(void)
{
    return (int)pynova_syscall(SYS_THR_SELF, 0, 0);
}
