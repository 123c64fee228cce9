/*
 * evolve/engine.c: the run engine (see evolve.h for the commit protocol).
 *
 * Workload: per candidate one evaluation (microseconds for analytic
 * metrics, seconds to minutes for a device measurement) and three small
 * writes; per generation a sort of at most 2 x population points. The
 * database is the state: nothing lives only in memory between two steps.
 *
 * Hypervolume (docs/config.md): objectives are taken in minimization form
 * (maximized ones negated), normalized per objective by the ideal and nadir
 * of generation 0's feasible evaluated candidates, (f - ideal) / (nadir -
 * ideal) (a range of 0 counts as 1); the reference point is 1.1 in every
 * normalized objective unless the config gives an objective's "reference"
 * (in its own units). Only the feasible first front counts. Generation 0
 * fixes the normalization, so the figures of one run compare across its
 * generations.
 *
 * Constraint violation: the sum over constraints of (v - max) / max(|max|,
 * 1e-12) when v > max and (min - v) / max(|min|, 1e-12) when v < min:
 * relative, so budgets in different units add up.
 */
#include "evolve.h"
#include "db_runs.h"
#include "moo.h"
#include "tailor_config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STREAM_INIT 1u
#define STREAM_GEN0 1000u

int ev_run_create(db_conn *db, const ev_config *c, int64_t *run_id, tl_err *err)
{
	return db_run_create(db, c->name[0] ? c->name : NULL, c->json, c->hash,
	                     c->mode == EV_RANDOM ? "random" : "nsga2", c->seed, c->generations,
	                     c->population, TAILOR_VERSION, run_id, err);
}

/* ---- evaluation ---------------------------------------------------------------- */

typedef struct engine {
	db_conn *db;
	int64_t run_id;
	ev_config cfg;
	const ev_ops *ops;
	genome_arch *arch;      /* scratch */
	ev_progress prog;
	char last[256];
	/* the devices the metrics measure on, in order of first use */
	char dev[EV_MAX_DEV][EV_METRIC_MAX];
	int ndev;
	pthread_mutex_t *mu;    /* the database's mutex in the parallel path */
	char queues[256];       /* ev_progress.queues */
} engine;

static const ev_metric *metric_at(const ev_config *c, int i)
{
	return i < c->n_obj ? &c->obj[i].m : &c->con[i - c->n_obj].m;
}

#define QUALITY_WORKER "@quality" /* the quality evaluator's slot among the devices */

static const char *const qual_kind_name[] = {"analytic", "train", "mad", "command"};

/* The quality metrics of g: stored results of the same evaluator and
 * settings are reused; otherwise the evaluator runs (the database is used
 * under e->mu when set, the evaluator runs outside it) and its results are
 * stored. vals is indexed like the config's metrics. */
static int quality_values(engine *e, const genome *g, const char *hash, double *vals,
                          tl_err *err)
{
	const ev_config *c = &e->cfg;
	const ev_quality *q = &c->quality;
	int nm = c->n_obj + c->n_con, missing = 0, rc = 0;
	if (e->mu)
		pthread_mutex_lock(e->mu);
	for (int i = 0; i < nm && rc == 0; i++) {
		const ev_metric *m = metric_at(c, i);
		bool found = false;
		if (m->quality)
			rc = db_quality_get(e->db, hash, qual_kind_name[q->kind], q->settings_hash, m->base,
			                    &vals[i], &found, err);
		missing += m->quality && !found;
	}
	if (e->mu)
		pthread_mutex_unlock(e->mu);
	if (rc < 0 || missing == 0)
		return rc;
	tl_err qe = TL_ERR_INIT;
	rc = ev_quality_eval(c, g, vals, &qe);
	if (e->mu)
		pthread_mutex_lock(e->mu);
	for (int i = 0; i < nm; i++) {
		const ev_metric *m = metric_at(c, i);
		if (!m->quality)
			continue;
		tl_err se = TL_ERR_INIT;
		db_quality_put(e->db, hash, e->run_id, 0, qual_kind_name[q->kind], q->settings,
		               q->settings_hash, m->base, rc < 0 ? NAN : vals[i],
		               rc < 0 ? qe.msg : NULL, &se);
	}
	if (e->mu)
		pthread_mutex_unlock(e->mu);
	if (rc < 0) {
		tl_err_set(err, qe.code, "quality (%s): %s", qual_kind_name[q->kind], qe.msg);
		return rc;
	}
	return 0;
}


/* Every metric value of a genome (objectives then constraints) as a JSON
 * object text, the violation and feasibility. */
/* pre: when not NULL, the device measurements already taken, one per
 * device of e->dev (the parallel path); else they are taken here. */
static int quality_values(engine *e, const genome *g, const char *hash, double *vals,
                          tl_err *err);

