/*
 * operators/mix_rec.c: the fixed-state structures.
 *  - low-rank (linear attention): T[i][j] = phi(q_i).phi(k_j), j <= i,
 *    normalised by the row sum with the positive feature map;
 *  - semi-separable (diagonal input-varying recurrence, Mamba-2-like SSD
 *    with a scalar decay per head): T[i][j] = (C_i.B_j) a_i ... a_{j+1}.
 *
 * Workload: decode folds one token into an O(hd^2) (or N x P) state per head
 * and reads it once: cost independent of context. Prefill is chunked: per
 * chunk of OP_MIX_CHUNK tokens the outputs read the state once (inter-chunk
 * part), add a causal c x c product inside the chunk (intra-chunk part), and
 * the chunk is folded into the state once - the "parallel" form, whose
 * products become GEMMs in a tiled implementation.
 */
#include "op_mix.h"
#include "mix_int.h"

#include <math.h>
#include <string.h>

/* ---- low-rank -------------------------------------------------------------- */

size_t op_linattn_state_bytes(const op_linattn_cfg *cfg)
{
	return (size_t)cfg->kv_heads * cfg->head_dim * (cfg->head_dim + 1) * sizeof(float);
}

size_t op_linattn_scratch_bytes(const op_linattn_cfg *cfg)
{
	return 2 * (size_t)OP_MIX_CHUNK * cfg->head_dim * sizeof(float);
}

static inline float lin_phi(float x, int nonlin)
{
	return nonlin == OP_NL_POSFEAT ? mix_posfeat(x) : x;
}

/* y holds the numerator; normalise by den when the feature map is positive. */
static inline void lin_finish(float *y, float den, int hd, int nonlin)
{
	if (nonlin != OP_NL_POSFEAT)
		return;
	float inv = 1.0f / (den + OP_LINATTN_EPS);
	for (int b = 0; b < hd; b++)
		y[b] *= inv;
}

/* y (hd) = fq^T S and den = fq . z, S the (hd, hd+1) state of one KV head,
 * fq = phi(q) given (mapped) or computed from q here (mapped == 0). */
static float lin_read(float *y, const float *q, int mapped, const float *S, int hd, int nonlin)
{
	int w = hd + 1;
	float den = 0.0f;
	memset(y, 0, (size_t)hd * sizeof(float));
	for (int a = 0; a < hd; a++) {
		float fa = mapped ? q[a] : lin_phi(q[a], nonlin);
		const float *row = S + (size_t)a * w;
		/* SIMD: axpy over b (a GEMV y = S^T fq) */
		for (int b = 0; b < hd; b++)
			y[b] += fa * row[b];
		den += fa * row[hd];
	}
	return den;
}

/* S += fk (v, 1)^T for one KV head: fk = phi(k) mapped or computed here. */
static void lin_fold(float *S, const float *k, int mapped, const float *v, int hd, int nonlin)
{
	int w = hd + 1;
	for (int a = 0; a < hd; a++) {
		float fa = mapped ? k[a] : lin_phi(k[a], nonlin);
		float *row = S + (size_t)a * w;
		/* SIMD: rank-1 update, axpy over b */
		for (int b = 0; b < hd; b++)
			row[b] += fa * v[b];
		row[hd] += fa;
	}
}

void op_linattn_step_shared(float *y, const float *q, const float *state,
                            const op_linattn_cfg *cfg)
{
	// q, y are (H, hd); state is (KV, hd, hd+1), already holding this token
	int H = cfg->heads, hd = cfg->head_dim, G = H / cfg->kv_heads;
	size_t sh = (size_t)hd * (hd + 1);
	for (int h = 0; h < H; h++) {
		const float *S = state + (size_t)(h / G) * sh;
		float den = lin_read(y + (size_t)h * hd, q + (size_t)h * hd, 0, S, hd, cfg->nonlin);
		lin_finish(y + (size_t)h * hd, den, hd, cfg->nonlin);
	}
}

