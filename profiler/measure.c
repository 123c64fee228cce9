/*
 * profiler/measure.c: the host side of measuring (measure.h).
 *
 * How a device measurement runs (docs/devices.md, "Measurement protocol"): the
 * harness is built and pushed once per job, then protocol.c's loop runs it
 * once per repeat (--repeat 1, a process per repeat) so that the thermal
 * gate, the delay and the temperatures before and after apply to every
 * repeat; a process start costs a few ms outside the timed region (the
 * harness times only fill, prefill and decode). Each shape of the protocol
 * is one measurement row; every run of every round is a measurement_repeats
 * row. In-process mode (a search on `local` without bench.protocol) runs the
 * harness once per shape with its own --repeat R and stores that one run.
 */
#include "measure.h"
#include "db_optables.h"
#include "op_arch.h"
#include "op_emit.h"
#include "optable.h"
#include "tailor_config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const failure_names[] = {
    "", "build", "connect", "transfer", "timeout", "harness", "output", "lost", "offline", "busy",
    "db"};

const char *prof_failure_name(prof_failure f)
{
	return (unsigned)f < sizeof failure_names / sizeof failure_names[0] ? failure_names[f] : "";
}

/* ---- the harness on a device ------------------------------------------------------ */

static void toolchain_of(op_emit_opts *o, const db_device *d, const char *quant)
{
	op_emit_opts_init(o);
	o->tool_version = TAILOR_VERSION;
	if (d->toolchain_cc[0])
		o->cc = d->toolchain_cc;
	if (d->toolchain_flags[0])
		o->cflags = d->toolchain_flags;
	if (quant)
		o->quant = quant;
}

static int rm_rf_local(const char *dir)
{
	char *cmd = NULL;
	tl_err err = TL_ERR_INIT;
	if (dev_shell_append(&cmd, "rm", &err) < 0 || dev_shell_append(&cmd, "-rf", &err) < 0 ||
	    dev_shell_append(&cmd, dir, &err) < 0) {
		free(cmd);
		return -1;
	}
	int rc = system(cmd);
	free(cmd);
	return rc;
}

int prof_harness_put(dev_session *s, const char *arch_text, bool arch_file, const char *quant,
                     char *wd, size_t wd_n, char build_hash[65], prof_failure *failure,
                     tl_err *err)
{
	const db_device *d = dev_session_device(s);
	op_emit_opts o;
	int rc;
	toolchain_of(&o, d, quant);
	wd[0] = '\0';
	build_hash[0] = '\0';
	*failure = PROF_FAIL_BUILD;
	if ((rc = op_emit_opts_check(&o, err)) < 0) {
		tl_err_prefix(err, "device %s", d->name);
		return rc;
	}
	if (!d->compile_on_device) {
		op_emit_result r;
		bool sep = arch_file && arch_text;
		if ((rc = op_emit_build(&r, NULL, sep ? NULL : arch_text, &o, err)) < 0)
			return rc;
		tl_strlcpy(build_hash, r.key, 65);
		*failure = PROF_FAIL_TRANSFER;
		if ((rc = dev_workdir_create(s, wd, wd_n, err)) < 0 ||
		    (rc = dev_upload(s, r.binary, wd, OP_EMIT_BINARY, 0755, err)) < 0 || !sep)
			return rc;
		char path[1024];
		if ((rc = tl_temp_file(path, sizeof path, "tailor-arch", arch_text, err)) < 0)
			return rc;
		rc = dev_upload(s, path, wd, "arch.txt", 0644, err);
		unlink(path);
		return rc;
	}
	/* Compile on the device: emit the dir here, push every file, make there. */
	char tmpl[] = "/tmp/tailor-emit.XXXXXX";
	if (mkdtemp(tmpl) == NULL)
		return tl_err_set(err, TL_EIO, "build: cannot make a temporary dir in /tmp");
	char key[65];
	rc = op_emit_key(key, arch_text, &o, err);
	if (rc == 0)
		rc = op_emit_build_dir(tmpl, arch_text, &o, err);
	if (rc < 0)
		goto out;
	tl_strlcpy(build_hash, key, 65);
	*failure = PROF_FAIL_TRANSFER;
	if ((rc = dev_workdir_create(s, wd, wd_n, err)) < 0)
		goto out;
	const char *extra[] = {"Makefile", "bench_config.h", "arch.txt", "build.json"};
	for (size_t i = 0; rc == 0 && i < op_emit_n_sources + 4; i++) {
		const char *name =
		    i < op_emit_n_sources ? op_emit_sources[i].name : extra[i - op_emit_n_sources];
		char path[OP_EMIT_PATH_MAX + 300];
		snprintf(path, sizeof path, "%s/%s", tmpl, name);
		if (access(path, F_OK) != 0)
			continue; /* arch.txt without an arch */
		rc = dev_upload(s, path, wd, name, 0644, err);
	}
	if (rc < 0)
		goto out;
	*failure = PROF_FAIL_BUILD;
	rc = dev_run(s, wd, "make -s >build.log 2>&1 || { tail -n 5 build.log >&2; exit 1; }", 1800,
	             NULL, "build on the device", err);
out:
	rm_rf_local(tmpl);
	return rc;
}

/* ---- protocols ---------------------------------------------------------------------- */

