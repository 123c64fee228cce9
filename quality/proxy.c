/*
 * quality/proxy.c: the reduced-width proxy of a candidate (full depth, fixed
 * head dim, the configured width: Hyena Edge's search trained at full depth
 * and a quarter of the width) and the decode of a genome to the runtime's
 * op_arch (through the same arch text a build carries).
 */
#include "quality.h"

#include <stdlib.h>
#include <string.h>

int qual_arch_of(op_arch *out, const genome *g, tl_err *err)
{
	genome_arch *ga = malloc(sizeof *ga);
	if (ga == NULL)
		return tl_err_set(err, TL_ENOMEM, "proxy: out of memory");
	int rc = genome_decode(ga, g, err);
	if (rc == 0) {
		char *text = genome_arch_describe(ga);
		if (text == NULL)
			rc = tl_err_set(err, TL_ENOMEM, "proxy: out of memory");
		else
			rc = op_arch_parse(out, text, "arch", err);
		free(text);
	}
	free(ga);
	return rc;
}

int qual_proxy_genome(genome *out, const genome *g, int width, int vocab, tl_err *err)
{
	*out = *g;
	if (vocab < 2)
		return tl_err_set(err, TL_EINVAL, "proxy: vocab %d must be >= 2", vocab);
	out->vocab = (uint32_t)vocab;
	if (width <= 0 || (uint32_t)width == g->d_model)
		return genome_check(out, err);
	if (width < 8 || width > 65536)
		return tl_err_set(err, TL_EINVAL, "proxy: width %d outside 8..65536", width);
	double f = (double)width / (double)g->d_model;
	out->d_model = (uint32_t)width;
	/* SwiGLU widths are in 64ths of d and follow; the rounding multiple
	 * shrinks with the width (LFM2's 256 at d 1024 is 32 at d 128) */
	uint32_t fm = (uint32_t)(g->ffn_multiple * f + 0.5);
	out->ffn_multiple = fm < 1 ? 1 : fm;
	for (int c = 0; c < g->n_classes; c++) {
		genome_class *k = &out->classes[c];
		if (k->feat != GF_QKV && k->feat != GF_CBVA)
			continue;
		int ratio = k->kv_heads ? k->heads / k->kv_heads : 1;
		if (k->feat == GF_CBVA)
			ratio = 1;
		int kv = (int)((k->feat == GF_QKV ? k->kv_heads : k->heads) * f + 0.5);
		if (kv < 1)
			kv = 1;
		int heads = kv * ratio;
		if (heads > 128) {
			heads = 128 / ratio * ratio;
			kv = heads / ratio;
		}
		k->heads = (uint16_t)heads;
		k->kv_heads = (uint16_t)(k->feat == GF_QKV ? kv : heads);
		/* a diagonal projection needs width d: widen or drop to dense */
		for (int grp = 0; grp < GENOME_NGROUPS; grp++)
			if (k->fg[grp].chmix == GC_HEADS &&
			    (width % (grp == GG_C || k->feat == GF_CBVA ? heads : kv) != 0 ||
			     (grp == GG_C || k->feat == GF_CBVA ? heads : kv) < 2))
				k->fg[grp].chmix = GC_DENSE;
		if (k->feat == GF_QKV)
			for (int grp = GG_B; grp <= GG_V; grp++)
				if (k->fg[grp].repeat)
					k->fg[grp].repeat = (uint8_t)ratio;
		/* a diagonal projection needs its group as wide as d: else dense */
		for (int grp = 0; grp < GENOME_NGROUPS; grp++) {
			int64_t w;
			if (k->feat == GF_QKV)
				w = (int64_t)(grp == GG_C ? heads : kv) * k->head_dim;
			else if (grp == GG_A)
				w = heads;
			else
				w = (int64_t)(grp == GG_V ? 1 : k->fg[grp].expand) * heads * k->head_dim;
			if (k->fg[grp].chmix == GC_DIAGONAL && w != width)
				k->fg[grp].chmix = GC_DENSE;
		}
	}
	int rc = genome_check(out, err);
	if (rc < 0)
		tl_err_prefix(err, "proxy at width %d", width);
	return rc;
}
