/* Execute int3 in user mode: breakpoint exception. */
#include "pynova.h"

int main(void)
{
    /* fault_insn: a global label on the faulting instruction (see nm). */
    __asm__ volatile(".globl fault_insn\nfault_insn: int3");
    return 0;
}
