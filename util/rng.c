/*
 * util/rng.c: PCG32, XSH-RR output on a 64-bit LCG (O'Neill 2014, §6.3.1).
 *
 * The state transition is the 64-bit LCG with Knuth's MMIX multiplier
 * 6364136223846793005; the output permutes the *old* state (xorshift high,
 * then a random rotation chosen by the top 5 bits) so that the multiply and
 * the permutation can overlap. Checked in tests/test_util.c against the
 * reference implementation's published demo output (seed 42, stream 54).
 */
#include "tl.h"

#include <math.h>
#include <string.h>

#define PCG_MULT 6364136223846793005ULL

static inline uint32_t rotr32(uint32_t x, unsigned r)
{
	return (x >> r) | (x << ((-r) & 31u));
}

uint32_t tl_rng_u32(tl_rng *rng)
{
	uint64_t old = rng->state;
	rng->state = old * PCG_MULT + rng->inc;
	uint32_t xorshifted = (uint32_t)(((old >> 18) ^ old) >> 27);
	unsigned rot = (unsigned)(old >> 59);
	return rotr32(xorshifted, rot);
}

void tl_rng_seed(tl_rng *rng, uint64_t seed, uint64_t stream)
{
	/* As the paper's reference seeding: start from 0 on the chosen stream,
	 * step once, add the seed, step again, so that seed 0 and seed 1 do not
	 * start on neighbouring states. */
	rng->state = 0;
	rng->inc = (stream << 1) | 1u;
	(void)tl_rng_u32(rng);
	rng->state += seed;
	(void)tl_rng_u32(rng);
}

uint64_t tl_rng_u64(tl_rng *rng)
{
	uint64_t hi = tl_rng_u32(rng);
	return (hi << 32) | tl_rng_u32(rng);
}

uint32_t tl_rng_bounded(tl_rng *rng, uint32_t bound)
{
	/* Reject the lowest (2^32 mod bound) outputs: what remains is a whole
	 * number of copies of [0, bound), so r % bound is exactly uniform. */
	if (bound <= 1)
		return 0;
	uint32_t threshold = (uint32_t)(-bound) % bound;
	for (;;) {
		uint32_t r = tl_rng_u32(rng);
		if (r >= threshold)
			return r % bound;
	}
}

int64_t tl_rng_range(tl_rng *rng, int64_t lo, int64_t hi)
{
	if (hi <= lo)
		return lo;
	uint64_t span = (uint64_t)hi - (uint64_t)lo; /* inclusive span - 1 */
	if (span < UINT32_MAX)
		return lo + (int64_t)tl_rng_bounded(rng, (uint32_t)(span + 1));
	/* Wide ranges: rejection on 64 bits. */
	uint64_t n = span + 1; /* 0 means the full 2^64 */
	if (n == 0)
		return (int64_t)tl_rng_u64(rng);
	uint64_t threshold = (0 - n) % n;
	for (;;) {
		uint64_t r = tl_rng_u64(rng);
		if (r >= threshold)
			return (int64_t)((uint64_t)lo + r % n);
	}
}

float tl_rng_float(tl_rng *rng)
{
	return (float)(tl_rng_u32(rng) >> 8) * 0x1.0p-24f;
}

double tl_rng_double(tl_rng *rng)
{
	return (double)(tl_rng_u64(rng) >> 11) * 0x1.0p-53;
}

double tl_rng_normal(tl_rng *rng)
{
	double u, v, s;
	do {
		u = 2.0 * tl_rng_double(rng) - 1.0;
		v = 2.0 * tl_rng_double(rng) - 1.0;
		s = u * u + v * v;
	} while (s >= 1.0 || s == 0.0);
	return u * sqrt(-2.0 * log(s) / s);
}

void tl_rng_advance(tl_rng *rng, uint64_t delta)
{
	/* Compose the affine map x -> m x + c with itself by squaring:
	 * after the loop, acc_mult/acc_plus is the map applied `delta` times. */
	uint64_t cur_mult = PCG_MULT, cur_plus = rng->inc;
	uint64_t acc_mult = 1, acc_plus = 0;
	while (delta > 0) {
		if (delta & 1) {
			acc_mult *= cur_mult;
			acc_plus = acc_plus * cur_mult + cur_plus;
		}
		cur_plus = (cur_mult + 1) * cur_plus;
		cur_mult *= cur_mult;
		delta >>= 1;
	}
	rng->state = acc_mult * rng->state + acc_plus;
}

void tl_rng_shuffle(tl_rng *rng, void *base, size_t n, size_t size)
{
	unsigned char tmp[256], *b = base;
	if (size > sizeof tmp || n < 2)
		return;
	for (size_t i = n; i > 1; i--) {
		size_t j = tl_rng_bounded(rng, (uint32_t)i);
		if (j != i - 1) {
			memcpy(tmp, b + j * size, size);
			memcpy(b + j * size, b + (i - 1) * size, size);
			memcpy(b + (i - 1) * size, tmp, size);
		}
	}
}
