/*
 * profiler/protocol.c: the measurement protocol's settings, statistics and
 * measuring loop (see protocol.h for the contract, docs/devices.md for the
 * user's view).
 *
 * Workload: a handful of settings parsed once per command or search; the
 * loop runs tens of harness runs per measurement, each seconds long, so
 * nothing here is performance-sensitive: clarity first (sorting a copy per
 * statistic is fine at n <= 1000).
 */
#include "protocol.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- settings ------------------------------------------------------------------ */

void prof_protocol_init(prof_protocol *p)
{
	memset(p, 0, sizeof *p);
	p->warmup = 1;
	p->repeats = 5;
	p->max_repeats = 50;
	p->min_time_s = 0;
	p->cv_threshold = 0.05;
	p->max_remeasure = 2;
	p->delay_s = 0;
	p->max_temp_c = 80;
	p->max_wait_s = 120;
	p->poll_s = PROF_THERMAL_POLL_DEFAULT;
	p->threads = 0;
	p->pin[0] = '\0';
	p->n_shapes = 2;
	p->shapes[0] = (prof_shape){512, 128, 4096};
	p->shapes[1] = (prof_shape){512, 128, 32768};
}

int prof_protocol_check(const prof_protocol *p, tl_err *err)
{
	if (p->repeats < 1 || p->repeats > PROF_MAX_REPEATS)
		return tl_err_set(err, TL_EINVAL, "protocol: repeats: %d: must be in 1..%d", p->repeats,
		                  PROF_MAX_REPEATS);
	if (p->max_repeats < p->repeats || p->max_repeats > PROF_MAX_REPEATS)
		return tl_err_set(err, TL_EINVAL,
		                  "protocol: max_repeats: %d: must be in repeats (%d)..%d",
		                  p->max_repeats, p->repeats, PROF_MAX_REPEATS);
	if (p->warmup < 0 || p->warmup > PROF_MAX_WARMUP)
		return tl_err_set(err, TL_EINVAL, "protocol: warmup: %d: must be in 0..%d", p->warmup,
		                  PROF_MAX_WARMUP);
	if (p->max_remeasure < 0 || p->max_remeasure > PROF_MAX_REMEASURE)
		return tl_err_set(err, TL_EINVAL, "protocol: max_remeasure: %d: must be in 0..%d",
		                  p->max_remeasure, PROF_MAX_REMEASURE);
	struct {
		const char *name;
		double v, lo, hi;
	} nums[] = {
		{"min_time_s", p->min_time_s, 0, 86400},
		{"cv_threshold", p->cv_threshold, 0, 10},
		{"delay_s", p->delay_s, 0, 3600},
		{"thermal.max_temp_c", p->max_temp_c, 0, 200},
		{"thermal.max_wait_s", p->max_wait_s, 0, 86400},
		{"thermal.poll_s", p->poll_s, 0.001, 3600},
	};
	for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++)
		if (!(nums[i].v >= nums[i].lo && nums[i].v <= nums[i].hi))
			return tl_err_set(err, TL_EINVAL, "protocol: %s: %g: must be in %g..%g",
			                  nums[i].name, nums[i].v, nums[i].lo, nums[i].hi);
	if (p->threads < 0 || p->threads > 256)
		return tl_err_set(err, TL_EINVAL, "protocol: threads: %d: must be in 0..256 (0: the "
		                  "device's)", p->threads);
	for (const char *c = p->pin; *c; c++)
		if ((unsigned char)*c < 0x20)
			return tl_err_set(err, TL_EINVAL, "protocol: pin: a control character");
	if (p->n_shapes < 1 || p->n_shapes > PROF_MAX_SHAPES)
		return tl_err_set(err, TL_EINVAL, "protocol: shapes: %zu entries: must be 1..%d",
		                  p->n_shapes, PROF_MAX_SHAPES);
	for (size_t i = 0; i < p->n_shapes; i++) {
		const prof_shape *s = &p->shapes[i];
		if (s->prompt < 1 || s->gen < 1 || s->depth < 0 || s->prompt > (1LL << 24) ||
		    s->gen > (1LL << 24) || s->depth > (1LL << 34))
			return tl_err_set(err, TL_EINVAL,
			                  "protocol: shapes[%zu]: prompt %lld, gen %lld, depth %lld: "
			                  "prompt and gen must be in 1..2^24, depth in 0..2^34",
			                  i, (long long)s->prompt, (long long)s->gen, (long long)s->depth);
	}
	return 0;
}

