/* Lab threads: every register but eax is the thread's own across
 * thr_yield. main and two threads load patterns into ebx, esi, edi, ebp
 * and set CF and DF, yield, and compare what they find; ecx and edx come
 * back as the sysenter left them (esp and the resume address). Prints
 * "check: regs ..." for a register that changed. */
#include "pynova.h"

#define THREADS 2
#define ROUNDS 4

void regs_yield(const unsigned int *in, unsigned int *out);
void regs_resume(void);
/* out: ebx esi edi ebp ecx edx eflags esp (esp as it was at the sysenter) */
__asm__(".text\n"
        ".global regs_yield\n"
        ".global regs_resume\n"
        "regs_yield:\n"
        "    push %ebp\n"
        "    push %ebx\n"
        "    push %esi\n"
        "    push %edi\n"
        "    mov 20(%esp), %eax\n"
        "    mov 0(%eax), %ebx\n"
        "    mov 4(%eax), %esi\n"
        "    mov 8(%eax), %edi\n"
        "    mov 12(%eax), %ebp\n"
        "    mov $5, %eax\n"
        "    mov %esp, %ecx\n"
        "    mov $regs_resume, %edx\n"
        "    stc\n"
        "    std\n"
        "    sysenter\n"
        "regs_resume:\n"
        "    pushf\n"
        "    cld\n"
        "    mov 28(%esp), %eax\n"
        "    mov %ebx, 0(%eax)\n"
        "    mov %esi, 4(%eax)\n"
        "    mov %edi, 8(%eax)\n"
        "    mov %ebp, 12(%eax)\n"
        "    mov %ecx, 16(%eax)\n"
        "    mov %edx, 20(%eax)\n"
        "    pop %ecx\n"
        "    mov %ecx, 24(%eax)\n"
        "    mov %esp, 28(%eax)\n"
        "    pop %edi\n"
        "    pop %esi\n"
        "    pop %ebx\n"
        "    pop %ebp\n"
        "    ret\n");

static unsigned char stacks[THREADS][2048] __attribute__((aligned(16)));
static volatile int finished, bad;
static const char *const names[] = {"ebx", "esi", "edi", "ebp", "ecx", "edx"};

static void rounds(void)
{
    int id = thr_self();
    for (int round = 0; round < ROUNDS; round++) {
        unsigned int in[4], out[8];
        for (int r = 0; r < 4; r++)
            in[r] = 0x11111111u * (unsigned int)(r + 1) ^ (unsigned int)(id << 8 | round);
        regs_yield(in, out);
        int now = thr_self();
        unsigned int want[6] = {in[0], in[1], in[2], in[3], out[7], (unsigned int)regs_resume};
        for (int r = 0; r < 6; r++)
            if (out[r] != want[r]) {
                printf("check: regs id=%d now=%d round=%d reg=%s was=%#x got=%#x\n", id, now,
                       round, names[r], want[r], out[r]);
                bad++;
            }
        if ((out[6] & 0x401) != 0x401) {
            printf("check: regs id=%d now=%d round=%d reg=eflags was=%#x got=%#x\n", id, now,
                   round, out[6] | 0x401, out[6]);
            bad++;
        }
        if (now != id) {
            printf("check: self id=%d now=%d round=%d\n", id, now, round);
            bad++;
        }
        if (bad > 8) {
            printf("check: done bad=%d\n", bad);
            exit(0);
        }
    }
}

static void worker(void)
{
    rounds();
    finished++;
    thr_exit();
}

int main(void)
{
    for (int i = 0; i < THREADS; i++)
        if (thr_create(worker, stacks[i] + sizeof stacks[i]) < 0) {
            printf("check: create failed i=%d\n", i);
            exit(1);
        }
    rounds();
    for (int i = 0; i < 4 * THREADS * ROUNDS && finished < THREADS; i++)
        thr_yield();
    printf("check: done bad=%d finished=%d\n", bad, finished);
    exit(0);
}
