/*
 * evolve/runcfg.h: what the readers of a stored run need from its config
 * (runs.config, the JSON that ev_config_parse produced when the run was
 * created): the objectives with their directions, the constraints with
 * their bounds, and the config as text to show. tailor frontier / export
 * make a column of each metric; tailor report plots the objectives.
 *
 * This is the one reader of those keys outside evolve/config.c. It is
 * deliberately lenient where ev_config_parse is strict: a stored config was
 * valid when its run was created, and reading it back must not depend on
 * what else that parse checks on this machine (a training corpus or a space
 * file that has since moved, a device since removed). Entries it cannot use
 * (no string metric, a name of EV_METRIC_MAX characters or more, more than
 * EV_MAX_OBJ objectives or EV_MAX_CON constraints) are left out.
 *
 *   evo_run_metrics *m;
 *   if (evo_run_metrics_load(&m, db, run_id, &err) < 0) ...
 *   for (int i = 0; i < m->n_obj; i++) printf("%s\n", m->obj[i].metric);
 *   evo_run_metrics_free(m);
 */
#ifndef EVOLVE_RUNCFG_H
#define EVOLVE_RUNCFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "evolve.h"
#include "tl.h"

typedef struct evo_run_objective {
	char metric[EV_METRIC_MAX]; /* as written: "decode_ms@local", "params"     */
	bool maximize;              /* "direction": "max"; anything else: min      */
} evo_run_objective;

typedef struct evo_run_constraint {
	char metric[EV_METRIC_MAX];
	double max, min; /* NaN: no bound on that side                           */
} evo_run_constraint;

typedef struct evo_run_metrics {
	evo_run_objective obj[EV_MAX_OBJ]; /* in the config's order               */
	int n_obj;
	evo_run_constraint con[EV_MAX_CON];
	int n_con;
	char *config_text; /* the config indented for reading (owned)             */
} evo_run_metrics;

/* Read a stored config. source names it in errors ("run 3"); JSON that does
 * not parse is TL_EPARSE "<source>: stored config is not JSON". A config
 * without objectives or constraints gives none. *out is owned by the caller
 * (evo_run_metrics_free). */
int evo_run_metrics_parse(evo_run_metrics **out, const char *config_json, const char *source,
                          tl_err *err);

/* The same for the config of run_id in db (TL_ENOTFOUND "run N: no such
 * run (see 'tailor run list')" when there is none). */
int evo_run_metrics_load(evo_run_metrics **out, db_conn *db, int64_t run_id, tl_err *err);

void evo_run_metrics_free(evo_run_metrics *m);

/* The metric names, objectives then constraints, as pointers into m:
 * names[0..n) with n = n_obj + n_con (at most EV_MAX_OBJ + EV_MAX_CON). A
 * metric that is both an objective and a constraint is named twice. */
size_t evo_run_metrics_names(const evo_run_metrics *m,
                             const char *names[EV_MAX_OBJ + EV_MAX_CON]);

#endif /* EVOLVE_RUNCFG_H */
