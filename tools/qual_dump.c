/*
 * tools/qual_dump.c: a development tool for scripts/torch_check.py. Trains
 * nothing: builds the trainer's model of a genome, runs one forward and
 * backward on a random batch and writes what PyTorch needs to do the same:
 *   DIR/arch.txt     the arch text (genome_arch_describe)
 *   DIR/weights.bin  the weights (tailor-weights/1, f32)
 *   DIR/batch.bin    int32 B, T, then tokens (B*T), targets (B*T, -1 ignored)
 *   DIR/result.bin   f64 loss, then the gradient of every parameter (f32, in
 *                    the weights file's tensor order)
 * usage: qual_dump GENOME_FILE DIR [SEED] [B] [T]
 */
#include "quality.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: qual_dump GENOME_FILE DIR [SEED] [B] [T]\n");
		return 2;
	}
	uint64_t seed = argc > 3 ? strtoull(argv[3], NULL, 10) : 1;
	int B = argc > 4 ? atoi(argv[4]) : 2, T = argc > 5 ? atoi(argv[5]) : 16;
	tl_err err = TL_ERR_INIT;
	genome g;
	op_arch a;
	genome_arch ga;
	if (genome_load(&g, argv[1], &err) < 0 || qual_arch_of(&a, &g, &err) < 0 ||
	    genome_decode(&ga, &g, &err) < 0) {
		fprintf(stderr, "qual_dump: %s\n", err.msg);
		return 1;
	}
	char path[4096];
	char *text = genome_arch_describe(&ga);
	snprintf(path, sizeof path, "%s/arch.txt", argv[2]);
	FILE *f = fopen(path, "w");
	if (f == NULL || text == NULL) {
		fprintf(stderr, "qual_dump: cannot write %s\n", path);
		return 1;
	}
	fputs(text, f);
	fclose(f);
	free(text);
	qual_model_cfg mc = qual_model_cfg_default();
	mc.max_batch = B;
	mc.seq_len = T;
	mc.seed = seed;
	mc.init_std = 0.1f;
	qual_model *m = NULL;
	if (qual_model_create(&m, &a, &mc, &err) < 0) {
		fprintf(stderr, "qual_dump: %s\n", err.msg);
		return 1;
	}
	/* gains and taps away from their initial values */
	tl_rng r;
	tl_rng_seed(&r, seed, 99);
	float *p = qual_model_params(m);
	for (int64_t k = 0; k < qual_model_nparams(m); k++)
		p[k] += 0.05f * (tl_rng_float(&r) - 0.5f);
	int32_t *tok = malloc((size_t)(2 * B * T) * sizeof(int32_t)), *tgt = tok + B * T;
	for (int i = 0; i < B * T; i++) {
		tok[i] = (int32_t)tl_rng_bounded(&r, a.vocab);
		tgt[i] = i % 7 == 3 ? QUAL_IGNORE : (int32_t)tl_rng_bounded(&r, a.vocab);
	}
	double loss;
	op_pool *pool = NULL;
	op_pool_create(&pool, 2, &err);
	if (qual_model_forward(m, pool, tok, tgt, B, T, &loss, NULL, &err) < 0) {
		fprintf(stderr, "qual_dump: %s\n", err.msg);
		return 1;
	}
	qual_model_backward(m, pool);
	snprintf(path, sizeof path, "%s/weights.bin", argv[2]);
	if (qual_model_save_weights(m, path, &err) < 0) {
		fprintf(stderr, "qual_dump: %s\n", err.msg);
		return 1;
	}
	snprintf(path, sizeof path, "%s/batch.bin", argv[2]);
	f = fopen(path, "wb");
	int32_t hdr[2] = {B, T};
	fwrite(hdr, sizeof hdr, 1, f);
	fwrite(tok, sizeof(int32_t), (size_t)(2 * B * T), f);
	fclose(f);
	snprintf(path, sizeof path, "%s/result.bin", argv[2]);
	f = fopen(path, "wb");
	fwrite(&loss, sizeof loss, 1, f);
	fwrite(qual_model_grads(m), sizeof(float), (size_t)qual_model_nparams(m), f);
	fclose(f);
	printf("loss %.9f params %lld\n", loss, (long long)qual_model_nparams(m));
	free(tok);
	qual_model_free(m);
	op_pool_free(pool);
	return 0;
}