static int evaluate(engine *e, const genome *g, const ev_measured *pre, const double *qpre,
                    char **json, double *viol, tl_err *err)
{
	const ev_config *c = &e->cfg;
	if (genome_decode(e->arch, g, err) < 0)
		return TL_EINVAL;
	genome_stats st;
	genome_stats_compute(&st, e->arch, 2,
	                     (int64_t)c->bench.depth + c->bench.prompt + c->bench.gen);
	int nm = c->n_obj + c->n_con;
	double vals[EV_MAX_OBJ + EV_MAX_CON];
	char *arch_text = NULL;
	/* one measurement per device, shared by its metrics */
	char done_dev[EV_MAX_DEV][EV_METRIC_MAX];
	ev_measured meas[EV_MAX_DEV];
	int ndone = 0;
	bool qdone = false;
	for (int i = 0; i < nm; i++) {
		const ev_metric *m = metric_at(c, i);
		if (m->analytic) {
			vals[i] = ev_analytic(m->base, &st);
			continue;
		}
		if (m->quality) {
			if (qpre) {
				vals[i] = qpre[i];
			} else if (!qdone) {
				char h[65];
				int qrc = genome_hash(g, h, err);
				if (qrc == 0)
					qrc = quality_values(e, g, h, vals, err);
				if (qrc < 0) {
					free(arch_text);
					return qrc;
				}
				qdone = true;
			}
			continue;
		}
		int d = 0;
		if (pre) {
			while (d < e->ndev && strcmp(e->dev[d], m->device) != 0)
				d++;
			const ev_measured *x = &pre[d];
			vals[i] = !strcmp(m->base, "ttft_ms")         ? x->ttft_ms
			          : !strcmp(m->base, "decode_ms")     ? x->decode_ms
			          : !strcmp(m->base, "peak_rss_mb")   ? x->peak_rss_mb
			          : !strcmp(m->base, "prefill_tok_s") ? x->prefill_tok_s
			                                              : x->decode_tok_s;
			continue;
		}
		while (d < ndone && strcmp(done_dev[d], m->device) != 0)
			d++;
		if (d == ndone) {
			if (e->ops->measure == NULL)
				return tl_err_set(err, TL_EINVAL, "%s: no way to measure on device %s",
				                  m->name, m->device);
			if (arch_text == NULL && (arch_text = genome_arch_describe(e->arch)) == NULL)
				return tl_err_set(err, TL_ENOMEM, "evaluate: out of memory");
			if (e->ops->measure(e->ops->ctx, m->device, g, arch_text, &c->bench, &meas[d],
			                    err) < 0) {
				free(arch_text);
				return err->code;
			}
			tl_strlcpy(done_dev[d], m->device, EV_METRIC_MAX);
			ndone++;
		}
		const ev_measured *x = &meas[d];
		vals[i] = !strcmp(m->base, "ttft_ms")         ? x->ttft_ms
		          : !strcmp(m->base, "decode_ms")     ? x->decode_ms
		          : !strcmp(m->base, "peak_rss_mb")   ? x->peak_rss_mb
		          : !strcmp(m->base, "prefill_tok_s") ? x->prefill_tok_s
		                                              : x->decode_tok_s;
	}
	free(arch_text);
	cJSON *o = cJSON_CreateObject();
	if (o == NULL)
		return tl_err_set(err, TL_ENOMEM, "evaluate: out of memory");
	*viol = 0.0;
	for (int i = 0; i < nm; i++) {
		if (!isfinite(vals[i])) {
			cJSON_Delete(o);
			return tl_err_set(err, TL_EINVAL, "%s: not a finite number", metric_at(c, i)->name);
		}
		if (!cJSON_GetObjectItemCaseSensitive(o, metric_at(c, i)->name))
			cJSON_AddNumberToObject(o, metric_at(c, i)->name, vals[i]);
		if (i >= c->n_obj) {
			const ev_constraint *cn = &c->con[i - c->n_obj];
			if (!isnan(cn->max) && vals[i] > cn->max)
				*viol += (vals[i] - cn->max) / fmax(fabs(cn->max), 1e-12);
			if (!isnan(cn->min) && vals[i] < cn->min)
				*viol += (cn->min - vals[i]) / fmax(fabs(cn->min), 1e-12);
		}
	}
	*json = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (*json == NULL)
		return tl_err_set(err, TL_ENOMEM, "evaluate: out of memory");
	return 0;
}

/* The objectives of a stored candidate in minimization form; false when
 * they are missing (failed, or an old row). */
static bool stored_objectives(const ev_config *c, const db_candidate *k, double *obj)
{
	if (k->objectives == NULL || strcmp(k->status, "done") != 0)
		return false;
	cJSON *o = cJSON_Parse(k->objectives);
	if (o == NULL)
		return false;
	bool ok = true;
	for (int i = 0; i < c->n_obj; i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, c->obj[i].m.name);
		if (!cJSON_IsNumber(v)) {
			ok = false;
			break;
		}
		obj[i] = c->obj[i].maximize ? -v->valuedouble : v->valuedouble;
	}
	cJSON_Delete(o);
	return ok;
}

static void report(engine *e)
{
	if (e->ops->progress)
		e->ops->progress(e->ops->ctx, &e->prog);
}

/* Should we stop before the next evaluation? */
static bool stop_requested(engine *e, tl_err *err)
{
	if (e->ops->stop && e->ops->stop(e->ops->ctx))
		return true;
	db_run r;
	if (db_run_get(e->db, e->run_id, &r, err) < 0)
		return false;
	bool stop = !strcmp(r.status, "stopping");
	db_run_clear(&r);
	return stop;
}

static int eval_candidate(engine *e, const db_candidate *k, tl_err *err)
{
	genome g;
	char *json = NULL;
	double viol = 0;
	tl_err ev = TL_ERR_INIT;
	/* a genome this run evaluated before: its result, not a new evaluation */
	db_candidate prev;
	bool found = false;
	if (db_candidate_find_done(e->db, e->run_id, k->genome_hash, &prev, &found, err) < 0)
		return TL_EDB;
	if (found) {
		int rc = db_candidate_set_result(e->db, k->id, "done", prev.objectives, prev.feasible,
		                                 prev.violation, NULL, err);
		free(prev.text);
		free(prev.objectives);
		return rc;
	}
	if (db_candidate_set_result(e->db, k->id, "evaluating", NULL, -1, NAN, NULL, err) < 0)
		return TL_EDB;
	int rc = genome_parse(&g, k->text ? k->text : "", "candidate", &ev);
	if (rc == 0)
		rc = evaluate(e, &g, NULL, NULL, &json, &viol, &ev);
	if (rc < 0) {
		snprintf(e->last, sizeof e->last, "failed %.12s: %.200s", k->genome_hash, ev.msg);
		return db_candidate_set_result(e->db, k->id, "failed", NULL, -1, NAN, ev.msg, err);
	}
	snprintf(e->last, sizeof e->last, "evaluated %.12s: %s", k->genome_hash, json);
	rc = db_candidate_set_result(e->db, k->id, "done", json, viol <= 0.0, viol, NULL, err);
	cJSON_free(json);
	return rc;
}

