/* Print "Hello world!" and return from main (ends in start.S's ud2). */
#include "pynova.h"

int main(void)
{
    print("Hello world!\n", 13);
    return 0;
}