/* Strict member checks: every key of o must be in `known`. */
static int keys_check(const cJSON *o, const char *path, const char *const *known, size_t n,
                      tl_err *err)
{
	const cJSON *it;
	cJSON_ArrayForEach(it, o)
	{
		size_t k = 0;
		while (k < n && strcmp(it->string, known[k]) != 0)
			k++;
		if (k == n) {
			char list[256] = "";
			size_t len = 0;
			for (size_t i = 0; i < n && len < sizeof list; i++)
				len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "",
				                        known[i]);
			return tl_err_set(err, TL_EPARSE, "protocol: %s.%s: unknown key (known: %s)", path,
			                  it->string, list);
		}
	}
	return 0;
}

static int get_num(double *out, const cJSON *o, const char *path, const char *key, double lo,
                   double hi, tl_err *err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (v == NULL)
		return 0;
	if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
		return tl_err_set(err, TL_EPARSE, "protocol: %s.%s: must be a number", path, key);
	if (!(v->valuedouble >= lo && v->valuedouble <= hi))
		return tl_err_set(err, TL_EINVAL, "protocol: %s.%s: %g: must be in %g..%g", path, key,
		                  v->valuedouble, lo, hi);
	*out = v->valuedouble;
	return 0;
}

static int get_i64(int64_t *out, const cJSON *o, const char *path, const char *key, int64_t lo,
                   int64_t hi, tl_err *err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (v == NULL)
		return 0;
	if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
		return tl_err_set(err, TL_EPARSE, "protocol: %s.%s: must be an integer", path, key);
	if (!(v->valuedouble >= (double)lo && v->valuedouble <= (double)hi))
		return tl_err_set(err, TL_EINVAL, "protocol: %s.%s: %.0f: must be in %lld..%lld", path,
		                  key, v->valuedouble, (long long)lo, (long long)hi);
	*out = (int64_t)v->valuedouble;
	return 0;
}

static int get_int(int *out, const cJSON *o, const char *path, const char *key, int lo, int hi,
                   tl_err *err)
{
	int64_t v = *out;
	int rc = get_i64(&v, o, path, key, lo, hi, err);
	*out = (int)v;
	return rc;
}

static int parse_obj(prof_protocol *p, const cJSON *j, tl_err *err)
{
	static const char *const top[] = {"warmup",  "repeats",       "max_repeats", "min_time_s",
	                                  "cv_threshold", "max_remeasure", "delay_s",  "thermal",
	                                  "threads", "pin",           "shapes"};
	static const char *const th[] = {"max_temp_c", "max_wait_s", "poll_s"};
	static const char *const sh[] = {"prompt", "gen", "depth"};
	int rc;
	if (!cJSON_IsObject(j))
		return tl_err_set(err, TL_EPARSE, "protocol: $: must be a JSON object");
	if ((rc = keys_check(j, "$", top, sizeof top / sizeof top[0], err)) < 0 ||
	    (rc = get_int(&p->warmup, j, "$", "warmup", 0, PROF_MAX_WARMUP, err)) < 0 ||
	    (rc = get_int(&p->repeats, j, "$", "repeats", 1, PROF_MAX_REPEATS, err)) < 0 ||
	    (rc = get_int(&p->max_repeats, j, "$", "max_repeats", 1, PROF_MAX_REPEATS, err)) < 0 ||
	    (rc = get_num(&p->min_time_s, j, "$", "min_time_s", 0, 86400, err)) < 0 ||
	    (rc = get_num(&p->cv_threshold, j, "$", "cv_threshold", 0, 10, err)) < 0 ||
	    (rc = get_int(&p->max_remeasure, j, "$", "max_remeasure", 0, PROF_MAX_REMEASURE, err)) <
	        0 ||
	    (rc = get_num(&p->delay_s, j, "$", "delay_s", 0, 3600, err)) < 0 ||
	    (rc = get_int(&p->threads, j, "$", "threads", 0, 256, err)) < 0)
		return rc;
	/* repeats raised above the default cap: the cap follows unless given */
	if (cJSON_GetObjectItemCaseSensitive(j, "max_repeats") == NULL && p->max_repeats < p->repeats)
		p->max_repeats = p->repeats;
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "thermal");
	if (t) {
		if (!cJSON_IsObject(t))
			return tl_err_set(err, TL_EPARSE, "protocol: $.thermal: must be an object");
		if ((rc = keys_check(t, "$.thermal", th, 3, err)) < 0 ||
		    (rc = get_num(&p->max_temp_c, t, "$.thermal", "max_temp_c", 0, 200, err)) < 0 ||
		    (rc = get_num(&p->max_wait_s, t, "$.thermal", "max_wait_s", 0, 86400, err)) < 0 ||
		    (rc = get_num(&p->poll_s, t, "$.thermal", "poll_s", 0.001, 3600, err)) < 0)
			return rc;
	}
	const cJSON *pin = cJSON_GetObjectItemCaseSensitive(j, "pin");
	if (pin) {
		if (!cJSON_IsString(pin))
			return tl_err_set(err, TL_EPARSE, "protocol: $.pin: must be a string (a run prefix "
			                  "such as \"taskset -c 2-3\")");
		if (strlen(pin->valuestring) >= sizeof p->pin)
			return tl_err_set(err, TL_EINVAL, "protocol: $.pin: longer than %zu characters",
			                  sizeof p->pin - 1);
		tl_strlcpy(p->pin, pin->valuestring, sizeof p->pin);
	}
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "shapes");
	if (s) {
		if (!cJSON_IsArray(s))
			return tl_err_set(err, TL_EPARSE, "protocol: $.shapes: must be an array of "
			                  "{prompt, gen, depth}");
		int n = cJSON_GetArraySize(s);
		if (n < 1 || n > PROF_MAX_SHAPES)
			return tl_err_set(err, TL_EINVAL, "protocol: $.shapes: %d entries: must be 1..%d",
			                  n, PROF_MAX_SHAPES);
		const cJSON *e;
		size_t i = 0;
		cJSON_ArrayForEach(e, s)
		{
			char path[32];
			snprintf(path, sizeof path, "$.shapes[%zu]", i);
			prof_shape *x = &p->shapes[i];
			*x = (prof_shape){512, 128, 0};
			if (!cJSON_IsObject(e))
				return tl_err_set(err, TL_EPARSE, "protocol: %s: must be an object", path);
			if ((rc = keys_check(e, path, sh, 3, err)) < 0 ||
			    (rc = get_i64(&x->prompt, e, path, "prompt", 1, 1LL << 24, err)) < 0 ||
			    (rc = get_i64(&x->gen, e, path, "gen", 1, 1LL << 24, err)) < 0 ||
			    (rc = get_i64(&x->depth, e, path, "depth", 0, 1LL << 34, err)) < 0)
				return rc;
			i++;
		}
		p->n_shapes = i;
	}
	return prof_protocol_check(p, err);
}