/* ---- evaluation across devices in parallel ------------------------------------------ */

/* With metrics on several devices, one worker thread per device walks the
 * generation's pending candidates in order and measures each on its device
 * (the devices work at once, each on one build at a time); the worker that
 * delivers a candidate's last measurement computes its result and commits
 * it. The database and the progress display are used under one mutex. */
typedef struct pslot {
	const db_candidate *k;
	genome g;
	bool parsed;
	ev_measured m[EV_MAX_DEV];
	double q[EV_MAX_OBJ + EV_MAX_CON]; /* quality values, by metric index */
	int left;                /* devices still to measure */
	bool failed;
	char error[TL_ERR_MSG_MAX];
} pslot;

typedef struct pshared {
	engine *e;
	pthread_mutex_t mu;
	pslot *slot;
	size_t n;
	bool stop;               /* stop requested: workers finish their measurement */
	int done_dev[EV_MAX_DEV]; /* measurements each worker finished */
	int rc;                  /* first database error */
	tl_err err;
} pshared;

typedef struct pworker {
	pshared *sh;
	int d;
} pworker;

/* (mu held) The candidate's last measurement arrived: its result. */
static void pfinish(pshared *sh, pslot *s)
{
	engine *e = sh->e;
	tl_err ev = TL_ERR_INIT;
	char *json = NULL;
	double viol = 0;
	int rc;
	if (!s->failed && evaluate(e, &s->g, s->m, s->q, &json, &viol, &ev) < 0) {
		s->failed = true;
		tl_strlcpy(s->error, ev.msg, sizeof s->error);
	}
	if (s->failed) {
		snprintf(e->last, sizeof e->last, "failed %.12s: %.200s", s->k->genome_hash, s->error);
		rc = db_candidate_set_result(e->db, s->k->id, "failed", NULL, -1, NAN, s->error, &sh->err);
	} else {
		snprintf(e->last, sizeof e->last, "evaluated %.12s: %s", s->k->genome_hash, json);
		rc = db_candidate_set_result(e->db, s->k->id, "done", json, viol <= 0.0, viol, NULL,
		                             &sh->err);
	}
	cJSON_free(json);
	if (rc == 0)
		rc = db_run_heartbeat(e->db, e->run_id, &sh->err);
	if (rc < 0 && sh->rc == 0)
		sh->rc = rc;
	e->prog.done++;
	report(e);
}

static void *pworker_main(void *arg)
{
	pworker *w = arg;
	pshared *sh = w->sh;
	engine *e = sh->e;
	char *arch_text = NULL;
	genome_arch *arch = malloc(sizeof *arch);
	for (size_t i = 0; i < sh->n; i++) {
		pslot *s = &sh->slot[i];
		pthread_mutex_lock(&sh->mu);
		bool stop = sh->stop || sh->rc < 0;
		if (!stop && e->ops->stop && e->ops->stop(e->ops->ctx))
			stop = sh->stop = true;
		if (!stop) {
			tl_err se = TL_ERR_INIT;
			db_run r;
			if (db_run_get(e->db, e->run_id, &r, &se) == 0) {
				if (!strcmp(r.status, "stopping"))
					stop = sh->stop = true;
				db_run_clear(&r);
			}
		}
		bool skip = s->failed || !s->parsed;
		pthread_mutex_unlock(&sh->mu);
		if (stop)
			break;
		tl_err me = TL_ERR_INIT;
		int rc = 0;
		if (!skip) {
			if (arch == NULL)
				rc = tl_err_set(&me, TL_ENOMEM, "evaluate: out of memory");
			else if ((rc = genome_decode(arch, &s->g, &me)) == 0 &&
			         (arch_text = genome_arch_describe(arch)) == NULL)
				rc = tl_err_set(&me, TL_ENOMEM, "evaluate: out of memory");
			if (rc == 0 && !strcmp(e->dev[w->d], QUALITY_WORKER))
				rc = quality_values(e, &s->g, s->k->genome_hash, s->q, &me);
			else if (rc == 0)
				rc = e->ops->measure(e->ops->ctx, e->dev[w->d], &s->g, arch_text, &e->cfg.bench,
				                     &s->m[w->d], &me);
			free(arch_text);
			arch_text = NULL;
		}
		pthread_mutex_lock(&sh->mu);
		sh->done_dev[w->d]++;
		{
			size_t len = 0;
			e->queues[0] = '\0';
			for (int d = 0; d < e->ndev && len < sizeof e->queues - 40; d++)
				len += (size_t)snprintf(e->queues + len, sizeof e->queues - len, "%s%s %d/%zu",
				                        d ? ", " : "",
				                        strcmp(e->dev[d], QUALITY_WORKER) ? e->dev[d]
				                                                          : "quality",
				                        sh->done_dev[d], sh->n);
		}
		if (rc < 0 && !s->failed) {
			s->failed = true;
			snprintf(s->error, sizeof s->error, "%s", me.msg);
		}
		if (--s->left == 0)
			pfinish(sh, s);
		pthread_mutex_unlock(&sh->mu);
	}
	free(arch);
	return NULL;
}

