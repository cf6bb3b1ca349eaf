/* Raw system-call entry for pynova user programs (see docs/ABI.md).
 *
 * sysenter with al = number, esi/edi = arguments, ecx = user esp to resume
 * with, edx = user eip to resume at; the result comes back in eax (calls
 * without a result leave eax unchanged, so it still holds the number).
 * The kernel preserves every other register. */
#ifndef PYNOVA_SYSCALL_H
#define PYNOVA_SYSCALL_H

#define SYS_DUMP       0
#define SYS_PRINT      1
#define SYS_SUM        2
#define SYS_NBRK       3
#define SYS_THR_CREATE 4
#define SYS_THR_YIELD  5
#define SYS_EXIT       6
/* 7 is deliberately unassigned (the reference's "unknown call" probe). */
#define SYS_THR_EXIT   8
#define SYS_THR_SELF   9

static inline unsigned int pynova_syscall(unsigned int nr, unsigned int a,
                                          unsigned int b)
{
    unsigned int ret;
    __asm__ volatile("mov %%esp, %%ecx\n\t"
                     "mov $1f, %%edx\n\t"
                     "sysenter\n"
                     "1:"
                     : "=a"(ret)
                     : "a"(nr), "S"(a), "D"(b)
                     : "ecx", "edx", "memory");
    return ret;
}

#endif
