/*
 * genome/sb.c: the growing string buffer behind the text, JSON-free
 * descriptions and tables of the genome room.
 */
#include "genome_int.h"

#include <stdio.h>
#include <stdlib.h>

void genome_sb_printf(genome_sb *b, const char *fmt, ...)
{
	va_list ap;
	if (b->oom)
		return;
	for (;;) {
		size_t room = b->cap - b->len;
		va_start(ap, fmt);
		int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? room : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = 1;
			return;
		}
		if (b->p && (size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + (size_t)n + 1)
			cap *= 2;
		char *np = realloc(b->p, cap);
		if (np == NULL) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
}

char *genome_sb_take(genome_sb *b)
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
	b->oom = 0;
	return p;
}