int prof_protocol_parse(prof_protocol *p, const char *json, tl_err *err)
{
	cJSON *j = cJSON_Parse(json);
	if (j == NULL) {
		const char *at = cJSON_GetErrorPtr();
		size_t off = at && at >= json ? (size_t)(at - json) : 0;
		return tl_err_set(err, TL_EPARSE, "protocol: not valid JSON (near byte %zu)", off);
	}
	prof_protocol tmp = *p;
	int rc = parse_obj(&tmp, j, err);
	cJSON_Delete(j);
	if (rc == 0)
		*p = tmp;
	return rc;
}

int prof_protocol_load(prof_protocol *p, const char *path, tl_err *err)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return tl_err_setsub(err, TL_EIO, errno, "protocol: %s: %s", path, strerror(errno));
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int rc = 0;
	for (;;) {
		if (len + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 8192;
			if (cap > (1u << 20)) {
				rc = tl_err_set(err, TL_EINVAL, "protocol: %s: larger than 1 MiB", path);
				break;
			}
			char *nb = realloc(buf, cap);
			if (nb == NULL) {
				rc = tl_err_set(err, TL_ENOMEM, "protocol: out of memory");
				break;
			}
			buf = nb;
		}
		size_t got = fread(buf + len, 1, cap - len - 1, f);
		len += got;
		if (got == 0) {
			if (ferror(f))
				rc = tl_err_setsub(err, TL_EIO, errno, "protocol: %s: read failed", path);
			break;
		}
	}
	fclose(f);
	if (rc == 0) {
		buf[len] = '\0';
		rc = prof_protocol_parse(p, buf, err);
		if (rc < 0)
			tl_err_prefix(err, "%s", path);
	}
	free(buf);
	return rc;
}

/* Shortest "%.Ng" that reads back as v. */
static void fmt_num(char *out, size_t n, double v)
{
	if (v == floor(v) && fabs(v) < 1e15) {
		snprintf(out, n, "%.0f", v);
		return;
	}
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(out, n, "%.*g", prec, v);
		if (strtod(out, NULL) == v)
			return;
	}
}

