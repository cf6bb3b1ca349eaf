/* Execute the privileged instruction hlt in user mode: general protection. */
#include "pynova.h"

int main(void)
{
    /* fault_insn: a global label on the faulting instruction (see nm). */
    __asm__ volatile(".globl fault_insn\nfault_insn: hlt");
    return 0;
}