int prof_device_protocol_text(char *out, size_t n, const char *json, bool *shapes, tl_err *err)
{
	prof_protocol p;
	prof_protocol_init(&p);
	*shapes = false;
	int rc = prof_protocol_parse(&p, json, err);
	if (rc < 0)
		return rc;
	cJSON *j = cJSON_Parse(json);
	char *s = j ? cJSON_PrintUnformatted(j) : NULL;
	*shapes = cJSON_GetObjectItemCaseSensitive(j, "shapes") != NULL;
	cJSON_Delete(j);
	if (s == NULL)
		return tl_err_set(err, TL_ENOMEM, "protocol: out of memory");
	size_t len = tl_strlcpy(out, s, n);
	free(s);
	if (len >= n) {
		out[0] = '\0';
		return tl_err_set(err, TL_EINVAL,
		                  "protocol: %zu characters once compacted: a device keeps at most "
		                  "%zu",
		                  len, n - 1);
	}
	return 0;
}

int prof_device_protocol(prof_protocol *p, const db_device *d, tl_err *err)
{
	if (d->protocol[0] == '\0')
		return 0;
	prof_protocol q = *p;
	int rc = prof_protocol_parse(&q, d->protocol, err);
	if (rc < 0) {
		tl_err_prefix(err, "device %s", d->name);
		return rc;
	}
	/* The shapes stay the caller's: what a command or a search measures is
	 * its own business, not the device's. */
	q.n_shapes = p->n_shapes;
	memcpy(q.shapes, p->shapes, sizeof q.shapes);
	*p = q;
	return 0;
}

/* The protocol of a measurement on device d, each layer over the previous
 * one (docs/devices.md, "Measurement protocol"): the defaults with the shape
 * of the args; the device's overrides but their shapes; the --protocol file
 * (its keys win, its shapes replace the args'); the search's bench.protocol
 * (its shapes are not used); then --warmup/--repeats/--cv/--min-time and
 * --threads. In-process: one run per shape, no warm-up, no CV check. */
static int job_protocol(prof_protocol *p, const prof_bench_args *a, const db_device *d,
                        tl_err *err)
{
	int rc = 0;
	prof_protocol_init(p);
	p->n_shapes = 1;
	p->shapes[0] = (prof_shape){a->prompt, a->gen, a->depth};
	if (a->in_process) {
		p->warmup = 0;
		p->repeats = p->max_repeats = 1;
		p->cv_threshold = 0;
		p->max_remeasure = 0;
		p->min_time_s = 0;
		if (a->threads)
			p->threads = (int)a->threads;
		return prof_protocol_check(p, err);
	}
	if ((rc = prof_device_protocol(p, d, err)) < 0)
		return rc;
	if (a->protocol_file)
		rc = prof_protocol_load(p, a->protocol_file, err);
	if (rc == 0 && a->protocol_json) {
		prof_shape keep = p->shapes[0];
		/* the search measures its bench.prompt/gen/depth */
		if ((rc = prof_protocol_parse(p, a->protocol_json, err)) == 0) {
			p->n_shapes = 1;
			p->shapes[0] = keep;
		}
	}
	if (rc < 0) {
		/* it may clash with the device's settings (a max_repeats below the
		 * device's repeats): say which device */
		if (d->protocol[0])
			tl_err_prefix(err, "device %s (over its own protocol)", d->name);
		return rc;
	}
	int64_t v;
	double x;
	if (a->repeat > 1 && a->repeats == NULL) { /* the search's bench.repeat */
		p->repeats = (int)a->repeat;
		if (p->max_repeats < p->repeats)
			p->max_repeats = p->repeats;
	}
	if (a->warmup) {
		if ((rc = tl_parse_i64(&v, a->warmup, 0, PROF_MAX_WARMUP, "--warmup", err)) < 0)
			return rc;
		p->warmup = (int)v;
	}
	if (a->repeats) {
		if ((rc = tl_parse_i64(&v, a->repeats, 1, PROF_MAX_REPEATS, "--repeats", err)) < 0)
			return rc;
		p->repeats = (int)v;
		if (p->max_repeats < p->repeats)
			p->max_repeats = p->repeats;
	}
	if (a->cv) {
		if ((rc = tl_parse_double(&x, a->cv, "--cv", err)) < 0)
			return rc;
		if (!(x >= 0 && x <= 10))
			return tl_err_set(err, TL_EUSAGE, "--cv: '%s': must be in 0..10 (0: never "
			                  "re-measure)", a->cv);
		p->cv_threshold = x;
	}
	if (a->min_time) {
		if ((rc = tl_parse_double(&x, a->min_time, "--min-time", err)) < 0)
			return rc;
		if (!(x >= 0 && x <= 86400))
			return tl_err_set(err, TL_EUSAGE, "--min-time: '%s': must be in 0..86400 seconds",
			                  a->min_time);
		p->min_time_s = x;
	}
	if (a->threads)
		p->threads = (int)a->threads;
	return prof_protocol_check(p, err);
}

