/*
 * genome/stats.c: what an architecture costs, computed from its shape alone
 * (no device): parameters, cache and state bytes, FLOPs per token.
 *
 * Counting conventions (also in docs/genome.md):
 *  - parameters: every weight once, shared projections counted at their
 *    owner; one RMSNorm vector (d) per layer plus the final norm; the
 *    embedding once when the head is tied.
 *  - bytes: elements times the caller's element size; K and V of attention
 *    layers grow with context (kv_bytes_per_token); windowed and block
 *    attention hold at most `len` tokens; recurrences, linear attention and
 *    conv buffers hold a fixed state.
 *  - FLOPs: 2 per multiply-add of matrix products, convolution taps,
 *    attention scores and values, and recurrent state updates; elementwise
 *    gates, norms and softmax exponentials are not counted. Prefill is the
 *    mean per token over a prompt of `ctx` tokens with logits for the last
 *    token only; decode is one token at depth `ctx`, logits included.
 */
#include "genome.h"
#include "genome_int.h"

#include <string.h>

static uint32_t blocks_of(const genome_arch_layer *l, int k)
{
	if (l->feat == GF_QKV)
		return k == GG_C ? l->heads : l->kv_heads;
	if (l->feat == GF_CBVA)
		return l->heads;
	return 1;
}

static int64_t proj_params(const genome_arch *a, const genome_arch_layer *l, int k)
{
	int64_t w = l->width[k], d = a->d_model;
	switch (l->proj_chmix[k]) {
	case GC_DIAGONAL: return w;
	case GC_HEADS: return d * w / blocks_of(l, k);
	default: return d * w;
	}
}

/* Weights of group k at layer i's owner: projection, featurizer conv and
 * QK-norm vector. */
static int64_t group_params(const genome_arch *a, const genome_arch_layer *l, int k)
{
	int64_t p = proj_params(a, l, k) + (int64_t)l->conv[k] * l->width[k];
	if (l->qk_norm && (k == GG_C || k == GG_B))
		p += l->head_dim;
	return p;
}

int64_t genome_arch_layer_params(const genome_arch *a, int i)
{
	const genome_arch_layer *l = &a->layers[i];
	int64_t p = a->d_model; /* pre-norm */
	for (int k = 0; k < GENOME_NGROUPS; k++)
		if (l->xowner[k] == i && l->wowner[k] == i)
			p += group_params(a, l, k);
	if (l->structure == GS_TOEPLITZ && l->len > 1)
		p += (int64_t)l->inner * l->len;
	p += (int64_t)l->inner * a->d_model; /* output projection */
	return p;
}

/* Mean number of keys a query sees over positions 1..n of a prompt. */
static double mean_keys(const genome_arch_layer *l, int64_t n)
{
	if (n < 1)
		n = 1;
	if (l->mask == GM_NONE)
		return (n + 1) / 2.0;
	double w = l->len, sum = 0;
	if (l->mask == GM_WINDOW) {
		/* positions t <= w see t keys, later ones w */
		double m = n < w ? n : w;
		sum = m * (m + 1) / 2 + (n - m) * w;
	} else { /* block: position t sees ((t-1) mod w) + 1 */
		int64_t full = n / l->len, rest = n % l->len;
		sum = full * w * (w + 1) / 2 + (double)rest * (rest + 1) / 2;
	}
	return sum / n;
}

/* Keys seen by one new token at depth ctx. */
static double decode_keys(const genome_arch_layer *l, int64_t ctx)
{
	double n = (double)ctx + 1;
	if (l->mask == GM_WINDOW && n > l->len)
		return l->len;
	if (l->mask == GM_BLOCK)
		return (double)(ctx % l->len) + 1;
	return n;
}

void genome_stats_compute(genome_stats *out, const genome_arch *a, int elem_bytes, int64_t ctx)
{
	memset(out, 0, sizeof *out);
	int64_t d = a->d_model, e = elem_bytes;
	out->params_embedding = (int64_t)a->vocab * d * (a->tied ? 1 : 2);
	out->params = out->params_embedding + d; /* + final norm */
	double layer_flops_decode = 0, layer_flops_prefill = 0;

	for (int i = 0; i < a->n_layers; i++) {
		const genome_arch_layer *l = &a->layers[i];
		out->params += genome_arch_layer_params(a, i);
		out->n_by_struct[l->structure]++;
		double mm = 0; /* multiply-adds independent of position */
		for (int k = 0; k < GENOME_NGROUPS; k++) {
			if (l->xowner[k] != i)
				continue;
			mm += (double)proj_params(a, l, k) + (double)l->conv[k] * l->width[k];
			if (l->conv[k])
				out->state_bytes += (int64_t)(l->conv[k] - 1) * l->width[k] * e;
		}
		mm += (double)l->inner * d;
		bool own_kv = l->xowner[GG_B] == i || l->xowner[GG_V] == i;
		double hd = l->head_dim;
		double pos_dec = 0, pos_pre = 0; /* multiply-adds that depend on position */
		switch (l->structure) {
		case GS_DENSE: {
			int64_t kvw = 0;
			if (l->xowner[GG_B] == i)
				kvw += l->width[GG_B];
			if (l->xowner[GG_V] == i)
				kvw += l->width[GG_V];
			if (l->mask == GM_NONE) {
				out->kv_bytes_per_token += kvw * e;
			} else {
				int64_t held = ctx < l->len ? ctx : l->len;
				out->cache_bytes += held * kvw * e;
			}
			pos_dec = 2.0 * l->heads * hd * decode_keys(l, ctx);
			pos_pre = 2.0 * l->heads * hd * mean_keys(l, ctx);
			break;
		}
		case GS_LOWRANK:
			if (own_kv)
				out->state_bytes += (int64_t)l->kv_heads * l->head_dim * (l->head_dim + 1) * e;
			pos_dec = pos_pre = (double)l->kv_heads * hd * hd + (double)l->heads * hd * hd;
			break;
		case GS_SEMISEP:
			out->state_bytes += (int64_t)l->heads * l->state * l->head_dim * e;
			pos_dec = pos_pre = 2.0 * l->heads * (double)l->state * hd;
			break;
		case GS_TOEPLITZ:
			if (l->len > 1) {
				out->state_bytes += (int64_t)(l->len - 1) * l->inner * e;
				mm += (double)l->inner * l->len;
			}
			break;
		default:
			break;
		}
		layer_flops_decode += 2.0 * (mm + pos_dec);
		layer_flops_prefill += 2.0 * (mm + pos_pre);
	}
	out->params_nonembed = out->params - out->params_embedding;
	out->cache_bytes += out->kv_bytes_per_token * ctx + out->state_bytes;
	double head = 2.0 * (double)a->vocab * d;
	out->flops_decode_per_token = layer_flops_decode + head;
	out->flops_prefill_per_token = layer_flops_prefill + head / (ctx > 0 ? (double)ctx : 1.0);
}
