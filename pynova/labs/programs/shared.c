/* The data segment and the text segment meet inside one page (shared.ld
 * has no ALIGN between them, as the original course's script had): that
 * page needs the rights of both, RW from the data and the text's code. */
#include "pynova.h"

int g = 1;

int main(void)
{
    g = 41;                         /* a store into the shared page */
    g++;
    printf("shared page ok: g=%d\n", g);
    exit(g);
}
