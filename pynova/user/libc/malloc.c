/* pynova's heap allocator, and the source of lab malloc: `pynova lab start
 * malloc DIR` hands out what lies between the lab markers, with each
 * solution block replaced by the TODO comment above it (docs/labs/malloc.md). */
// lab malloc: begin
/* malloc, free, calloc and realloc on the nbrk system call (docs/ABI.md).
 *
 * The heap lies between heap_base and the break, a row of blocks. Each
 * block starts with a 4-byte header and ends with a 4-byte footer; both
 * hold the block's size in bytes (a multiple of 8) with bit 0, USED, set
 * while the block is handed out. Between them lies the payload, the
 * memory malloc returns:
 *
 *   heap_base                                                         break
 *   v                                                                     v
 *   +--------+---------+----------+---------+----+------------+----+--------+
 *   | 0|USED | 24|USED | 16 bytes | 24|USED | 48 | next, prev | 48 | 0|USED |
 *   +--------+---------+----------+---------+----+------------+----+--------+
 *   prologue  header     payload    footer   \__ a free block ___/ epilogue
 *            \________ a used block _______/
 *
 * Headers sit at addresses 4 mod 8, so payloads are 8-byte aligned. The
 * prologue (a footer of size 0) and the epilogue (a header of size 0)
 * are marked used, so looking at a neighbour never leaves the heap. A
 * free block keeps two links in its payload: the free list, which malloc
 * searches first fit before it grows the heap. free merges a block with
 * its free neighbours (coalescing) and gives a free block of TRIM_MIN
 * bytes or more at the top of the heap back to the kernel. */
#include "pynova.h"

#define ALIGN       8u          /* payloads are 8-byte aligned */
#define OVERHEAD    8u          /* header + footer */
#define MIN_BLOCK   16u         /* header, two free-list links, footer */
#define USED        1u          /* bit 0 of a header or footer */
#define GROW_MIN    4096u       /* the least the heap grows by */
#define TRIM_MIN    8192u       /* a free top block this big goes back */
/* Larger requests fail at once: more than any pynova machine has, and
 * small enough that heap addresses never wrap around. */
#define MAX_REQUEST 0x40000000u

typedef unsigned int word;

struct free_links {
    struct free_links *next;
    struct free_links *prev;
};

static char *heap_base;         /* the prologue; 0 until the first malloc */
static struct free_links *free_list;
static volatile int heap_lock;  /* threads may be preempted inside malloc */

/* ---- blocks: b points at a block's header ---- */

static inline word bsize(char *b) { return *(word *)b & ~USED; }
static inline int bused(char *b) { return *(word *)b & USED; }
static inline char *bnext(char *b) { return b + bsize(b); }
/* The block below b: its footer is the word right below b's header. */
static inline int prev_used(char *b) { return *(word *)(b - 4) & USED; }
static inline char *bprev(char *b) { return b - (*(word *)(b - 4) & ~USED); }
static inline void *payload(char *b) { return b + 4; }
static inline char *block_of(void *p) { return (char *)p - 4; }

/* Write b's header and footer. */
static inline void set_block(char *b, word size, word used)
{
    *(word *)b = size | used;
    *(word *)(b + size - 4) = size | used;
}

/* The epilogue: the header of size 0 right below the break. */
static inline char *epilogue(void) { return (char *)nbrk(0) - 4; }

/* ---- the free list: links in the payload of each free block ---- */

static inline struct free_links *links(char *b) { return payload(b); }
static inline char *block_of_links(struct free_links *l) { return block_of(l); }

static inline void list_push(char *b)
{
    struct free_links *l = links(b);
    l->prev = 0;
    l->next = free_list;
    if (free_list)
        free_list->prev = l;
    free_list = l;
}

static inline void list_remove(char *b)
{
    struct free_links *l = links(b);
    if (l->prev)
        l->prev->next = l->next;
    else
        free_list = l->next;
    if (l->next)
        l->next->prev = l->prev;
}

