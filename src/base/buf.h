/* A growable byte buffer. Allocation failure aborts the process: tghost has
 * no meaningful way to continue without memory, and every caller would
 * otherwise need an error path that is never tested. */
#ifndef TGHOST_BUF_H
#define TGHOST_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
  char *data;   /* always NUL-terminated when non-NULL */
  size_t len;
  size_t cap;
};

#define BUF_INIT {NULL, 0, 0}

void buf_reserve(struct buf *b, size_t extra);
void buf_append(struct buf *b, const void *data, size_t len);
void buf_append_str(struct buf *b, const char *s);
void buf_append_char(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void buf_vprintf(struct buf *b, const char *fmt, va_list ap);
void buf_reset(struct buf *b);       /* len = 0, keeps the memory */
void buf_free(struct buf *b);        /* releases the memory */
/* Hands the memory to the caller (who frees it) and empties the buffer. */
char *buf_steal(struct buf *b, size_t *len);

/* Allocation helpers that abort with a message on failure. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

#endif
