/*
 * tests/test_moo.c: evolve/moo.c against brute force.
 *  - constrained domination on hand cases (feasible first, then smaller
 *    violation, then Pareto);
 *  - moo_rank against peeling the non-dominated set again and again
 *    (O(n^3)) on random sets with ties, duplicates and infeasible points;
 *  - moo_crowding against neighbours found by scanning (no sorting);
 *  - moo_select against filling front by front, the last by crowding;
 *  - moo_hypervolume against inclusion-exclusion over all subsets (m = 1..4,
 *    n <= 10), and against known values.
 */
#include "moo.h"
#include "tl_test.h"

#include <stdlib.h>

static bool dom_def(const double *a, double va, const double *b, double vb, int m)
{
	if (va <= 0 && vb > 0)
		return true;
	if (va > 0 && vb <= 0)
		return false;
	if (va > 0)
		return va < vb;
	int le = 1, lt = 0;
	for (int k = 0; k < m; k++) {
		le &= a[k] <= b[k];
		lt |= a[k] < b[k];
	}
	return le && lt;
}

static void test_dominates(void)
{
	double a[2] = {1, 2}, b[2] = {2, 2}, c[2] = {0, 5};
	moo_point pa = {a, 0}, pb = {b, 0}, pc = {c, 0};
	CHECK(moo_dominates(&pa, &pb, 2) && !moo_dominates(&pb, &pa, 2));
	CHECK(!moo_dominates(&pa, &pc, 2) && !moo_dominates(&pc, &pa, 2));
	CHECK(!moo_dominates(&pa, &pa, 2)); /* equal: neither */
	moo_point ib = {b, 0.5}, ia = {a, 1.0};
	CHECK(moo_dominates(&ib, &ia, 2));   /* smaller violation wins, objectives aside */
	CHECK(moo_dominates(&pb, &ia, 2));   /* feasible beats infeasible */
	CHECK(!moo_dominates(&ia, &pb, 2));
	moo_point ia2 = {b, 1.0};
	CHECK(!moo_dominates(&ia, &ia2, 2) && !moo_dominates(&ia2, &ia, 2));
}

static void random_set(tl_rng *rng, int n, int m, double *obj, double *viol)
{
	for (int i = 0; i < n; i++) {
		if (i > 0 && tl_rng_bounded(rng, 6) == 0) { /* a duplicate */
			int j = (int)tl_rng_bounded(rng, (uint32_t)i);
			memcpy(obj + i * m, obj + j * m, (size_t)m * sizeof *obj);
			viol[i] = viol[j];
			continue;
		}
		for (int k = 0; k < m; k++) /* few distinct values: many ties */
			obj[i * m + k] = (double)tl_rng_bounded(rng, 6);
		viol[i] = tl_rng_bounded(rng, 4) == 0 ? (double)(1 + tl_rng_bounded(rng, 3)) * 0.5 : 0.0;
	}
}

static void test_rank_crowd_select(tl_rng *rng)
{
	enum { MAXN = 60 };
	double obj[MAXN * 4], viol[MAXN], crowd[MAXN], bc[MAXN];
	moo_point pts[MAXN];
	int rank[MAXN], br[MAXN], keep[MAXN];
	int bad_rank = 0, bad_crowd = 0, bad_sel = 0;
	for (int trial = 0; trial < 400; trial++) {
		int n = 1 + (int)tl_rng_bounded(rng, MAXN), m = 1 + (int)tl_rng_bounded(rng, 4);
		random_set(rng, n, m, obj, viol);
		for (int i = 0; i < n; i++)
			pts[i] = (moo_point){obj + i * m, viol[i]};
		int nf = moo_rank(pts, n, m, rank);
		/* peel */
		bool done[MAXN] = {0};
		int left = n, r = 0;
		while (left > 0) {
			bool inf[MAXN] = {0};
			for (int i = 0; i < n; i++) {
				if (done[i])
					continue;
				bool dominated = false;
				for (int j = 0; j < n && !dominated; j++)
					if (!done[j] && j != i && dom_def(obj + j * m, viol[j], obj + i * m, viol[i], m))
						dominated = true;
				inf[i] = !dominated;
			}
			for (int i = 0; i < n; i++)
				if (inf[i]) {
					br[i] = r;
					done[i] = true;
					left--;
				}
			r++;
		}
		for (int i = 0; i < n; i++)
			bad_rank += rank[i] != br[i];
		bad_rank += nf != r;
		/* crowding by scanning for neighbours in (value, index) order */
		moo_crowding(pts, n, m, rank, crowd);
		for (int i = 0; i < n; i++) {
			bc[i] = 0;
			for (int k = 0; k < m; k++) {
				int prev = -1, next = -1;
				double lo = INFINITY, hi = -INFINITY;
				for (int j = 0; j < n; j++) {
					if (rank[j] != rank[i])
						continue;
					double x = obj[j * m + k], y = obj[i * m + k];
					lo = x < lo ? x : lo;
					hi = x > hi ? x : hi;
					bool before = x < y || (x == y && j < i), after = x > y || (x == y && j > i);
					if (before && (prev < 0 || x > obj[prev * m + k] ||
					               (x == obj[prev * m + k] && j > prev)))
						prev = j;
					if (after && (next < 0 || x < obj[next * m + k] ||
					              (x == obj[next * m + k] && j < next)))
						next = j;
				}
				if (prev < 0 || next < 0)
					bc[i] = INFINITY;
				else if (hi > lo && !isinf(bc[i]))
					bc[i] += (obj[next * m + k] - obj[prev * m + k]) / (hi - lo);
			}
			if (!(bc[i] == crowd[i] || fabs(bc[i] - crowd[i]) <= 1e-12 * fabs(bc[i])))
				bad_crowd++;
		}
		/* select: front by front, the last front by crowding (then index) */
		int N = 1 + (int)tl_rng_bounded(rng, (uint32_t)n);
		moo_select(n, rank, crowd, N, keep);
		int k = 0;
		int want[MAXN];
		for (int f = 0; f < nf && k < N; f++) {
			int mem[MAXN], c = 0;
			for (int i = 0; i < n; i++)
				if (rank[i] == f)
					mem[c++] = i;
			/* by crowding descending, index ascending */
			for (int a = 0; a < c; a++)
				for (int b = a + 1; b < c; b++)
					if (crowd[mem[b]] > crowd[mem[a]] ||
					    (crowd[mem[b]] == crowd[mem[a]] && mem[b] < mem[a])) {
						int t = mem[a];
						mem[a] = mem[b];
						mem[b] = t;
					}
			for (int a = 0; a < c && k < N; a++)
				want[k++] = mem[a];
		}
		bad_sel += memcmp(want, keep, (size_t)N * sizeof *keep) != 0;
	}
	CHECK_MSG(bad_rank == 0, "rank differs from peeling in %d places", bad_rank);
	CHECK_MSG(bad_crowd == 0, "crowding differs from scanning in %d places", bad_crowd);
	CHECK_MSG(bad_sel == 0, "selection differs in %d trials", bad_sel);
}

