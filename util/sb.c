/*
 * util/sb.c: the growing string every room builds text in (genome texts and
 * tables, the emitted build files). On allocation failure it remembers, and
 * tl_sb_take returns NULL.
 */
#include "tl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Room for n more bytes and the NUL. */
static bool grow(tl_sb *b, size_t n)
{
	if (b->oom)
		return false;
	if (b->p && b->len + n + 1 <= b->cap)
		return true;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + n + 1)
		cap *= 2;
	char *np = realloc(b->p, cap);
	if (np == NULL) {
		b->oom = true;
		return false;
	}
	b->p = np;
	b->cap = cap;
	return true;
}

void tl_sb_put(tl_sb *b, const char *s, size_t n)
{
	if (!grow(b, n))
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void tl_sb_str(tl_sb *b, const char *s)
{
	tl_sb_put(b, s, strlen(s));
}

void tl_sb_printf(tl_sb *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->oom = true;
		return;
	}
	if (!grow(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

char *tl_sb_take(tl_sb *b)
{
	char *p = b->p;
	if (b->oom) {
		free(p);
		p = NULL;
	} else if (p == NULL) {
		p = calloc(1, 1);
	}
	b->p = NULL;
	b->len = b->cap = 0;
	b->oom = false;
	return p;
}

void tl_sb_free(tl_sb *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
	b->oom = false;
}
