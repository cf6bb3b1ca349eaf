/* What lab malloc's check programs share. Each program prints lines
 * "check: KIND key=value ..." that pynova/labs/malloc.py reads; they use
 * only malloc, free, calloc, realloc and nbrk, so any allocator with
 * pynova's interface can be checked. Build one yourself with your
 * allocator: pynova build .../malloc_checks/NAME.c malloc.c -o NAME */
#ifndef MALLOC_CHECK_H
#define MALLOC_CHECK_H

#include "pynova.h"

/* The break when main started: the heap lies above it. */
static char *heap_start;

static inline void check_start(void)
{
    heap_start = nbrk(0);
    printf("check: start brk=%p\n", (void *)heap_start);
}

/* The program got to its end. */
static inline __attribute__((noreturn)) void check_done(void)
{
    printf("check: done brk=%p\n", nbrk(0));
    exit(0);
}

/* The program stops early: it reported what went wrong. */
static inline __attribute__((noreturn)) void check_stop(void)
{
    printf("check: stop brk=%p\n", nbrk(0));
    exit(0);
}

/* The byte at offset i of block id: neighbours never share a pattern. */
static inline unsigned char pattern(unsigned int id, unsigned int i)
{
    return (unsigned char)(id * 37u + i * 11u + 1u);
}

static inline void fill(unsigned char *p, unsigned int n, unsigned int id)
{
    for (unsigned int i = 0; i < n; i++)
        p[i] = pattern(id, i);
}

/* The first offset at which block id no longer holds its pattern, or -1. */
static inline int first_bad(const unsigned char *p, unsigned int n, unsigned int id)
{
    for (unsigned int i = 0; i < n; i++)
        if (p[i] != pattern(id, i))
            return (int)i;
    return -1;
}

/* The word right below a payload (the block's header in pynova's design),
 * read only when it lies inside the heap; 0 otherwise. */
static inline unsigned int header_of(const void *p)
{
    unsigned int at = (unsigned int)p;
    if (at < (unsigned int)heap_start + 4 || at > (unsigned int)nbrk(0))
        return 0;
    return ((const unsigned int *)p)[-1];
}

/* Whether [p, p+n) and [q, q+m) share a byte. */
static inline int overlap(const char *p, unsigned int n, const char *q, unsigned int m)
{
    return p < q + m && q < p + n;
}

#endif