/* Inclusion-exclusion: sum over non-empty subsets of (-1)^(|S|+1) times the
 * volume of the intersection of their boxes [max p, ref]. */
static double hv_ie(const double *p, int n, int m, const double *ref)
{
	double total = 0;
	for (unsigned s = 1; s < (1u << n); s++) {
		double vol = 1;
		int bits = 0;
		for (int k = 0; k < m; k++) {
			double lo = -INFINITY;
			for (int i = 0; i < n; i++)
				if (s >> i & 1)
					lo = p[i * m + k] > lo ? p[i * m + k] : lo;
			vol *= ref[k] > lo ? ref[k] - lo : 0;
		}
		for (int i = 0; i < n; i++)
			bits += (int)(s >> i & 1);
		total += (bits & 1) ? vol : -vol;
	}
	return total;
}

static void test_hypervolume(tl_rng *rng)
{
	double ref2[2] = {4, 4}, p2[6] = {1, 3, 2, 2, 3, 1};
	CHECK(moo_hypervolume(p2, 3, 2, ref2) == 6.0); /* 3 + 2*2 + 1... = 1*3+1*2+1*1 */
	double ref3[3] = {1, 1, 1}, p3[3] = {0, 0, 0};
	CHECK(moo_hypervolume(p3, 1, 3, ref3) == 1.0);
	double p1[3] = {2, 5, 7}, r1[1] = {6};
	CHECK(moo_hypervolume(p1, 3, 1, r1) == 4.0);
	int bad = 0;
	for (int trial = 0; trial < 300; trial++) {
		int n = 1 + (int)tl_rng_bounded(rng, 10), m = 1 + (int)tl_rng_bounded(rng, 4);
		double p[40], ref[4];
		for (int k = 0; k < m; k++)
			ref[k] = 1.0;
		for (int i = 0; i < n * m; i++) /* some outside the reference box */
			p[i] = tl_rng_bounded(rng, 8) == 0 ? 1.0 + tl_rng_double(rng)
			                                  : (double)tl_rng_bounded(rng, 5) / 4.0;
		double got = moo_hypervolume(p, n, m, ref);
		/* inclusion-exclusion over the points inside only (outside ones
		 * contribute nothing, and their boxes are empty anyway) */
		double want = hv_ie(p, n, m, ref);
		if (fabs(got - want) > 1e-12)
			bad++;
	}
	CHECK_MSG(bad == 0, "hypervolume differs from inclusion-exclusion in %d of 300", bad);
}

static void test_tournament(tl_rng *rng)
{
	int rank[4] = {1, 0, 2, 0};
	double crowd[4] = {1, 0.5, 9, INFINITY};
	int wins[4] = {0};
	for (int i = 0; i < 4000; i++)
		wins[moo_tournament(rank, crowd, 4, rng)]++;
	/* the worst never wins; the best (rank 0, inf crowding) wins every
	 * pair it is in: 3 of 6 pairs */
	CHECK(wins[2] == 0);
	CHECK(wins[3] > 1800 && wins[3] < 2200);
	CHECK(moo_tournament(rank, crowd, 1, rng) == 0);
}

int main(void)
{
	tl_rng rng;
	tl_rng_seed(&rng, 7, 1);
	test_dominates();
	test_rank_crowd_select(&rng);
	test_hypervolume(&rng);
	test_tournament(&rng);
	return tl_test_end();
}