void op_linattn_step(float *y, const float *q, const float *k, const float *v, float *state,
                     const op_linattn_cfg *cfg)
{
	// q, y are (H, hd); k, v are (KV, hd); state is (KV, hd, hd+1)
	int KV = cfg->kv_heads, hd = cfg->head_dim;
	size_t sh = (size_t)hd * (hd + 1);
	for (int g = 0; g < KV; g++)
		lin_fold(state + (size_t)g * sh, k + (size_t)g * hd, 0, v + (size_t)g * hd, hd,
		         cfg->nonlin);
	op_linattn_step_shared(y, q, state, cfg);
}

void op_linattn_prefill(float *y, const float *q, const float *k, const float *v, float *state,
                        const op_linattn_cfg *cfg, int T, void *scratch)
{
	// q, y are (T, H, hd); k, v are (T, KV, hd); state is (KV, hd, hd+1);
	// scratch holds phi(K) and phi(Q) of one chunk and head: 2 x (CHUNK, hd)
	int H = cfg->heads, KV = cfg->kv_heads, hd = cfg->head_dim, G = H / KV;
	int nl = cfg->nonlin;
	size_t sh = (size_t)hd * (hd + 1), qrow = (size_t)H * hd, kvrow = (size_t)KV * hd;
	float *fk = scratch, *fq = fk + (size_t)OP_MIX_CHUNK * hd;
	for (int t0 = 0; t0 < T; t0 += OP_MIX_CHUNK) {
		int c = T - t0 < OP_MIX_CHUNK ? T - t0 : OP_MIX_CHUNK;
		for (int g = 0; g < KV; g++) {
			float *S = state + (size_t)g * sh;
			for (int j = 0; j < c; j++)
				for (int a = 0; a < hd; a++)
					fk[(size_t)j * hd + a] =
						lin_phi(k[(t0 + j) * kvrow + (size_t)g * hd + a], nl);
			for (int r = 0; r < G; r++) {
				size_t hoff = (size_t)(g * G + r) * hd;
				for (int i = 0; i < c; i++)
					for (int a = 0; a < hd; a++)
						fq[(size_t)i * hd + a] = lin_phi(q[(t0 + i) * qrow + hoff + a], nl);
				for (int i = 0; i < c; i++) {
					const float *fqi = fq + (size_t)i * hd;
					float *yi = y + (t0 + i) * qrow + hoff;
					/* inter-chunk: the state before the chunk */
					float den = lin_read(yi, fqi, 1, S, hd, nl);
					/* intra-chunk, causal. SIMD/GEMM: (fq fk^T) masked,
					 * times V, over the whole chunk at once. */
					for (int j = 0; j <= i; j++) {
						const float *fkj = fk + (size_t)j * hd;
						const float *vj = v + (t0 + j) * kvrow + (size_t)g * hd;
						float s = 0.0f;
						for (int a = 0; a < hd; a++)
							s += fqi[a] * fkj[a];
						for (int b = 0; b < hd; b++)
							yi[b] += s * vj[b];
						den += s;
					}
					lin_finish(yi, den, hd, nl);
				}
			}
			/* fold the chunk into the state (GEMM: fk^T [V 1]) */
			for (int j = 0; j < c; j++)
				lin_fold(S, fk + (size_t)j * hd, 1, v + (t0 + j) * kvrow + (size_t)g * hd, hd,
				         nl);
		}
	}
}

/* ---- semi-separable ---------------------------------------------------------- */

size_t op_ssm_state_bytes(const op_ssm_cfg *cfg)
{
	return (size_t)cfg->heads * cfg->n * cfg->p * sizeof(float);
}

size_t op_ssm_scratch_bytes(const op_ssm_cfg *cfg)
{
	return (size_t)OP_MIX_CHUNK * cfg->n * sizeof(float);
}

void op_ssm_step(float *y, const float *C, const float *B, const float *V, const float *A,
                 float *state, const op_ssm_cfg *cfg)
{
	// C, B are (heads, N); V, y are (heads, P); A is (heads); state is (heads, N, P)
	int NH = cfg->heads, N = cfg->n, P = cfg->p;
	for (int h = 0; h < NH; h++) {
		float *Hs = state + (size_t)h * N * P;
		const float *Bh = B + (size_t)h * N, *Ch = C + (size_t)h * N, *Vh = V + (size_t)h * P;
		float *yh = y + (size_t)h * P;
		float a = expf(-mix_softplus(A[h]));
		/* H = a H + B^T V (SIMD: axpby over p) */
		for (int n = 0; n < N; n++) {
			float *row = Hs + (size_t)n * P;
			float bn = Bh[n];
			for (int p = 0; p < P; p++)
				row[p] = a * row[p] + bn * Vh[p];
		}
		/* y = C H */
		memset(yh, 0, (size_t)P * sizeof(float));
		for (int n = 0; n < N; n++) {
			float cn = cfg->nonlin == OP_NL_SILU ? mix_silu(Ch[n]) : Ch[n];
			const float *row = Hs + (size_t)n * P;
			for (int p = 0; p < P; p++)
				yh[p] += cn * row[p];
		}
	}
}

