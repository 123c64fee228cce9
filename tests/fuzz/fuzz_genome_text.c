/*
 * tests/fuzz/fuzz_genome_text.c: libFuzzer target for the genome text parser
 * (genome_parse on "tailor-genome/1 ... | layers | c0 ..." input, codec.c).
 *
 * The input is fed as it is, NUL-terminated (the parser reads a C string, so
 * it sees the bytes up to the first NUL): the seed corpus starts from valid
 * texts, which gets the fuzzer past the magic without help. Inputs whose
 * first non-blank byte is '{' would go to the JSON parser, which has its own
 * target, so they are skipped here. An accepted genome must satisfy
 * fuzz_genome_props, a refused one fuzz_err_props (fuzz_genome_common.c);
 * a violation aborts.
 *
 * Replayed over tests/fuzz/corpus/genome_text by `meson test` (replay.c).
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
	if (*p != '{') {
		genome g;
		tl_err err = TL_ERR_INIT;
		int rc = genome_parse(&g, s, "fuzz", &err);
		if (rc == 0)
			fuzz_genome_props(&g, "genome_text");
		else
			fuzz_err_props(rc, &err, "genome_text");
	}
	free(s);
	return 0;
}