int prof_job_init(prof_job *job, const prof_bench_args *a, const db_device *d,
                  const char *arch_text, tl_err *err)
{
	memset(job, 0, sizeof *job);
	job->dev = d;
	job->a = a;
	job->arch_text = arch_text;
	if (arch_text)
		tl_sha256_hex(arch_text, strlen(arch_text), job->arch_hash);
	int rc = job_protocol(&job->proto, a, d, err);
	if (rc < 0)
		return rc;
	/* What a row stores as its protocol: the canonical protocol with that
	 * one shape, plus the harness, quant, kv and seed; and its hash. */
	for (size_t i = 0; i < job->proto.n_shapes; i++) {
		prof_protocol one = job->proto;
		one.n_shapes = 1;
		one.shapes[0] = job->proto.shapes[i];
		char *s = prof_protocol_json(&one);
		cJSON *j = s ? cJSON_Parse(s) : NULL;
		free(s);
		if (j == NULL)
			return tl_err_set(err, TL_ENOMEM, "measure: out of memory");
		cJSON_AddStringToObject(j, "harness", "tailor-bench");
		cJSON_AddStringToObject(j, "quant", a->quant);
		cJSON_AddStringToObject(j, "kv", a->kv);
		cJSON_AddNumberToObject(j, "seed", (double)a->seed);
		if (a->in_process)
			cJSON_AddNumberToObject(j, "in_process_repeat", (double)(a->repeat > 1 ? a->repeat : 1));
		job->protocol[i] = cJSON_PrintUnformatted(j);
		cJSON_Delete(j);
		if (job->protocol[i] == NULL)
			return tl_err_set(err, TL_ENOMEM, "measure: out of memory");
		tl_sha256_hex(job->protocol[i], strlen(job->protocol[i]), job->protocol_hash[i]);
	}
	return 0;
}

void prof_job_free(prof_job *job)
{
	for (int k = 0; k < PROF_MAX_SHAPES; k++) {
		free(job->protocol[k]);
		job->protocol[k] = NULL;
		prof_result_free(&job->m[k].res);
	}
}

/* ---- results -------------------------------------------------------------------------- */

static double jnum(const cJSON *j, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
	return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static void stats_json(cJSON *o, const char *key, const prof_stats *s)
{
	cJSON *x = cJSON_AddObjectToObject(o, key);
	if (x == NULL || s->n == 0)
		return;
	const char *k[] = {"median", "p95", "min", "max", "mean", "cv"};
	double v[] = {s->median, s->p95, s->min, s->max, s->mean, s->cv};
	cJSON_AddNumberToObject(x, "n", (double)s->n);
	for (int i = 0; i < 6; i++)
		if (isfinite(v[i]))
			cJSON_AddNumberToObject(x, k[i], v[i]);
}

/* The protocol's outcome as a JSON object (stored in the fingerprint under
 * "protocol_result", and in the printed result). */
static cJSON *result_json(const prof_result *r)
{
	cJSON *o = cJSON_CreateObject();
	if (o == NULL)
		return NULL;
	cJSON_AddNumberToObject(o, "repeats", (double)(r->n - r->first));
	cJSON_AddNumberToObject(o, "runs_stored", (double)r->n);
	cJSON_AddNumberToObject(o, "first_repeat_index", (double)r->first);
	cJSON_AddNumberToObject(o, "warmups", r->warmups);
	cJSON_AddNumberToObject(o, "rounds", r->rounds);
	cJSON_AddNumberToObject(o, "remeasured", r->remeasured);
	cJSON_AddBoolToObject(o, "cv_ok", r->cv_ok);
	cJSON *rc = cJSON_AddArrayToObject(o, "round_cv");
	for (int i = 0; rc && i < r->rounds; i++)
		cJSON_AddItemToArray(rc, isfinite(r->round_cv[i]) ? cJSON_CreateNumber(r->round_cv[i])
		                                                   : cJSON_CreateNull());
	cJSON_AddNumberToObject(o, "gate_wait_s", r->gate_wait_s);
	cJSON_AddNumberToObject(o, "gate_gave_up", r->gate_gave_up);
	stats_json(o, "decode_ms_p50", &r->decode_ms_p50);
	stats_json(o, "decode_ms_p95", &r->decode_ms_p95);
	stats_json(o, "ttft_ms", &r->ttft_ms);
	stats_json(o, "prefill_tok_s", &r->prefill_tok_s);
	stats_json(o, "decode_tok_s", &r->decode_tok_s);
	stats_json(o, "peak_rss_bytes", &r->peak_rss_bytes);
	return o;
}

cJSON *prof_measurement_json(const prof_measurement *m)
{
	const prof_result *r = &m->res;
	if (r->n == 0)
		return NULL;
	const prof_sample *last = &r->samples[r->n - 1];
	cJSON *j = last->raw ? cJSON_Parse(last->raw) : NULL;
	if (j == NULL)
		return NULL;
	cJSON_DeleteItemFromObjectCaseSensitive(j, "runs");
	struct {
		const char *key;
		double v;
	} f[] = {{"ttft_ms", m->ttft_ms},
	         {"prefill_tok_s", m->prefill_tok_s},
	         {"decode_ms_p50", m->decode_ms_p50},
	         {"decode_ms_p95", m->decode_ms_p95},
	         {"decode_tok_s", m->decode_tok_s},
	         {"peak_rss_bytes", m->peak_rss_bytes},
	         {"repeat", (double)(r->n - r->first)}};
	for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
		cJSON_DeleteItemFromObjectCaseSensitive(j, f[i].key);
		cJSON_AddItemToObject(j, f[i].key, isfinite(f[i].v) ? cJSON_CreateNumber(f[i].v)
		                                                    : cJSON_CreateNull());
	}
	cJSON *pr = result_json(r);
	if (pr)
		cJSON_AddItemToObject(j, "protocol_result", pr);
	if (m->id)
		cJSON_AddNumberToObject(j, "measurement_id", (double)m->id);
	return j;
}

