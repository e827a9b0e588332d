/* Allocation that cannot fail: out of memory aborts in one place. */
#ifndef MC_MEM_H
#define MC_MEM_H

#include <stddef.h>
#include <stdlib.h> /* free() pairs with these */

void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* printf into a fresh string; caller frees. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