char *prof_protocol_json(const prof_protocol *p)
{
	char n[8][40];
	fmt_num(n[0], 40, p->min_time_s);
	fmt_num(n[1], 40, p->cv_threshold);
	fmt_num(n[2], 40, p->delay_s);
	fmt_num(n[3], 40, p->max_temp_c);
	fmt_num(n[4], 40, p->max_wait_s);
	fmt_num(n[5], 40, p->poll_s);
	/* the pin string, JSON-escaped (controls are refused by the check) */
	char pin[2 * PROF_PIN_MAX + 1];
	size_t k = 0;
	for (const char *c = p->pin; *c && k + 2 < sizeof pin; c++) {
		if (*c == '"' || *c == '\\')
			pin[k++] = '\\';
		pin[k++] = *c;
	}
	pin[k] = '\0';
	size_t cap = 1024 + sizeof pin + PROF_MAX_SHAPES * 96;
	char *s = malloc(cap);
	if (s == NULL)
		return NULL;
	int len = snprintf(s, cap,
	                   "{\"warmup\":%d,\"repeats\":%d,\"max_repeats\":%d,\"min_time_s\":%s,"
	                   "\"cv_threshold\":%s,\"max_remeasure\":%d,\"delay_s\":%s,"
	                   "\"thermal\":{\"max_temp_c\":%s,\"max_wait_s\":%s,\"poll_s\":%s},"
	                   "\"threads\":%d,\"pin\":\"%s\",\"shapes\":[",
	                   p->warmup, p->repeats, p->max_repeats, n[0], n[1], p->max_remeasure, n[2],
	                   n[3], n[4], n[5], p->threads, pin);
	for (size_t i = 0; i < p->n_shapes && len > 0 && (size_t)len < cap; i++)
		len += snprintf(s + len, cap - (size_t)len, "%s{\"prompt\":%lld,\"gen\":%lld,\"depth\":%lld}",
		                i ? "," : "", (long long)p->shapes[i].prompt,
		                (long long)p->shapes[i].gen, (long long)p->shapes[i].depth);
	if (len > 0 && (size_t)len + 3 < cap)
		snprintf(s + len, cap - (size_t)len, "]}");
	return s;
}

int prof_protocol_hash(const prof_protocol *p, char hex[65], tl_err *err)
{
	char *s = prof_protocol_json(p);
	if (s == NULL)
		return tl_err_set(err, TL_ENOMEM, "protocol: out of memory");
	tl_sha256_hex(s, strlen(s), hex);
	free(s);
	return 0;
}

/* ---- statistics ------------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

void prof_stats_compute(prof_stats *out, const double *v, size_t n)
{
	out->n = 0;
	out->median = out->p95 = out->min = out->max = out->mean = out->sd = out->cv = NAN;
	double *s = n ? malloc(n * sizeof *s) : NULL;
	if (s == NULL)
		return;
	size_t m = 0;
	for (size_t i = 0; i < n; i++)
		if (!isnan(v[i]))
			s[m++] = v[i];
	if (m == 0) {
		free(s);
		return;
	}
	qsort(s, m, sizeof *s, cmp_double);
	out->n = m;
	out->min = s[0];
	out->max = s[m - 1];
	out->median = m % 2 ? s[m / 2] : (s[m / 2 - 1] + s[m / 2]) / 2;
	/* nearest rank: ceil(0.95 m), computed in integers (19 m / 20 rounded up)
	 * so that m = 20 gives exactly rank 19 */
	size_t rank = (19 * m + 19) / 20;
	out->p95 = s[rank - 1];
	double sum = 0;
	for (size_t i = 0; i < m; i++)
		sum += s[i];
	out->mean = sum / (double)m;
	if (m >= 2) {
		double ss = 0; /* two-pass: no cancellation for large, tight values */
		for (size_t i = 0; i < m; i++)
			ss += (s[i] - out->mean) * (s[i] - out->mean);
		out->sd = sqrt(ss / (double)(m - 1));
		if (out->mean != 0)
			out->cv = out->sd / fabs(out->mean);
	}
	free(s);
}

/* ---- the loop ---------------------------------------------------------------------- */

