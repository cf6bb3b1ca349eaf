/* lab malloc: freed memory is used again. 32 blocks of 64 bytes are
 * freed and 32 new ones taken, 40 times over; a fence block above them
 * keeps them off the top of the heap. The break must not grow: 40 rounds
 * of new memory would be 90 KiB. */
#include "check.h"

#define BLOCKS 32
#define SIZE 64
#define ROUNDS 40

static unsigned char *block[BLOCKS];

static void take_all(unsigned int round)
{
    for (unsigned int i = 0; i < BLOCKS; i++) {
        block[i] = malloc(SIZE);
        if (!block[i]) {
            printf("check: malloc round=%u id=%u n=%u p=%p\n", round, i, SIZE, (void *)0);
            check_stop();
        }
        fill(block[i], SIZE, i);
    }
}

int main(void)
{
    check_start();
    take_all(0);
    void *fence = malloc(SIZE);
    unsigned int lo = (unsigned int)block[0], hi = lo;
    for (unsigned int i = 0; i < BLOCKS; i++) {
        unsigned int p = (unsigned int)block[i];
        lo = p < lo ? p : lo;
        hi = p + SIZE > hi ? p + SIZE : hi;
    }
    printf("check: before lo=%#x hi=%#x fence=%p brk=%p hdr=%#x\n", lo, hi, fence, nbrk(0),
           header_of(block[0]));
    for (unsigned int round = 1; round <= ROUNDS; round++) {
        for (unsigned int i = 0; i < BLOCKS; i++) {
            free(block[i]);
            if (round == 1 && i == 0)
                printf("check: freed hdr=%#x\n", header_of(block[0]));
        }
        take_all(round);
        unsigned int outside = 0, example = 0;
        for (unsigned int i = 0; i < BLOCKS; i++) {
            unsigned int p = (unsigned int)block[i];
            if (p < lo || p + SIZE > hi) {
                example = outside++ ? example : p;
            }
        }
        printf("check: round r=%u brk=%p outside=%u example=%#x\n", round, nbrk(0), outside,
               example);
    }
    check_done();
}
