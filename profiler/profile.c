/*
 * profiler/profile.c: operator tables made on a device, predictions from
 * them and their validation (profile.h).
 *
 * The workload: profile-ops measures a few hundred profiling models (tens on
 * a small space), each at every shape of the protocol (2), one harness
 * process per repeat; its memory is the runs' raw JSON kept until the drift
 * correction (a few KB per run) and the table. A validation measures K x
 * shapes genomes (60 by default) through prof_measure_one, each a pool of
 * one on the device, plus the reference model every ref_every genomes.
 *
 * Drift: a device drifts by per cents over minutes (temperature, clocks,
 * background load), as much as the differences a table has to resolve. So
 * profile-ops measures its first model again every ref_every models and at
 * the end and scales each run to the device's state at the start
 * (interpolated between the readings around it); the validation measures
 * the table's reference model before, between and after the genomes and
 * reports the accuracy with the predictions scaled the same way as well.
 */
#include "profile.h"
#include "measure.h"
#include "op_arch.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- small pieces ------------------------------------------------------------------ */

static void say(prof_progress_fn fn, void *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say(prof_progress_fn fn, void *ctx, const char *fmt, ...)
{
	char line[TL_ERR_MSG_MAX + 512];
	va_list ap;
	if (fn == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	fn(ctx, line);
}

/* The arch of a genome: its text (malloc'd into *text, genome_arch_describe)
 * parsed into *a. */
static int arch_of(op_arch *a, char **text, const genome *g, tl_err *err)
{
	*text = NULL;
	genome_arch *ga = malloc(sizeof *ga);
	if (ga == NULL)
		return tl_err_set(err, TL_ENOMEM, "out of memory");
	int rc = genome_decode(ga, g, err);
	if (rc == 0 && (*text = genome_arch_describe(ga)) == NULL)
		rc = tl_err_set(err, TL_ENOMEM, "out of memory");
	free(ga);
	if (rc < 0)
		return rc;
	return op_arch_parse(a, *text, "genome", err);
}

/* The readings' ratio at x: linear between the two readings around it
 * (pos[0, n) ascending, n >= 2; v[j * stride] the reading j), held before
 * the first. */
static double drift_at(const double *pos, size_t n, const double *v, size_t stride, double x)
{
	size_t j = 0;
	while (j + 2 < n && pos[j + 1] < x)
		j++;
	double w = (x - pos[j]) / (pos[j + 1] - pos[j]);
	if (w < 0)
		w = 0;
	return (1 - w) * v[j * stride] + w * v[(j + 1) * stride];
}

/* ---- the protocol ------------------------------------------------------------------ */

int prof_profile_protocol(prof_protocol *p, const db_device *d, const prof_profile_opts *o,
                          tl_err *err)
{
	int64_t v;
	prof_protocol_init(p);
	if (d && prof_device_protocol(p, d, err) < 0)
		return err->code;
	if (o->protocol_file && prof_protocol_load(p, o->protocol_file, err) < 0)
		return err->code;
	if (o->repeats) {
		if (tl_parse_i64(&v, o->repeats, 1, PROF_MAX_REPEATS, "--repeats", err) < 0)
			return TL_EUSAGE;
		p->repeats = (int)v;
		if (p->max_repeats < p->repeats)
			p->max_repeats = p->repeats;
	}
	if (o->warmup) {
		if (tl_parse_i64(&v, o->warmup, 0, PROF_MAX_WARMUP, "--warmup", err) < 0)
			return TL_EUSAGE;
		p->warmup = (int)v;
	}
	return prof_protocol_check(p, err);
}

/* ---- profile-ops ------------------------------------------------------------------- */

/* A measured run waiting for its drift correction. */
typedef struct pending_run {
	size_t model, shape;
	char *raw; /* the harness's JSON with --layer-times */
} pending_run;

/* One profiling session on a device. */
typedef struct profiling {
	const prof_profile_opts *o;
	const db_device *dev;
	prof_protocol proto;
	dev_session *s;
	char wd[DEV_PATH_MAX];
	long long threads;       /* the harness's --threads; 0: its default */
	char **archs;            /* the profiling models                    */
	size_t n_archs;
	pending_run *pend;
	size_t n_pend, cap_pend;
	/* drift readings: the first model at rd_pos (models measured so far),
	 * TTFT and decode per shape ([reading * n_shapes + shape]); reading 0
	 * is the first model's own measurement, the state the table is
	 * scaled to */
	double *rd_pos, *rd_t, *rd_d;
	size_t n_rd, max_rd;
	double ref_t[PROF_MAX_SHAPES], ref_d[PROF_MAX_SHAPES];
	double t0;
} profiling;

/* One run's --layer-times arrays into obs (arrays of n). */
typedef struct obs_buf {
	double *v; /* 5 x n */
	prof_obs obs;
} obs_buf;

static int read_obs(obs_buf *b, const char *raw, int n, tl_err *err)
{
	cJSON *j = cJSON_Parse(raw);
	static const char *const names[5] = {"layer_prefill_ms", "layer_decode_ms",
	                                     "layer_weight_bytes", "layer_state_bytes",
	                                     "layer_act_bytes"};
	free(b->v);
	b->v = calloc((size_t)5 * (size_t)n, sizeof *b->v);
	if (j == NULL || b->v == NULL) {
		cJSON_Delete(j);
		return tl_err_set(err, TL_EPARSE, "profile-ops: the harness's output is not JSON");
	}
	for (int k = 0; k < 5; k++) {
		const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, names[k]);
		if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) != n) {
			cJSON_Delete(j);
			return tl_err_set(err, TL_EPARSE, "profile-ops: the harness's output lacks %s of "
			                  "%d layers (a harness without --layer-times: rebuild)", names[k], n);
		}
		for (int i = 0; i < n; i++)
			b->v[k * n + i] = cJSON_GetArrayItem(arr, i)->valuedouble;
	}
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "ttft_ms");
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "decode_ms_p50");
	const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "peak_rss_bytes");
	b->obs = (prof_obs){cJSON_IsNumber(t) ? t->valuedouble : NAN,
	                    cJSON_IsNumber(d) ? d->valuedouble : NAN,
	                    cJSON_IsNumber(r) ? r->valuedouble : NAN,
	                    b->v, b->v + n, b->v + 2 * n, b->v + 3 * n, b->v + 4 * n};
	cJSON_Delete(j);
	return 0;
}