static double clock_now(const prof_ops *o)
{
	if (o->now)
		return o->now(o->ctx);
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void do_sleep(const prof_ops *o, double s)
{
	if (!(s > 0))
		return;
	if (o->sleep) {
		o->sleep(o->ctx, s);
		return;
	}
	struct timespec ts = {(time_t)s, (long)((s - floor(s)) * 1e9)};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static double read_temp(const prof_ops *o)
{
	return o->temp ? o->temp(o->ctx) : NAN;
}

/* One run: delay, gate, run, temperature after. */
static int one_run(prof_sample *s, const prof_protocol *p, const prof_ops *o, bool first,
                   tl_err *err)
{
	memset(s, 0, sizeof *s);
	s->ttft_ms = s->prefill_tok_s = s->decode_ms_p50 = s->decode_ms_p95 = s->decode_tok_s = NAN;
	s->peak_rss_bytes = s->weight_bytes = s->cache_bytes = NAN;
	if (!first)
		do_sleep(o, p->delay_s);
	double t = read_temp(o);
	if (p->max_temp_c > 0 && !isnan(t) && t > p->max_temp_c) {
		double t0 = clock_now(o), waited = 0;
		while (t > p->max_temp_c && waited < p->max_wait_s) {
			double left = p->max_wait_s - waited;
			do_sleep(o, left < p->poll_s ? left : p->poll_s);
			waited = clock_now(o) - t0;
			t = read_temp(o);
			if (isnan(t))
				break; /* the thermometer went away: stop gating */
		}
		s->gate_wait_s = waited;
		s->gate_gave_up = !isnan(t) && t > p->max_temp_c;
	}
	s->temp_before_c = t;
	double t0 = clock_now(o);
	int rc = o->run(o->ctx, s, err);
	s->seconds = clock_now(o) - t0;
	if (rc < 0)
		return rc;
	s->temp_after_c = read_temp(o);
	return 0;
}

static void summarise(prof_result *r)
{
	size_t n = r->n - r->first;
	double *v = malloc((n ? n : 1) * sizeof *v);
	if (v == NULL)
		return;
#define STAT(field)                                              \
	do {                                                         \
		for (size_t i = 0; i < n; i++)                           \
			v[i] = r->samples[r->first + i].field;               \
		prof_stats_compute(&r->field, v, n);                     \
	} while (0)
	STAT(ttft_ms);
	STAT(prefill_tok_s);
	STAT(decode_ms_p50);
	STAT(decode_ms_p95);
	STAT(decode_tok_s);
	STAT(peak_rss_bytes);
#undef STAT
	free(v);
}

void prof_result_free(prof_result *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n; i++)
		free(r->samples[i].raw);
	free(r->samples);
	r->samples = NULL;
	r->n = 0;
}

int prof_measure(prof_result *out, const prof_protocol *p, const prof_ops *ops, tl_err *err)
{
	int rc;
	memset(out, 0, sizeof *out);
	if ((rc = prof_protocol_check(p, err)) < 0)
		return rc;
	if (ops == NULL || ops->run == NULL)
		return tl_err_set(err, TL_EINVAL, "measure: no run callback");
	/* every sample of every round fits: rounds * max_repeats */
	size_t cap = (size_t)(p->max_remeasure + 1) * (size_t)p->max_repeats;
	out->samples = calloc(cap, sizeof *out->samples);
	if (out->samples == NULL)
		return tl_err_set(err, TL_ENOMEM, "measure: out of memory");
	bool first = true;
	for (int w = 0; w < p->warmup; w++) {
		prof_sample s;
		rc = one_run(&s, p, ops, first, err);
		free(s.raw);
		first = false;
		out->gate_wait_s += s.gate_wait_s;
		out->gate_gave_up += s.gate_gave_up;
		if (rc < 0) {
			tl_err_prefix(err, "warm-up run %d", w + 1);
			return rc;
		}
		out->warmups++;
	}
	for (int round = 0;; round++) {
		out->first = out->n;
		double measured = 0;
		int k = 0;
		while (k < p->repeats || (measured < p->min_time_s && k < p->max_repeats)) {
			prof_sample *s = &out->samples[out->n];
			rc = one_run(s, p, ops, first, err);
			first = false;
			s->round = round;
			out->gate_wait_s += s->gate_wait_s;
			out->gate_gave_up += s->gate_gave_up;
			if (rc < 0) {
				free(s->raw);
				s->raw = NULL;
				tl_err_prefix(err, "round %d, run %d", round + 1, k + 1);
				return rc;
			}
			out->n++;
			measured += s->seconds;
			k++;
		}
		out->rounds = round + 1;
		out->remeasured = round;
		summarise(out);
		double cv = out->decode_ms_p50.cv;
		out->round_cv[round] = cv;
		out->cv_ok = !(p->cv_threshold > 0) || isnan(cv) || cv <= p->cv_threshold;
		if (out->cv_ok || round >= p->max_remeasure)
			break;
	}
	return 0;
}