/* ---- locking: malloc and free may be called from several threads ---- */

static void lock(void)
{
    while (__sync_lock_test_and_set(&heap_lock, 1))
        thr_yield();
}

static void unlock(void)
{
    __sync_lock_release(&heap_lock);
}

/* The empty heap: the prologue and the epilogue at the first 8-byte
 * aligned address at or above the break. -1 when nbrk fails. */
static int heap_init(void)
{
    char *brk = nbrk(0);
    char *base = (char *)(((word)brk + ALIGN - 1) & ~(ALIGN - 1));
    if (!brk || !nbrk(base + 8))
        return -1;
    heap_base = base;
    *(word *)base = USED;           /* the prologue: a footer of size 0 */
    *(word *)(base + 4) = USED;     /* the epilogue: a header of size 0 */
    return 0;
}

static char *coalesce(char *b);     /* step 4 */
static void trim(char *b);          /* step 5 */

/* ---- step 1: block sizes ---- */

/* The size of a block whose payload holds n bytes (0: too big). */
static word block_size(size_t n)
{
    // TODO(step 1): return n plus OVERHEAD rounded up to a multiple of ALIGN
    //   (so that the next block's header stays at 4 mod 8 and its payload
    //   8-byte aligned), and at least MIN_BLOCK (a free block must hold its
    //   two links); return 0 when n > MAX_REQUEST.
    // solution begin: return 0;
    if (n > MAX_REQUEST)
        return 0;
    word size = ((word)n + OVERHEAD + ALIGN - 1) & ~(ALIGN - 1);
    return size < MIN_BLOCK ? MIN_BLOCK : size;
    // solution end
}

/* ---- step 2: getting memory ---- */

/* Grow the heap at the break by at least size bytes: the new memory
 * becomes a free block on the free list (merged with a free block below
 * it). Returns that block, or 0 when the kernel has no memory for it. */
static char *grow(word size)
{
    // TODO(step 2): move the break up by size bytes, or by GROW_MIN if that
    //   is more, with nbrk; it returns 0 when the kernel says no: then
    //   return 0. The old epilogue becomes the new free block's header;
    //   write a new epilogue right below the new break. Coalesce the block,
    //   push it on the free list and return it.
    // solution begin: return 0;
    word by = size < GROW_MIN ? GROW_MIN : size;
    char *b = epilogue();
    if (!nbrk(b + 4 + by))
        return 0;
    set_block(b, by, 0);
    *(word *)bnext(b) = USED;       /* the new epilogue */
    b = coalesce(b);
    list_push(b);
    return b;
    // solution end
}

/* The used block b needs only size bytes: when the rest can be a block
 * of its own, cut it off. Returns the rest, a free block not yet on the
 * free list, or 0. */
static char *split(char *b, word size)
{
    // TODO(step 2): when bsize(b) - size is at least MIN_BLOCK, b keeps
    //   size bytes (its header and footer say so) and the rest, starting
    //   at b + size, becomes a free block of its own: return it.
    // solution begin: return 0;
    word rest = bsize(b) - size;
    if (rest < MIN_BLOCK)
        return 0;
    set_block(b, size, USED);
    set_block(b + size, rest, 0);
    return b + size;
    // solution end
}

/* Hand out the free block b for a block of size bytes: take it off the
 * free list, mark it used, split off what it does not need. */
static void *place(char *b, word size)
{
    // TODO(step 2): take b off the free list, mark it used with its whole
    //   size, split it and put the rest (if any) on the free list; return
    //   b's payload.
    // solution begin: return 0;
    list_remove(b);
    set_block(b, bsize(b), USED);
    char *rest = split(b, size);
    if (rest)
        list_push(rest);
    return payload(b);
    // solution end
}

/* ---- step 3: freeing and reusing ---- */

