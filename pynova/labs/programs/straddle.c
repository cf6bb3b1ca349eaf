/* A data segment that starts inside a page and reaches into the next one
 * (straddle.ld puts it at 0x2f00): counting align_up(memsz) pages from
 * align_down(vaddr) loses its last page, 0x3000, where message ends and
 * the libc's data lie. */
#include "pynova.h"

char message[512] = "straddle ok";
char tail[16] = "tail";

int main(void)
{
    tail[0] = 'T';
    printf("%s %s\n", message, tail);
    exit(0);
}