/* Run profiling model `remote` (in the work dir) at shape sh under the
 * protocol; layer_times: with --layer-times. */
static int run_model(profiling *P, const char *remote, const prof_shape *sh, bool layer_times,
                     prof_result *res, prof_failure *why, tl_err *err)
{
	char num[4][24];
	snprintf(num[0], 24, "%lld", (long long)sh->prompt);
	snprintf(num[1], 24, "%lld", (long long)sh->gen);
	snprintf(num[2], 24, "%lld", (long long)sh->depth);
	snprintf(num[3], 24, "%lld", P->threads);
	const char *hargs[20];
	size_t n = 0;
	const char *args[] = {"--arch", remote, "--prompt", num[0], "--gen", num[1], "--depth",
	                      num[2], "--quant", P->o->quant, "--kv", "f16", "--repeat", "1"};
	for (size_t i = 0; i < sizeof args / sizeof args[0]; i++)
		hargs[n++] = args[i];
	if (layer_times)
		hargs[n++] = "--layer-times";
	if (P->threads > 0) {
		hargs[n++] = "--threads";
		hargs[n++] = num[3];
	}
	hargs[n] = NULL;
	return prof_dev_measure(P->s, P->dev, P->wd, hargs, &P->proto, P->o->timeout_s, res, why,
	                        err);
}

/* A drift reading: the first model (arch-000.txt) at every shape now, at
 * position pos. */
static int drift_reading(profiling *P, double pos, tl_err *err)
{
	size_t S = P->proto.n_shapes;
	for (size_t sh = 0; sh < S; sh++) {
		prof_result res;
		prof_failure why;
		int rc = run_model(P, "arch-000.txt", &P->proto.shapes[sh], false, &res, &why, err);
		if (rc == 0) {
			P->rd_t[P->n_rd * S + sh] = res.ttft_ms.median;
			P->rd_d[P->n_rd * S + sh] = res.decode_ms_p50.median;
		} else {
			tl_err_prefix(err, "the reference model (%s)", prof_failure_name(why));
		}
		prof_result_free(&res);
		if (rc < 0)
			return rc;
	}
	P->rd_pos[P->n_rd++] = pos;
	return 0;
}

/* Keep the measured runs of res (their raw JSON, taken) for the drift
 * correction. */
static int keep_runs(profiling *P, size_t model, size_t shape, prof_result *res, tl_err *err)
{
	for (size_t k = res->first; k < res->n; k++) {
		if (P->n_pend == P->cap_pend) {
			size_t cap = P->cap_pend ? P->cap_pend * 2 : 64;
			pending_run *np = realloc(P->pend, cap * sizeof *np);
			if (np == NULL)
				return tl_err_set(err, TL_ENOMEM, "out of memory");
			P->pend = np;
			P->cap_pend = cap;
		}
		P->pend[P->n_pend++] = (pending_run){model, shape, res->samples[k].raw};
		res->samples[k].raw = NULL; /* taken */
	}
	return 0;
}

