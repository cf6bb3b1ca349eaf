/* Lab threads: thr_create makes a thread that starts at the eip given,
 * with esp = the stack_top given. Its entry is assembly, so that esp is
 * read before anything is pushed. Prints "check: KIND key=value" lines. */
#include "pynova.h"

static unsigned char stack[4096] __attribute__((aligned(16)));
volatile unsigned int entry_esp, entry_ran;

void thread_body(void);
void entry(void);
__asm__(".text\n"
        ".global entry\n"
        "entry:\n"
        "    movl %esp, entry_esp\n"
        "    movl $1, entry_ran\n"
        "    andl $-16, %esp\n"
        "    call thread_body\n"
        "    ud2\n");

void thread_body(void)
{
    printf("check: thread id=%d esp=%#x\n", thr_self(), entry_esp);
    thr_exit();
}

int main(void)
{
    unsigned int top = (unsigned int)(stack + sizeof stack), esp;
    __asm__ volatile("mov %%esp, %0" : "=r"(esp));
    printf("check: start id=%d eip=%#x top=%#x esp=%#x\n", thr_self(), (unsigned int)entry,
           top, esp);
    unsigned int r = syscall2(SYS_THR_CREATE, (unsigned int)entry, top);
    printf("check: create r=%#x\n", r);
    for (int i = 0; i < 3 && !entry_ran; i++)
        thr_yield();
    printf("check: back id=%d ran=%d\n", thr_self(), entry_ran);
    printf("check: done\n");
    exit(0);
}
