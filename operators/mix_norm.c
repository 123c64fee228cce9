/*
 * operators/mix_norm.c: the small per-token pieces around the mixers:
 * RMSNorm (pre-norm and per-head QK-norm), rotary positions, and the
 * diagonal structure (SwiGLU / GLU / bilinear gate).
 *
 * Workload: all three are O(T * width), memory-bound, a few percent of a
 * layer at most; they run once per layer per token in decode.
 */
#include "op_mix.h"
#include "mix_int.h"

#include <math.h>

void op_rmsnorm(float *y, const float *x, const float *w, int T, int C, float eps)
{
	// x, y are (T, C), w is (C) or NULL; y may equal x
	for (int t = 0; t < T; t++) {
		const float *xt = x + (size_t)t * C;
		float *yt = y + (size_t)t * C;
		/* f32 accumulation, as HF does after .to(float32). SIMD: 8-wide
		 * partial sums, then a horizontal add. */
		float ss = 0.0f;
		for (int c = 0; c < C; c++)
			ss += xt[c] * xt[c];
		float r = 1.0f / sqrtf(ss / (float)C + eps);
		if (w) {
			for (int c = 0; c < C; c++)
				yt[c] = xt[c] * r * w[c];
		} else {
			for (int c = 0; c < C; c++)
				yt[c] = xt[c] * r;
		}
	}
}

void op_rope(float *x, int T, int heads, int hd, int64_t pos0, float theta)
{
	// x is (T, heads, hd), hd even; rotated in place, pairs (i, i + hd/2)
	int half = hd / 2;
	/* inverse frequencies theta^(-2i/hd), once per call (the genome caps
	 * hd at 1024; beyond that they are recomputed per token) */
	double inv_freq[OP_ATTN_MAX_HD / 2];
	int cached = half <= OP_ATTN_MAX_HD / 2 ? half : 0;
	for (int i = 0; i < cached; i++)
		inv_freq[i] = pow((double)theta, -2.0 * i / hd);
	for (int t = 0; t < T; t++) {
		double pos = (double)(pos0 + t);
		float *xt = x + (size_t)t * heads * hd;
		/* the angle depends on (t, i) only: one sincos per pair, reused
		 * by every head (decode: hd/2 of them per layer). */
		for (int i = 0; i < half; i++) {
			double f = i < cached ? inv_freq[i] : pow((double)theta, -2.0 * i / hd);
			double ang = pos * f;
			float c = (float)cos(ang), s = (float)sin(ang);
			for (int h = 0; h < heads; h++) {
				float *xh = xt + (size_t)h * hd;
				float a = xh[i], b = xh[i + half];
				xh[i] = a * c - b * s;
				xh[i + half] = b * c + a * s;
			}
		}
	}
}

void op_glu(float *y, const float *g, const float *u, size_t n, int act)
{
	// g, u, y are (n); y may equal g or u
	switch (act) {
	case OP_NL_SILU:
		for (size_t i = 0; i < n; i++)
			y[i] = mix_silu(g[i]) * u[i];
		break;
	case OP_NL_SIGMOID:
		for (size_t i = 0; i < n; i++)
			y[i] = mix_sigmoid(g[i]) * u[i];
		break;
	default: /* OP_NL_NONE: bilinear */
		for (size_t i = 0; i < n; i++)
			y[i] = g[i] * u[i];
		break;
	}
}
