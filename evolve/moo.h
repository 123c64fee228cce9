/*
 * evolve/moo.h: the multi-objective core of the search (prefix moo_), free of
 * genomes and of the database so it can be checked on its own and driven by
 * a real-vector test problem (ZDT, DTLZ) as well as by the run engine.
 *
 * Conventions: every objective is minimized (the engine negates the ones a
 * config maximizes); a point is feasible when its total constraint violation
 * is 0. Domination is Deb's constrained domination (Deb 2000, "An efficient
 * constraint handling method for genetic algorithms"):
 *   a dominates b  iff  a feasible and b not,
 *                   or  both infeasible and viol(a) < viol(b),
 *                   or  both feasible and a is no worse in every objective
 *                       and better in at least one.
 *
 * Usage:
 *     moo_point pts[n] = {{obj, viol}, ...};   // obj: m doubles each
 *     int rank[n]; double crowd[n];
 *     moo_rank(pts, n, m, rank);               // 0 = non-dominated front
 *     moo_crowding(pts, n, m, rank, crowd);    // per front, INFINITY at ends
 *     int keep[N];
 *     moo_select(pts, n, m, rank, crowd, N, keep);   // NSGA-II survival
 *     int w = moo_tournament(rank, crowd, n, &rng);  // binary tournament
 *     double hv = moo_hypervolume(front, k, m, ref); // exact, see below
 */
#ifndef MOO_H
#define MOO_H

#include <stdbool.h>
#include <stddef.h>

#include "tl.h"

typedef struct moo_point {
	const double *obj; /* m objectives, minimized */
	double viol;       /* total constraint violation, >= 0; 0 = feasible */
} moo_point;

/* Does a dominate b (constrained domination above)? */
bool moo_dominates(const moo_point *a, const moo_point *b, int m);

/* Fast non-dominated sort (Deb et al. 2002): rank[i] = index of i's front.
 * O(m n^2) time, O(n^2) bits of memory; returns the number of fronts, or -1
 * when memory runs out. Points with equal objectives share a front. */
int moo_rank(const moo_point *pts, int n, int m, int *rank);

/* Crowding distance within each front: per objective, the front sorted by
 * that objective (ties broken by index, so the result is deterministic), the
 * two ends get INFINITY, the others the normalized gap between neighbours
 * (objective range of the front; a zero range adds nothing). */
void moo_crowding(const moo_point *pts, int n, int m, const int *rank, double *crowd);

/* Crowded comparison: lower rank wins, then larger crowding, then lower
 * index (a total order, so selection is deterministic). */
bool moo_better(const int *rank, const double *crowd, int a, int b);

/* NSGA-II survival: the N best of n points by front, the last front cut by
 * crowding distance. keep[0..N) receives their indices in crowded order.
 * N <= n. */
void moo_select(int n, const int *rank, const double *crowd, int N, int *keep);

/* Binary tournament: two distinct uniform draws (one when n == 1), the
 * better by moo_better. */
int moo_tournament(const int *rank, const double *crowd, int n, tl_rng *rng);

/* Hypervolume dominated by the points (minimized, m objectives) and bounded
 * by the reference point ref: the Lebesgue measure of the union of the boxes
 * [p, ref]. Points not strictly better than ref in every objective add
 * nothing. Exact for every m: m == 1 a minimum, m == 2 a sweep
 * (O(n log n)), m >= 3 slicing along the last objective down to the 2-D
 * sweep (HSO, While et al. 2006; O(n^(m-1) log n), fine for the fronts of a
 * search). pts: n rows of m doubles. Returns -1 when memory runs out. */
double moo_hypervolume(const double *pts, int n, int m, const double *ref);

#endif /* MOO_H */
