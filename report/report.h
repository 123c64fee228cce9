/*
 * report/report.h: the HTML report of a run (tailor report RUN -o FILE).
 *
 * One self-contained file: inline CSS, SVG plots drawn here, no script and
 * no external resource (a Content-Security-Policy forbids any request), so
 * it opens offline and can be mailed around. Sections:
 *   - the run: config, status, counts;
 *   - a Pareto scatter for each pair of objectives: every evaluated genome,
 *     infeasible ones marked, the frontier highlighted (at most
 *     REPORT_MAX_POINTS background points, a deterministic thinning stated
 *     under the plot);
 *   - hypervolume per generation;
 *   - the share of each operator in the population per generation (STAR's
 *     operator-evolution figure);
 *   - the frontier genomes as strips of coloured cells, one per layer;
 *   - per-candidate details of the frontier: every metric, origin, parents,
 *     genome text;
 *   - predicted vs measured (only when the run has genomes with both): the
 *     predictor's error per genome and device, and its RMSPE on decode_ms;
 *   - canary history (only when there are canaries): for each device the run
 *     used, its canaries over every run, this run's rows highlighted.
 * Every string from the database is HTML-escaped.
 */
#ifndef REPORT_H
#define REPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "db.h"
#include "tl.h"

#define REPORT_MAX_POINTS 20000
#define REPORT_MAX_OBJ 8 /* objectives plotted; more are left out */
#define REPORT_MAX_TABLE_ROWS 500 /* rows of a predicted-vs-measured or canary table */
#define REPORT_MAX_FAILURE_ROWS 20
#define QUAL_REPORT_MAX_BUDGETS 8 /* budgets of a fidelity study drawn */ /* reasons listed in each failures table */

/* What the report needs from the run's config, which it does not read
 * itself (report/ uses db and genome only): the caller gets it from the
 * config's reader (evolve/runcfg.h) and lends it for the call. */
typedef struct report_objective {
	const char *metric; /* as in candidates.objectives: "decode_ms@local"   */
	bool maximize;
} report_objective;

typedef struct report_config {
	const report_objective *obj; /* the objectives, in the config's order */
	int n_obj;
	const char *text; /* the config as shown; NULL: runs.config as stored   */
} report_config;

/* Write the report of run_id to out; cfg NULL: no objectives (no scatter),
 * the config as stored. */
int report_write(db_conn *db, int64_t run_id, const report_config *cfg, FILE *out, tl_err *err);

#endif /* REPORT_H */
