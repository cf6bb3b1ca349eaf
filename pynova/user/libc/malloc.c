/* malloc, free, calloc, realloc on the nbrk system call.
 *
 * Boundary-tag allocator: every block has a 4-byte header and a 4-byte
 * footer holding its size (a multiple of 8) with bit 0 set while in use.
 * Headers sit at addresses = 4 (mod 8) so payloads are 8-byte aligned. A
 * used prologue footer at the heap start and a used epilogue header at the
 * break stop coalescing. Free blocks are on a doubly linked first-fit list;
 * a freed block merges with free neighbours, and a free block of at least
 * TRIM_MIN bytes at the top of the heap is given back with nbrk. */
#include "pynova.h"

#define ALIGN      8u
#define OVERHEAD   8u           /* header + footer */
#define MIN_BLOCK  16u          /* header, two list links, footer */
#define GROW_MIN   4096u
#define TRIM_MIN   8192u
#define USED       1u

typedef unsigned int word;

struct free_links {
    struct free_links *next;
    struct free_links *prev;
};

static char *heap_base;         /* prologue footer; 0 until the first call */
static struct free_links *free_list;
static volatile int heap_lock;  /* threads may be preempted inside malloc */

static void lock(void)
{
    while (__sync_lock_test_and_set(&heap_lock, 1))
        thr_yield();
}

static void unlock(void)
{
    __sync_lock_release(&heap_lock);
}

/* ---- block helpers: b points at a block's header ---- */

static word bsize(char *b) { return *(word *)b & ~USED; }
static int bused(char *b) { return *(word *)b & USED; }
static char *bnext(char *b) { return b + bsize(b); }
static char *bprev(char *b) { return b - (*(word *)(b - 4) & ~USED); }
static void *payload(char *b) { return b + 4; }
static char *block_of(void *p) { return (char *)p - 4; }
static struct free_links *links(char *b) { return (struct free_links *)(b + 4); }

static void set_block(char *b, word size, word used)
{
    *(word *)b = size | used;
    *(word *)(b + size - 4) = size | used;
}

static void list_push(char *b)
{
    struct free_links *l = links(b);
    l->prev = 0;
    l->next = free_list;
    if (free_list)
        free_list->prev = l;
    free_list = l;
}

static void list_remove(char *b)
{
    struct free_links *l = links(b);
    if (l->prev)
        l->prev->next = l->next;
    else
        free_list = l->next;
    if (l->next)
        l->next->prev = l->prev;
}

/* ---- the heap's ends ---- */

static int heap_init(void)
{
    char *brk = nbrk(0);
    char *base = (char *)(((word)brk + ALIGN - 1) & ~(ALIGN - 1));
    if (!brk || !nbrk(base + 8))
        return -1;
    heap_base = base;
    *(word *)base = USED;           /* prologue footer, size 0 */
    *(word *)(base + 4) = USED;     /* epilogue header, size 0 */
    return 0;
}

static char *epilogue(void)
{
    return (char *)nbrk(0) - 4;
}

/* Merge the free block b with free neighbours (b is not on the list). */
static char *coalesce(char *b)
{
    word size = bsize(b);
    char *next = bnext(b);
    if (!bused(next)) {
        list_remove(next);
        size += bsize(next);
    }
    if (!bused(b - 4)) {
        b = bprev(b);
        list_remove(b);
        size += bsize(b);
    }
    set_block(b, size, 0);
    return b;
}

/* Extend the heap so that a free block of at least need bytes ends at the
 * top; return it (on the free list) or 0 when the kernel says no. */
static char *grow(word need)
{
    word grow_by = need < GROW_MIN ? GROW_MIN : need;
    char *old_epi = epilogue();
    if (!nbrk(old_epi + 4 + grow_by))
        return 0;
    set_block(old_epi, grow_by, 0);
    *(word *)bnext(old_epi) = USED;
    char *b = coalesce(old_epi);
    list_push(b);
    return b;
}

/* Give a free top block back to the kernel. */
static void trim(char *b)
{
    if (bsize(b) < TRIM_MIN || bsize(bnext(b)) != 0)
        return;
    list_remove(b);
    *(word *)b = USED;
    nbrk(b + 4);
}

/* Take size bytes from the free block b: split off the rest if it can
 * hold a block of its own. */
static void *place(char *b, word size)
{
    word have = bsize(b);
    list_remove(b);
    if (have - size >= MIN_BLOCK) {
        set_block(b, size, USED);
        set_block(b + size, have - size, 0);
        list_push(b + size);
    } else {
        set_block(b, have, USED);
    }
    return payload(b);
}

static word block_size_for(size_t n)
{
    if (n > 0x7FFFFFF0u)
        return 0;
    word size = ((word)n + OVERHEAD + ALIGN - 1) & ~(ALIGN - 1);
    return size < MIN_BLOCK ? MIN_BLOCK : size;
}

static void *malloc_locked(size_t n)
{
    word size = block_size_for(n);
    if (!size || (!heap_base && heap_init() < 0))
        return 0;
    for (struct free_links *l = free_list; l; l = l->next) {
        char *b = (char *)l - 4;
        if (bsize(b) >= size)
            return place(b, size);
    }
    char *top = epilogue();
    word have = bused(top - 4) ? 0 : bsize(bprev(top));
    char *b = grow(size - have);
    return b ? place(b, size) : 0;
}

static void free_locked(void *p)
{
    char *b = block_of(p);
    set_block(b, bsize(b), 0);
    b = coalesce(b);
    list_push(b);
    trim(b);
}

void *malloc(size_t n)
{
    lock();
    void *p = malloc_locked(n);
    unlock();
    return p;
}

void free(void *p)
{
    if (!p)
        return;
    lock();
    free_locked(p);
    unlock();
}

void *calloc(size_t count, size_t size)
{
    if (size && count > 0xFFFFFFFFu / size)
        return 0;
    void *p = malloc(count * size);
    if (p)
        memset(p, 0, count * size);
    return p;
}

/* Grow the used block b in place by taking (part of) a free next block. */
static int grow_in_place(char *b, word size)
{
    char *next = bnext(b);
    word total = bsize(b) + (bused(next) ? 0 : bsize(next));
    if (total < size)
        return 0;
    list_remove(next);
    if (total - size >= MIN_BLOCK) {
        set_block(b, size, USED);
        set_block(b + size, total - size, 0);
        list_push(b + size);
    } else {
        set_block(b, total, USED);
    }
    return 1;
}

/* Give the tail of the used block b beyond size back to the free list. */
static void shrink_in_place(char *b, word size)
{
    word rest = bsize(b) - size;
    if (rest < MIN_BLOCK)
        return;
    set_block(b, size, USED);
    set_block(b + size, rest, 0);
    char *tail = coalesce(b + size);
    list_push(tail);
    trim(tail);
}

void *realloc(void *p, size_t n)
{
    if (!p)
        return malloc(n);
    if (!n) {
        free(p);
        return 0;
    }
    word size = block_size_for(n);
    if (!size)
        return 0;
    lock();
    char *b = block_of(p);
    int done = bsize(b) >= size || grow_in_place(b, size);
    if (done)
        shrink_in_place(b, size);
    unlock();
    if (done)
        return p;
    void *q = malloc(n);
    if (q) {
        memcpy(q, p, bsize(b) - OVERHEAD);
        free(p);
    }
    return q;
}

/* Bytes of heap between the allocator's start and the break (0 before the
 * first malloc): lets programs check that memory went back. */
size_t malloc_heap_size(void)
{
    return heap_base ? (size_t)((char *)nbrk(0) - heap_base) : 0;
}
