/* Call through a function pointer to the unmapped address 0x50000000. */
#include "pynova.h"

int main(void)
{
    void (*volatile fn)(void) = (void (*)(void))0x50000000;
    fn();
    return 0;
}