/* Evaluate the candidates k[0..nk) that are pending, devices in parallel.
 * Returns 1 when stopped, 0 when all are done, < 0 on a database error. */
static int eval_parallel(engine *e, db_candidate *k, size_t nk, tl_err *err)
{
	pshared sh;
	memset(&sh, 0, sizeof sh);
	sh.e = e;
	sh.slot = calloc(nk ? nk : 1, sizeof *sh.slot);
	if (sh.slot == NULL)
		return tl_err_set(err, TL_ENOMEM, "run: out of memory");
	int rc = 0;
	for (size_t i = 0; i < nk && rc >= 0; i++) {
		if (strcmp(k[i].status, "pending") && strcmp(k[i].status, "evaluating"))
			continue;
		/* a genome the run evaluated before: its result (no measurement) */
		db_candidate prev;
		bool found = false;
		if ((rc = db_candidate_find_done(e->db, e->run_id, k[i].genome_hash, &prev, &found,
		                                 err)) < 0)
			break;
		if (found) {
			rc = db_candidate_set_result(e->db, k[i].id, "done", prev.objectives, prev.feasible,
			                             prev.violation, NULL, err);
			free(prev.text);
			free(prev.objectives);
			e->prog.done++;
			continue;
		}
		pslot *s = &sh.slot[sh.n++];
		s->k = &k[i];
		s->left = e->ndev;
		tl_err pe = TL_ERR_INIT;
		s->parsed = genome_parse(&s->g, k[i].text ? k[i].text : "", "candidate", &pe) == 0;
		if (!s->parsed) {
			s->failed = true;
			tl_strlcpy(s->error, pe.msg, sizeof s->error);
		}
		if ((rc = db_candidate_set_result(e->db, k[i].id, "evaluating", NULL, -1, NAN, NULL,
		                                  err)) < 0)
			break;
	}
	if (rc < 0) {
		free(sh.slot);
		return rc;
	}
	report(e);
	pthread_mutex_init(&sh.mu, NULL);
	e->mu = &sh.mu;
	pthread_t th[EV_MAX_DEV];
	pworker w[EV_MAX_DEV];
	int started = 0;
	for (int d = 0; d < e->ndev; d++) {
		w[d] = (pworker){&sh, d};
		if (pthread_create(&th[d], NULL, pworker_main, &w[d]) != 0) {
			pthread_mutex_lock(&sh.mu);
			sh.stop = true; /* the others end; the run is resumable */
			if (sh.rc == 0)
				sh.rc = tl_err_set(&sh.err, TL_ENOMEM, "run: cannot start a device worker");
			pthread_mutex_unlock(&sh.mu);
			break;
		}
		started++;
	}
	for (int d = 0; d < started; d++)
		pthread_join(th[d], NULL);
	e->mu = NULL;
	pthread_mutex_destroy(&sh.mu);
	if (sh.rc < 0) {
		tl_err_set(err, sh.err.code ? sh.err.code : TL_EDB, "%s", sh.err.msg);
		rc = sh.rc;
	} else {
		rc = sh.stop ? 1 : 0;
	}
	free(sh.slot);
	return rc;
}

/* ---- the canary ------------------------------------------------------------------ */

/* At the start of the run and every canary_every generations, measure the
 * config's canary genome on every device (not the quality worker). Each
 * measurement is an event (kind canary, or canary.drift when the decode
 * latency moved more than canary_drift from the device's first canary,
 * canary.failed when it could not be measured) with its figures as data; a
 * generation's canary is measured once, also across resumes. */
static int canary(engine *e, int64_t gen, tl_err *err)
{
	const ev_config *c = &e->cfg;
	if (c->canary == NULL || gen % c->canary_every != 0 || e->ops->measure == NULL)
		return 0;
	char **ev = NULL;
	size_t nev = 0;
	int rc = db_run_events_data(e->db, e->run_id, "canary", &ev, &nev, err);
	if (rc < 0)
		return rc;
	genome g;
	tl_err pe = TL_ERR_INIT;
	char *arch_text = NULL;
	if (genome_parse(&g, c->canary, "canary", &pe) < 0 || genome_decode(e->arch, &g, &pe) < 0 ||
	    (arch_text = genome_arch_describe(e->arch)) == NULL) {
		db_strings_free(ev, nev);
		return tl_err_set(err, TL_EINVAL, "canary: %s", pe.msg[0] ? pe.msg : "out of memory");
	}
	for (int d = 0; d < e->ndev && rc == 0; d++) {
		if (!strcmp(e->dev[d], QUALITY_WORKER))
			continue;
		/* done for this generation already? the device's first value? */
		bool done = false;
		double base = NAN;
		for (size_t i = 0; i < nev; i++) {
			cJSON *j = cJSON_Parse(ev[i]);
			const cJSON *dv = cJSON_GetObjectItemCaseSensitive(j, "device");
			const cJSON *gv = cJSON_GetObjectItemCaseSensitive(j, "generation");
			const cJSON *mv = cJSON_GetObjectItemCaseSensitive(j, "decode_ms");
			if (cJSON_IsString(dv) && !strcmp(dv->valuestring, e->dev[d])) {
				if (cJSON_IsNumber(gv) && (int64_t)gv->valuedouble == gen)
					done = true;
				if (isnan(base) && cJSON_IsNumber(mv))
					base = mv->valuedouble;
			}
			cJSON_Delete(j);
		}
		if (done)
			continue;
		ev_measured m;
		tl_err me = TL_ERR_INIT;
		cJSON *data = cJSON_CreateObject();
		cJSON_AddNumberToObject(data, "generation", (double)gen);
		cJSON_AddStringToObject(data, "device", e->dev[d]);
		const char *level = "info", *kind = "canary";
		char msg[400];
		if (e->ops->measure(e->ops->ctx, e->dev[d], &g, arch_text, &c->bench, &m, &me) < 0) {
			level = "warn";
			kind = "canary.failed";
			snprintf(msg, sizeof msg, "canary on %s: not measured: %.300s", e->dev[d], me.msg);
		} else {
			cJSON_AddNumberToObject(data, "decode_ms", m.decode_ms);
			cJSON_AddNumberToObject(data, "ttft_ms", m.ttft_ms);
			cJSON_AddNumberToObject(data, "peak_rss_mb", m.peak_rss_mb);
			double drift = isnan(base) ? 0.0 : (m.decode_ms - base) / base;
			cJSON_AddNumberToObject(data, "baseline_decode_ms", isnan(base) ? m.decode_ms : base);
			cJSON_AddNumberToObject(data, "drift", drift);
			if (fabs(drift) > c->canary_drift) {
				level = "warn";
				kind = "canary.drift";
				snprintf(msg, sizeof msg, "canary on %s: decode %.4g ms, %+.1f%% from its first "
				         "measurement (%.4g ms), beyond the %.0f%% threshold: the device's "
				         "figures may not compare across this run", e->dev[d], m.decode_ms,
				         100 * drift, base, 100 * c->canary_drift);
			} else {
				snprintf(msg, sizeof msg, "canary on %s: decode %.4g ms (%+.1f%%)", e->dev[d],
				         m.decode_ms, 100 * drift);
			}
		}
		char *dj = cJSON_PrintUnformatted(data);
		cJSON_Delete(data);
		rc = db_event_add(e->db, e->run_id, 0, level, kind, msg, dj, err);
		cJSON_free(dj);
		tl_strlcpy(e->last, msg, sizeof e->last);
		report(e);
	}
	free(arch_text);
	db_strings_free(ev, nev);
	return rc;
}

