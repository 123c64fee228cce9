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
#include "measure.h"
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
	pthread_mutex_t *mu;    /* the database's mutex (&mu_store while driving) */
	pthread_mutex_t mu_store;
	char queues[256];       /* ev_progress.queues */
	/* measuring (profiler/measure.h through the device pool) */
	db_device devs[EV_MAX_DEV];        /* by index of dev (quality: unused)  */
	prof_bench_args pargs[EV_MAX_DEV];
	prof_lab lab;                      /* db under mu                        */
	dev_pool *pool;                    /* started at the first measurement   */
	bool stop;                         /* a stop was seen                    */
	int rc;                            /* first database error of a job      */
	tl_err err;
	int done_dev[EV_MAX_DEV], gen_n;   /* the generation's queues            */
	double stop_polled;                /* quality_stop's last database read  */
	genome canary_g;                   /* the canary being measured          */
	char *canary_text;
	ev_measured canary_m;
} engine;

static const ev_metric *metric_at(const ev_config *c, int i)
{
	return i < c->n_obj ? &c->obj[i].m : &c->con[i - c->n_obj].m;
}

#define QUALITY_WORKER "@quality" /* the quality evaluator's slot among the devices */

static const char *const qual_kind_name[] = {"analytic", "train", "mad", "command"};

static bool stop_requested(engine *e, tl_err *err);

/* Polled between training steps on the engine's thread: a stop request
 * (the caller's, e.g. Ctrl-C), or the run's status 'stopping' (tailor run
 * stop), read from the database at most every 2 s. */
static bool quality_stop(void *ud)
{
	engine *e = ud;
	bool stop;
	pthread_mutex_lock(e->mu);
	stop = e->stop || (e->ops->stop && e->ops->stop(e->ops->ctx));
	if (!stop && tl_now_s() - e->stop_polled >= 2.0) {
		tl_err se = TL_ERR_INIT;
		e->stop_polled = tl_now_s();
		stop = stop_requested(e, &se);
	}
	if (stop)
		e->stop = true;
	pthread_mutex_unlock(e->mu);
	return stop;
}

/* The quality metrics of g: stored results of the same evaluator and
 * settings are reused; otherwise the evaluator runs (the database is used
 * under e->mu when set, the evaluator runs outside it) and its results are
 * stored. vals is indexed like the config's metrics. */