/* The first block on the free list of at least size bytes, or 0. */
static char *find_fit(word size)
{
    // TODO(step 3): walk the free list (free_list, then each ->next) and
    //   return the first block (block_of_links) of at least size bytes.
    // solution begin: return 0;
    for (struct free_links *l = free_list; l; l = l->next)
        if (bsize(block_of_links(l)) >= size)
            return block_of_links(l);
    return 0;
    // solution end
}

/* Take back the used block b. */
static void release(char *b)
{
    // TODO(step 3): mark b free, coalesce it with its neighbours, push the
    //   result on the free list, and trim it.
    // solution begin
    set_block(b, bsize(b), 0);
    b = coalesce(b);
    list_push(b);
    trim(b);
    // solution end
}

/* ---- step 4: coalescing ---- */

/* Merge the free block b, which is not on the free list, with a free
 * block right after it and one right before it; return the merged block
 * (not on the list either). */
static char *coalesce(char *b)
{
    // TODO(step 4): when the next block (bnext) is free, take it off the
    //   list and add its size; when the previous one is free (the footer
    //   right below b says so: prev_used), take it off the list, add its
    //   size and start the merged block there. Write the merged size into
    //   the header and footer, and return the merged block.
    // solution begin: return b;
    word size = bsize(b);
    char *next = bnext(b);
    if (!bused(next)) {
        list_remove(next);
        size += bsize(next);
    }
    if (!prev_used(b)) {
        b = bprev(b);
        list_remove(b);
        size += bsize(b);
    }
    set_block(b, size, 0);
    return b;
    // solution end
}

/* ---- step 5: giving memory back ---- */

/* When the free block b is the top block (the epilogue follows it) and
 * has at least TRIM_MIN bytes, give it back to the kernel. */
static void trim(char *b)
{
    // TODO(step 5): when b has at least TRIM_MIN bytes and the block after
    //   it is the epilogue (size 0): take b off the free list, make its
    //   header the new epilogue (size 0, USED) and move the break down to
    //   right above that header with nbrk.
    // solution begin
    if (bsize(b) < TRIM_MIN || bsize(bnext(b)) != 0)
        return;
    list_remove(b);
    *(word *)b = USED;
    nbrk(b + 4);
    // solution end
}

/* ---- the interface (pynova.h) ---- */

void *malloc(size_t n)
{
    word size = block_size(n);
    if (!size)
        return 0;
    lock();
    void *p = 0;
    if (heap_base || heap_init() == 0) {
        char *b = find_fit(size);
        if (!b)
            b = grow(size);
        if (b)
            p = place(b, size);
    }
    unlock();
    return p;
}

void free(void *p)
{
    if (!p)
        return;
    lock();
    release(block_of(p));
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

/* Make the used block b at least size bytes by taking in the free block
 * after it; 0 when that is not free or too small. */
static int absorb_next(char *b, word size)
{
    char *next = bnext(b);
    if (bused(next) || bsize(b) + bsize(next) < size)
        return 0;
    list_remove(next);
    set_block(b, bsize(b) + bsize(next), USED);
    return 1;
}

void *realloc(void *p, size_t n)
{
    if (!p)
        return malloc(n);
    if (!n) {
        free(p);
        return 0;
    }
    word size = block_size(n);
    if (!size)
        return 0;
    lock();
    char *b = block_of(p);
    int in_place = bsize(b) >= size || absorb_next(b, size);
    char *rest = in_place ? split(b, size) : 0;
    if (rest)
        list_push(coalesce(rest));      /* a free block may follow */
    unlock();
    if (in_place)
        return p;
    void *q = malloc(n);
    if (q) {
        memcpy(q, p, bsize(b) - OVERHEAD);
        free(p);
    }
    return q;
}

/* Bytes between heap_base and the break (0 before the first malloc). */
size_t malloc_heap_size(void)
{
    return heap_base ? (size_t)((char *)nbrk(0) - heap_base) : 0;
}
// lab malloc: end