/* The typed figures of a shape from the protocol's result (taken). */
static void measurement_of(prof_measurement *m, const prof_shape *sh, prof_result *res)
{
	const prof_sample *last = &res->samples[res->n - 1];
	cJSON *lj = last->raw ? cJSON_Parse(last->raw) : NULL;
	double th = jnum(lj, "threads");
	cJSON_Delete(lj);
	m->shape = *sh;
	m->threads = isfinite(th) ? (int)th : -1;
	m->ttft_ms = res->ttft_ms.median;
	m->prefill_tok_s = res->prefill_tok_s.median;
	m->decode_ms_p50 = res->decode_ms_p50.median;
	m->decode_ms_p95 = res->decode_ms_p95.median;
	m->decode_tok_s = res->decode_tok_s.median;
	m->peak_rss_bytes = res->peak_rss_bytes.median;
	m->weight_bytes = last->weight_bytes;
	m->cache_bytes = last->cache_bytes;
	m->res = *res;
	memset(res, 0, sizeof *res);
}

static int64_t bytes_or_null(double v)
{
	return isfinite(v) && v >= 0 ? (int64_t)llround(v) : -1;
}

/* Store the outcome of one shape (lab->mu held). m NULL: a failure (or a job
 * not run), recorded with job->failure / job->error. */
static void record(prof_lab *lab, prof_job *job, size_t shape, const db_device *d,
                   const char *fingerprint, prof_measurement *pm)
{
	db_measurement m;
	tl_err err = TL_ERR_INIT;
	const prof_shape *sh = &job->proto.shapes[shape];
	const prof_result *res = pm ? &pm->res : NULL;
	db_measurement_init(&m);
	m.genome_hash = job->arch_hash;
	m.device_id = d->id;
	m.run_id = lab->run_id;
	m.build_hash = job->build_hash[0] ? job->build_hash : NULL;
	m.quant = job->a->quant;
	m.prompt_len = sh->prompt;
	m.gen_len = sh->gen;
	m.depth = sh->depth;
	m.protocol = job->protocol[shape];
	m.protocol_hash = job->protocol_hash[shape];
	m.device_fingerprint = fingerprint;
	db_repeat *reps = NULL;
	size_t n_reps = 0;
	if (pm) {
		m.status = "ok";
		m.threads = pm->threads;
		m.repeats = (int64_t)(res->n - res->first);
		m.ttft_ms = pm->ttft_ms;
		m.prefill_tok_s = pm->prefill_tok_s;
		m.decode_ms_p50 = pm->decode_ms_p50;
		m.decode_ms_p95 = pm->decode_ms_p95;
		m.decode_tok_s = pm->decode_tok_s;
		m.peak_rss_bytes = bytes_or_null(pm->peak_rss_bytes);
		m.weight_bytes = bytes_or_null(pm->weight_bytes);
		m.cache_bytes = bytes_or_null(pm->cache_bytes);
		m.cv = res->decode_ms_p50.cv;
		m.remeasured = res->remeasured;
		/* the spread behind the medians (non-finite: NULL, as bind does) */
		m.ttft_ms_rep_p95 = res->ttft_ms.p95;
		m.ttft_ms_rep_min = res->ttft_ms.min;
		m.ttft_ms_rep_max = res->ttft_ms.max;
		m.ttft_cv = res->ttft_ms.cv;
		m.decode_ms_rep_p95 = res->decode_ms_p50.p95;
		m.decode_ms_rep_min = res->decode_ms_p50.min;
		m.decode_ms_rep_max = res->decode_ms_p50.max;
		m.peak_rss_rep_min = bytes_or_null(res->peak_rss_bytes.min);
		m.peak_rss_rep_max = bytes_or_null(res->peak_rss_bytes.max);
		reps = calloc(res->n, sizeof *reps);
		for (size_t i = 0; reps && i < res->n; i++) {
			const prof_sample *s = &res->samples[i];
			db_repeat *p = &reps[n_reps++];
			db_repeat_init(p);
			p->raw = s->raw ? s->raw : "{}";
			p->ttft_ms = s->ttft_ms;
			p->prefill_tok_s = s->prefill_tok_s;
			p->decode_ms_p50 = s->decode_ms_p50;
			p->decode_ms_p95 = s->decode_ms_p95;
			p->decode_tok_s = s->decode_tok_s;
			p->peak_rss_bytes = bytes_or_null(s->peak_rss_bytes);
			p->temp_before_c = s->temp_before_c;
			p->temp_after_c = s->temp_after_c;
		}
		if (reps == NULL)
			tl_err_set(&err, TL_ENOMEM, "out of memory");
	} else {
		m.status = "failed";
		m.error = job->error;
		m.failure = prof_failure_name(job->failure);
	}
	int64_t id = 0;
	if ((pm && reps == NULL) || db_measurement_add(lab->db, &m, reps, n_reps, &id, &err) < 0) {
		/* keep the first reason; say that it could not be stored */
		char prev[200];
		tl_strlcpy(prev, pm ? "measured" : job->error, sizeof prev);
		if (pm) {
			job->ok = false;
			job->failure = PROF_FAIL_DB;
		}
		snprintf(job->error, sizeof job->error, "%.200s (not stored: %.280s)", prev, err.msg);
		id = 0;
	}
	if (pm)
		pm->id = id;
	else
		job->failed_id = id;
	free(reps);
}

