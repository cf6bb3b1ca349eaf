/* Program startup, as on the seed's slide "Program startup": set up the stack,
 * call main, and if main returns execute an undefined instruction so that the
 * kernel reports an Invalid Opcode exception there. */
    .text
    .global _start
_start:
    mov $stack_top, %esp
    call main
    ud2

    .section .note.GNU-stack,"",@progbits
