/* malloc/free/calloc/realloc stress: 20 000 random operations (xorshift PRNG), contents checked; prints a summary. */
#include "pynova.h"

#ifndef OPS
#define OPS 20000u
#endif
#define SLOTS 128u

struct slot {
    unsigned char *p;
    unsigned int size;
    unsigned int tag;
};

struct stats {
    unsigned int mallocs, callocs, reallocs, frees, errors;
    unsigned int peak;
};

static unsigned int rng = 0x2545F491u;

static unsigned int next_random(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

/* Mostly small blocks, some up to 8 KiB. */
static unsigned int random_size(void)
{
    unsigned int r = next_random();
    return (r & 15) == 0 ? 1 + (r >> 8) % 8192 : 1 + (r >> 8) % 200;
}

static unsigned char pattern(unsigned int tag, unsigned int i)
{
    return (unsigned char)(tag + i * 31u + (i >> 8));
}

static void fill(struct slot *s)
{
    for (unsigned int i = 0; i < s->size; i++)
        s->p[i] = pattern(s->tag, i);
}

static int intact(const struct slot *s, unsigned int len)
{
    for (unsigned int i = 0; i < len; i++)
        if (s->p[i] != pattern(s->tag, i))
            return 0;
    return 1;
}

static int all_zero(const unsigned char *p, unsigned int n)
{
    for (unsigned int i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

static void allocate(struct slot *s, struct stats *st)
{
    s->size = random_size();
    s->tag = next_random();
    if (next_random() % 4 == 0) {
        s->p = calloc(1, s->size);
        st->callocs++;
        if (s->p && !all_zero(s->p, s->size))
            st->errors++;
    } else {
        s->p = malloc(s->size);
        st->mallocs++;
    }
    if (!s->p || ((unsigned int)s->p & 7)) {
        st->errors++;
        s->p = 0;
        return;
    }
    fill(s);
}

static void resize(struct slot *s, struct stats *st)
{
    unsigned int size = random_size();
    unsigned int keep = size < s->size ? size : s->size;
    unsigned char *q = realloc(s->p, size);
    st->reallocs++;
    if (!q || ((unsigned int)q & 7)) {
        st->errors++;
        return;
    }
    s->p = q;
    if (!intact(s, keep))
        st->errors++;
    s->size = size;
    fill(s);
}

static void step(struct slot *slots, struct stats *st)
{
    struct slot *s = &slots[next_random() % SLOTS];
    if (!s->p) {
        allocate(s, st);
        return;
    }
    if (!intact(s, s->size))
        st->errors++;
    if (next_random() % 3 == 0) {
        resize(s, st);
    } else {
        free(s->p);
        s->p = 0;
        st->frees++;
    }
}

int main(void)
{
    struct stats st = {0, 0, 0, 0, 0, 0};
    struct slot *slots = calloc(SLOTS, sizeof(struct slot));
    if (!slots) {
        print_str("malloc_stress: no memory for the slots\n");
        exit(1);
    }
    for (unsigned int op = 0; op < OPS; op++) {
        step(slots, &st);
        if (malloc_heap_size() > st.peak)
            st.peak = malloc_heap_size();
    }
    for (unsigned int i = 0; i < SLOTS; i++) {
        if (slots[i].p && !intact(&slots[i], slots[i].size))
            st.errors++;
        free(slots[i].p);
    }
    free(slots);
    unsigned int left = malloc_heap_size();
    printf("malloc_stress: ops=%u malloc=%u calloc=%u realloc=%u free=%u errors=%u "
           "peak=%u left=%u\n", OPS, st.mallocs, st.callocs, st.reallocs, st.frees,
           st.errors, st.peak, left);
    /* Everything freed: at most one untrimmed top block stays. */
    print_str(st.errors == 0 && left < 8192 + 8 ? "malloc ok\n" : "malloc FAILED\n");
    exit(st.errors ? 1 : 0);
}
