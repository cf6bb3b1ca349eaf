/* printf family. One formatter writes through a small sink: either into a
 * caller's buffer (snprintf) or into a stack buffer that is handed to print
 * when it fills and once at the end (printf). Everything is 32-bit, so no
 * 64-bit division helpers (libgcc) are needed. */
#include "pynova.h"

#define PRINTF_BUF 128

struct sink {
    char *buf;
    size_t size;    /* capacity of buf */
    size_t pos;     /* characters currently in buf */
    int total;      /* characters produced so far */
    int flush;      /* 1: print and empty buf when full; 0: truncate */
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

/* Emit prefix + digits padded to width. */
static void put_field(struct sink *s, const char *prefix, const char *body,
                      int len, int width, int left, int zero)
{
    int plen = (int)strlen(prefix);
    int fill = width - plen - len;
    if (!left && !zero)
        pad(s, ' ', fill);
    while (*prefix)
        put(s, *prefix++);
    if (!left && zero)
        pad(s, '0', fill);
    for (int i = 0; i < len; i++)
        put(s, body[i]);
    if (left)
        pad(s, ' ', fill);
}

static int utoa(unsigned int v, unsigned int base, int upper, char *out)
{
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    char tmp[12];
    int n = 0;
    do {
        tmp[n++] = digits[v % base];
        v /= base;
    } while (v);
    for (int i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

static void format(struct sink *s, const char *fmt, va_list ap)
{
    char num[12];

    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            put(s, *fmt);
            continue;
        }
        fmt++;
        int left = 0, zero = 0, width = 0, prec = -1;
        for (;; fmt++) {
            if (*fmt == '-')
                left = 1;
            else if (*fmt == '0')
                zero = 1;
            else
                break;
        }
        if (*fmt == '*') {
            width = va_arg(ap, int);
            if (width < 0) {
                left = 1;
                width = -width;
            }
            fmt++;
        } else {
            while (*fmt >= '0' && *fmt <= '9')
                width = width * 10 + (*fmt++ - '0');
        }
        if (*fmt == '.') {
            fmt++;
            prec = 0;
            while (*fmt >= '0' && *fmt <= '9')
                prec = prec * 10 + (*fmt++ - '0');
        }
        while (*fmt == 'l' || *fmt == 'h' || *fmt == 'z')
            fmt++;

        switch (*fmt) {
        case 'd':
        case 'i': {
            int v = va_arg(ap, int);
            unsigned int u = v < 0 ? 0u - (unsigned int)v : (unsigned int)v;
            int n = utoa(u, 10, 0, num);
            put_field(s, v < 0 ? "-" : "", num, n, width, left, zero);
            break;
        }
        case 'u': {
            int n = utoa(va_arg(ap, unsigned int), 10, 0, num);
            put_field(s, "", num, n, width, left, zero);
            break;
        }
        case 'x':
        case 'X': {
            int n = utoa(va_arg(ap, unsigned int), 16, *fmt == 'X', num);
            put_field(s, "", num, n, width, left, zero);
            break;
        }
        case 'p': {
            /* Always 0x + 8 hex digits, like an address in a kernel log. */
            unsigned int v = (unsigned int)va_arg(ap, void *);
            int n = utoa(v, 16, 0, num);
            char full[8];
            int z = 8 - n;
            for (int i = 0; i < 8; i++)
                full[i] = i < z ? '0' : num[i - z];
            put_field(s, "0x", full, 8, width, left, 0);
            break;
        }
        case 'c':
            num[0] = (char)va_arg(ap, int);
            put_field(s, "", num, 1, width, left, 0);
            break;
        case 's': {
            const char *str = va_arg(ap, const char *);
            if (!str)
                str = "(null)";
            int n = 0;
            while (str[n] && (prec < 0 || n < prec))
                n++;
            put_field(s, "", str, n, width, left, 0);
            break;
        }
        case '%':
            put(s, '%');
            break;
        case '\0':
            /* A lone '%' at the end: print it and stop. */
            put(s, '%');
            return;
        default:
            /* Unknown conversion: print it as written. */
            put(s, '%');
            put(s, *fmt);
            break;
        }
    }
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