void op_ssm_prefill(float *y, const float *C, const float *B, const float *V, const float *A,
                    float *state, const op_ssm_cfg *cfg, int T, void *scratch)
{
	// C, B are (T, heads, N); V, y are (T, heads, P); A is (T, heads);
	// state is (heads, N, P); scratch is (CHUNK, N): silu(C) of one chunk and head
	int NH = cfg->heads, N = cfg->n, P = cfg->p;
	size_t cbrow = (size_t)NH * N, vrow = (size_t)NH * P;
	float *cs = scratch;
	/* cum[i] = sum_{s <= i} log a_s inside the chunk, in double: decays
	 * exp(cum[i] - cum[j]) are differences of running sums that may be large
	 * while their difference is small. */
	double cum[OP_MIX_CHUNK];
	for (int t0 = 0; t0 < T; t0 += OP_MIX_CHUNK) {
		int c = T - t0 < OP_MIX_CHUNK ? T - t0 : OP_MIX_CHUNK;
		for (int h = 0; h < NH; h++) {
			float *Hs = state + (size_t)h * N * P;
			double acc = 0.0;
			for (int i = 0; i < c; i++) {
				acc -= (double)mix_softplus(A[(size_t)(t0 + i) * NH + h]);
				cum[i] = acc;
			}
			const float *Cc = C + t0 * cbrow + (size_t)h * N;
			size_t cstride = cbrow;
			if (cfg->nonlin == OP_NL_SILU) {
				for (int i = 0; i < c; i++)
					for (int n = 0; n < N; n++)
						cs[(size_t)i * N + n] = mix_silu(Cc[i * cbrow + n]);
				Cc = cs;
				cstride = (size_t)N;
			}
			for (int i = 0; i < c; i++) {
				const float *ci = Cc + i * cstride;
				float *yi = y + (t0 + i) * vrow + (size_t)h * P;
				/* inter-chunk: decay from the chunk start, times C_i H */
				float di = (float)exp(cum[i]);
				memset(yi, 0, (size_t)P * sizeof(float));
				for (int n = 0; n < N; n++) {
					float f = ci[n] * di;
					const float *row = Hs + (size_t)n * P;
					for (int p = 0; p < P; p++)
						yi[p] += f * row[p];
				}
				/* intra-chunk: (C_i . B_j) exp(cum_i - cum_j) V_j, j <= i.
				 * GEMM: (C B^T) .* L times V over the chunk. */
				for (int j = 0; j <= i; j++) {
					const float *bj = B + (t0 + j) * cbrow + (size_t)h * N;
					const float *vj = V + (t0 + j) * vrow + (size_t)h * P;
					float s = 0.0f;
					for (int n = 0; n < N; n++)
						s += ci[n] * bj[n];
					s *= (float)exp(cum[i] - cum[j]);
					for (int p = 0; p < P; p++)
						yi[p] += s * vj[p];
				}
			}
			/* H = exp(cum_end) H + sum_j exp(cum_end - cum_j) B_j^T V_j */
			float dend = (float)exp(cum[c - 1]);
			for (size_t e = 0; e < (size_t)N * P; e++)
				Hs[e] *= dend;
			for (int j = 0; j < c; j++) {
				const float *bj = B + (t0 + j) * cbrow + (size_t)h * N;
				const float *vj = V + (t0 + j) * vrow + (size_t)h * P;
				float wj = (float)exp(cum[c - 1] - cum[j]);
				for (int n = 0; n < N; n++) {
					float f = wj * bj[n];
					float *row = Hs + (size_t)n * P;
					for (int p = 0; p < P; p++)
						row[p] += f * vj[p];
				}
			}
		}
	}
}