/* ---- populations ------------------------------------------------------------------ */

/* Is hash among the n strings of list? */
static bool seen(char (*list)[65], int n, const char *hash)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(list[i], hash))
			return true;
	return false;
}

typedef struct child {
	genome g;
	char hash[65];
	int64_t p1, p2;
	const char *origin;
} child;

/* Accept g as a new child unless the run or the batch already has it. */
static int offer(engine *e, child *kids, int *nk, char (*hashes)[65], const genome *g, int64_t p1,
                 int64_t p2, const char *origin, tl_err *err)
{
	char h[65];
	if (genome_hash(g, h, err) < 0)
		return TL_EINVAL;
	bool has = false;
	if (seen(hashes, *nk, h))
		return 0;
	if (db_run_has_genome(e->db, e->run_id, h, &has, err) < 0)
		return TL_EDB;
	if (has)
		return 0;
	child *k = &kids[*nk];
	k->g = *g;
	memcpy(k->hash, h, 65);
	memcpy(hashes[*nk], h, 65);
	k->p1 = p1;
	k->p2 = p2;
	k->origin = origin;
	(*nk)++;
	return 0;
}

/* Layers per operator label ({"gqa": 6, "swiglu": 16}), for analysts. */
static char *operators_json(const genome *g)
{
	cJSON *o = cJSON_CreateObject();
	if (o == NULL)
		return NULL;
	for (int l = 0; l < g->n_layers; l++) {
		const char *lab = genome_class_label(&g->classes[g->layers[l].cls]);
		cJSON *v = cJSON_GetObjectItemCaseSensitive(o, lab);
		if (v)
			cJSON_SetNumberValue(v, v->valuedouble + 1);
		else
			cJSON_AddNumberToObject(o, lab, 1);
	}
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

static int insert_children(engine *e, int64_t gen, child *kids, int nk, tl_err *err)
{
	for (int i = 0; i < nk; i++) {
		char *text = genome_to_text(&kids[i].g);
		if (text == NULL)
			return tl_err_set(err, TL_ENOMEM, "run: out of memory");
		genome_stats st;
		int64_t params = -1;
		if (genome_decode(e->arch, &kids[i].g, err) == 0) {
			genome_stats_compute(&st, e->arch, 2, 1);
			params = st.params;
		}
		char *ops = operators_json(&kids[i].g);
		int rc = db_candidate_add(e->db, e->run_id, gen, kids[i].hash, text, params, ops, kids[i].p1,
		                          kids[i].p2, kids[i].origin, "pending", NULL, -1, NAN, NULL, err);
		free(text);
		cJSON_free(ops);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int initial_population(engine *e, tl_err *err)
{
	const ev_config *c = &e->cfg;
	tl_rng rng;
	tl_rng_seed(&rng, c->seed, STREAM_INIT);
	child *kids = calloc((size_t)c->population, sizeof *kids);
	char(*hashes)[65] = calloc((size_t)c->population, sizeof *hashes);
	int nk = 0, rc = 0;
	if (!kids || !hashes) {
		rc = tl_err_set(err, TL_ENOMEM, "run: out of memory");
		goto out;
	}
	for (int tries = 0; nk < c->population && tries < 50 * c->population; tries++) {
		genome g;
		if ((rc = genome_sample(&g, c->space, &rng, err)) < 0)
			goto out;
		if ((rc = offer(e, kids, &nk, hashes, &g, 0, 0, "sample", err)) < 0)
			goto out;
	}
	if ((rc = db_begin(e->db, err)) < 0)
		goto out;
	if ((rc = insert_children(e, 0, kids, nk, err)) < 0 || (rc = db_commit(e->db, err)) < 0) {
		db_rollback(e->db);
		goto out;
	}
out:
	free(kids);
	free(hashes);
	return rc;
}

/* ---- generations ------------------------------------------------------------------- */

typedef struct pool {
	db_candidate *k;     /* the generation's rows */
	size_t nk;
	int n;               /* evaluated members */
	int *idx;            /* pool member -> row */
	double *obj;         /* n x n_obj, minimization form */
	moo_point *pts;
	int *rank;
	double *crowd;
} pool;

static void pool_free(pool *p)
{
	db_candidates_free(p->k, p->nk);
	free(p->idx);
	free(p->obj);
	free(p->pts);
	free(p->rank);
	free(p->crowd);
	memset(p, 0, sizeof *p);
}

static int pool_load(engine *e, int64_t gen, pool *p, tl_err *err)
{
	memset(p, 0, sizeof *p);
	int m = e->cfg.n_obj;
	if (db_candidates_of(e->db, e->run_id, gen, &p->k, &p->nk, err) < 0)
		return TL_EDB;
	size_t n1 = p->nk ? p->nk : 1;
	p->idx = malloc(n1 * sizeof *p->idx);
	p->obj = malloc(n1 * (size_t)m * sizeof *p->obj);
	p->pts = malloc(n1 * sizeof *p->pts);
	p->rank = malloc(n1 * sizeof *p->rank);
	p->crowd = malloc(n1 * sizeof *p->crowd);
	if (!p->idx || !p->obj || !p->pts || !p->rank || !p->crowd)
		return tl_err_set(err, TL_ENOMEM, "run: out of memory");
	for (size_t i = 0; i < p->nk; i++) {
		double *o = p->obj + (size_t)p->n * m;
		if (!stored_objectives(&e->cfg, &p->k[i], o))
			continue;
		p->idx[p->n] = (int)i;
		p->pts[p->n] = (moo_point){o, isnan(p->k[i].violation) ? 0.0 : p->k[i].violation};
		p->n++;
	}
	if (p->n > 0 && moo_rank(p->pts, p->n, m, p->rank) < 0)
		return tl_err_set(err, TL_ENOMEM, "run: out of memory");
	if (p->n > 0)
		moo_crowding(p->pts, p->n, m, p->rank, p->crowd);
	return 0;
}

/* Normalization (generation 0's feasible ideal and nadir) and the
 * reference point, in minimization form. */
static int normalization(engine *e, double *ideal, double *scale, double *ref, tl_err *err)
{
	const ev_config *c = &e->cfg;
	pool p0;
	int rc = pool_load(e, 0, &p0, err);
	if (rc < 0) {
		pool_free(&p0);
		return rc;
	}
	for (int j = 0; j < c->n_obj; j++) {
		double lo = INFINITY, hi = -INFINITY;
		for (int i = 0; i < p0.n; i++)
			if (p0.pts[i].viol <= 0) {
				double v = p0.obj[(size_t)i * c->n_obj + j];
				lo = fmin(lo, v);
				hi = fmax(hi, v);
			}
		if (!isfinite(lo)) { /* no feasible point in generation 0 */
			lo = 0;
			hi = 1;
		}
		ideal[j] = lo;
		scale[j] = hi > lo ? hi - lo : 1.0;
		if (!isnan(c->obj[j].ref))
			ref[j] = ((c->obj[j].maximize ? -c->obj[j].ref : c->obj[j].ref) - ideal[j]) / scale[j];
		else
			ref[j] = 1.1;
	}
	pool_free(&p0);
	return 0;
}

static char *ref_json(const ev_config *c, const double *ideal, const double *scale,
                      const double *ref)
{
	cJSON *o = cJSON_CreateObject(), *r = cJSON_CreateObject(), *id = cJSON_CreateObject(),
	      *sc = cJSON_CreateObject();
	char *s = NULL;
	if (o && r && id && sc) {
		for (int j = 0; j < c->n_obj; j++) {
			double sign = c->obj[j].maximize ? -1.0 : 1.0;
			cJSON_AddNumberToObject(r, c->obj[j].m.name, sign * (ideal[j] + ref[j] * scale[j]));
			cJSON_AddNumberToObject(id, c->obj[j].m.name, sign * ideal[j]);
			cJSON_AddNumberToObject(sc, c->obj[j].m.name, scale[j]);
		}
		cJSON_AddItemToObject(o, "reference", r);
		cJSON_AddItemToObject(o, "ideal", id);
		cJSON_AddItemToObject(o, "scale", sc);
		cJSON_AddStringToObject(o, "method", "exact (slicing), normalized by generation 0");
		s = cJSON_PrintUnformatted(o);
		cJSON_Delete(o);
		return s;
	}
	cJSON_Delete(o);
	cJSON_Delete(r);
	cJSON_Delete(id);
	cJSON_Delete(sc);
	return NULL;
}

/* Rank the finished generation, record it, and create the next one (or
 * finish the run), in one transaction. */
static int finish_generation(engine *e, int64_t gen, bool *run_done, tl_err *err)
{
	const ev_config *c = &e->cfg;
	int m = c->n_obj, rc;
	pool p;
	child *kids = NULL;
	char(*hashes)[65] = NULL;
	int *keep = NULL;
	double ideal[EV_MAX_OBJ], scale[EV_MAX_OBJ], ref[EV_MAX_OBJ];
	char *rj = NULL;
	double *front = NULL;
	if ((rc = pool_load(e, gen, &p, err)) < 0)
		goto out;
	if (p.n == 0) {
		/* nothing to select from: every evaluation failed (a dead device, a
		 * bad toolchain, a missing corpus); carrying on would only repeat it */
		const char *why = "no candidate";
		for (size_t i = 0; i < p.nk; i++)
			if (p.k[i].error[0]) {
				why = p.k[i].error;
				break;
			}
		rc = tl_err_set(err, TL_EFAIL, "run %lld: generation %lld: every evaluation failed "
		                "(first: %.300s); fix the cause, then 'tailor run resume %lld' retries "
		                "them", (long long)e->run_id, (long long)gen + 1, why,
		                (long long)e->run_id);
		goto out;
	}
	if ((rc = normalization(e, ideal, scale, ref, err)) < 0)
		goto out;
	/* hypervolume of the feasible first front */
	front = malloc((size_t)(p.n ? p.n : 1) * (size_t)m * sizeof *front);
	if (front == NULL) {
		rc = tl_err_set(err, TL_ENOMEM, "run: out of memory");
		goto out;
	}
	int nf = 0, feasible = 0;
	for (int i = 0; i < p.n; i++) {
		if (p.pts[i].viol > 0)
			continue;
		feasible++;
		if (p.rank[i] != 0)
			continue;
		for (int j = 0; j < m; j++)
			front[nf * m + j] = (p.obj[(size_t)i * m + j] - ideal[j]) / scale[j];
		nf++;
	}
	double hv = nf ? moo_hypervolume(front, nf, m, ref) : 0.0;
	rj = ref_json(c, ideal, scale, ref);
	bool last = gen + 1 >= c->generations;
	int N = p.n < c->population ? p.n : c->population;
	keep = malloc((size_t)(N ? N : 1) * sizeof *keep);
	kids = calloc((size_t)c->population, sizeof *kids);
	hashes = calloc((size_t)c->population, sizeof *hashes);
	if (!keep || !kids || !hashes || !rj) {
		rc = tl_err_set(err, TL_ENOMEM, "run: out of memory");
		goto out;
	}
	moo_select(p.n, p.rank, p.crowd, N, keep);
	int nk = 0;
	if (!last && N > 0) {
		/* offspring from the survivors: their own ranks and crowding */
		int *srank = malloc((size_t)N * sizeof *srank);
		double *scrowd = malloc((size_t)N * sizeof *scrowd);
		if (!srank || !scrowd) {
			free(srank);
			free(scrowd);
			rc = tl_err_set(err, TL_ENOMEM, "run: out of memory");
			goto out;
		}
		for (int i = 0; i < N; i++) {
			srank[i] = p.rank[keep[i]];
			scrowd[i] = p.crowd[keep[i]];
		}
		tl_rng rng;
		tl_rng_seed(&rng, c->seed, STREAM_GEN0 + (uint64_t)gen);
		for (int tries = 0; nk < c->population && tries < 50 * c->population && rc >= 0; tries++) {
			if (c->mode == EV_RANDOM) {
				genome g;
				if ((rc = genome_sample(&g, c->space, &rng, err)) < 0)
					break;
				rc = offer(e, kids, &nk, hashes, &g, 0, 0, "random", err);
				continue;
			}
			int a = moo_tournament(srank, scrowd, N, &rng), b = moo_tournament(srank, scrowd, N, &rng);
			const db_candidate *ka = &p.k[p.idx[keep[a]]], *kb = &p.k[p.idx[keep[b]]];
			genome pa, pb, ca, cb;
			if ((rc = genome_parse(&pa, ka->text, "parent", err)) < 0 ||
			    (rc = genome_parse(&pb, kb->text, "parent", err)) < 0)
				break;
			bool crossed = a != b && tl_rng_double(&rng) < c->crossover;
			if (crossed) {
				if ((rc = genome_cross(&ca, &cb, &pa, &pb, c->space, &rng, err)) < 0)
					break;
			} else {
				ca = pa;
				cb = pb;
			}
			/* every child gets one mutation: without it a child equal to a
			 * parent would be rejected as a duplicate anyway */
			if ((rc = genome_mutate(&ca, c->space, -1, &rng, err)) < 0 ||
			    (rc = genome_mutate(&cb, c->space, -1, &rng, err)) < 0)
				break;
			const char *origin = crossed ? "cross" : "mutate";
			rc = offer(e, kids, &nk, hashes, &ca, ka->id, crossed ? kb->id : 0, origin, err);
			if (rc >= 0 && nk < c->population)
				rc = offer(e, kids, &nk, hashes, &cb, kb->id, crossed ? ka->id : 0, origin, err);
		}
		free(srank);
		free(scrowd);
		if (rc < 0)
			goto out;
	}
	if ((rc = db_begin(e->db, err)) < 0)
		goto out;
	for (int i = 0; i < p.n && rc >= 0; i++)
		rc = db_candidate_set_rank(e->db, p.k[p.idx[i]].id, p.rank[i], p.crowd[i], err);
	if (rc >= 0)
		rc = db_generation_put(e->db, e->run_id, gen, (int64_t)p.n, feasible, nf, hv, rj, true,
		                       err);
	if (!last) {
		for (int i = 0; i < N && rc >= 0; i++) {
			const db_candidate *k = &p.k[p.idx[keep[i]]];
			rc = db_candidate_add(e->db, e->run_id, gen + 1, k->genome_hash, k->text, -1, NULL,
			                      k->id, 0,
			                      "elite", "done", k->objectives, k->feasible, k->violation, NULL,
			                      err);
		}
		if (rc >= 0)
			rc = insert_children(e, gen + 1, kids, nk, err);
		if (rc >= 0)
			rc = db_run_set_generation(e->db, e->run_id, gen + 1, err);
	} else if (rc >= 0) {
		rc = db_run_set_status(e->db, e->run_id, "finished", NULL, 0, NULL, err);
	}
	if (rc >= 0)
		rc = db_commit(e->db, err);
	if (rc < 0) {
		db_rollback(e->db);
		goto out;
	}
	*run_done = last;
	e->prog.frontier = nf;
	e->prog.hypervolume = hv;
out:
	pool_free(&p);
	free(kids);
	free(hashes);
	free(keep);
	free(front);
	cJSON_free(rj);
	return rc;
}

int ev_run_drive(db_conn *db, int64_t run_id, const ev_ops *ops, bool *finished, tl_err *err)
{
	engine e;
	memset(&e, 0, sizeof e);
	e.db = db;
	e.run_id = run_id;
	e.ops = ops;
	*finished = false;
	db_run r;
	if (db_run_get(db, run_id, &r, err) < 0)
		return err->code;
	if (!strcmp(r.status, "finished")) {
		db_run_clear(&r);
		*finished = true;
		return 0;
	}
	char src[64];
	snprintf(src, sizeof src, "run %lld config", (long long)run_id);
	int rc = ev_config_parse(&e.cfg, r.config ? r.config : "", src, NULL, err);
	db_run_clear(&r);
	if (rc < 0)
		return rc;
	for (int i = 0; i < e.cfg.n_obj + e.cfg.n_con; i++) {
		const ev_metric *m = metric_at(&e.cfg, i);
		if (m->quality && e.ndev < EV_MAX_DEV) {
			int d = 0;
			while (d < e.ndev && strcmp(e.dev[d], QUALITY_WORKER) != 0)
				d++;
			if (d == e.ndev)
				tl_strlcpy(e.dev[e.ndev++], QUALITY_WORKER, EV_METRIC_MAX);
			continue;
		}
		if (m->analytic)
			continue;
		int d = 0;
		while (d < e.ndev && strcmp(e.dev[d], m->device) != 0)
			d++;
		if (d == e.ndev && e.ndev < EV_MAX_DEV)
			tl_strlcpy(e.dev[e.ndev++], m->device, EV_METRIC_MAX);
	}
	e.arch = malloc(sizeof *e.arch);
	if (e.arch == NULL) {
		ev_config_free(&e.cfg);
		return tl_err_set(err, TL_ENOMEM, "run: out of memory");
	}
	/* a resumed run retries the failed evaluations of its current generation */
	if ((rc = db_run_get(db, run_id, &r, err)) < 0)
		goto out;
	int64_t retried = 0;
	rc = db_candidates_retry_failed(db, run_id, r.generation, &retried, err);
	db_run_clear(&r);
	if (rc < 0)
		goto out;
	char host[128] = "";
	gethostname(host, sizeof host - 1);
	if ((rc = db_run_set_status(db, run_id, "running", NULL, (int64_t)getpid(), host, err)) < 0)
		goto out;
	e.prog.run_id = run_id;
	e.prog.generations = e.cfg.generations;
	e.prog.hypervolume = NAN;
	e.prog.last = e.last;
	e.prog.queues = e.queues;
	for (;;) {
		if ((rc = db_run_get(db, run_id, &r, err)) < 0)
			goto out;
		int64_t gen = r.generation;
		db_run_clear(&r);
		db_candidate *k = NULL;
		size_t nk = 0;
		if ((rc = db_candidates_of(db, run_id, gen, &k, &nk, err)) < 0)
			goto out;
		if (nk == 0 && gen == 0) {
			db_candidates_free(k, nk);
			if ((rc = initial_population(&e, err)) < 0)
				goto out;
			continue;
		}
		e.prog.generation = (int)gen;
		e.prog.total = (int)nk;
		e.last[0] = '\0';
		if ((rc = canary(&e, gen, err)) < 0) {
			db_candidates_free(k, nk);
			goto out;
		}
		e.last[0] = '\0';
		e.prog.done = 0;
		for (size_t i = 0; i < nk; i++)
			if (strcmp(k[i].status, "pending") && strcmp(k[i].status, "evaluating"))
				e.prog.done++;
		report(&e);
		if (e.ndev > 1) {
			int prc = eval_parallel(&e, k, nk, err);
			db_candidates_free(k, nk);
			if (prc < 0) {
				rc = prc;
				goto out;
			}
			if (prc == 1) {
				rc = db_run_set_status(db, run_id, "stopped", NULL, 0, NULL, err);
				goto out;
			}
			nk = 0;
			k = NULL;
		}
		for (size_t i = 0; i < nk && rc >= 0; i++) {
			if (strcmp(k[i].status, "pending") && strcmp(k[i].status, "evaluating"))
				continue;
			if (stop_requested(&e, err)) {
				db_candidates_free(k, nk);
				rc = db_run_set_status(db, run_id, "stopped", NULL, 0, NULL, err);
				goto out;
			}
			rc = eval_candidate(&e, &k[i], err);
			if (rc >= 0)
				rc = db_run_heartbeat(db, run_id, err);
			e.prog.done++;
			report(&e);
		}
		db_candidates_free(k, nk);
		if (rc < 0)
			goto out;
		bool done = false;
		if ((rc = finish_generation(&e, gen, &done, err)) < 0)
			goto out;
		snprintf(e.last, sizeof e.last, "generation %lld: frontier %d, hypervolume %.6g",
		         (long long)gen, e.prog.frontier, e.prog.hypervolume);
		report(&e);
		if (done) {
			*finished = true;
			break;
		}
	}
out:
	if (rc < 0) {
		tl_err ignore = TL_ERR_INIT;
		db_run_set_status(db, run_id, "failed", err->msg, 0, NULL, &ignore);
	}
	free(e.arch);
	ev_config_free(&e.cfg);
	return rc;
}
