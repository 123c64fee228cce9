/*
 * tests/fuzz/fuzz_space_json.c: libFuzzer target for the search-space parser
 * (genome_space_parse, space.c, over cJSON).
 *
 * A refused space must come with an error (fuzz_err_props). An accepted one
 * must be usable by the search: with a fixed-seed generator we draw two
 * genomes, mutate the first at each level and cross the two, and require
 * every result that a call reports as made to be a member of the space
 * (genome_space_check) and a well-formed genome (fuzz_genome_props: checked,
 * canonical, round-trips through text and JSON). A mutation that fails must
 * leave its genome as it was (space.c restores it). The space hash names
 * what the space allows, not how the JSON is laid out, so the same document
 * printed again by cJSON (pretty, keys in the same order) must parse to the
 * same hash. Any violation aborts.
 *
 * Work per input is bounded: 2 parses (each draws <= 400 classes per
 * space class), 2 samples, 3 mutations, 1 crossover, each of those bounded
 * by its own attempt limit in space.c.
 *
 * Replayed over tests/fuzz/corpus/space_json by `meson test` (replay.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "genome.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
void fuzz_genome_props(const genome *g, const char *what);
void fuzz_err_props(int rc, const tl_err *err, const char *what);

static void require_member(const genome_space *s, const genome *g, const char *step)
{
	tl_err err = TL_ERR_INIT;
	if (genome_space_check(s, g, &err) < 0) {
		char *t = genome_to_text(g);
		fprintf(stderr, "fuzz space_json: %s made a non-member: %s\n  genome: %s\n", step,
		        err.msg, t ? t : "(null)");
		free(t);
		abort();
	}
	fuzz_genome_props(g, step);
}

/* The same document reformatted must give the same space hash. */
static void check_hash_layout(const genome_space *s, const char *json)
{
	cJSON *root = cJSON_ParseWithLength(json, strlen(json));
	if (root == NULL) {
		fprintf(stderr, "fuzz space_json: cJSON refuses a document the space parser took\n");
		abort();
	}
	char *pretty = cJSON_Print(root);
	cJSON_Delete(root);
	if (pretty == NULL)
		abort();
	genome_space *s2 = NULL;
	tl_err err = TL_ERR_INIT;
	if (genome_space_parse(&s2, pretty, "reformatted", &err) < 0) {
		fprintf(stderr, "fuzz space_json: the reformatted space is refused: %s\n", err.msg);
		abort();
	}
	if (strcmp(genome_space_hash(s), genome_space_hash(s2)) != 0) {
		fprintf(stderr, "fuzz space_json: reformatting the JSON changed the space hash\n");
		abort();
	}
	genome_space_free(s2);
	cJSON_free(pretty);
}

static void exercise(const genome_space *s)
{
	const char *hash = genome_space_hash(s);
	if (hash == NULL || strlen(hash) != 64 || strspn(hash, "0123456789abcdef") != 64) {
		fprintf(stderr, "fuzz space_json: space hash is not 64 lowercase hex digits\n");
		abort();
	}
	int nc = genome_space_n_classes(s);
	if (nc < 1 || nc > GENOME_MAX_CLASSES) {
		fprintf(stderr, "fuzz space_json: %d classes in an accepted space\n", nc);
		abort();
	}

	tl_rng rng;
	tl_rng_seed(&rng, 0xf022, 7);
	genome g1, g2;
	tl_err err = TL_ERR_INIT;
	int rc = genome_sample(&g1, s, &rng, &err);
	if (rc < 0) {
		/* a space may admit no genome (e.g. a budget no depth meets) */
		fuzz_err_props(rc, &err, "space_json sample");
		return;
	}
	require_member(s, &g1, "genome_sample");
	tl_err_clear(&err);
	rc = genome_sample(&g2, s, &rng, &err);
	if (rc < 0) {
		fuzz_err_props(rc, &err, "space_json sample");
		return;
	}
	require_member(s, &g2, "genome_sample");

	for (int level = 0; level < 3; level++) {
		genome m = g1;
		tl_err e2 = TL_ERR_INIT;
		rc = genome_mutate(&m, s, level, &rng, &e2);
		if (rc == 0) {
			require_member(s, &m, "genome_mutate");
		} else {
			fuzz_err_props(rc, &e2, "space_json mutate");
			if (memcmp(&m, &g1, sizeof m) != 0) {
				fprintf(stderr, "fuzz space_json: a failed mutation changed the genome\n");
				abort();
			}
		}
	}

	genome a, b;
	tl_err e3 = TL_ERR_INIT;
	rc = genome_cross(&a, &b, &g1, &g2, s, &rng, &e3);
	if (rc < 0) {
		fprintf(stderr, "fuzz space_json: genome_cross refused two members: %s\n", e3.msg);
		abort();
	}
	require_member(s, &a, "genome_cross");
	require_member(s, &b, "genome_cross");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *json = malloc(size + 1);
	if (json == NULL)
		return 0;
	memcpy(json, data, size);
	json[size] = '\0';
	genome_space *s = NULL;
	tl_err err = TL_ERR_INIT;
	int rc = genome_space_parse(&s, json, "fuzz", &err);
	if (rc == 0) {
		check_hash_layout(s, json);
		exercise(s);
	}
	else
		fuzz_err_props(rc, &err, "space_json");
	if (rc < 0 && s != NULL) {
		fprintf(stderr, "fuzz space_json: failed parse left *out set\n");
		abort();
	}
	genome_space_free(s);
	free(json);
	return 0;
}
