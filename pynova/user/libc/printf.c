/* printf family. One formatter writes through a small sink: either into a
 * caller's buffer (snprintf) or into a stack buffer that is handed to print
 * when it fills and once at the end (printf).
 *
 * No libgcc is linked, so there is no 64-bit division: 64-bit integers and
 * doubles are turned into decimal digits by dividing numbers held in 32-bit
 * limbs by 10000 in 16-bit steps (div_small). A double is printed exactly,
 * from its bits, with no floating-point instruction. */
#include "pynova.h"

#define PRINTF_BUF 128
/* %f: the most digits after the point; a larger precision prints this many. */
#define FLOAT_MAX_PREC 30
/* A double times 10^30 needs at most 53 + 100 + 971 bits: 36 limbs. */
#define FLOAT_LIMBS 36
/* 10^4 per chunk: enough chunks for every digit of such a number. */
#define FLOAT_CHUNKS 90

struct sink {
    char *buf;
    size_t size;    /* capacity of buf */
    size_t pos;     /* characters currently in buf */
    int total;      /* characters produced so far */
    int flush;      /* 1: print and empty buf when full; 0: truncate */
};

/* One conversion's flags, width and precision. */
struct spec {
    int left, zero, plus, space, alt;
    int width;
    int prec;       /* -1: none given */
    int upper;
};

static void sink_flush(struct sink *s)
{
    if (s->pos) {
        print(s->buf, s->pos);
        s->pos = 0;
    }
}

static void put(struct sink *s, char c)
{
    s->total++;
    if (s->flush) {
        if (s->pos == s->size)
            sink_flush(s);
        s->buf[s->pos++] = c;
    } else if (s->pos + 1 < s->size) {
        s->buf[s->pos++] = c;
    }
}

static void pad(struct sink *s, char c, int n)
{
    while (n-- > 0)
        put(s, c);
}

/* Padding before a field of len characters (prefix included), then the
 * prefix and the zeros a precision or the '0' flag asks for. */
static void field_start(struct sink *s, const struct spec *sp, const char *prefix,
                        int len, int zeros)
{
    int fill = sp->width - len - zeros;
    if (!sp->left && !(sp->zero && sp->prec < 0))
        pad(s, ' ', fill);
    while (*prefix)
        put(s, *prefix++);
    if (!sp->left && sp->zero && sp->prec < 0)
        pad(s, '0', fill);
    pad(s, '0', zeros);
}

static void field_end(struct sink *s, const struct spec *sp, int len, int zeros)
{
    if (sp->left)
        pad(s, ' ', sp->width - len - zeros);
}

static void put_text(struct sink *s, const struct spec *sp, const char *body, int len)
{
    struct spec text = *sp;
    text.zero = 0;
    field_start(s, &text, "", len, 0);
    for (int i = 0; i < len; i++)
        put(s, body[i]);
    field_end(s, &text, len, 0);
}

/* limb[0..n) (most significant first) /= d, d <= 0xffff; the remainder. */
static unsigned int div_small(unsigned int *limb, int n, unsigned int d)
{
    unsigned int r = 0;
    for (int i = 0; i < n; i++) {
        unsigned int hi = (r << 16) | (limb[i] >> 16);
        unsigned int qh = hi / d;
        unsigned int lo = ((hi % d) << 16) | (limb[i] & 0xffff);
        limb[i] = (qh << 16) | (lo / d);
        r = lo % d;
    }
    return r;
}

/* Digits of an unsigned 64-bit value in base 8, 10 or 16, most significant
 * first; returns how many (at least one). */
