/*
 * tests/fuzz/fuzz_genome_json.c: libFuzzer target for the genome JSON parser
 * (genome_parse on a JSON object, codec.c, over cJSON).
 *
 * The input is fed as it is, NUL-terminated; inputs whose first non-blank
 * byte is not '{' would go to the text parser, which has its own target, so
 * they are skipped here. An accepted genome must satisfy fuzz_genome_props,
 * a refused one fuzz_err_props (fuzz_genome_common.c); a violation aborts.
 *
 * Replayed over tests/fuzz/corpus/genome_json by `meson test` (replay.c).
 */
#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "genome.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
void fuzz_genome_props(const genome *g, const char *what);
void fuzz_err_props(int rc, const tl_err *err, const char *what);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	const char *p = s;
	while (isspace((unsigned char)*p))
		p++;
	if (*p == '{') {
		genome g;
		tl_err err = TL_ERR_INIT;
		int rc = genome_parse(&g, s, "fuzz", &err);
		if (rc == 0)
			fuzz_genome_props(&g, "genome_json");
		else
			fuzz_err_props(rc, &err, "genome_json");
	}
	free(s);
	return 0;
}