/* The device's health after a job (lab->mu held). */
static void health_after(prof_lab *lab, const prof_job *job, const db_device *d, bool reachable)
{
	db_device cur;
	tl_err err = TL_ERR_INIT;
	if (db_device_get_id(lab->db, d->id, &cur, &err) == 0) {
		if (job->ok)
			db_device_set_health(lab->db, d->id, "online", 0, true, NULL);
		else
			db_device_set_health(lab->db, d->id, reachable ? "online" : cur.status,
			                     cur.fail_streak + 1, reachable, NULL);
	}
}

static void job_fail(prof_job *job, prof_failure failure, const tl_err *err)
{
	job->ok = false;
	job->failure = failure;
	tl_strlcpy(job->error, err->code ? err->msg : "failed (no detail recorded)",
	           sizeof job->error);
}

/* Add build_hash, run prefix, the temperatures of the first and last runs and
 * the protocol's outcome (pr, taken) to the device's fingerprint. */
static char *fingerprint_json(const char *fp, const db_device *d, const char *build_hash,
                              const char *prefix, double t_before, double t_after, cJSON *pr)
{
	cJSON *j = fp ? cJSON_Parse(fp) : NULL;
	if (j == NULL)
		j = cJSON_CreateObject();
	if (j == NULL) {
		cJSON_Delete(pr);
		return NULL;
	}
	cJSON_AddStringToObject(j, "device", d->name);
	cJSON_AddStringToObject(j, "transport", d->transport);
	if (build_hash && *build_hash)
		cJSON_AddStringToObject(j, "build_hash", build_hash);
	if (prefix && *prefix)
		cJSON_AddStringToObject(j, "run_prefix", prefix);
	cJSON_AddStringToObject(j, "toolchain",
	                        d->compile_on_device ? "on device"
	                        : d->toolchain_cc[0] ? d->toolchain_cc
	                                             : "cc");
	if (isfinite(t_before))
		cJSON_AddNumberToObject(j, "temp_before_c", t_before);
	if (isfinite(t_after))
		cJSON_AddNumberToObject(j, "temp_after_c", t_after);
	if (pr)
		cJSON_AddItemToObject(j, "protocol_result", pr);
	char *s = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	return s;
}

/* ---- one harness run under the protocol ------------------------------------------------ */

/* prof_ops over a device session: one harness run, one thermometer read. */
typedef struct meas_ctx {
	dev_session *s;
	const char *wd;
	const char *cmd;  /* the harness command line, quoted               */
	double timeout_s;
	prof_failure failure; /* the kind of the failure a run returned     */
	bool no_temp;     /* a read failed: do not try again                */
} meas_ctx;

#define TEMP_CMD "cat /sys/class/thermal/thermal_zone*/temp 2>/dev/null; true"

/* The hottest zone, as dev_fingerprint's probe reads it (millidegrees,
 * readings outside -50..200 °C ignored); NaN when none is readable. */
static double meas_temp(void *vctx)
{
	meas_ctx *m = vctx;
	if (m->no_temp || !dev_session_alive(m->s))
		return NAN;
	dev_exec_result r;
	tl_err err = TL_ERR_INIT;
	double best = NAN;
	if (dev_exec(m->s, NULL, TEMP_CMD, 15, &r, &err) < 0 || r.status != 0) {
		m->no_temp = true;
		dev_exec_result_free(&r);
		return NAN;
	}
	for (char *p = r.out; p && *p;) {
		char *end;
		long long v = strtoll(p, &end, 10);
		if (end != p && v >= -50000 && v <= 200000 && (isnan(best) || v / 1000.0 > best))
			best = (double)v / 1000.0;
		p = strchr(end, '\n');
		if (p)
			p++;
	}
	if (isnan(best))
		m->no_temp = true; /* no zone: do not ask before every run */
	dev_exec_result_free(&r);
	return best;
}

static int meas_run(void *vctx, prof_sample *out, tl_err *err)
{
	meas_ctx *m = vctx;
	dev_exec_result r;
	int rc = dev_exec(m->s, m->wd, m->cmd, m->timeout_s, &r, err);
	if (rc == TL_ETIMEOUT) {
		m->failure = PROF_FAIL_TIMEOUT;
	} else if (rc < 0) {
		m->failure = PROF_FAIL_LOST;
	} else if (r.status != 0) {
		char line[240] = "no message";
		size_t n = r.err_len;
		while (n > 0 && (r.err[n - 1] == '\n' || r.err[n - 1] == ' '))
			n--;
		size_t st = n;
		while (st > 0 && r.err[st - 1] != '\n')
			st--;
		if (n > st)
			snprintf(line, sizeof line, "%.*s", (int)(n - st), r.err + st);
		rc = tl_err_set(err, TL_EFAIL, "the harness exited with status %d: %s", r.status, line);
		m->failure = PROF_FAIL_HARNESS;
	} else {
		cJSON *j = cJSON_ParseWithLength(r.out, r.out_len);
		const cJSON *f = j ? cJSON_GetObjectItemCaseSensitive(j, "format") : NULL;
		if (!cJSON_IsObject(j) || !cJSON_IsString(f) || strcmp(f->valuestring, "tailor-bench") ||
		    !isfinite(jnum(j, "ttft_ms"))) {
			char head[64];
			size_t k = 0;
			for (const char *p = r.out; *p && k < 48; p++)
				head[k++] = (*p >= 0x20 && *p < 0x7f) ? *p : ' ';
			head[k] = '\0';
			rc = tl_err_set(err, TL_EPARSE, "the harness's output is not its JSON result: '%s%s'",
			                head, r.out_len > 48 ? "..." : "");
			m->failure = PROF_FAIL_OUTPUT;
		} else {
			out->ttft_ms = jnum(j, "ttft_ms");
			out->prefill_tok_s = jnum(j, "prefill_tok_s");
			out->decode_ms_p50 = jnum(j, "decode_ms_p50");
			out->decode_ms_p95 = jnum(j, "decode_ms_p95");
			out->decode_tok_s = jnum(j, "decode_tok_s");
			out->peak_rss_bytes = jnum(j, "peak_rss_bytes");
			out->weight_bytes = jnum(j, "weight_bytes");
			out->cache_bytes = jnum(j, "cache_bytes");
			out->raw = r.out; /* taken */
			r.out = NULL;
		}
		cJSON_Delete(j);
	}
	dev_exec_result_free(&r);
	return rc;
}