/* Upload model i and measure it at every shape. */
static int measure_model(profiling *P, size_t i, op_arch *a, tl_err *err)
{
	char local[1024], remote[64];
	if (tl_temp_file(local, sizeof local, "tailor-prof", P->archs[i], err) < 0) {
		tl_err_prefix(err, "profile-ops");
		return err->code;
	}
	snprintf(remote, sizeof remote, "arch-%03zu.txt", i);
	int up = dev_upload(P->s, local, P->wd, remote, 0644, err);
	unlink(local);
	if (up < 0 || op_arch_parse(a, P->archs[i], remote, err) < 0)
		return err->code;
	for (size_t sh = 0; sh < P->proto.n_shapes; sh++) {
		const prof_shape *shp = &P->proto.shapes[sh];
		prof_result res;
		prof_failure why;
		if (run_model(P, remote, shp, true, &res, &why, err) < 0) {
			prof_result_free(&res);
			tl_err_prefix(err, "profile-ops: %s: model %zu (%s)", P->dev->name, i,
			              prof_failure_name(why));
			return err->code;
		}
		if (keep_runs(P, i, sh, &res, err) < 0) {
			prof_result_free(&res);
			return err->code;
		}
		if (i == 0) { /* the first drift reading: the state the table is scaled to */
			P->ref_t[sh] = P->rd_t[sh] = res.ttft_ms.median;
			P->ref_d[sh] = P->rd_d[sh] = res.decode_ms_p50.median;
			P->rd_pos[0] = 0.5;
			P->n_rd = 1;
		}
		say(P->o->progress, P->o->ctx,
		    "profile-ops: model %zu/%zu (%d layers) P%lld/N%lld/D%lld: ttft %.1f ms, decode "
		    "%.3f ms (cv %.1f%%%s), %.1f MiB; %.0f s", i + 1, P->n_archs, a->n_layers,
		    (long long)shp->prompt, (long long)shp->gen, (long long)shp->depth,
		    res.ttft_ms.median, res.decode_ms_p50.median, 100 * res.decode_ms_p50.cv,
		    res.remeasured ? ", re-measured" : "", res.peak_rss_bytes.median / 1048576.0,
		    tl_now_s() - P->t0);
		prof_result_free(&res);
	}
	return 0;
}

/* Every model measured, with the drift readings between them and after. */
static int measure_models(profiling *P, op_arch *a, tl_err *err)
{
	size_t every = P->o->ref_every > 0 ? (size_t)P->o->ref_every : 0;
	size_t S = P->proto.n_shapes;
	P->max_rd = P->n_archs / (every ? every : P->n_archs + 1) + 3;
	P->rd_pos = calloc(P->max_rd, sizeof *P->rd_pos);
	P->rd_t = calloc(P->max_rd * S, sizeof *P->rd_t);
	P->rd_d = calloc(P->max_rd * S, sizeof *P->rd_d);
	if (!P->rd_pos || !P->rd_t || !P->rd_d)
		return tl_err_set(err, TL_ENOMEM, "out of memory");
	for (size_t i = 0; i < P->n_archs; i++) {
		if (measure_model(P, i, a, err) < 0)
			return err->code;
		if (every && (i + 1) % every == 0 && i + 1 < P->n_archs && P->n_rd >= 1 &&
		    P->n_rd + 1 < P->max_rd && drift_reading(P, (double)(i + 1), err) < 0)
			return err->code;
	}
	if (P->n_rd >= 1 && P->n_rd < P->max_rd && P->rd_pos[P->n_rd - 1] < (double)P->n_archs &&
	    drift_reading(P, (double)P->n_archs, err) < 0)
		return err->code;
	for (size_t r = 0; r < P->n_rd; r++)
		for (size_t sh = 0; sh < S; sh++)
			say(P->o->progress, P->o->ctx,
			    "profile-ops: drift reading %zu after %.1f models, shape %zu: ttft %+.1f%%, "
			    "decode %+.1f%% since the start", r, P->rd_pos[r], sh,
			    100 * (P->rd_t[r * S + sh] / P->rd_t[sh] - 1),
			    100 * (P->rd_d[r * S + sh] / P->rd_d[sh] - 1));
	return 0;
}

/* Every kept run scaled to the first reading's state (the ratios
 * interpolated at the run's place) and observed into the table. */
