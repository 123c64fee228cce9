/*
 * genome/genome_int.h: what the genome room's files share and nobody else
 * needs: the catalog queries, size-gene relevance, a growing string buffer.
 */
#ifndef GENOME_INT_H
#define GENOME_INT_H

#include <stdarg.h>
#include <stddef.h>

#include "genome.h"

/* Size genes, for genome_class_uses. */
enum { GZ_HEADS, GZ_KV, GZ_HD, GZ_LEN, GZ_FFN, GZ_QKN, GZ_ROPE, GZ_COUNT };

extern const char *const genome_group_names[GENOME_NGROUPS];

bool genome_op_allowed(int feat, int structure, int mask, int nonlin, int chmix);
bool genome_class_uses(const genome_class *c, int size);
bool genome_wshare_covers(int strategy, int grp);
bool genome_xshare_covers(int strategy, int grp);
uint32_t genome_natural_width(const genome *g, const genome_class *c, int grp);
uint32_t genome_glu_inner(const genome *g, const genome_class *c);
/* kind: 0 feat, 1 structure, 2 mask, 3 nonlin, 4 chmix; -1 if unknown. */
int genome_name_lookup(int kind, const char *name);

/* Parse JSON strictly: syntax errors with line and column, no text after
 * the value, no key repeated in an object. NULL with err set on failure. */
struct cJSON;
struct cJSON *genome_json_parse(const char *s, const char *src, tl_err *err);
/* "<src>: line L column C: not valid JSON" from cJSON's error pointer. */
int genome_json_syntax_error(const char *s, const char *src, tl_err *err);

/* Text is built in util's tl_sb (tl.h). */

#endif