int prof_dev_measure(dev_session *s, const db_device *d, const char *wd,
                     const char *const *hargs, const prof_protocol *p, double timeout_s,
                     prof_result *res, prof_failure *failure, tl_err *err)
{
	char *cmd = NULL;
	const char *prefix = p->pin[0] ? p->pin : d->run_prefix;
	memset(res, 0, sizeof *res);
	*failure = PROF_FAIL_NONE;
	int rc = dev_prefix_append(&cmd, prefix, err);
	if (rc == 0)
		rc = dev_shell_append(&cmd, "./" OP_EMIT_BINARY, err);
	for (size_t i = 0; rc == 0 && hargs[i]; i++)
		rc = dev_shell_append(&cmd, hargs[i], err);
	if (rc < 0) {
		free(cmd);
		*failure = PROF_FAIL_HARNESS;
		return rc;
	}
	meas_ctx m = {.s = s, .wd = wd, .cmd = cmd, .timeout_s = timeout_s};
	prof_ops ops = {.run = meas_run, .temp = meas_temp, .ctx = &m};
	rc = prof_measure(res, p, &ops, err);
	if (rc < 0)
		*failure = m.failure ? m.failure : PROF_FAIL_HARNESS;
	free(cmd);
	return rc;
}

/* ---- a job ------------------------------------------------------------------------------ */

int prof_job_run(prof_lab *lab, dev_session **session, const db_device *d, prof_job *job)
{
	const prof_bench_args *a = job->a;
	const prof_protocol *p = &job->proto;
	tl_err err = TL_ERR_INIT;
	char wd[DEV_PATH_MAX] = "";
	char *fp = NULL;
	double t_before = NAN;
	int ret = DEV_JOB_OK;
	size_t shape = 0;
	bool reachable = false, recorded = false;
	const char *prefix = p->pin[0] ? p->pin : d->run_prefix;
	/* local: one harness without the arch serves every candidate (a compile
	 * costs seconds; the arch goes in arch.txt) */
	bool arch_file = strcmp(d->transport, "local") == 0;
	job->ok = true;

	if (*session == NULL && dev_session_open(session, d, &err) < 0) {
		job_fail(job, PROF_FAIL_CONNECT, &err);
		ret = DEV_JOB_DEVICE;
		goto record;
	}
	if (dev_fingerprint(*session, &fp, &t_before, &err) < 0) {
		job_fail(job, dev_session_alive(*session) ? PROF_FAIL_CONNECT : PROF_FAIL_LOST, &err);
		ret = DEV_JOB_DEVICE;
		goto record;
	}
	reachable = true;
	prof_failure stage = PROF_FAIL_NONE;
	if (prof_harness_put(*session, job->arch_text, arch_file, a->quant, wd, sizeof wd,
	                     job->build_hash, &stage, &err) < 0) {
		bool build = stage == PROF_FAIL_BUILD;
		job_fail(job,
		         build                         ? PROF_FAIL_BUILD
		         : dev_session_alive(*session) ? PROF_FAIL_TRANSFER
		                                       : PROF_FAIL_LOST,
		         &err);
		ret = build ? DEV_JOB_FAILED : DEV_JOB_DEVICE;
		goto cleanup;
	}
	for (shape = 0; shape < p->n_shapes; shape++) {
		const prof_shape *sh = &p->shapes[shape];
		char num[6][24];
		long long threads = p->threads ? p->threads : d->threads;
		snprintf(num[0], 24, "%lld", (long long)sh->prompt);
		snprintf(num[1], 24, "%lld", (long long)sh->gen);
		snprintf(num[2], 24, "%lld", (long long)sh->depth);
		snprintf(num[3], 24, "%llu", (unsigned long long)a->seed);
		snprintf(num[4], 24, "%lld", threads);
		snprintf(num[5], 24, "%lld", a->in_process && a->repeat > 1 ? a->repeat : 1);
		const char *args[24];
		size_t n = 0;
		if (arch_file && job->arch_text) {
			args[n++] = "--arch";
			args[n++] = "arch.txt";
		}
		const char *rest[] = {"--prompt", num[0], "--gen", num[1], "--depth", num[2],
		                      "--quant", a->quant, "--kv", a->kv, "--seed", num[3],
		                      "--repeat", num[5]};
		for (size_t i = 0; i < sizeof rest / sizeof rest[0]; i++)
			args[n++] = rest[i];
		if (threads > 0) {
			args[n++] = "--threads";
			args[n++] = num[4];
		}
		args[n] = NULL;
		prof_result res;
		prof_failure why;
		if (prof_dev_measure(*session, d, wd, args, p, a->timeout_s, &res, &why, &err) < 0) {
			tl_err_prefix(&err, "measure: %s", d->name);
			job_fail(job, why, &err);
			ret = why != PROF_FAIL_HARNESS && why != PROF_FAIL_OUTPUT ? DEV_JOB_DEVICE
			                                                          : DEV_JOB_FAILED;
			prof_result_free(&res);
			break;
		}
		prof_measurement *pm = &job->m[shape];
		double t0 = res.samples[0].temp_before_c, t1 = res.samples[res.n - 1].temp_after_c;
		cJSON *prj = result_json(&res);
		measurement_of(pm, sh, &res);
		char *fpj = fingerprint_json(fp, d, job->build_hash, prefix, t0, t1, prj);
		pthread_mutex_lock(lab->mu);
		record(lab, job, shape, d, fpj, pm);
		pthread_mutex_unlock(lab->mu);
		free(fpj);
		if (!job->ok) {
			ret = DEV_JOB_FAILED;
			recorded = true; /* its row is stored (or the db refused it) */
			break;
		}
		job->n_ok++;
	}
cleanup:
	if (wd[0] && *session && dev_session_alive(*session)) {
		tl_err e3 = TL_ERR_INIT;
		if (dev_workdir_remove(*session, wd, &e3) < 0 && job->ok) {
			job_fail(job, PROF_FAIL_LOST, &e3);
			ret = DEV_JOB_DEVICE;
		}
	}
record:
	pthread_mutex_lock(lab->mu);
	if (!job->ok && !recorded && shape < p->n_shapes) {
		char *fpj = fingerprint_json(fp, d, job->build_hash, prefix, t_before, NAN, NULL);
		record(lab, job, shape, d, fpj, NULL);
		free(fpj);
	}
	health_after(lab, job, d, reachable);
	job->done = true;
	pthread_mutex_unlock(lab->mu);
	free(fp);
	return job->ok ? DEV_JOB_OK : ret == DEV_JOB_OK ? DEV_JOB_FAILED : ret;
}

