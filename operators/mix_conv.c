/*
 * operators/mix_conv.c: short causal depthwise convolutions.
 *  - scaled Toeplitz (LFM2's gated short conv = Hyena-Y):
 *      u = B.V,  z = conv_L(u),  y = C.z    T[i][j] = C_i K_{i-j} B_j
 *  - the featurizer conv (Hyena-X / Hyena-SE put it on C, B, V): z = conv_K(x).
 * Both are PyTorch's conv1d(groups=W, padding=L-1) truncated to the first T
 * outputs: weight w[c][k] multiplies the input L-1-k tokens back, so
 * w[c][L-1] multiplies the current token.
 *
 * State: the last L-1 input rows (L-1, W), oldest first, so a chunk reads
 * "row t - (L-1) + k" from the state when it falls before the chunk. Decode
 * shifts the rows by one (L is small: 2..8 in practice, at most 256).
 *
 * Workload: O(T * W * L), memory-bound; decode touches W * (2L + 3) floats.
 */
#include "op_mix.h"

#include <string.h>

size_t op_shortconv_state_bytes(int E, int L)
{
	return L > 1 ? (size_t)(L - 1) * E * sizeof(float) : 0;
}

size_t op_fconv_state_bytes(int W, int K)
{
	return K > 1 ? (size_t)(K - 1) * W * sizeof(float) : 0;
}

/*
 * The shared core: z_t[c] = sum_k w[c][k] u_{t-(L-1)+k}[c] with u = a.b
 * (b NULL: u = a), rows before the chunk from the state; then gate by g
 * when given: y = g.z. Taps are summed in order k = 0..L-1 in both forms,
 * so prefill and step give identical bits (with -ffp-contract=off; a build
 * that lets the compiler fuse multiply-adds may fuse the two differently).
 */
static void conv_prefill(float *y, const float *g, const float *a, const float *b,
                         const float *w, float *state, int T, int W, int L)
{
	// y, g, a, b are (T, W); w is (W, L); state is (L-1, W)
	int S = L - 1;
	for (int t = 0; t < T; t++) {
		float *yt = y + (size_t)t * W;
		/* SIMD: vectorise over c with w transposed to (L, W) */
		for (int c = 0; c < W; c++) {
			const float *wc = w + (size_t)c * L;
			float acc = 0.0f;
			for (int k = 0; k < L; k++) {
				int r = t - S + k;
				float u;
				if (r >= 0) {
					size_t i = (size_t)r * W + c;
					u = b ? a[i] * b[i] : a[i];
				} else {
					u = state[(size_t)(r + S) * W + c];
				}
				acc += wc[k] * u;
			}
			yt[c] = g ? g[(size_t)t * W + c] * acc : acc;
		}
	}
	/* new state: the last S rows of [state; u]. Row r' takes global row
	 * T + r' - S; from the old state that is row T + r' > r', so a forward
	 * copy never overwrites a row it still needs. */
	for (int r = 0; r < S; r++) {
		int src = T + r - S;
		float *dst = state + (size_t)r * W;
		if (src >= 0) {
			const float *ar = a + (size_t)src * W;
			if (b) {
				const float *br = b + (size_t)src * W;
				for (int c = 0; c < W; c++)
					dst[c] = ar[c] * br[c];
			} else {
				memcpy(dst, ar, (size_t)W * sizeof(float));
			}
		} else {
			memcpy(dst, state + (size_t)(T + r) * W, (size_t)W * sizeof(float));
		}
	}
}

static void conv_step(float *y, const float *g, const float *a, const float *b, const float *w,
                      float *state, int W, int L)
{
	// y, g, a, b are (W); w is (W, L); state is (L-1, W)
	int S = L - 1;
	for (int c = 0; c < W; c++) {
		const float *wc = w + (size_t)c * L;
		float u = b ? a[c] * b[c] : a[c];
		float acc = 0.0f;
		for (int k = 0; k < S; k++)
			acc += wc[k] * state[(size_t)k * W + c];
		acc += wc[S] * u;
		y[c] = g ? g[c] * acc : acc;
	}
	if (S == 0)
		return;
	memmove(state, state + W, (size_t)(S - 1) * W * sizeof(float));
	float *last = state + (size_t)(S - 1) * W;
	for (int c = 0; c < W; c++)
		last[c] = b ? a[c] * b[c] : a[c];
}

void op_shortconv_prefill(float *y, const float *C, const float *B, const float *V,
                          const float *w, float *state, int T, int E, int L)
{
	// C, B, V, y are (T, E); w is (E, L); state is (L-1, E)
	if (L <= 1) { /* no inner conv: y = C.(B.V) */
		for (size_t i = 0; i < (size_t)T * E; i++)
			y[i] = C[i] * (B[i] * V[i]);
		return;
	}
	conv_prefill(y, C, B, V, w, state, T, E, L);
}

void op_shortconv_step(float *y, const float *C, const float *B, const float *V, const float *w,
                       float *state, int E, int L)
{
	// C, B, V, y are (E); w is (E, L); state is (L-1, E)
	if (L <= 1) {
		for (int c = 0; c < E; c++)
			y[c] = C[c] * (B[c] * V[c]);
		return;
	}
	conv_step(y, C, B, V, w, state, E, L);
}

void op_fconv_prefill(float *y, const float *x, const float *w, float *state, int T, int W, int K)
{
	// x, y are (T, W); w is (W, K); state is (K-1, W)
	conv_prefill(y, NULL, x, NULL, w, state, T, W, K);
}

void op_fconv_step(float *y, const float *x, const float *w, float *state, int W, int K)
{
	// x, y are (W); w is (W, K); state is (K-1, W)
	conv_step(y, NULL, x, NULL, w, state, W, K);
}