static int quality_values(engine *e, const genome *g, const char *hash, int level, double *vals,
                          tl_err *err)
{
	const ev_config *c = &e->cfg;
	const ev_quality *q = &c->quality;
	/* multi-fidelity: level L's results are stored under their own hash */
	const char *sh = level >= 0 ? q->level_hash[level] : q->settings_hash;
	int nm = c->n_obj + c->n_con, missing = 0, rc = 0;
	if (e->mu)
		pthread_mutex_lock(e->mu);
	for (int i = 0; i < nm && rc == 0; i++) {
		const ev_metric *m = metric_at(c, i);
		bool found = false;
		if (m->quality)
			rc = db_quality_get(e->db, hash, qual_kind_name[q->kind], sh, m->base, &vals[i],
			                    &found, err);
		missing += m->quality && !found;
	}
	if (e->mu)
		pthread_mutex_unlock(e->mu);
	if (rc < 0 || missing == 0)
		return rc;
	tl_err qe = TL_ERR_INIT;
	rc = level >= 0 ? ev_quality_eval_level(c, g, level, vals, quality_stop, e, &qe)
	                : ev_quality_eval_stoppable(c, g, vals, quality_stop, e, &qe);
	if (rc == TL_ESTOPPED) /* nothing measured, nothing stored: pending */
		return tl_err_set(err, TL_ESTOPPED, "%s", qe.msg);
	if (e->mu)
		pthread_mutex_lock(e->mu);
	for (int i = 0; i < nm; i++) {
		const ev_metric *m = metric_at(c, i);
		if (!m->quality)
			continue;
		tl_err se = TL_ERR_INIT;
		db_quality_put(e->db, hash, e->run_id, 0, qual_kind_name[q->kind], q->settings, sh,
		               m->base, rc < 0 ? NAN : vals[i],
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


/* The metric values of a genome (objectives then constraints), indexed like
 * the config's metrics: analytic ones computed here, quality ones from q,
 * device ones from m (one ev_measured per entry of e->dev); the violation. */
static int metric_values(engine *e, const genome *g, const ev_measured *m, const double *q,
                         double *vals, double *viol, tl_err *err)
{
	const ev_config *c = &e->cfg;
	if (genome_decode(e->arch, g, err) < 0)
		return TL_EINVAL;
	genome_stats st;
	genome_stats_compute(&st, e->arch, 2,
	                     (int64_t)c->bench.depth + c->bench.prompt + c->bench.gen);
	int nm = c->n_obj + c->n_con;
	*viol = 0.0;
	for (int i = 0; i < nm; i++) {
		const ev_metric *mt = metric_at(c, i);
		if (mt->analytic) {
			vals[i] = ev_analytic(mt->base, &st);
		} else if (mt->quality) {
			vals[i] = q[i];
		} else {
			int d = 0;
			while (d < e->ndev && strcmp(e->dev[d], mt->device) != 0)
				d++;
			vals[i] = ev_device_value(mt->base, &m[d]);
		}
		if (!isfinite(vals[i]))
			return tl_err_set(err, TL_EINVAL, "%s: not a finite number", mt->name);
		if (i >= c->n_obj) {
			const ev_constraint *cn = &c->con[i - c->n_obj];
			if (!isnan(cn->max) && vals[i] > cn->max)
				*viol += (vals[i] - cn->max) / fmax(fabs(cn->max), 1e-12);
			if (!isnan(cn->min) && vals[i] < cn->min)
				*viol += (cn->min - vals[i]) / fmax(fabs(cn->min), 1e-12);
		}
	}
	return 0;
}

/* The values as the JSON object stored in candidates.objectives. */
static char *values_json(const ev_config *c, const double *vals)
{
	cJSON *o = cJSON_CreateObject();
	if (o == NULL)
		return NULL;
	for (int i = 0; i < c->n_obj + c->n_con; i++)
		if (!cJSON_GetObjectItemCaseSensitive(o, metric_at(c, i)->name))
			cJSON_AddNumberToObject(o, metric_at(c, i)->name, vals[i]);
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
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

/* Should we stop before the next evaluation? (e->mu held when the pool runs) */
static bool stop_requested(engine *e, tl_err *err)
{
	if (e->stop)
		return true;
	if (e->ops->stop && e->ops->stop(e->ops->ctx))
		return e->stop = true;
	db_run r;
	if (db_run_get(e->db, e->run_id, &r, err) < 0)
		return false;
	bool stop = !strcmp(r.status, "stopping");
	db_run_clear(&r);
	return e->stop = stop;
}

/* ---- evaluation: the generation's candidates, devices fed through one pool ---------------- */

/* A pending candidate of the generation. Its device measurements run as
 * jobs of the run's device pool (devices/pool.c: one worker per device, its
 * lock held), its quality on the engine's thread meanwhile; whoever delivers
 * the last value computes the result and commits it (under e->mu, which
 * guards the database and the progress display). */
typedef struct eslot {
	const db_candidate *k;
	genome g;
	bool parsed, failed, finished;
	char *arch_text;
	ev_measured m[EV_MAX_DEV];
	bool measure[EV_MAX_DEV];          /* measured for real (else predicted) */
	double q[EV_MAX_OBJ + EV_MAX_CON]; /* quality values, by metric index    */
	int left;                          /* values still to come               */
	char error[TL_ERR_MSG_MAX];
} eslot;

/* A job of the pool: one slot on one device (or the canary). */
typedef struct ejob {
	engine *e;
	eslot *s;
	int d;          /* index in e->dev */
	bool ran, ok;   /* for the canary */
	tl_err err;
} ejob;

/* (e->mu held) One more value of worker d this generation: the progress
 * display's queues ("local 5/12, quality 3/12"). */
static void queue_done(engine *e, int d)
{
	size_t len = 0;
	e->done_dev[d]++;
	e->queues[0] = '\0';
	for (int i = 0; i < e->ndev && len < sizeof e->queues - 40; i++)
		len += (size_t)snprintf(e->queues + len, sizeof e->queues - len, "%s%s %d/%d",
		                        i ? ", " : "",
		                        strcmp(e->dev[i], QUALITY_WORKER) ? e->dev[i] : "quality",
		                        e->done_dev[i], e->gen_n);
}

/* (e->mu held) The slot's last value arrived: its result, committed. */
static void slot_finish(engine *e, eslot *s)
{
	const ev_config *c = &e->cfg;
	tl_err ev = TL_ERR_INIT, se = TL_ERR_INIT;
	double vals[EV_MAX_OBJ + EV_MAX_CON], viol = 0;
	char *json = NULL;
	int rc;
	s->finished = true;
	if (!s->failed && metric_values(e, &s->g, s->m, s->q, vals, &viol, &ev) < 0) {
		s->failed = true;
		tl_strlcpy(s->error, ev.msg, sizeof s->error);
	}
	if (!s->failed && (json = values_json(c, vals)) == NULL) {
		s->failed = true;
		tl_strlcpy(s->error, "evaluate: out of memory", sizeof s->error);
	}
	if (s->failed) {
		snprintf(e->last, sizeof e->last, "failed %.12s: %.200s", s->k->genome_hash, s->error);
		rc = db_candidate_set_result(e->db, s->k->id, "failed", NULL, -1, NAN, s->error, &se);
	} else {
		snprintf(e->last, sizeof e->last, "evaluated %.12s: %s", s->k->genome_hash, json);
		rc = db_candidate_set_result(e->db, s->k->id, "done", json, viol <= 0.0, viol, NULL, &se);
		/* what the candidate was ranked on, per device */
		for (int d = 0; rc == 0 && d < e->ndev; d++) {
			const ev_measured *x = &s->m[d];
			if (!strcmp(e->dev[d], QUALITY_WORKER) || (!x->measurement_id && !x->prediction_id))
				continue;
			rc = db_candidate_eval_set(e->db, s->k->id, e->devs[d].id, x->measurement_id,
			                           x->prediction_id, x->predicted ? "predicted" : "measured",
			                           &se);
		}
	}
	cJSON_free(json);
	if (rc == 0)
		rc = db_run_heartbeat(e->db, e->run_id, &se);
	if (rc < 0 && e->rc == 0) {
		e->rc = rc;
		e->err = se;
	}
	e->prog.done++;
	report(e);
}

/* (e->mu held) One value of the slot arrived (or failed with err). */
static void slot_value(engine *e, eslot *s, const tl_err *err)
{
	if (err && err->code && !s->failed) {
		s->failed = true;
		tl_strlcpy(s->error, err->msg, sizeof s->error);
	}
	if (--s->left == 0)
		slot_finish(e, s);
}

/* The figures of a measurement job as the engine's ev_measured. */
static void measured_of(ev_measured *x, const prof_job *pj)
{
	const prof_measurement *m = &pj->m[0];
	*x = (ev_measured){m->ttft_ms, m->decode_ms_p50, m->peak_rss_bytes / (1024.0 * 1024.0),
	                   m->prefill_tok_s, m->decode_tok_s, m->id, 0, false, ""};
	tl_strlcpy(x->build_hash, pj->build_hash, sizeof x->build_hash);
}

/* Measure arch_text on device d: the seam's measure, or the profiler's job
 * on the pool's worker (session). *fail: the kind of a failure. */
static int measure_on(engine *e, dev_session **session, int d, const genome *g,
                      const char *arch_text, ev_measured *out, int *ret, prof_failure *fail,
                      tl_err *err)
{
	*ret = DEV_JOB_OK;
	*fail = PROF_FAIL_NONE;
	memset(out, 0, sizeof *out);
	if (e->ops->measure)
		return e->ops->measure(e->ops->ctx, e->dev[d], g, arch_text, &e->cfg.bench, out, err);
	prof_job pj;
	int rc = prof_job_init(&pj, &e->pargs[d], &e->devs[d], arch_text, err);
	if (rc == 0) {
		*ret = prof_job_run(&e->lab, session, &e->devs[d], &pj);
		if (pj.ok)
			measured_of(out, &pj);
		else
			rc = tl_err_set(err, TL_EFAIL, "%s", pj.error);
		*fail = pj.failure;
	}
	prof_job_free(&pj);
	return rc;
}

/* The device could not be reached, or the connection died: not the
 * candidate's fault. */
static bool unreachable(int ret, prof_failure f)
{
	return ret == DEV_JOB_DEVICE &&
	       (f == PROF_FAIL_CONNECT || f == PROF_FAIL_LOST || f == PROF_FAIL_TRANSFER);
}

/* The device of job j was unreachable (err); it has been for `waited`
 * seconds. Wait before the next try (backoff 1, 2, 4 .. 30 s) and return
 * 0, or return 1 when the run is stopping, or -1 when the wait is over:
 * the run stops with one line and its candidates stay pending. */
static int device_wait(engine *e, const ejob *j, double waited, int tries, const tl_err *err)
{
	double max = e->cfg.bench.device_wait_s;
	pthread_mutex_lock(e->mu);
	if (waited >= max) {
		if (e->rc == 0) {
			e->rc = tl_err_set(&e->err, TL_EFAIL,
			                   "run %lld: device %s unreachable for %.0f s (%.300s); the "
			                   "candidates still to measure stay pending: 'tailor run "
			                   "resume %lld' once it is back (bench.device_wait_s: %.0f s)",
			                   (long long)e->run_id, e->dev[j->d], waited, err->msg,
			                   (long long)e->run_id, max);
		}
		pthread_mutex_unlock(e->mu);
		return -1;
	}
	double pause = tries < 5 ? (double)(1 << tries) : 30;
	if (pause > max - waited)
		pause = max - waited;
	snprintf(e->last, sizeof e->last,
	         "device %s unreachable for %.0f s, next try in %.0f s (gives up after %.0f s): %.100s",
	         e->dev[j->d], waited, pause, max, err->msg);
	report(e);
	pthread_mutex_unlock(e->mu);
	for (double t = 0; t < pause; t += 0.25) {
		pthread_mutex_lock(e->mu);
		tl_err se = TL_ERR_INIT;
		bool stop = e->rc < 0 || stop_requested(e, &se);
		pthread_mutex_unlock(e->mu);
		if (stop)
			return 1;
		struct timespec ts = {0, 250 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	return 0;
}

static int ejob_run(void *ctx, dev_session **session, const db_device *dev, void *vjob)
{
	ejob *j = vjob;
	engine *e = j->e;
	eslot *s = j->s;
	tl_err err = TL_ERR_INIT;
	(void)ctx;
	(void)dev;
	pthread_mutex_lock(e->mu);
	tl_err se = TL_ERR_INIT;
	bool skip = s && (s->failed || e->rc < 0 || stop_requested(e, &se));
	pthread_mutex_unlock(e->mu);
	if (skip) {
		pthread_mutex_lock(e->mu);
		if (s->failed && !e->stop && e->rc == 0)
			slot_value(e, s, NULL); /* counted, nothing measured */
		pthread_mutex_unlock(e->mu);
		return DEV_JOB_OK;
	}
	ev_measured m;
	int ret, rc;
	prof_failure fail;
	const genome *g = s ? &s->g : &e->canary_g;
	const char *text = s ? s->arch_text : e->canary_text;
	double t_away = 0;
	for (int tries = 0;; tries++) {
		err = (tl_err)TL_ERR_INIT;
		rc = measure_on(e, session, j->d, g, text, &m, &ret, &fail, &err);
		if (rc == 0 || !unreachable(ret, fail))
			break;
		if (*session && !dev_session_alive(*session)) {
			dev_session_close(*session);
			*session = NULL;
		}
		double now = tl_now_s();
		if (tries == 0)
			t_away = now;
		int w = device_wait(e, j, now - t_away, tries, &err);
		if (w != 0) { /* stopping, or waited enough: the slot stays pending */
			pthread_mutex_lock(e->mu);
			j->ran = true;
			j->ok = false;
			j->err = err;
			pthread_mutex_unlock(e->mu);
			return w < 0 ? DEV_JOB_DEVICE : DEV_JOB_OK;
		}
	}
	pthread_mutex_lock(e->mu);
	j->ran = true;
	j->ok = rc == 0;
	j->err = err;
	if (s) {
		if (rc == 0) { /* predict-measure: the prediction stays linked */
			int64_t pid = s->m[j->d].prediction_id;
			s->m[j->d] = m;
			s->m[j->d].prediction_id = pid;
		}
		queue_done(e, j->d);
		slot_value(e, s, rc < 0 ? &err : NULL);
	} else {
		e->canary_m = m;
	}
	pthread_mutex_unlock(e->mu);
	return ret;
}

static void ejob_abandon(void *ctx, const db_device *d, void *vjob, const char *why)
{
	ejob *j = vjob;
	engine *e = j->e;
	tl_err err = TL_ERR_INIT;
	(void)ctx;
	tl_err_set(&err, TL_EFAIL, "device %s: not measured: %s", j->e->dev[j->d], why);
	if (!e->ops->measure) { /* recorded as a failed measurement */
		prof_job pj;
		tl_err ie = TL_ERR_INIT;
		if (prof_job_init(&pj, &e->pargs[j->d], &e->devs[j->d],
		                  j->s ? j->s->arch_text : e->canary_text, &ie) == 0)
			prof_job_abandon(&e->lab, d, &pj, why);
		prof_job_free(&pj);
	}
	pthread_mutex_lock(e->mu);
	j->ran = true;
	j->ok = false;
	j->err = err;
	if (j->s)
		slot_value(e, j->s, &err);
	pthread_mutex_unlock(e->mu);
}

static void ejob_health(void *ctx, const db_device *d, const char *status, int streak)
{
	engine *e = ctx;
	if (!e->ops->measure)
		prof_lab_health(&e->lab, d, status, streak);
}

/* The run's device pool, started at the first measurement: the devices of
 * the metrics from the registry (a seam's measure gets stand-ins, unlocked). */
static int pool_ensure(engine *e, tl_err *err)
{
	if (e->pool)
		return 0;
	db_device devs[EV_MAX_DEV];
	size_t n = 0;
	for (int d = 0; d < e->ndev; d++) {
		if (!strcmp(e->dev[d], QUALITY_WORKER))
			continue;
		devs[n++] = e->devs[d];
	}
	dev_pool_opts o = {.max_fail_streak = DEV_FAIL_STREAK_DEFAULT,
	                   .max_attempts = 1,
	                   .lock_wait_s = e->cfg.bench.timeout_s > 600 ? e->cfg.bench.timeout_s : 600,
	                   .run = ejob_run,
	                   .abandon = ejob_abandon,
	                   .health = ejob_health,
	                   .ctx = e,
	                   .unlocked = e->ops->measure != NULL};
	int rc = dev_pool_create(&e->pool, devs, n, &o, err);
	if (rc == 0 && (rc = dev_pool_start(e->pool, err)) < 0) {
		dev_pool_free(e->pool);
		e->pool = NULL;
	}
	return rc;
}

/* The devices of the metrics: registry rows (or a seam's stand-ins) and the
 * profiler's settings for each. */
static int devices_load(engine *e, tl_err *err)
{
	const ev_bench *b = &e->cfg.bench;
	for (int d = 0; d < e->ndev; d++) {
		db_device *x = &e->devs[d];
		memset(x, 0, sizeof *x);
		if (!strcmp(e->dev[d], QUALITY_WORKER))
			continue;
		if (e->ops->measure) {
			x->id = d + 1;
			tl_strlcpy(x->name, e->dev[d], sizeof x->name);
			tl_strlcpy(x->transport, "local", sizeof x->transport);
			x->enabled = true;
		} else {
			int rc = db_device_get(e->db, e->dev[d], x, err);
			if (rc < 0)
				return rc;
			if (!x->enabled && b->predict != EV_EVAL_PREDICT)
				return tl_err_set(err, TL_EINVAL, "device %s is disabled (tailor device "
				                  "enable %s)", x->name, x->name);
		}
		bool in_process = !strcmp(x->transport, "local") && b->protocol[0] == '\0';
		e->pargs[d] = (prof_bench_args){.prompt = b->prompt, .gen = b->gen, .depth = b->depth,
		                                .threads = b->threads, .repeat = b->repeat,
		                                .timeout_s = b->timeout_s, .seed = 1, .quant = b->quant,
		                                .kv = "f16",
		                                .protocol_json = b->protocol[0] ? b->protocol : NULL,
		                                .in_process = in_process};
	}
	return 0;
}

/* A prediction of the slot's arch on device d (the seam's measure in predict
 * mode, else the device's operator table), stored. */
static int predict_on(engine *e, eslot *s, int d, tl_err *err)
{
	ev_measured *x = &s->m[d];
	const ev_bench *b = &e->cfg.bench;
	if (e->ops->measure) {
		int rc = e->ops->measure(e->ops->ctx, e->dev[d], &s->g, s->arch_text, b, x, err);
		x->predicted = true;
		return rc;
	}
	prof_prediction p;
	prof_shape sh = {b->prompt, b->gen, b->depth};
	int rc = prof_predict_arch(&e->lab, e->devs[d].id, e->dev[d], b->space_hash, s->arch_text,
	                           &sh, &p, err);
	if (rc == 0)
		rc = prof_prediction_store(&e->lab, &p, s->k->genome_hash, s->k->text ? s->k->text : "",
		                           &sh, 0, err);
	if (rc < 0)
		return rc;
	*x = (ev_measured){p.ttft_ms, p.decode_ms, p.peak_rss_bytes / (1024.0 * 1024.0),
	                   (double)b->prompt / (p.ttft_ms * 1e-3), 1e3 / p.decode_ms, 0, p.id, true,
	                   ""};
	return 0;
}

/* predict-measure: which slots to measure for real: the measure_top best by
 * their predicted objectives (NSGA-II's order: front, then crowding), and
 * every slot a device could not predict. */
static void choose_measured(engine *e, eslot *slot, size_t n, const bool *unpredicted)
{
	const ev_config *c = &e->cfg;
	int m = c->n_obj;
	double *obj = calloc(n * (size_t)(m ? m : 1), sizeof *obj);
	moo_point *pts = calloc(n ? n : 1, sizeof *pts);
	int *idx = calloc(n ? n : 1, sizeof *idx), *rank = calloc(n ? n : 1, sizeof *rank),
	    *keep = calloc(n ? n : 1, sizeof *keep);
	double *crowd = calloc(n ? n : 1, sizeof *crowd);
	int np = 0;
	for (size_t i = 0; obj && pts && idx && rank && keep && crowd && i < n; i++) {
		eslot *s = &slot[i];
		double vals[EV_MAX_OBJ + EV_MAX_CON], viol;
		tl_err ve = TL_ERR_INIT;
		if (s->failed || unpredicted[i] ||
		    metric_values(e, &s->g, s->m, s->q, vals, &viol, &ve) < 0)
			continue;
		for (int k = 0; k < m; k++)
			obj[(size_t)np * (size_t)m + (size_t)k] = c->obj[k].maximize ? -vals[k] : vals[k];
		pts[np] = (moo_point){&obj[(size_t)np * (size_t)m], viol};
		idx[np++] = (int)i;
	}
	int top = c->bench.measure_top < np ? c->bench.measure_top : np;
	if (np > 0 && moo_rank(pts, np, m, rank) >= 0) {
		moo_crowding(pts, np, m, rank, crowd);
		moo_select(np, rank, crowd, top, keep);
		for (int t = 0; t < top; t++)
			for (int d = 0; d < e->ndev; d++)
				if (strcmp(e->dev[d], QUALITY_WORKER))
					slot[idx[keep[t]]].measure[d] = true;
	}
	for (size_t i = 0; i < n; i++)
		if (unpredicted[i] && !slot[i].failed)
			for (int d = 0; d < e->ndev; d++)
				if (strcmp(e->dev[d], QUALITY_WORKER))
					slot[i].measure[d] = true;
	free(obj);
	free(pts);
	free(idx);
	free(rank);
	free(keep);
	free(crowd);
}

/* A candidate that carries another's result (an elite, a genome evaluated
 * before in the run) is ranked on the same measurements and predictions. */
static int copy_evals(engine *e, int64_t from, int64_t to, tl_err *err)
{
	db_candidate_eval *ev = NULL;
	size_t nev = 0;
	int rc = db_candidate_evals_of(e->db, from, &ev, &nev, err);
	for (size_t q = 0; rc == 0 && q < nev; q++)
		rc = db_candidate_eval_set(e->db, to, ev[q].device_id, ev[q].measurement_id,
		                           ev[q].prediction_id, ev[q].used, err);
	free(ev);
	return rc;
}

/* The slots of a generation's pending candidates (slot[0..*n)): a genome
 * the run evaluated before gets that result (and what it was ranked on),
 * the others are parsed, decoded and marked evaluating. */
static int slots_prepare(engine *e, db_candidate *k, size_t nk, eslot *slot, size_t *np,
                         tl_err *err)
{
	size_t n = 0;
	int rc = 0;
	for (size_t i = 0; i < nk && rc >= 0; i++) {
		if (strcmp(k[i].status, "pending") && strcmp(k[i].status, "evaluating"))
			continue;
		db_candidate prev;
		bool found = false;
		if ((rc = db_candidate_find_done(e->db, e->run_id, k[i].genome_hash, &prev, &found,
		                                 err)) < 0)
			break;
		if (found) {
			rc = db_candidate_set_result(e->db, k[i].id, "done", prev.objectives, prev.feasible,
			                             prev.violation, NULL, err);
			if (rc == 0)
				rc = copy_evals(e, prev.id, k[i].id, err);
			free(prev.text);
			free(prev.objectives);
			e->prog.done++;
			continue;
		}
		eslot *s = &slot[n++];
		s->k = &k[i];
		s->left = e->ndev;
		tl_err pe = TL_ERR_INIT;
		s->parsed = genome_parse(&s->g, k[i].text ? k[i].text : "", "candidate", &pe) == 0;
		if (s->parsed && genome_decode(e->arch, &s->g, &pe) == 0 &&
		    (s->arch_text = genome_arch_describe(e->arch)) == NULL)
			tl_err_set(&pe, TL_ENOMEM, "evaluate: out of memory");
		if (s->arch_text == NULL) {
			s->failed = true;
			tl_strlcpy(s->error, pe.msg, sizeof s->error);
		}
		if ((rc = db_candidate_set_result(e->db, k[i].id, "evaluating", NULL, -1, NAN, NULL,
		                                  err)) < 0)
			break;
	}
	*np = n;
	return rc;
}

/* Evaluate the pending candidates of k[0..nk). Returns 1 when stopped, 0
 * when all are done, < 0 on a database error. */
static int eval_generation(engine *e, db_candidate *k, size_t nk, tl_err *err)
{
	const ev_config *c = &e->cfg;
	int mode = c->bench.predict;
	bool has_q = false, has_dev = false;
	for (int d = 0; d < e->ndev; d++)
		if (!strcmp(e->dev[d], QUALITY_WORKER))
			has_q = true;
		else
			has_dev = true;
	eslot *slot = calloc(nk ? nk : 1, sizeof *slot);
	ejob *jobs = calloc((nk ? nk : 1) * (size_t)(e->ndev ? e->ndev : 1), sizeof *jobs);
	bool *unpred = calloc(nk ? nk : 1, sizeof *unpred);
	if (slot == NULL || jobs == NULL || unpred == NULL) {
		free(slot);
		free(jobs);
		free(unpred);
		return tl_err_set(err, TL_ENOMEM, "run: out of memory");
	}
	size_t n = 0;
	/* 1. the slots: copies of earlier results, parse and decode the rest */
	int rc = slots_prepare(e, k, nk, slot, &n, err);
	e->gen_n = (int)n;
	memset(e->done_dev, 0, sizeof e->done_dev);
	if (rc < 0)
		goto out;
	report(e);
	/* 2. predictions first (predict, predict-measure), and for predict-measure
	 * the quality too: the choice of what to measure needs every objective */
	if (mode != EV_EVAL_MEASURE && has_dev) {
		for (size_t i = 0; i < n; i++) {
			eslot *s = &slot[i];
			if (stop_requested(e, err))
				break;
			if (mode == EV_EVAL_PREDICT_MEASURE && has_q && !s->failed) {
				tl_err qe = TL_ERR_INIT;
				if (quality_values(e, &s->g, s->k->genome_hash, e->cfg.quality.n_levels ? 0 : -1,
				                   s->q, &qe) < 0) {
					if (qe.code == TL_ESTOPPED)
						break; /* e->stop is set */
					s->failed = true;
					tl_strlcpy(s->error, qe.msg, sizeof s->error);
				}
				s->left--;
			}
			for (int d = 0; d < e->ndev && !s->failed; d++) {
				if (!strcmp(e->dev[d], QUALITY_WORKER))
					continue;
				tl_err pe = TL_ERR_INIT;
				if (predict_on(e, s, d, &pe) < 0) {
					if (mode == EV_EVAL_PREDICT || pe.code != TL_EINVAL) {
						s->failed = true;
						tl_strlcpy(s->error, pe.msg, sizeof s->error);
					} else {
						unpred[i] = true; /* outside the table: measured */
					}
				}
			}
		}
		if (e->stop) {
			rc = 1;
			goto out;
		}
		if (mode == EV_EVAL_PREDICT_MEASURE)
			choose_measured(e, slot, n, unpred);
	} else if (has_dev) {
		for (size_t i = 0; i < n; i++)
			for (int d = 0; d < e->ndev; d++)
				slot[i].measure[d] = strcmp(e->dev[d], QUALITY_WORKER) != 0;
	}
	/* 3. the measurements, fed to the pool; the rest of the slots' values */
	bool any = false;
	for (size_t i = 0; i < n && has_dev; i++)
		for (int d = 0; d < e->ndev; d++)
			any = any || slot[i].measure[d];
	if (any && (rc = pool_ensure(e, err)) < 0)
		goto out;
	/* (every count settled before the first job can end) */
	for (size_t i = 0; i < n; i++)
		for (int d = 0; d < e->ndev; d++)
			if (strcmp(e->dev[d], QUALITY_WORKER) && (!slot[i].measure[d] || slot[i].failed))
				slot[i].left--; /* predicted (or failed): no job */
	size_t nj = 0;
	for (size_t i = 0; i < n; i++) {
		eslot *s = &slot[i];
		for (int d = 0; d < e->ndev && !s->failed; d++) {
			if (!strcmp(e->dev[d], QUALITY_WORKER) || !s->measure[d])
				continue;
			jobs[nj] = (ejob){e, s, d, false, false, TL_ERR_INIT};
			if ((rc = dev_pool_submit(e->pool, &jobs[nj], e->devs[d].id, err)) < 0)
				goto wait;
			nj++;
		}
	}
	/* quality on this thread while the devices work */
	for (size_t i = 0; i < n; i++) {
		eslot *s = &slot[i];
		pthread_mutex_lock(e->mu);
		bool stop = stop_requested(e, err) || e->rc < 0;
		bool need = has_q && !(mode == EV_EVAL_PREDICT_MEASURE && has_dev) && !s->failed;
		pthread_mutex_unlock(e->mu);
		if (stop)
			break;
		tl_err qe = TL_ERR_INIT;
		if (need && quality_values(e, &s->g, s->k->genome_hash, e->cfg.quality.n_levels ? 0 : -1,
		                           s->q, &qe) == TL_ESTOPPED)
			break; /* the slot stays pending; e->stop is set */
		pthread_mutex_lock(e->mu);
		if (has_q && !(mode == EV_EVAL_PREDICT_MEASURE && has_dev)) {
			for (int d = 0; d < e->ndev; d++)
				if (!strcmp(e->dev[d], QUALITY_WORKER))
					queue_done(e, d);
			slot_value(e, s, qe.code ? &qe : NULL);
		} else if (s->left == 0 && !s->finished) {
			slot_finish(e, s);
		}
		pthread_mutex_unlock(e->mu);
	}
wait:
	if (e->pool)
		dev_pool_wait(e->pool);
	/* slots whose values all came without a job (all failed early) */
	pthread_mutex_lock(e->mu);
	for (size_t i = 0; i < n && !e->stop && e->rc == 0 && rc == 0; i++)
		if (!slot[i].finished && slot[i].left == 0)
			slot_finish(e, &slot[i]);
	pthread_mutex_unlock(e->mu);
	if (rc == 0 && e->rc < 0) {
		rc = e->rc;
		*err = e->err;
	}
	if (rc == 0 && e->stop)
		rc = 1;
out:
	for (size_t i = 0; i < n; i++)
		free(slot[i].arch_text);
	free(slot);
	free(jobs);
	free(unpred);
	return rc;
}

/* ---- the canary ------------------------------------------------------------------ */

/* Measure the canary on device d now, through the pool. */
static int canary_measure(engine *e, int d, ev_measured *m, tl_err *err)
{
	ejob j = {e, NULL, d, false, false, TL_ERR_INIT};
	int rc = pool_ensure(e, err);
	if (rc == 0)
		rc = dev_pool_submit(e->pool, &j, e->devs[d].id, err);
	if (rc < 0)
		return rc;
	dev_pool_wait(e->pool);
	if (!j.ran)
		return tl_err_set(err, TL_EFAIL, "not run (stopped)");
	if (!j.ok) {
		*err = j.err;
		return err->code ? err->code : TL_EFAIL;
	}
	*m = e->canary_m;
	return 0;
}

/* At a run's first canary on a device, its history (runs before this one,
 * same canary genome and harness build): the median decode latency of the
 * last five; a shift beyond canary_drift is a warn event (canary.shift). */
static int canary_history_check(engine *e, int d, const char *chash, const ev_measured *m,
                                tl_err *err)
{
	db_canary *h = NULL;
	size_t nh = 0;
	int rc = db_canary_history(e->db, e->devs[d].id, chash, 0, &h, &nh, err);
	if (rc < 0)
		return rc;
	double v[5];
	int nv = 0;
	for (size_t i = nh; i-- > 0 && nv < 5;)
		if (h[i].run_id != e->run_id && !strcmp(h[i].build_hash, m->build_hash) &&
		    isfinite(h[i].decode_ms))
			v[nv++] = h[i].decode_ms;
	free(h);
	if (nv == 0)
		return 0;
	for (int i = 1; i < nv; i++) /* insertion sort: the median */
		for (int j2 = i; j2 > 0 && v[j2] < v[j2 - 1]; j2--) {
			double t = v[j2];
			v[j2] = v[j2 - 1];
			v[j2 - 1] = t;
		}
	double med = nv % 2 ? v[nv / 2] : 0.5 * (v[nv / 2 - 1] + v[nv / 2]);
	double shift = (m->decode_ms - med) / med;
	char msg[400], data[256];
	bool beyond = fabs(shift) > e->cfg.canary_drift;
	snprintf(msg, sizeof msg, "canary on %s: decode %.4g ms, %+.1f%% from the device's history "
	         "(median %.4g ms of its last %d run%s with this canary and build)%s", e->dev[d],
	         m->decode_ms, 100 * shift, med, nv, nv == 1 ? "" : "s",
	         beyond ? ": beyond the threshold, this run's device figures may not compare with "
	                  "those runs'" : "");
	snprintf(data, sizeof data, "{\"device\":\"%s\",\"decode_ms\":%.6g,\"history_median_ms\":%.6g,"
	         "\"history_runs\":%d,\"shift\":%.6g}", e->devs[d].name, m->decode_ms, med, nv, shift);
	rc = db_event_add(e->db, e->run_id, e->devs[d].id, beyond ? "warn" : "info",
	                  beyond ? "canary.shift" : "canary.history", msg, data, err);
	tl_strlcpy(e->last, msg, sizeof e->last);
	report(e);
	return rc;
}

/* At the start of the run and every canary_every generations, measure the
 * config's canary genome on every device (not the quality worker). Each
 * measurement is an event (kind canary, or canary.drift when the decode
 * latency moved more than canary_drift from the device's first canary in
 * this run, canary.failed when it could not be measured) with its figures
 * as data, and a row of the device's canary history (canaries); a
 * generation's canary is measured once, also across resumes. The first
 * canary of a run is compared with the device's history. */
static int canary(engine *e, int64_t gen, tl_err *err)
{
	const ev_config *c = &e->cfg;
	if (c->canary == NULL || gen % c->canary_every != 0 || c->bench.predict == EV_EVAL_PREDICT)
		return 0;
	char **ev = NULL;
	size_t nev = 0;
	int rc = db_run_events_data(e->db, e->run_id, "canary", &ev, &nev, err);
	if (rc < 0)
		return rc;
	tl_err pe = TL_ERR_INIT;
	if (genome_parse(&e->canary_g, c->canary, "canary", &pe) < 0 ||
	    genome_decode(e->arch, &e->canary_g, &pe) < 0 ||
	    (e->canary_text = genome_arch_describe(e->arch)) == NULL) {
		db_strings_free(ev, nev);
		return tl_err_set(err, TL_EINVAL, "canary: %s", pe.msg[0] ? pe.msg : "out of memory");
	}
	char chash[65];
	tl_sha256_hex(e->canary_text, strlen(e->canary_text), chash);
	if (!e->ops->measure && (rc = db_genome_ensure(e->db, chash, c->canary, -1, err)) < 0)
		goto out;
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
		if (canary_measure(e, d, &m, &me) < 0) {
			level = "warn";
			kind = "canary.failed";
			snprintf(msg, sizeof msg, "canary on %s: not measured: %.300s", e->dev[d], me.msg);
		} else {
			cJSON_AddNumberToObject(data, "decode_ms", m.decode_ms);
			cJSON_AddNumberToObject(data, "ttft_ms", m.ttft_ms);
			cJSON_AddNumberToObject(data, "peak_rss_mb", m.peak_rss_mb);
			if (m.measurement_id)
				cJSON_AddNumberToObject(data, "measurement_id", (double)m.measurement_id);
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
		if (rc == 0 && !strcmp(kind, "canary.failed"))
			continue;
		if (rc == 0 && !e->ops->measure) {
			/* the device's history across runs */
			if (isnan(base))
				rc = canary_history_check(e, d, chash, &m, err);
			db_canary row;
			memset(&row, 0, sizeof row);
			row.device_id = e->devs[d].id;
			tl_strlcpy(row.canary_hash, chash, sizeof row.canary_hash);
			tl_strlcpy(row.build_hash, m.build_hash, sizeof row.build_hash);
			row.run_id = e->run_id;
			row.generation = gen;
			row.measurement_id = m.measurement_id;
			row.decode_ms = m.decode_ms;
			row.ttft_ms = m.ttft_ms;
			row.peak_rss_mb = m.peak_rss_mb;
			if (rc == 0)
				rc = db_canary_add(e->db, &row, NULL, err);
		}
	}
out:
	free(e->canary_text);
	e->canary_text = NULL;
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

/* ---- multi-fidelity (docs/config.md "Multi-fidelity") ------------------------------------ */

int ev_mf_rank(int n, int m, const double *const *v, const int *level, const double *viol,
               int *rank, double *crowd)
{
	int *cnt = calloc((size_t)(n ? n : 1), sizeof *cnt);
	unsigned char *dom = calloc((size_t)n * (size_t)n + 1, 1);
	moo_point *pt = malloc((size_t)(n ? n : 1) * sizeof *pt);
	int *mem = malloc((size_t)(n ? n : 1) * sizeof *mem);
	int *zero = calloc((size_t)(n ? n : 1), sizeof *zero);
	double *cr = malloc((size_t)(n ? n : 1) * sizeof *cr);
	int rc = 0;
	if (!cnt || !dom || !pt || !mem || !zero || !cr) {
		rc = -1;
		goto out;
	}
	/* a dominates b: compared at the highest level both reached */
	for (int a = 0; a < n; a++)
		for (int b = 0; b < n; b++) {
			if (a == b)
				continue;
			int L = level[a] < level[b] ? level[a] : level[b];
			moo_point pa = {v[L] + (size_t)a * m, viol[a]}, pb = {v[L] + (size_t)b * m, viol[b]};
			if (moo_dominates(&pa, &pb, m)) {
				dom[(size_t)a * n + b] = 1;
				cnt[b]++;
			}
		}
	for (int i = 0; i < n; i++)
		rank[i] = -1;
	int left = n;
	for (int f = 0; left > 0; f++) {
		int k = 0;
		for (int i = 0; i < n; i++)
			if (rank[i] < 0 && cnt[i] == 0)
				mem[k++] = i;
		if (k == 0) { /* a cycle (levels can make one): the rest share a front */
			for (int i = 0; i < n; i++)
				if (rank[i] < 0)
					mem[k++] = i;
		}
		for (int j = 0; j < k; j++)
			rank[mem[j]] = f;
		left -= k;
		for (int j = 0; j < k; j++)
			for (int b = 0; b < n; b++)
				if (dom[(size_t)mem[j] * n + b])
					cnt[b]--;
		/* crowding within the front, all taken at its lowest level */
		int L = level[mem[0]];
		for (int j = 1; j < k; j++)
			L = level[mem[j]] < L ? level[mem[j]] : L;
		for (int j = 0; j < k; j++)
			pt[j] = (moo_point){v[L] + (size_t)mem[j] * m, viol[mem[j]]};
		moo_crowding(pt, k, m, zero, cr);
		for (int j = 0; j < k; j++)
			crowd[mem[j]] = cr[j];
	}
out:
	free(cnt);
	free(dom);
	free(pt);
	free(mem);
	free(zero);
	free(cr);
	return rc;
}

/* The pool's objectives at every level (minimization form; a level not
 * reached: NaN) and each member's highest level. */
typedef struct mf_state {
	int nl;
	int *level;
	double *v[EV_MAX_LEVELS];
} mf_state;

static void mf_free(mf_state *s)
{
	free(s->level);
	for (int l = 0; l < s->nl; l++)
		free(s->v[l]);
	memset(s, 0, sizeof *s);
}

static int mf_load(engine *e, const pool *p, mf_state *s, tl_err *err)
{
	const ev_config *c = &e->cfg;
	const ev_quality *q = &c->quality;
	int m = c->n_obj, n = p->n, rc = 0;
	memset(s, 0, sizeof *s);
	s->nl = q->n_levels;
	s->level = calloc((size_t)(n ? n : 1), sizeof *s->level);
	for (int l = 0; l < s->nl; l++)
		s->v[l] = malloc((size_t)(n ? n : 1) * (size_t)m * sizeof(double));
	for (int l = 0; l < s->nl; l++)
		if (s->v[l] == NULL)
			rc = TL_ENOMEM;
	if (rc || s->level == NULL)
		return tl_err_set(err, TL_ENOMEM, "run: out of memory");
	for (int i = 0; i < n && rc == 0; i++) {
		const char *hash = p->k[p->idx[i]].genome_hash;
		s->level[i] = 0;
		for (int l = 0; l < s->nl && rc == 0; l++) {
			double *o = s->v[l] + (size_t)i * m;
			bool all = true;
			for (int j = 0; j < m && rc == 0; j++) {
				o[j] = p->obj[(size_t)i * m + j];
				if (!c->obj[j].m.quality)
					continue;
				double x = NAN;
				bool found = false;
				rc = db_quality_get(e->db, hash, qual_kind_name[q->kind], q->level_hash[l],
				                    c->obj[j].m.base, &x, &found, err);
				all = all && found;
				o[j] = found ? (c->obj[j].maximize ? -x : x) : NAN;
			}
			if (l == 0 && !all) /* stored before multi-fidelity: its own values */
				for (int j = 0; j < m; j++)
					o[j] = p->obj[(size_t)i * m + j];
			else if (all && l == s->level[i] + 1)
				s->level[i] = l;
		}
	}
	return rc;
}

/* Promotion: for each level L below the top, the members at L or above are
 * ranked by their level-L values (one budget: nothing mixed), and the best
 * promote share of them that are still at L train on to L+1. Deterministic
 * given the stored results, so a resume after a kill computes the same
 * sets and trains only what is missing. Returns 1 when a stop came. */
static int mf_promote(engine *e, const pool *p, mf_state *s, tl_err *err)
{
	const ev_config *c = &e->cfg;
	const ev_quality *q = &c->quality;
	int m = c->n_obj, n = p->n;
	int *sub = malloc((size_t)(n ? n : 1) * sizeof *sub), *rk = malloc((size_t)(n ? n : 1) * sizeof *rk);
	moo_point *pt = malloc((size_t)(n ? n : 1) * sizeof *pt);
	double *cr = malloc((size_t)(n ? n : 1) * sizeof *cr);
	int rc = 0;
	if (!sub || !rk || !pt || !cr) {
		rc = tl_err_set(err, TL_ENOMEM, "run: out of memory");
		goto out;
	}
	for (int L = 0; L + 1 < s->nl && rc == 0; L++) {
		int k = 0;
		for (int i = 0; i < n; i++)
			if (s->level[i] >= L) {
				sub[k] = i;
				pt[k] = (moo_point){s->v[L] + (size_t)i * m, isnan(p->pts[i].viol) ? 0 : p->pts[i].viol};
				k++;
			}
		if (k == 0)
			break;
		if (moo_rank(pt, k, m, rk) < 0) {
			rc = tl_err_set(err, TL_ENOMEM, "run: out of memory");
			break;
		}
		moo_crowding(pt, k, m, rk, cr);
		/* the crowded order of the subset (insertion sort: a generation) */
		int *ord = malloc((size_t)k * sizeof *ord);
		if (ord == NULL) {
			rc = tl_err_set(err, TL_ENOMEM, "run: out of memory");
			break;
		}
		for (int j = 0; j < k; j++) {
			int x = j, t = j;
			while (t > 0 && moo_better(rk, cr, x, ord[t - 1])) {
				ord[t] = ord[t - 1];
				t--;
			}
			ord[t] = x;
		}
		int top = (int)ceil(q->promote * (double)k - 1e-9);
		for (int j = 0; j < top && rc == 0; j++) {
			int i = sub[ord[j]];
			if (s->level[i] != L)
				continue;
			const db_candidate *kd = &p->k[p->idx[i]];
			genome g;
			double vals[EV_MAX_OBJ + EV_MAX_CON];
			for (int x = 0; x < EV_MAX_OBJ + EV_MAX_CON; x++)
				vals[x] = NAN;
			snprintf(e->last, sizeof e->last, "promoting %.12s to %lld tokens (%d of the best %d at %lld)",
			         kd->genome_hash, (long long)q->budgets[L + 1], j + 1, top,
			         (long long)q->budgets[L]);
			report(e);
			tl_err qe = TL_ERR_INIT;
			if ((rc = genome_parse(&g, kd->text, "candidate", err)) < 0)
				break;
			rc = quality_values(e, &g, kd->genome_hash, L + 1, vals, &qe);
			if (rc == TL_ESTOPPED) {
				rc = 1;
				break;
			}
			if (rc < 0) { /* a failed longer training: it stays at L (stored with its error) */
				rc = 0;
				continue;
			}
			for (int x = 0; x < m; x++)
				s->v[L + 1][(size_t)i * m + x] =
				    c->obj[x].m.quality ? (c->obj[x].maximize ? -vals[x] : vals[x])
				                        : s->v[L][(size_t)i * m + x];
			s->level[i] = L + 1;
		}
		free(ord);
	}
out:
	free(sub);
	free(rk);
	free(pt);
	free(cr);
	return rc;
}

/* Multi-fidelity before the ranking: promote, then rank with every pair
 * compared at the highest level both reached; each member's objectives
 * become those of its highest level (for the hypervolume and the elites'
 * copies). Returns 1 when a stop came. */
static int mf_apply(engine *e, pool *p, mf_state *s, tl_err *err)
{
	int m = e->cfg.n_obj, rc;
	if ((rc = mf_load(e, p, s, err)) < 0 || (rc = mf_promote(e, p, s, err)) != 0)
		return rc;
	double *viol = malloc((size_t)(p->n ? p->n : 1) * sizeof *viol);
	if (viol == NULL)
		return tl_err_set(err, TL_ENOMEM, "run: out of memory");
	for (int i = 0; i < p->n; i++)
		viol[i] = isnan(p->pts[i].viol) ? 0 : p->pts[i].viol;
	if (ev_mf_rank(p->n, m, (const double *const *)s->v, s->level, viol, p->rank, p->crowd) < 0)
		rc = tl_err_set(err, TL_ENOMEM, "run: out of memory");
	free(viol);
	for (int i = 0; i < p->n; i++)
		memcpy(p->obj + (size_t)i * m, s->v[s->level[i]] + (size_t)i * m, (size_t)m * sizeof(double));
	return rc;
}

/* An elite's stored objectives with its quality at its highest level, and
 * that level's budget as "quality_tokens" (malloc'd JSON; NULL: as stored). */
static char *mf_objectives(engine *e, const db_candidate *k, const mf_state *s, int i)
{
	const ev_config *c = &e->cfg;
	cJSON *o = k->objectives ? cJSON_Parse(k->objectives) : NULL;
	if (o == NULL)
		return NULL;
	int L = s->level[i];
	for (int j = 0; j < c->n_obj; j++) {
		if (!c->obj[j].m.quality)
			continue;
		double x = s->v[L][(size_t)i * c->n_obj + j];
		cJSON_DeleteItemFromObjectCaseSensitive(o, c->obj[j].m.name);
		cJSON_AddNumberToObject(o, c->obj[j].m.name, c->obj[j].maximize ? -x : x);
	}
	cJSON_DeleteItemFromObjectCaseSensitive(o, "quality_tokens");
	cJSON_AddNumberToObject(o, "quality_tokens", (double)c->quality.budgets[L]);
	char *j = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return j;
}

/* Normalization (generation 0's feasible ideal and nadir) and the
 * reference point, in minimization form. */
static int normalization(engine *e, double *ideal, double *scale, double *ref, tl_err *err)
{
	const ev_config *c = &e->cfg;
	pool p0;
	mf_state s0 = {0};
	int rc = pool_load(e, 0, &p0, err);
	/* multi-fidelity: generation 0 at the lowest budget, which its rows
	 * no longer all hold once promoted */
	if (rc == 0 && c->quality.n_levels > 0)
		rc = mf_load(e, &p0, &s0, err);
	if (rc < 0) {
		pool_free(&p0);
		mf_free(&s0);
		return rc;
	}
	const double *obj0 = c->quality.n_levels > 0 ? s0.v[0] : p0.obj;
	for (int j = 0; j < c->n_obj; j++) {
		double lo = INFINITY, hi = -INFINITY;
		for (int i = 0; i < p0.n; i++)
			if (p0.pts[i].viol <= 0) {
				double v = obj0[(size_t)i * c->n_obj + j];
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
	mf_free(&s0);
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
	mf_state mf = {0};
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
	if (c->quality.n_levels > 0 && (rc = mf_apply(e, &p, &mf, err)) != 0)
		goto out; /* 1: a stop came during a promotion: nothing recorded */
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
	for (int i = 0; i < p.n && rc >= 0; i++) {
		rc = db_candidate_set_rank(e->db, p.k[p.idx[i]].id, p.rank[i], p.crowd[i], err);
		/* multi-fidelity: what it was ranked on, its highest budget's quality */
		char *oj = c->quality.n_levels > 0 ? mf_objectives(e, &p.k[p.idx[i]], &mf, i) : NULL;
		if (oj && rc >= 0)
			rc = db_candidate_set_objectives(e->db, p.k[p.idx[i]].id, oj, err);
		cJSON_free(oj);
	}
	if (rc >= 0)
		rc = db_generation_put(e->db, e->run_id, gen, (int64_t)p.n, feasible, nf, hv, rj, true,
		                       err);
	if (!last) {
		for (int i = 0; i < N && rc >= 0; i++) {
			const db_candidate *k = &p.k[p.idx[keep[i]]];
			int64_t id = 0;
			char *oj = c->quality.n_levels > 0 ? mf_objectives(e, k, &mf, keep[i]) : NULL;
			rc = db_candidate_add(e->db, e->run_id, gen + 1, k->genome_hash, k->text, -1, NULL,
			                      k->id, 0,
			                      "elite", "done", oj ? oj : k->objectives, k->feasible,
			                      k->violation, &id, err);
			cJSON_free(oj);
			if (rc >= 0)
				rc = copy_evals(e, k->id, id, err);
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
	mf_free(&mf);
	free(kids);
	free(hashes);
	free(keep);
	free(front);
	cJSON_free(rj);
	return rc;
}

/* One driver per run: an exclusive lock next to the database, held for the
 * drive (released by the kernel when the process dies, kill -9 included);
 * the loser is told who holds it and changes nothing. *fd -1 for a
 * database in memory (a test's). */
static int run_claim(db_conn *db, int64_t run_id, const char *host, int *fd, tl_err *err)
{
	const char *dbp = db_path(db);
	*fd = -1;
	if (dbp == NULL || *dbp == '\0' || strcmp(dbp, ":memory:") == 0)
		return 0;
	char lpath[4200], info[300], holder[300];
	snprintf(lpath, sizeof lpath, "%s.run-%lld.lock", dbp, (long long)run_id);
	snprintf(info, sizeof info, "process %ld on %s\n", (long)getpid(), host);
	int rc = tl_lock_take(fd, lpath, info, 0, holder, sizeof holder, err);
	if (rc == TL_EBUSY) {
		tl_err_clear(err);
		tl_err_set(err, TL_EBUSY, "run %lld: being driven by %s (stop it with 'tailor run "
		           "stop %lld' first)", (long long)run_id,
		           holder[0] ? holder : "another process", (long long)run_id);
	}
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
	char host[128] = "";
	gethostname(host, sizeof host - 1);
	int claim = -1;
	int lrc = run_claim(db, run_id, host, &claim, err);
	if (lrc < 0) {
		db_run_clear(&r);
		return lrc;
	}
	char src[64];
	snprintf(src, sizeof src, "run %lld config", (long long)run_id);
	int rc = ev_config_parse(&e.cfg, r.config ? r.config : "", src, NULL, err);
	db_run_clear(&r);
	if (rc < 0) {
		tl_lock_release(claim);
		return rc;
	}
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
		tl_lock_release(claim);
		return tl_err_set(err, TL_ENOMEM, "run: out of memory");
	}
	pthread_mutex_init(&e.mu_store, NULL);
	e.mu = &e.mu_store;
	e.lab = (prof_lab){e.mu, db, run_id};
	if ((rc = devices_load(&e, err)) < 0)
		goto out;
	/* a resumed run retries the failed evaluations of its current generation */
	if ((rc = db_run_get(db, run_id, &r, err)) < 0)
		goto out;
	int64_t retried = 0;
	rc = db_candidates_retry_failed(db, run_id, r.generation, &retried, err);
	db_run_clear(&r);
	if (rc < 0)
		goto out;
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
		int prc = eval_generation(&e, k, nk, err);
		if (prc < 0) {
			db_candidates_free(k, nk);
			rc = prc;
			goto out;
		}
		if (prc == 1) {
			db_candidates_free(k, nk);
			rc = db_run_set_status(db, run_id, "stopped", NULL, 0, NULL, err);
			goto out;
		}
		db_candidates_free(k, nk);
		if (rc < 0)
			goto out;
		bool done = false;
		if ((rc = finish_generation(&e, gen, &done, err)) < 0)
			goto out;
		if (rc == 1) { /* stopped during a promotion */
			rc = db_run_set_status(db, run_id, "stopped", NULL, 0, NULL, err);
			goto out;
		}
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
	dev_pool_free(e.pool);
	pthread_mutex_destroy(&e.mu_store);
	tl_lock_release(claim);
	free(e.arch);
	ev_config_free(&e.cfg);
	return rc;
}
