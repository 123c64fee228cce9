/*
 * tests/fuzz/fuzz_genome_common.c: the properties every genome the parsers
 * accept must have, shared by fuzz_genome_text.c and fuzz_genome_json.c
 * (each a target of its own: one fuzz target per parser, STYLE.md).
 *
 * A genome that genome_parse returns is checked and canonical, so:
 *   - genome_check accepts it and genome_canonicalize leaves it alone;
 *   - its text form and its JSON form (compact and pretty) parse back to the
 *     same bytes (struct genome has no padding, genome.h asserts it);
 *   - it decodes, hashes, and the copies parsed back hash the same;
 *   - its statistics can be computed (UBSan watches the arithmetic).
 * A refused input must come with an error: the code returned is the code
 * recorded, and the message is one non-empty line (tl.h).
 * Any violation prints one line naming the property and aborts, which is what
 * libFuzzer and the replay driver report as a finding.
 *
 * Work per input: two formatting passes, three re-parses, three decodes; all
 * linear in the genome (<= 128 layers, <= 8 classes).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "genome.h"

void fuzz_genome_props(const genome *g, const char *what);
void fuzz_err_props(int rc, const tl_err *err, const char *what);

static void fail(const char *what, const char *prop, const char *detail)
{
	fprintf(stderr, "fuzz %s: property violated: %s%s%s\n", what, prop, detail ? ": " : "",
	        detail ? detail : "");
	abort();
}

/* Parse `s` (made by our own writer) and require the same genome as `g`. */
static void reparse_same(const genome *g, const char *s, const char *form, const char *what)
{
	genome back;
	tl_err err = TL_ERR_INIT;
	char prop[96];
	if (s == NULL) {
		snprintf(prop, sizeof prop, "genome_to_%s returned NULL", form);
		fail(what, prop, NULL);
	}
	if (genome_parse(&back, s, form, &err) < 0) {
		snprintf(prop, sizeof prop, "the %s form of an accepted genome does not parse", form);
		fprintf(stderr, "fuzz %s: %s form: %s\n", what, form, s);
		fail(what, prop, err.msg);
	}
	if (memcmp(&back, g, sizeof back) != 0) {
		snprintf(prop, sizeof prop, "the %s form parses to a different genome", form);
		fprintf(stderr, "fuzz %s: %s form: %s\n", what, form, s);
		fail(what, prop, NULL);
	}
	char h1[65], h2[65];
	tl_err e1 = TL_ERR_INIT, e2 = TL_ERR_INIT;
	if (genome_hash(g, h1, &e1) < 0)
		fail(what, "genome_hash fails on an accepted genome", e1.msg);
	if (genome_hash(&back, h2, &e2) < 0)
		fail(what, "genome_hash fails on a re-parsed genome", e2.msg);
	if (strlen(h1) != 64 || strcmp(h1, h2) != 0)
		fail(what, "the hash changes across a round trip", form);
}

void fuzz_genome_props(const genome *g, const char *what)
{
	tl_err err = TL_ERR_INIT;
	if (genome_check(g, &err) < 0)
		fail(what, "genome_parse accepted a genome genome_check refuses", err.msg);

	genome canon = *g;
	genome_canonicalize(&canon);
	if (memcmp(&canon, g, sizeof canon) != 0)
		fail(what, "a parsed genome is not canonical (canonicalize changed it)", NULL);

	char *text = genome_to_text(g);
	reparse_same(g, text, "text", what);
	free(text);
	char *json = genome_to_json(g, false);
	reparse_same(g, json, "json", what);
	free(json);
	char *pretty = genome_to_json(g, true);
	reparse_same(g, pretty, "pretty json", what);
	free(pretty);

	genome_arch *a = malloc(sizeof *a);
	if (a == NULL)
		abort();
	tl_err e2 = TL_ERR_INIT;
	if (genome_decode(a, g, &e2) < 0)
		fail(what, "genome_decode fails on an accepted genome", e2.msg);
	genome_stats st;
	genome_stats_compute(&st, a, 2, 4096);
	if (st.params < st.params_embedding || st.params_nonembed != st.params - st.params_embedding)
		fail(what, "inconsistent parameter counts", NULL);
	free(a);
}

void fuzz_err_props(int rc, const tl_err *err, const char *what)
{
	if (rc >= 0)
		return;
	if (err->code != rc)
		fail(what, "returned code differs from the recorded error code", err->msg);
	if (err->msg[0] == '\0')
		fail(what, "an error with an empty message", NULL);
	if (strchr(err->msg, '\n') != NULL || memchr(err->msg, '\0', sizeof err->msg) == NULL)
		fail(what, "an error message that is not one NUL-terminated line", NULL);
}
