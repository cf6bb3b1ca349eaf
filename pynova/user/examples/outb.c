/* Execute outb %al, $0x80 in user mode (IOPL 0): general protection. */
#include "pynova.h"

int main(void)
{
    /* fault_insn: a global label on the faulting instruction (see nm). */
    __asm__ volatile(".globl fault_insn\nfault_insn: outb %%al, $0x80" : : "a"(0));
    return 0;
}
