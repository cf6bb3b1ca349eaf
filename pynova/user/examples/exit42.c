/* Print "bye" and end the task with exit(42). */
#include "pynova.h"

int main(void)
{
    print("bye\n", 4);
    exit(42);
}
