/* A hidden check's program: prints two lines and exits with 7. */
#include "pynova.h"

int main(void)
{
    print_str("hidden: first line\n");
    print_str("hidden: second line\n");
    exit(7);
}