static int digits64(unsigned long long v, unsigned int base, int upper, char *out)
{
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    char tmp[24];
    int n = 0;
    if (base == 10) {
        unsigned int limb[2] = { (unsigned int)(v >> 32), (unsigned int)v };
        do
            tmp[n++] = digits[div_small(limb, 2, 10)];
        while (limb[0] | limb[1]);
    } else {
        unsigned int bits = base == 16 ? 4 : 3;
        do {
            tmp[n++] = digits[v & (base - 1)];
            v >>= bits;
        } while (v);
    }
    for (int i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

static void put_integer(struct sink *s, const struct spec *sp, unsigned long long u,
                        int negative, unsigned int base)
{
    char num[24];
    const char *prefix = negative ? "-" : sp->plus ? "+" : sp->space ? " " : "";
    int n = digits64(u, base, sp->upper, num);
    if (sp->prec == 0 && u == 0)
        n = 0;                      /* "%.0d" of 0 prints no digits */
    if (base == 16 && sp->alt && u)
        prefix = sp->upper ? "0X" : "0x";
    int zeros = sp->prec > n ? sp->prec - n : 0;
    if (base == 8 && sp->alt && zeros == 0 && (n == 0 || num[0] != '0'))
        zeros = 1;
    int plen = (int)strlen(prefix);
    field_start(s, sp, prefix, plen + n, zeros);
    for (int i = 0; i < n; i++)
        put(s, num[i]);
    field_end(s, sp, plen + n, zeros);
}

/* ------------------------------------------------------------ doubles */

/* limb[0..n) (least significant first) *= m; the count of limbs in use. */
static int mul_small(unsigned int *limb, int n, unsigned int m)
{
    unsigned int carry = 0;
    for (int i = 0; i < n; i++) {
        unsigned long long p = (unsigned long long)limb[i] * m + carry;
        limb[i] = (unsigned int)p;
        carry = (unsigned int)(p >> 32);
    }
    if (carry)
        limb[n++] = carry;
    return n;
}

static int shift_left(unsigned int *limb, int n, int bits)
{
    int words = bits / 32, rest = bits % 32;
    for (int i = n - 1; i >= 0; i--)
        limb[i + words] = limb[i];
    for (int i = 0; i < words; i++)
        limb[i] = 0;
    n += words;
    if (rest) {
        limb[n] = 0;
        for (int i = n; i > 0; i--)
            limb[i] = (limb[i] << rest) | (limb[i - 1] >> (32 - rest));
        limb[0] <<= rest;
        n++;
    }
    while (n > 1 && !limb[n - 1])
        n--;
    return n;
}

static int bit_at(const unsigned int *limb, int n, int bit)
{
    return bit / 32 < n ? (int)(limb[bit / 32] >> (bit % 32)) & 1 : 0;
}

/* Shift right by bits, rounding half to even (the exact binary value). */
static int shift_right_round(unsigned int *limb, int n, int bits)
{
    int half = bit_at(limb, n, bits - 1), sticky = 0;
    for (int b = 0; b < bits - 1 && b < n * 32; b++)
        sticky |= bit_at(limb, n, b);
    int words = bits / 32, rest = bits % 32;
    int m = n - words > 0 ? n - words : 0;
    for (int i = 0; i < m; i++) {
        unsigned int lo = limb[i + words] >> rest;
        unsigned int hi = rest && i + words + 1 < n ? limb[i + words + 1] << (32 - rest) : 0;
        limb[i] = lo | hi;
    }
    if (m == 0)
        limb[m++] = 0;
    if (half && (sticky || (limb[0] & 1))) {
        int i = 0;
        while (i < m && ++limb[i] == 0)
            i++;
        if (i == m)
            limb[m++] = 1;
    }
    return m;
}

static const unsigned int pow10[10] = {
    1u, 10u, 100u, 1000u, 10000u, 100000u, 1000000u, 10000000u, 100000000u, 1000000000u,
};

/* round(|x| * 10^prec) of the double with these bits, as base-10000
 * chunks (least significant first); returns how many. */
static int scaled_chunks(unsigned int hi, unsigned int lo, int prec,
                         unsigned short *chunk)
{
    unsigned int limb[FLOAT_LIMBS + 2];
    int exp = (int)(hi >> 20) & 0x7ff;
    limb[0] = lo;
    limb[1] = hi & 0xfffff;
    if (exp)
        limb[1] |= 0x100000;            /* the hidden bit of a normal number */
    int e2 = (exp ? exp : 1) - 1075;    /* x = mantissa * 2^e2 */
    int n = 2;
    for (int p = prec; p > 0; p -= 9)
        n = mul_small(limb, n, pow10[p >= 9 ? 9 : p]);
    if (e2 >= 0)
        n = shift_left(limb, n, e2);
    else if (-e2 > n * 32 + 1)
        limb[0] = 0, n = 1;             /* below one half: rounds to zero */
    else
        n = shift_right_round(limb, n, -e2);
    /* Most significant first for div_small. */
    for (int i = 0; i < n / 2; i++) {
        unsigned int t = limb[i];
        limb[i] = limb[n - 1 - i];
        limb[n - 1 - i] = t;
    }
    int count = 0;
    do {
        chunk[count++] = (unsigned short)div_small(limb, n, 10000);
        while (n > 1 && !limb[0]) {     /* drop leading zero limbs */
            for (int i = 0; i < n - 1; i++)
                limb[i] = limb[i + 1];
            n--;
        }
    } while ((limb[0] || n > 1) && count < FLOAT_CHUNKS);
    return count;
}

static int chunk_digit(const unsigned short *chunk, int count, int i)
{
    /* Digit i of the number, counted from the least significant (0). */
    if (i / 4 >= count)
        return 0;
    unsigned int c = chunk[i / 4];
    for (int k = i % 4; k > 0; k--)
        c /= 10;
    return (int)(c % 10);
}

/* %f: exactly rounded, never through the FPU. */
static __attribute__((noinline)) void put_double(struct sink *s, const struct spec *sp,
                                                 unsigned long long bits)
{
    unsigned int hi = (unsigned int)(bits >> 32), lo = (unsigned int)bits;
    int negative = hi >> 31;
    const char *prefix = negative ? "-" : sp->plus ? "+" : sp->space ? " " : "";
    if (((hi >> 20) & 0x7ff) == 0x7ff) {
        int nan = (hi & 0xfffff) || lo;
        const char *word = nan ? (sp->upper ? "NAN" : "nan") : (sp->upper ? "INF" : "inf");
        struct spec text = *sp;
        text.zero = 0;
        text.prec = -1;
        int plen = (int)strlen(prefix);
        field_start(s, &text, prefix, plen + 3, 0);
        for (int i = 0; i < 3; i++)
            put(s, word[i]);
        field_end(s, &text, plen + 3, 0);
        return;
    }
    int prec = sp->prec < 0 ? 6 : sp->prec > FLOAT_MAX_PREC ? FLOAT_MAX_PREC : sp->prec;
    unsigned short chunk[FLOAT_CHUNKS];
    int count = scaled_chunks(hi, lo, prec, chunk);
    unsigned int top = chunk[count - 1];
    int digits = (count - 1) * 4 + (top >= 1000 ? 4 : top >= 100 ? 3 : top >= 10 ? 2 : 1);
    if (digits < prec + 1)
        digits = prec + 1;              /* at least "0." before the fraction */
    int point = prec > 0 || sp->alt;
    int plen = (int)strlen(prefix);
    struct spec num = *sp;
    num.prec = -1;                      /* the precision counts decimals here */
    int len = plen + digits + point;
    field_start(s, &num, prefix, len, 0);
    for (int i = digits - 1; i >= 0; i--) {
        put(s, (char)('0' + chunk_digit(chunk, count, i)));
        if (i == prec && point)
            put(s, '.');
    }
    field_end(s, &num, len, 0);
}

/* ------------------------------------------------------------ format */

static const char *parse_spec(const char *fmt, struct spec *sp, va_list *ap)
{
    sp->left = sp->zero = sp->plus = sp->space = sp->alt = 0;
    sp->width = 0;
    sp->prec = -1;
    for (;; fmt++) {
        if (*fmt == '-')
            sp->left = 1;
        else if (*fmt == '0')
            sp->zero = 1;
        else if (*fmt == '+')
            sp->plus = 1;
        else if (*fmt == ' ')
            sp->space = 1;
        else if (*fmt == '#')
            sp->alt = 1;
        else
            break;
    }
    if (*fmt == '*') {
        sp->width = va_arg(*ap, int);
        if (sp->width < 0) {
            sp->left = 1;
            sp->width = -sp->width;
        }
        fmt++;
    } else {
        while (*fmt >= '0' && *fmt <= '9')
            sp->width = sp->width * 10 + (*fmt++ - '0');
    }
    if (*fmt == '.') {
        fmt++;
        sp->prec = 0;
        if (*fmt == '*') {
            sp->prec = va_arg(*ap, int);
            if (sp->prec < 0)
                sp->prec = -1;
            fmt++;
        } else {
            while (*fmt >= '0' && *fmt <= '9')
                sp->prec = sp->prec * 10 + (*fmt++ - '0');
        }
    }
    return fmt;
}

/* Length modifiers: how wide the integer argument is. */
enum size { SIZE_CHAR, SIZE_SHORT, SIZE_INT, SIZE_LLONG };

static const char *parse_size(const char *fmt, enum size *size)
{
    *size = SIZE_INT;
    if (fmt[0] == 'h' && fmt[1] == 'h') {
        *size = SIZE_CHAR;
        return fmt + 2;
    }
    if (fmt[0] == 'l' && fmt[1] == 'l') {
        *size = SIZE_LLONG;
        return fmt + 2;
    }
    if (*fmt == 'h')
        *size = SIZE_SHORT;
    else if (*fmt == 'j' || *fmt == 'q')
        *size = SIZE_LLONG;
    else if (*fmt != 'l' && *fmt != 'z' && *fmt != 't' && *fmt != 'L')
        return fmt;
    return fmt + 1;
}

static long long signed_arg(enum size size, va_list *ap)
{
    if (size == SIZE_LLONG)
        return va_arg(*ap, long long);
    int v = va_arg(*ap, int);
    return size == SIZE_CHAR ? (signed char)v : size == SIZE_SHORT ? (short)v : v;
}

static unsigned long long unsigned_arg(enum size size, va_list *ap)
{
    if (size == SIZE_LLONG)
        return va_arg(*ap, unsigned long long);
    unsigned int v = va_arg(*ap, unsigned int);
    return size == SIZE_CHAR ? (unsigned char)v : size == SIZE_SHORT ? (unsigned short)v : v;
}

static void format(struct sink *s, const char *fmt, va_list ap)
{
    va_list args;
    va_copy(args, ap);
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            put(s, *fmt);
            continue;
        }
        struct spec sp;
        enum size size;
        fmt = parse_size(parse_spec(fmt + 1, &sp, &args), &size);
        sp.upper = *fmt == 'X' || *fmt == 'F' || *fmt == 'E' || *fmt == 'G' || *fmt == 'A';

        switch (*fmt) {
        case 'd':
        case 'i': {
            long long v = signed_arg(size, &args);
            unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
            put_integer(s, &sp, u, v < 0, 10);
            break;
        }
        case 'u':
            put_integer(s, &sp, unsigned_arg(size, &args), 0, 10);
            break;
        case 'x':
        case 'X':
            put_integer(s, &sp, unsigned_arg(size, &args), 0, 16);
            break;
        case 'o':
            put_integer(s, &sp, unsigned_arg(size, &args), 0, 8);
            break;
        case 'f':
        case 'F':
        case 'e':
        case 'E':
        case 'g':
        case 'G':
        case 'a':
        case 'A': {
            /* The double's bits, read as they were passed (no FPU load). */
            union { double d; unsigned long long u; } x;
            x.d = va_arg(args, double);
            put_double(s, &sp, x.u);
            break;
        }
        case 'p': {
            /* Always 0x + 8 hex digits, like an address in a kernel log. */
            struct spec ptr = sp;
            ptr.alt = 0;
            ptr.prec = 8;
            ptr.plus = ptr.space = 0;
            ptr.zero = 0;
            char num[24];
            unsigned int v = (unsigned int)va_arg(args, void *);
            int n = digits64(v, 16, 0, num);
            int zeros = 8 - n;
            field_start(s, &ptr, "0x", 2 + n, zeros);
            for (int i = 0; i < n; i++)
                put(s, num[i]);
            field_end(s, &ptr, 2 + n, zeros);
            break;
        }
        case 'c': {
            char c = (char)va_arg(args, int);
            put_text(s, &sp, &c, 1);
            break;
        }
        case 's': {
            const char *str = va_arg(args, const char *);
            if (!str)
                str = "(null)";
            int n = 0;
            while (str[n] && (sp.prec < 0 || n < sp.prec))
                n++;
            put_text(s, &sp, str, n);
            break;
        }
        case '%':
            put(s, '%');
            break;
        case '\0':
            /* A lone '%' at the end: print it and stop. */
            put(s, '%');
            va_end(args);
            return;
        default:
            /* Unknown conversion: print it as written. */
            put(s, '%');
            put(s, *fmt);
            break;
        }
    }
    va_end(args);
}

int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
    struct sink s = { buf, size, 0, 0, 0 };
    format(&s, fmt, ap);
    if (size)
        buf[s.pos] = '\0';
    return s.total;
}

int snprintf(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return n;
}

int vprintf(const char *fmt, va_list ap)
{
    char buf[PRINTF_BUF];
    struct sink s = { buf, sizeof buf, 0, 0, 1 };
    format(&s, fmt, ap);
    sink_flush(&s);
    return s.total;
}

int printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vprintf(fmt, ap);
    va_end(ap);
    return n;
}