void prof_job_abandon(prof_lab *lab, const db_device *d, prof_job *job, const char *why)
{
	tl_err err = TL_ERR_INIT;
	if (d == NULL)
		d = job->dev;
	tl_err_set(&err, TL_EFAIL, "measure: %s: not run: %s", job->dev->name, why);
	job_fail(job, strstr(why, "in use") ? PROF_FAIL_BUSY : PROF_FAIL_OFFLINE, &err);
	pthread_mutex_lock(lab->mu);
	record(lab, job, 0, d, NULL, NULL);
	health_after(lab, job, d, false);
	job->done = true;
	pthread_mutex_unlock(lab->mu);
}

void prof_lab_health(prof_lab *lab, const db_device *d, const char *status, int streak)
{
	char msg[200];
	bool off = strcmp(status, "offline") == 0;
	pthread_mutex_lock(lab->mu);
	db_device_set_health(lab->db, d->id, status, streak, false, NULL);
	snprintf(msg, sizeof msg, "device %s is %s after %d failures in a row", d->name, status,
	         streak);
	db_event_add(lab->db, 0, d->id, off ? "warn" : "info", off ? "device.offline" : "device.online",
	             msg, NULL, NULL);
	pthread_mutex_unlock(lab->mu);
}

static int lab_run(void *ctx, dev_session **session, const db_device *d, void *job)
{
	return prof_job_run(ctx, session, d, job);
}

static void lab_abandon(void *ctx, const db_device *d, void *job, const char *why)
{
	prof_job_abandon(ctx, d, job, why);
}

static void lab_health(void *ctx, const db_device *d, const char *status, int streak)
{
	prof_lab_health(ctx, d, status, streak);
}

void prof_pool_opts(dev_pool_opts *o, prof_lab *lab, double timeout_s)
{
	*o = (dev_pool_opts){.max_fail_streak = DEV_FAIL_STREAK_DEFAULT,
	                     .max_attempts = 1,
	                     .lock_wait_s = timeout_s > 600 ? timeout_s : 600,
	                     .run = lab_run,
	                     .abandon = lab_abandon,
	                     .health = lab_health,
	                     .ctx = lab};
}

int prof_measure_one(prof_job *job, db_conn *db, const db_device *d, const char *arch_text,
                     const char *genome_text, const prof_bench_args *a, tl_err *err)
{
	pthread_mutex_t mu;
	prof_lab lab = {&mu, db, 0};
	dev_pool *pool = NULL;
	int rc;
	if (!d->enabled) {
		memset(job, 0, sizeof *job);
		return tl_err_set(err, TL_EINVAL, "device %s is disabled (tailor device enable %s)",
		                  d->name, d->name);
	}
	if ((rc = prof_job_init(job, a, d, arch_text, err)) < 0)
		return rc;
	if ((rc = db_genome_ensure(db, job->arch_hash, genome_text, -1, err)) < 0)
		return rc;
	pthread_mutex_init(&mu, NULL);
	dev_pool_opts o;
	prof_pool_opts(&o, &lab, a->timeout_s);
	if ((rc = dev_pool_create(&pool, d, 1, &o, err)) == 0 &&
	    (rc = dev_pool_submit(pool, job, d->id, err)) == 0)
		rc = dev_pool_run(pool, err);
	dev_pool_free(pool);
	pthread_mutex_destroy(&mu);
	if (rc == 0 && (!job->done || !job->ok))
		rc = tl_err_set(err, TL_EFAIL, "%s", job->done ? job->error : "device not reached");
	return rc;
}