static int observe_runs(profiling *P, prof_table *table, op_arch *a, tl_err *err)
{
	obs_buf ob = {0};
	size_t S = P->proto.n_shapes;
	int rc = 0;
	for (size_t q = 0; rc == 0 && q < P->n_pend; q++) {
		const pending_run *pr = &P->pend[q];
		size_t sh = pr->shape;
		double x = (double)pr->model + 0.5, ratio[2] = {1, 1};
		if (P->n_rd >= 2) {
			ratio[0] = drift_at(P->rd_pos, P->n_rd, P->rd_t + sh, S, x) / P->rd_t[sh];
			ratio[1] = drift_at(P->rd_pos, P->n_rd, P->rd_d + sh, S, x) / P->rd_d[sh];
		}
		if ((rc = op_arch_parse(a, P->archs[pr->model], "profiling model", err)) < 0 ||
		    (rc = read_obs(&ob, pr->raw, a->n_layers, err)) < 0)
			break;
		int n = a->n_layers;
		for (int l = 0; l < n; l++) {
			ob.v[l] /= ratio[0];     /* layer_prefill_ms */
			ob.v[n + l] /= ratio[1]; /* layer_decode_ms  */
		}
		ob.obs.ttft_ms /= ratio[0];
		ob.obs.decode_ms /= ratio[1];
		rc = prof_table_observe(table, sh, a, &ob.obs, err);
	}
	free(ob.v);
	return rc;
}

