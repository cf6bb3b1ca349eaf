/* pynova user-space library: system calls, strings, printf.
 * pynova.toolchain compiles every .c and .S file in libc/ into an archive, so a
 * program links only the members it uses (plus syscall.c, always). */
#ifndef PYNOVA_H
#define PYNOVA_H

#include <stdarg.h>
#include <stddef.h>

#include "syscall.h"

/* ---- system calls (docs/ABI.md) ---- */

/* "pynova libc": linked into every program (see pynova/toolchain.py). */
extern const char pynova_libc[];

/* Raw call: returns eax as the kernel left it (the number itself when the
 * call has no result, e.g. an unknown number). */
unsigned int syscall2(unsigned int nr, unsigned int a, unsigned int b);

void sys_dump(unsigned int a, unsigned int b);          /* 0 */
/* 1: 0 on success, -1 when the kernel rejected the buffer. */
int print(const char *buf, unsigned int len);
unsigned int sum(unsigned int a, unsigned int b);       /* 2 */
/* 3: new break, or NULL to ask. Previous break on success, the current
 * break when asked, NULL on failure. */
void *nbrk(void *new_break);
/* 4: 0 on success, -1 when no context can be made. */
int thr_create(void (*eip)(void), void *stack_top);
void thr_yield(void);                                    /* 5 */
__attribute__((noreturn)) void exit(int status);         /* 6 */
__attribute__((noreturn)) void thr_exit(void);           /* 8 */
int thr_self(void);                                      /* 9 */

/* ---- strings and memory ---- */

size_t strlen(const char *s);
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
int strcmp(const char *a, const char *b);

/* ---- output ---- */

/* print(s, strlen(s)); returns print's result. */
int print_str(const char *s);
/* Conversions %d %i %u %x %X %o %c %s %p %% and %f %F (exactly rounded,
 * precision up to 30; %e %g %a print as %f); flags - 0 + space #; a width
 * and a precision (or '*'); length modifiers hh h (narrowed), l z t L
 * (32 bits) and ll j q (64 bits). The format attribute has the compiler
 * check the arguments. printf buffers and calls print once per call (or
 * each time its buffer fills); it returns the number of characters. */
int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int vprintf(const char *fmt, va_list ap);
/* Write at most size-1 characters and a NUL; return the length the full
 * output would have had. */
int snprintf(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);

/* ---- heap (malloc.c, on nbrk) ---- */

/* 8-byte aligned blocks from a free list with splitting and coalescing; a
 * free block of 8 KiB or more at the top of the heap goes back to the
 * kernel. Safe to call from several threads. */
void *malloc(size_t n);
void free(void *p);
void *calloc(size_t count, size_t size);
void *realloc(void *p, size_t n);
/* Bytes between the allocator's first block and the break (0 before the
 * first malloc). */
size_t malloc_heap_size(void);

/* ---- threads (thread.c) ---- */

#define THREAD_STACK_SIZE 16384u
/* Start fn(arg) in a new context on a malloc'ed stack of THREAD_STACK_SIZE
 * bytes; when fn returns the thread ends (thr_exit). The stack is not
 * freed. 0 on success, -1 when out of memory or contexts. */
int thread_create(void (*fn)(void *), void *arg);

#endif