/* ---- predictions ------------------------------------------------------------------------ */

int prof_predict_arch(prof_lab *lab, int64_t device_id, const char *device_name,
                      const char *space_hash, const char *arch_text, const prof_shape *sh,
                      prof_prediction *out, tl_err *err)
{
	db_optable row = {0};
	prof_table *t = NULL;
	op_arch *a = malloc(sizeof *a);
	int rc;
	memset(out, 0, sizeof *out);
	if (a == NULL)
		return tl_err_set(err, TL_ENOMEM, "out of memory");
	pthread_mutex_lock(lab->mu);
	rc = db_optable_latest(lab->db, device_id, space_hash, NULL, &row, err);
	if (rc == TL_ENOTFOUND) {
		*err = (tl_err)TL_ERR_INIT;
		rc = db_optable_latest(lab->db, device_id, NULL, NULL, &row, err);
	}
	pthread_mutex_unlock(lab->mu);
	if (rc < 0) {
		if (rc == TL_ENOTFOUND)
			tl_err_prefix(err, "predict: %s has no operator table (run 'tailor device "
			              "profile-ops %s --space FILE')", device_name, device_name);
		goto out;
	}
	char src[32];
	snprintf(src, sizeof src, "table %lld", (long long)row.id);
	if ((rc = prof_table_from_json(&t, row.table_json, src, err)) < 0 ||
	    (rc = op_arch_parse(a, arch_text, "genome", err)) < 0)
		goto out;
	prof_pred p;
	if ((rc = prof_predict(t, a, sh, &p, err)) < 0)
		goto out;
	out->table_id = row.id;
	out->ttft_ms = p.ttft_ms;
	out->decode_ms = p.decode_ms;
	out->peak_rss_bytes = p.peak_rss_bytes;
	out->approximated = p.approximated > 0;
out:
	prof_table_free(t);
	db_optable_clear(&row);
	free(a);
	return rc;
}

int prof_prediction_store(prof_lab *lab, prof_prediction *p, const char *arch_hash,
                          const char *genome_text, const prof_shape *sh, int64_t measurement_id,
                          tl_err *err)
{
	db_prediction pr = {p->table_id, arch_hash, sh->prompt, sh->gen, sh->depth, p->ttft_ms,
	                    p->decode_ms, (int64_t)llround(p->peak_rss_bytes),
	                    measurement_id > 0 ? measurement_id : 0};
	pthread_mutex_lock(lab->mu);
	int rc = db_genome_ensure(lab->db, arch_hash, genome_text, -1, err);
	if (rc == 0)
		rc = db_prediction_add(lab->db, &pr, &p->id, err);
	pthread_mutex_unlock(lab->mu);
	return rc;
}

/* ---- the bandwidth probe ---------------------------------------------------------------- */

int prof_bandwidth_probe(dev_session *s, const db_device *d, double timeout_s, cJSON **out,
                         tl_err *err)
{
	char hash[65], wd[DEV_PATH_MAX] = "";
	char *cmd = NULL;
	prof_failure stage;
	dev_exec_result r;
	memset(&r, 0, sizeof r);
	*out = NULL;
	int rc = prof_harness_put(s, NULL, false, NULL, wd, sizeof wd, hash, &stage, err);
	if (rc == 0)
		rc = dev_prefix_append(&cmd, d->run_prefix, err);
	if (rc == 0)
		rc = dev_shell_append(&cmd, "./" OP_EMIT_BINARY, err);
	if (rc == 0)
		rc = dev_shell_append(&cmd, "--probe", err);
	if (rc == 0 && d->threads) {
		char t[16];
		snprintf(t, sizeof t, "%d", d->threads);
		if ((rc = dev_shell_append(&cmd, "--threads", err)) == 0)
			rc = dev_shell_append(&cmd, t, err);
	}
	if (rc == 0)
		rc = dev_exec(s, wd, cmd, timeout_s, &r, err);
	if (rc == 0 && r.status != 0)
		rc = tl_err_set(err, TL_EFAIL, "probe: %s: the bandwidth probe exited with status %d: %.200s",
		                d->name, r.status, r.err);
	cJSON *bj = rc == 0 ? cJSON_Parse(r.out) : NULL;
	if (rc == 0 && bj == NULL)
		rc = tl_err_set(err, TL_EPARSE, "probe: %s: the bandwidth probe printed no JSON: '%.60s'",
		                d->name, r.out);
	if (bj) {
		static const char *const keep[] = {"read_gbs",     "copy_gbs", "fma_gflops",
		                                   "dot_gops",     "isa",      "threads",
		                                   "buffer_bytes", "llc_bytes"};
		cJSON *b = cJSON_CreateObject();
		for (size_t i = 0; b && i < sizeof keep / sizeof keep[0]; i++) {
			cJSON *v = cJSON_GetObjectItemCaseSensitive(bj, keep[i]);
			if (v)
				cJSON_AddItemToObject(b, keep[i], cJSON_Duplicate(v, 1));
		}
		cJSON_AddStringToObject(b, "build_id", hash);
		cJSON_Delete(bj);
		*out = b;
	}
	dev_exec_result_free(&r);
	free(cmd);
	if (wd[0] && dev_session_alive(s))
		dev_workdir_remove(s, wd, rc < 0 ? NULL : err);
	return rc;
}