/* Store the finished table (op_tables and its entries); out filled. */
static int store_table(prof_profile_out *out, db_conn *db, const profiling *P,
                       const prof_table *table, const genome_space *space,
                       const char *space_file, const char *build_hash, const char *fp,
                       tl_err *err)
{
	char *pjson = prof_protocol_json(&P->proto);
	out->table_json = prof_table_json(table);
	size_t nk = prof_table_n_keys(table), ns = prof_table_n_shapes(table);
	db_optable_entry *ent = calloc(nk * ns + 1, sizeof *ent);
	int rc;
	if (pjson == NULL || out->table_json == NULL || ent == NULL) {
		rc = tl_err_set(err, TL_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t k = 0; k < nk; k++)
		for (size_t sh = 0; sh < ns; sh++) {
			prof_entry e;
			prof_table_entry(table, k, sh, &e);
			prof_shape shp = prof_table_shape(table, sh);
			ent[k * ns + sh] = (db_optable_entry){e.key, shp.prompt, shp.gen, shp.depth,
			                                      e.prefill_ms, e.decode_ms, e.decode_cv,
			                                      (int64_t)e.weight_bytes,
			                                      (int64_t)e.state_bytes, e.instances};
		}
	char phash[65];
	tl_sha256_hex(pjson, strlen(pjson), phash);
	db_optable row = {0};
	row.device_id = P->dev->id;
	row.space_hash = (char *)genome_space_hash(space);
	row.space_name = (char *)space_file;
	row.quant = (char *)P->o->quant;
	row.kv = "f16";
	row.protocol = pjson;
	row.protocol_hash = phash;
	row.build_hash = (char *)build_hash;
	row.device_fingerprint = (char *)fp;
	row.table_json = out->table_json;
	row.threads = P->threads > 0 ? P->threads : -1;
	row.n_keys = (int64_t)nk;
	row.n_archs = (int64_t)P->n_archs;
	row.seconds = tl_now_s() - P->t0;
	if ((rc = db_optable_add(db, &row, ent, nk * ns, &out->table_id, err)) < 0)
		goto out;
	out->n_keys = nk;
	out->n_shapes = ns;
	out->n_archs = P->n_archs;
	out->seconds = row.seconds;
	for (size_t sh = 0; sh < ns && sh < PROF_MAX_SHAPES; sh++) {
		out->shapes[sh] = prof_table_shape(table, sh);
		prof_table_fixed(table, sh, &out->fixed[sh]);
	}
out:
	free(ent);
	free(pjson);
	return rc;
}

/* The layer configurations of `samples` random genomes of the space. */
static int sample_keys(prof_keyset *ks, const genome_space *space, const prof_profile_opts *o,
                       op_arch *a, tl_err *err)
{
	tl_rng rng;
	tl_rng_seed(&rng, (uint64_t)o->seed, 0x70726f66 /* "prof" */);
	for (long long i = 0; i < o->samples; i++) {
		genome g;
		char *text = NULL;
		int rc = genome_sample(&g, space, &rng, err);
		if (rc == 0)
			rc = arch_of(a, &text, &g, err);
		if (rc == 0)
			rc = prof_keyset_add_arch(ks, a, err);
		free(text);
		if (rc < 0)
			return rc;
	}
	return 0;
}

void prof_profile_out_free(prof_profile_out *out)
{
	if (out == NULL)
		return;
	free(out->table_json);
	memset(out, 0, sizeof *out);
}

int prof_profile_ops(prof_profile_out *out, db_conn *db, const db_device *dev,
                     const char *space_file, const prof_profile_opts *o, tl_err *err)
{
	profiling P = {.o = o, .dev = dev, .t0 = tl_now_s()};
	genome_space *space = NULL;
	prof_keyset ks = {0};
	prof_table *table = NULL;
	dev_lock *lock = NULL;
	char build_hash[65] = "", *fp = NULL;
	op_arch *a = malloc(sizeof *a);
	int rc = -1;
	memset(out, 0, sizeof *out);
	if (a == NULL) {
		tl_err_set(err, TL_ENOMEM, "out of memory");
		goto out;
	}
	if (!dev->enabled) {
		tl_err_set(err, TL_EINVAL, "device %s is disabled (tailor device enable %s)", dev->name,
		           dev->name);
		goto out;
	}
	if (prof_profile_protocol(&P.proto, dev, o, err) < 0 ||
	    genome_space_load(&space, space_file, err) < 0)
		goto out;
	/* 1. the layer configurations of the space, 2. the profiling models */
	if (sample_keys(&ks, space, o, a, err) < 0 ||
	    prof_plan(&P.archs, &P.n_archs, &ks, (int)o->instances, (int)o->layers, err) < 0)
		goto out;
	say(o->progress, o->ctx, "profile-ops: %zu layer configurations in %lld genomes of %s; %zu "
	    "profiling models x %zu shape(s)", ks.n, o->samples, space_file, P.n_archs,
	    P.proto.n_shapes);
	if (prof_table_create(&table, &ks, P.proto.shapes, P.proto.n_shapes, err) < 0)
		goto out;
	/* 3. the device: its lock, a session, the harness without an arch */
	double temp;
	prof_failure stage;
	if (dev_lock_acquire(&lock, dev, 600, err) < 0 || dev_session_open(&P.s, dev, err) < 0 ||
	    dev_fingerprint(P.s, &fp, &temp, err) < 0 ||
	    prof_harness_put(P.s, NULL, false, o->quant, P.wd, sizeof P.wd, build_hash, &stage,
	                     err) < 0)
		goto out;
	P.threads = P.proto.threads ? P.proto.threads : dev->threads;
	if (measure_models(&P, a, err) < 0 || observe_runs(&P, table, a, err) < 0 ||
	    prof_table_finish(table, err) < 0 ||
	    prof_table_set_ref(table, P.archs[0], P.ref_t, P.ref_d, err) < 0)
		goto out;
	/* 4. store it */
	if (store_table(out, db, &P, table, space, space_file, build_hash, fp, err) < 0)
		goto out;
	rc = 0;
out:
	if (rc < 0) {
		prof_profile_out_free(out);
		rc = err->code ? err->code : TL_EFAIL;
	}
	if (P.s && P.wd[0]) {
		tl_err e2 = TL_ERR_INIT;
		dev_workdir_remove(P.s, P.wd, &e2);
	}
	dev_session_close(P.s);
	dev_lock_release(lock);
	for (size_t q = 0; q < P.n_pend; q++)
		free(P.pend[q].raw);
	free(P.pend);
	free(P.rd_pos);
	free(P.rd_t);
	free(P.rd_d);
	free(fp);
	for (size_t i = 0; i < P.n_archs; i++)
		free(P.archs[i]);
	free(P.archs);
	prof_table_free(table);
	prof_keyset_free(&ks);
	genome_space_free(space);
	free(a);
	return rc;
}

/* ---- a stored table ------------------------------------------------------------------ */

int prof_device_table_load(prof_device_table *out, db_conn *db, const db_device *dev,
                           int64_t table_id, const genome_space *space, tl_err *err)
{
	memset(out, 0, sizeof *out);
	int rc = table_id > 0 ? db_optable_get(db, table_id, &out->row, err)
	                      : db_optable_latest(db, dev->id, space ? genome_space_hash(space) : NULL,
	                                          NULL, &out->row, err);
	if (rc == 0 && out->row.device_id != dev->id)
		rc = tl_err_set(err, TL_EINVAL, "--table %lld: a table of another device (its tables: "
		                "tailor query \"SELECT id, device_id, space_name, created_at FROM "
		                "op_tables\")", (long long)table_id);
	if (rc == 0) {
		char src[32];
		snprintf(src, sizeof src, "table %lld", (long long)out->row.id);
		rc = prof_table_from_json(&out->t, out->row.table_json, src, err);
	}
	if (rc == TL_ENOTFOUND && table_id > 0)
		tl_err_prefix(err, "predict: --table %lld: no such table (the tables: tailor query "
		              "\"SELECT id, device_id, space_name FROM op_tables\")", (long long)table_id);
	else if (rc == TL_ENOTFOUND)
		tl_err_prefix(err, "predict: %s has no operator table%s (run 'tailor device "
		              "profile-ops %s --space FILE')", dev->name, space ? " for this space" : "",
		              dev->name);
	if (rc < 0)
		prof_device_table_free(out);
	return rc;
}

void prof_device_table_free(prof_device_table *t)
{
	if (t == NULL)
		return;
	prof_table_free(t->t);
	db_optable_clear(&t->row);
	t->t = NULL;
}

size_t prof_device_table_shapes(prof_shape out[PROF_MAX_SHAPES], const prof_device_table *t,
                                const prof_shape *shape)
{
	if (shape) {
		out[0] = *shape;
		return 1;
	}
	size_t n = prof_table_n_shapes(t->t);
	if (n > PROF_MAX_SHAPES)
		n = PROF_MAX_SHAPES;
	for (size_t i = 0; i < n; i++)
		out[i] = prof_table_shape(t->t, i);
	return n;
}

/* A prediction of table t as predictions.* stores it. */
static prof_prediction prediction_of(const prof_device_table *t, const prof_pred *p)
{
	return (prof_prediction){0, t->row.id, p->ttft_ms, p->decode_ms, p->peak_rss_bytes,
	                         p->approximated > 0};
}

int prof_predict_genome(prof_genome_pred out[PROF_MAX_SHAPES], size_t *n, db_conn *db,
                        const prof_device_table *t, const genome *g, const prof_shape *shape,
                        tl_err *err)
{
	pthread_mutex_t mu;
	prof_lab lab = {&mu, db, 0};
	prof_shape shapes[PROF_MAX_SHAPES];
	char *arch_text = NULL, *text = NULL, hash[65];
	op_arch *a = malloc(sizeof *a);
	int rc;
	*n = 0;
	if (a == NULL)
		return tl_err_set(err, TL_ENOMEM, "out of memory");
	if ((rc = arch_of(a, &arch_text, g, err)) < 0)
		goto out;
	tl_sha256_hex(arch_text, strlen(arch_text), hash);
	text = genome_to_text(g);
	if ((rc = db_genome_ensure(db, hash, text ? text : "", -1, err)) < 0)
		goto out;
	size_t ns = prof_device_table_shapes(shapes, t, shape);
	pthread_mutex_init(&mu, NULL);
	for (size_t i = 0; i < ns; i++) {
		prof_genome_pred *o = &out[i];
		o->shape = shapes[i];
		if ((rc = prof_predict(t->t, a, &shapes[i], &o->pred, err)) < 0)
			break;
		prof_prediction pp = prediction_of(t, &o->pred);
		if ((rc = prof_prediction_store(&lab, &pp, hash, text ? text : "", &shapes[i], 0,
		                                err)) < 0)
			break;
		o->id = pp.id;
		(*n)++;
	}
	pthread_mutex_destroy(&mu);
out:
	free(text);
	free(arch_text);
	free(a);
	return rc;
}

/* ---- validation -------------------------------------------------------------------- */

/* One validation under way. */
typedef struct validating {
	const prof_validate_opts *o;
	db_conn *db;
	const db_device *dev;
	const prof_device_table *t;
	prof_lab lab;
	const char *quant;
	size_t n_shapes;
	prof_shape shapes[PROF_MAX_SHAPES];
	char *protocol[PROF_MAX_SHAPES]; /* per shape: the protocol, that one shape */
	/* the reference model's readings: at rpos (genomes done), the ratios
	 * now / in the table ([(reading * n_shapes + shape) * 2 + TTFT 0,
	 * decode 1]) */
	bool have_ref;
	double *rpos, *rratio;
	size_t n_reads, max_reads;
} validating;

/* Measure arch_text at shape i of the validation on the device (its row
 * read again: a device disabled meanwhile is not used): TTFT, decode, peak
 * RSS into v; *mid (may be NULL) the measurement's id. */
static int measure_arch(validating *V, const char *arch_text, const char *genome_text, size_t i,
                        double v[3], int64_t *mid, tl_err *err)
{
	const prof_shape *sh = &V->shapes[i];
	prof_bench_args ba = {.prompt = sh->prompt, .gen = sh->gen, .depth = sh->depth,
	                      .threads = 0, .repeat = 1, .timeout_s = V->o->timeout_s, .seed = 1,
	                      .quant = V->quant, .kv = "f16", .protocol_json = V->protocol[i]};
	db_device cur;
	prof_job job;
	int rc = db_device_get(V->db, V->dev->name, &cur, err);
	if (rc < 0)
		return rc;
	rc = prof_measure_one(&job, V->db, &cur, arch_text, genome_text, &ba, err);
	if (rc == 0) {
		v[0] = job.m[0].ttft_ms;
		v[1] = job.m[0].decode_ms_p50;
		v[2] = job.m[0].peak_rss_bytes;
		if (mid)
			*mid = job.m[0].id;
	}
	prof_job_free(&job);
	return rc;
}

/* The table's reference model measured again at every shape, at position
 * pos (genomes done): how far the device has drifted since the table. */
static int ref_reading(validating *V, double pos, const char *when, tl_err *err)
{
	if (!V->have_ref)
		return 0;
	for (size_t i = 0; i < V->n_shapes; i++) {
		double rt, rd, v[3];
		const char *ref = prof_table_ref(V->t->t, i, &rt, &rd);
		if (measure_arch(V, ref, "", i, v, NULL, err) < 0)
			return err->code;
		V->rratio[(V->n_reads * V->n_shapes + i) * 2] = v[0] / rt;
		V->rratio[(V->n_reads * V->n_shapes + i) * 2 + 1] = v[1] / rd;
		say(V->o->progress, V->o->ctx,
		    "predict: the table's reference model %s: ttft %.1f ms (%+.1f%% since the table), "
		    "decode %.3f ms (%+.1f%%)", when, v[0], 100 * (v[0] / rt - 1), v[1],
		    100 * (v[1] / rd - 1));
	}
	V->rpos[V->n_reads++] = pos;
	return 0;
}

/* The protocols (the table's or the file's, one shape each) and the
 * readings' arrays. */
static int validate_setup(validating *V, size_t K, tl_err *err)
{
	prof_protocol base;
	prof_protocol_init(&base);
	if (V->o->protocol_file ? prof_protocol_load(&base, V->o->protocol_file, err) < 0
	                        : V->t->row.protocol &&
	                              prof_protocol_parse(&base, V->t->row.protocol, err) < 0)
		return err->code;
	for (size_t i = 0; i < V->n_shapes; i++) {
		prof_protocol one = base;
		one.n_shapes = 1;
		one.shapes[0] = V->shapes[i];
		if ((V->protocol[i] = prof_protocol_json(&one)) == NULL)
			return tl_err_set(err, TL_ENOMEM, "out of memory");
	}
	size_t every = V->o->ref_every > 0 ? (size_t)V->o->ref_every : 0;
	V->max_reads = K / (every ? every : K + 1) + 2;
	V->rpos = calloc(V->max_reads, sizeof *V->rpos);
	V->rratio = calloc(V->max_reads * V->n_shapes * 2, sizeof *V->rratio);
	if (V->rpos == NULL || V->rratio == NULL)
		return tl_err_set(err, TL_ENOMEM, "out of memory");
	V->have_ref = V->o->shape == NULL; /* the readings are at the table's shapes */
	for (size_t i = 0; i < V->n_shapes; i++) {
		double rt, rd;
		if (prof_table_ref(V->t->t, i, &rt, &rd) == NULL)
			V->have_ref = false;
	}
	return 0;
}

/* Genome k (arch a, text, hash) predicted and measured at every shape. */
static int validate_genome(validating *V, prof_validation *out, size_t k, const op_arch *a,
                           const char *arch_text, const char *text, const char *hash,
                           double t0, tl_err *err)
{
	for (size_t i = 0; i < V->n_shapes; i++) {
		const prof_shape *sh = &V->shapes[i];
		prof_val_point *pt = &out->points[k * V->n_shapes + i];
		tl_strlcpy(pt->genome_hash, hash, sizeof pt->genome_hash);
		prof_pred p;
		if (prof_predict(V->t->t, a, sh, &p, err) < 0) {
			say(V->o->progress, V->o->ctx, "predict: genome %zu: %s (skipped)", k + 1, err->msg);
			*err = (tl_err)TL_ERR_INIT;
			continue;
		}
		double mv[3];
		int64_t mid = 0;
		if (measure_arch(V, arch_text, text, i, mv, &mid, err) < 0) {
			say(V->o->progress, V->o->ctx, "predict: genome %zu: measurement failed: %s", k + 1,
			    err->msg);
			*err = (tl_err)TL_ERR_INIT;
			continue;
		}
		double *pv = pt->pred, *m = pt->meas;
		pv[0] = p.ttft_ms;
		pv[1] = p.decode_ms;
		pv[2] = p.peak_rss_bytes;
		memcpy(m, mv, sizeof mv);
		prof_prediction pp = prediction_of(V->t, &p);
		if (prof_prediction_store(&V->lab, &pp, hash, text, sh, mid, err) < 0)
			return err->code;
		pt->ok = true;
		pt->measurement_id = mid;
		pt->prediction_id = pp.id;
		say(V->o->progress, V->o->ctx,
		    "predict: %zu/%zu %.12s P%lld/D%lld: ttft %.1f ms (pred %+.1f%%), decode %.3f ms "
		    "(%+.1f%%), rss %.1f MiB (%+.1f%%)%s%s; %.0f s", k + 1, out->n_genomes, hash,
		    (long long)sh->prompt, (long long)sh->depth, m[0], 100 * (pv[0] - m[0]) / m[0],
		    m[1], 100 * (pv[1] - m[1]) / m[1], m[2] / 1048576.0, 100 * (pv[2] - m[2]) / m[2],
		    p.note[0] ? "; " : "", p.note, tl_now_s() - t0);
	}
	return 0;
}

/* The accuracy at shape i, drift-corrected too when there are readings
 * around the genomes. */
static int validate_accuracy(const validating *V, prof_validation *out, size_t i, tl_err *err)
{
	size_t K = out->n_genomes, S = V->n_shapes;
	prof_val_shape *vs = &out->shapes[i];
	double *pv = malloc(K * sizeof *pv), *mv = malloc(K * sizeof *mv);
	if (pv == NULL || mv == NULL) {
		free(pv);
		free(mv);
		return tl_err_set(err, TL_ENOMEM, "out of memory");
	}
	vs->shape = V->shapes[i];
	for (int q = 0; q < 3; q++) {
		for (size_t k = 0; k < K; k++) {
			pv[k] = out->points[k * S + i].pred[q];
			mv[k] = out->points[k * S + i].meas[q];
		}
		prof_accuracy_compute(&vs->acc[q], pv, mv, K);
	}
	/* each prediction times the reference model's ratio now/then,
	 * interpolated between the readings around the genome */
	vs->corrected = V->have_ref && V->n_reads >= 2;
	vs->mean_ratio[0] = vs->mean_ratio[1] = NAN;
	for (int q = 0; vs->corrected && q < 2; q++) {
		double rsum = 0;
		for (size_t k = 0; k < K; k++) {
			double r = drift_at(V->rpos, V->n_reads, V->rratio + i * 2 + (size_t)q, S * 2,
			                    (double)k + 0.5);
			rsum += r;
			pv[k] = out->points[k * S + i].pred[q] * r;
			mv[k] = out->points[k * S + i].meas[q];
		}
		vs->mean_ratio[q] = rsum / (double)K;
		prof_accuracy_compute(&vs->corr[q], pv, mv, K);
	}
	free(pv);
	free(mv);
	return 0;
}

void prof_validation_free(prof_validation *v)
{
	if (v == NULL)
		return;
	free(v->points);
	memset(v, 0, sizeof *v);
}

int prof_validate(prof_validation *out, db_conn *db, const db_device *dev,
                  const prof_device_table *t, const prof_validate_opts *o, tl_err *err)
{
	pthread_mutex_t mu;
	validating V = {.o = o, .db = db, .dev = dev, .t = t, .lab = {&mu, db},
	                .quant = t->row.quant ? t->row.quant : "q4_0"};
	size_t K = o->samples;
	char *arch_text = NULL, *text = NULL;
	op_arch *a = malloc(sizeof *a);
	int rc = -1;
	memset(out, 0, sizeof *out);
	pthread_mutex_init(&mu, NULL);
	out->table_id = t->row.id;
	out->n_genomes = K;
	out->n_shapes = V.n_shapes = prof_device_table_shapes(V.shapes, t, o->shape);
	out->points = calloc(K * V.n_shapes + 1, sizeof *out->points);
	if (a == NULL || out->points == NULL) {
		tl_err_set(err, TL_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < K * V.n_shapes; i++)
		for (int q = 0; q < 3; q++)
			out->points[i].pred[q] = out->points[i].meas[q] = NAN;
	if (validate_setup(&V, K, err) < 0 || ref_reading(&V, 0.0, "before the genomes", err) < 0)
		goto out;
	tl_rng rng;
	tl_rng_seed(&rng, o->seed, 0x76616c69 /* "vali" */);
	double t0 = tl_now_s();
	for (size_t k = 0; k < K; k++) {
		genome g;
		if (k > 0 && o->ref_every > 0 && k % (size_t)o->ref_every == 0 &&
		    V.n_reads + 1 < V.max_reads && ref_reading(&V, (double)k, "now", err) < 0)
			goto out;
		free(arch_text);
		free(text);
		arch_text = text = NULL;
		if (genome_sample(&g, o->space, &rng, err) < 0 || arch_of(a, &arch_text, &g, err) < 0)
			goto out;
		text = genome_to_text(&g);
		char hash[65];
		tl_sha256_hex(arch_text, strlen(arch_text), hash);
		if (validate_genome(&V, out, k, a, arch_text, text ? text : "", hash, t0, err) < 0)
			goto out;
	}
	if (ref_reading(&V, (double)K, "after the genomes", err) < 0)
		goto out;
	out->n_readings = V.n_reads;
	for (size_t i = 0; i < V.n_shapes; i++)
		if (validate_accuracy(&V, out, i, err) < 0)
			goto out;
	rc = 0;
out:
	if (rc < 0) {
		prof_validation_free(out);
		rc = err->code ? err->code : TL_EFAIL;
	}
	for (size_t i = 0; i < PROF_MAX_SHAPES; i++)
		free(V.protocol[i]);
	free(V.rpos);
	free(V.rratio);
	free(text);
	free(arch_text);
	free(a);
	pthread_mutex_destroy(&mu);
	return rc;
}
