/*
 * evolve/config.c: search configs (docs/config.md). The config is parsed
 * strictly (unknown keys are errors: a misspelt "populaton" must not silently
 * fall back to a default), and stored with its space inline so a run can be
 * resumed from the database alone.
 */
#include "evolve.h"
#include "protocol.h"

#include "quality.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const analytic_names[] = {
	"params", "params_nonembed", "kv_bytes_per_token", "state_bytes", "cache_bytes",
	"flops_per_token", "flops_prefill_per_token", "flops_decode_per_token", NULL};
/* Device metrics: a name and its field of ev_measured (adding one is a row
 * here and a field there). */
static const struct {
	const char *name;
	size_t off;
} device_metrics[] = {
    {"ttft_ms", offsetof(ev_measured, ttft_ms)},
    {"decode_ms", offsetof(ev_measured, decode_ms)},
    {"peak_rss_mb", offsetof(ev_measured, peak_rss_mb)},
    {"prefill_tok_s", offsetof(ev_measured, prefill_tok_s)},
    {"decode_tok_s", offsetof(ev_measured, decode_tok_s)},
};

static bool is_device_metric(const char *base)
{
	for (size_t i = 0; i < sizeof device_metrics / sizeof device_metrics[0]; i++)
		if (strcmp(base, device_metrics[i].name) == 0)
			return true;
	return false;
}

double ev_device_value(const char *base, const ev_measured *x)
{
	for (size_t i = 0; i < sizeof device_metrics / sizeof device_metrics[0]; i++)
		if (strcmp(base, device_metrics[i].name) == 0)
			return *(const double *)(const void *)((const char *)x + device_metrics[i].off);
	return NAN;
}
#define METRIC_HELP                                                                         \
	"quality: val_bpb, val_loss, train_loss (train), mad_TASK, mad_mean (mad), any (command); " \
	"analytic: params, params_nonembed, kv_bytes_per_token, state_bytes, cache_bytes, "   \
	"flops_per_token, flops_prefill_per_token, flops_decode_per_token; per device: "       \
	"ttft_ms, decode_ms, peak_rss_mb, prefill_tok_s, decode_tok_s followed by @DEVICE"

double ev_analytic(const char *base, const genome_stats *s)
{
	if (!strcmp(base, "params"))
		return (double)s->params;
	if (!strcmp(base, "params_nonembed"))
		return (double)s->params_nonembed;
	if (!strcmp(base, "kv_bytes_per_token"))
		return (double)s->kv_bytes_per_token;
	if (!strcmp(base, "state_bytes"))
		return (double)s->state_bytes;
	if (!strcmp(base, "cache_bytes"))
		return (double)s->cache_bytes;
	if (!strcmp(base, "flops_per_token") || !strcmp(base, "flops_decode_per_token"))
		return s->flops_decode_per_token;
	if (!strcmp(base, "flops_prefill_per_token"))
		return s->flops_prefill_per_token;
	return NAN;
}

static bool in_list(const char *s, const char *const *list)
{
	for (int i = 0; list[i]; i++)
		if (!strcmp(s, list[i]))
			return true;
	return false;
}

static int parse_metric(ev_metric *m, const char *s, const ev_config *c, const char *path,
                        tl_err *err)
{
	memset(m, 0, sizeof *m);
	if (strlen(s) >= EV_METRIC_MAX)
		return tl_err_set(err, TL_EINVAL, "%s: %s: metric name longer than %d characters",
		                  c->source, path, EV_METRIC_MAX - 1);
	/* a name pattern: metric names reach the database, tables, SQL column
	 * names and HTML; letters, digits, _ . - and one @ before a device */
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '_' || *p == '.' || *p == '-' || (*p == '@' && p > s && !strchr(p + 1, '@'))))
			return tl_err_set(err, TL_EINVAL, "%s: %s: '%.40s': a metric name is letters, "
			                  "digits, '_', '.' and '-' (then @DEVICE for a device metric); "
			                  "rename it here and in the evaluator's output", c->source, path, s);
	tl_strlcpy(m->name, s, sizeof m->name);
	const char *at = strchr(s, '@');
	if (at) {
		memcpy(m->base, s, (size_t)(at - s));
		m->base[at - s] = '\0';
		tl_strlcpy(m->device, at + 1, sizeof m->device);
	} else {
		tl_strlcpy(m->base, s, sizeof m->base);
	}
	if (!at && in_list(m->base, analytic_names)) {
		m->analytic = true;
		return 0;
	}
	if (at && is_device_metric(m->base)) {
		for (int i = 0; i < c->n_dev; i++)
			if (!strcmp(c->devices[i], m->device))
				return 0;
		return tl_err_set(err, TL_EINVAL, "%s: %s: '%s': device '%s' is not in \"devices\" "
		                  "(add it there)", c->source, path, s, m->device);
	}
	if (!at && is_device_metric(m->base))
		return tl_err_set(err, TL_EINVAL, "%s: %s: '%s': a device metric needs @DEVICE, "
		                  "e.g. %s@local", c->source, path, s, s);
	if (!at) {
		const ev_quality *q = &c->quality;
		bool trainm = !strcmp(m->base, "val_bpb") || !strcmp(m->base, "val_loss") ||
		              !strcmp(m->base, "train_loss");
		bool madm = !strncmp(m->base, "mad_", 4);
		if (q->kind == EV_QUAL_TRAIN && trainm) {
			m->quality = true;
			return 0;
		}
		if (q->kind == EV_QUAL_MAD && madm) {
			int t = qual_mad_task_lookup(m->base + 4);
			if (!strcmp(m->base, "mad_mean") ||
			    (t >= 0 && (q->mad_tasks == 0 || (q->mad_tasks >> t & 1)))) {
				m->quality = true;
				return 0;
			}
			return tl_err_set(err, TL_EINVAL, "%s: %s: '%s': not a MAD task the quality "
			                  "evaluator runs (mad_recall, mad_fuzzy_recall, mad_noisy_recall, "
			                  "mad_selective_copy, mad_compression, mad_memorization, mad_mean; "
			                  "see quality.tasks)", c->source, path, s);
		}
		if (q->kind == EV_QUAL_COMMAND) {
			m->quality = true; /* whatever the command reports */
			return 0;
		}
		if (trainm || madm)
			return tl_err_set(err, TL_EINVAL, "%s: %s: '%s': a quality metric of the %s "
			                  "evaluator; set \"quality\": {\"evaluator\": \"%s\", ...}",
			                  c->source, path, s, trainm ? "train" : "mad",
			                  trainm ? "train" : "mad");
	}
	return tl_err_set(err, TL_EINVAL, "%s: %s: '%s': unknown metric (" METRIC_HELP ")",
	                  c->source, path, s);
}

/* Keys an object may hold; anything else is an error naming the path. */
static int only_keys(const cJSON *o, const char *const *keys, const ev_config *c,
                     const char *path, tl_err *err)
{
	const cJSON *k;
	cJSON_ArrayForEach(k, o) {
		if (!in_list(k->string, keys)) {
			char allowed[512] = "";
			for (int i = 0; keys[i]; i++) {
				strncat(allowed, keys[i], sizeof allowed - strlen(allowed) - 3);
				if (keys[i + 1])
					strncat(allowed, ", ", sizeof allowed - strlen(allowed) - 1);
			}
			return tl_err_set(err, TL_EINVAL, "%s: %s%s%s: unknown key (allowed: %s)", c->source,
			                  path, *path ? "." : "", k->string, allowed);
		}
	}
	return 0;
}

static int get_int(int *out, const cJSON *o, const char *key, int lo, int hi, int dflt,
                   const ev_config *c, const char *path, tl_err *err)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (v == NULL) {
		*out = dflt;
		return 0;
	}
	if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo ||
	    v->valuedouble > hi)
		return tl_err_set(err, TL_EINVAL, "%s: %s%s%s: must be an integer from %d to %d",
		                  c->source, path, *path ? "." : "", key, lo, hi);
	*out = (int)v->valuedouble;
	return 0;
}

static int parse_space(ev_config *c, cJSON *root, const char *base_dir, tl_err *err)
{
	cJSON *sp = cJSON_GetObjectItemCaseSensitive(root, "space");
	if (sp == NULL)
		return tl_err_set(err, TL_EINVAL, "%s: space: missing (a file name, or the space "
		                  "itself as an object, see docs/genome.md)", c->source);
	char *text = NULL;
	char src[1024];
	if (cJSON_IsString(sp)) {
		char path[2048];
		if (sp->valuestring[0] == '/' || base_dir == NULL || !*base_dir)
			snprintf(path, sizeof path, "%s", sp->valuestring);
		else
			snprintf(path, sizeof path, "%s/%s", base_dir, sp->valuestring);
		size_t n;
		if (tl_file_read(&text, &n, path, 0, err) < 0) {
			tl_err_prefix(err, "%s: space", c->source);
			return TL_EIO;
		}
		tl_strlcpy(src, path, sizeof src);
		/* inline the space so the stored config stands alone */
		cJSON *obj = genome_json_parse(text, src, err);
		if (obj == NULL) {
			free(text);
			return TL_EPARSE;
		}
		cJSON_ReplaceItemInObjectCaseSensitive(root, "space", obj);
	} else if (cJSON_IsObject(sp)) {
		text = cJSON_PrintUnformatted(sp);
		snprintf(src, sizeof src, "%s: space", c->source);
	} else {
		return tl_err_set(err, TL_EINVAL, "%s: space: must be a file name or an object",
		                  c->source);
	}
	if (text == NULL)
		return tl_err_set(err, TL_ENOMEM, "%s: out of memory", c->source);
	int rc = genome_space_parse(&c->space, text, src, err);
	free(text);
	return rc;
}

/* "canary": {"genome": FILE or genome text, "every": N, "max_drift": X}. A
 * file is read and its text inlined in the tree (the stored config stands
 * alone). */
static int parse_canary(ev_config *c, cJSON *v, const char *base_dir, tl_err *err)
{
	c->canary = NULL;
	c->canary_every = 5;
	c->canary_drift = 0.1;
	if (v == NULL)
		return 0;
	static const char *const ok[] = {"genome", "every", "max_drift", NULL};
	if (!cJSON_IsObject(v))
		return tl_err_set(err, TL_EINVAL, "%s: canary: must be an object", c->source);
	if (only_keys(v, ok, c, "canary", err) < 0)
		return TL_EINVAL;
	if (get_int(&c->canary_every, v, "every", 1, 1000000, 5, c, "canary", err) < 0)
		return TL_EINVAL;
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(v, "max_drift");
	if (d && (!cJSON_IsNumber(d) || d->valuedouble <= 0))
		return tl_err_set(err, TL_EINVAL, "%s: canary.max_drift: a relative change > 0 (0.1 "
		                  "is 10%%)", c->source);
	if (d)
		c->canary_drift = d->valuedouble;
	cJSON *g = cJSON_GetObjectItemCaseSensitive(v, "genome");
	if (!cJSON_IsString(g))
		return tl_err_set(err, TL_EINVAL, "%s: canary.genome: a genome file (relative to this "
		                  "file) or genome text", c->source);
	genome parsed;
	tl_err ge = TL_ERR_INIT;
	char *text = NULL;
	if (genome_parse(&parsed, g->valuestring, "canary.genome", &ge) < 0) {
		char path[2048];
		if (g->valuestring[0] == '/' || base_dir == NULL || !*base_dir)
			snprintf(path, sizeof path, "%s", g->valuestring);
		else
			snprintf(path, sizeof path, "%s/%s", base_dir, g->valuestring);
		tl_err_clear(&ge);
		if (genome_load(&parsed, path, &ge) < 0)
			return tl_err_set(err, TL_EINVAL, "%s: canary.genome: %s", c->source, ge.msg);
	}
	text = genome_to_text(&parsed);
	if (text == NULL)
		return tl_err_set(err, TL_ENOMEM, "%s: out of memory", c->source);
	cJSON_SetValuestring(g, text);
	c->canary = text;
	return 0;
}

/* "quality.fidelity": {"budgets": [B0, B1, ...], "promote": 0.33}. */
static int parse_fidelity(ev_config *c, const cJSON *f, tl_err *err)
{
	ev_quality *q = &c->quality;
	q->n_levels = 0;
	q->promote = 0.33;
	if (f == NULL)
		return 0;
	static const char *const ok[] = {"budgets", "promote", NULL};
	if (!cJSON_IsObject(f) || only_keys(f, ok, c, "quality.fidelity", err) < 0) {
		if (!tl_err_isset(err))
			tl_err_set(err, TL_EINVAL, "%s: quality.fidelity: an object {\"budgets\": [16384, "
			           "131072], \"promote\": 0.33}", c->source);
		return TL_EINVAL;
	}
	if (q->kind != EV_QUAL_TRAIN)
		return tl_err_set(err, TL_EINVAL, "%s: quality.fidelity: only with the train evaluator",
		                  c->source);
	if (q->tokens)
		return tl_err_set(err, TL_EINVAL, "%s: quality.tokens: not with quality.fidelity (its "
		                  "budgets are the tokens)", c->source);
	const cJSON *b = cJSON_GetObjectItemCaseSensitive(f, "budgets"), *x;
	int n = cJSON_IsArray(b) ? cJSON_GetArraySize(b) : 0;
	int64_t step = (int64_t)(q->batch ? q->batch : 8) * (q->seq ? q->seq : 256);
	if (n < 2 || n > EV_MAX_LEVELS)
		return tl_err_set(err, TL_EINVAL, "%s: quality.fidelity.budgets: 2 to %d token budgets, "
		                  "increasing", c->source, EV_MAX_LEVELS);
	cJSON_ArrayForEach(x, b)
	{
		double v = cJSON_IsNumber(x) ? x->valuedouble : -1;
		if (!(v >= 2.0 * (double)step && v <= 1e12 && v == floor(v)) ||
		    (q->n_levels > 0 && v <= (double)q->budgets[q->n_levels - 1]))
			return tl_err_set(err, TL_EINVAL, "%s: quality.fidelity.budgets[%d]: token budgets, "
			                  "increasing, each at least two steps (%lld tokens)", c->source,
			                  q->n_levels, (long long)(2 * step));
		q->budgets[q->n_levels++] = (int64_t)v;
	}
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(f, "promote");
	if (p) {
		if (!cJSON_IsNumber(p) || !(p->valuedouble > 0 && p->valuedouble <= 1))
			return tl_err_set(err, TL_EINVAL, "%s: quality.fidelity.promote: a share in (0, 1]",
			                  c->source);
		q->promote = p->valuedouble;
	}
	return 0;
}

/* "quality": the evaluator and its settings (docs/config.md). A relative
 * corpus or command path is made absolute (against the config's directory)
 * in the tree, so the stored config works from anywhere. */
static int parse_quality(ev_config *c, cJSON *v, const char *base_dir, tl_err *err)
{
	ev_quality *q = &c->quality;
	memset(q, 0, sizeof *q);
	q->seed = 1;
	q->timeout_s = 3600;
	if (v == NULL)
		return 0;
	static const char *const ok[] = {"evaluator", "width", "tokens", "val_tokens", "batch", "seq", "threads",
	                                 "epochs", "seed", "lr", "corpus", "tasks", "command",
	                                 "timeout_s", "settings", "fidelity", NULL};
	if (!cJSON_IsObject(v))
		return tl_err_set(err, TL_EINVAL, "%s: quality: must be an object", c->source);
	if (only_keys(v, ok, c, "quality", err) < 0)
		return TL_EINVAL;
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(v, "evaluator");
	const char *kinds[] = {"analytic", "train", "mad", "command"};
	int k = -1;
	for (int i = 0; i < 4; i++)
		if (cJSON_IsString(e) && !strcmp(e->valuestring, kinds[i]))
			k = i;
	if (k < 0)
		return tl_err_set(err, TL_EINVAL, "%s: quality.evaluator: analytic, train, mad or "
		                  "command", c->source);
	q->kind = (enum ev_qual_kind)k;
	int seed = 1, tok = 0, vtok = 0;
	if (get_int(&q->width, v, "width", 0, 65536, 0, c, "quality", err) < 0 ||
	    get_int(&tok, v, "tokens", 0, 2000000000, 0, c, "quality", err) < 0 ||
	    get_int(&vtok, v, "val_tokens", 0, 2000000000, 0, c, "quality", err) < 0 ||
	    get_int(&q->batch, v, "batch", 0, 4096, 0, c, "quality", err) < 0 ||
	    get_int(&q->seq, v, "seq", 0, 1 << 16, 0, c, "quality", err) < 0 ||
	    get_int(&q->threads, v, "threads", 0, 256, 2, c, "quality", err) < 0 ||
	    get_int(&q->epochs, v, "epochs", 0, 100000, 0, c, "quality", err) < 0 ||
	    get_int(&seed, v, "seed", 0, 2000000000, 1, c, "quality", err) < 0 ||
	    get_int(&q->timeout_s, v, "timeout_s", 1, 30 * 86400, 3600, c, "quality", err) < 0)
		return TL_EINVAL;
	q->tokens = tok;
	q->val_tokens = vtok;
	q->seed = (uint64_t)seed;
	const cJSON *lr = cJSON_GetObjectItemCaseSensitive(v, "lr");
	if (lr && (!cJSON_IsNumber(lr) || lr->valuedouble <= 0 || lr->valuedouble > 1))
		return tl_err_set(err, TL_EINVAL, "%s: quality.lr: a learning rate in (0, 1]", c->source);
	q->lr = lr ? lr->valuedouble : 0;
	cJSON *corpus = cJSON_GetObjectItemCaseSensitive(v, "corpus");
	if (q->kind == EV_QUAL_TRAIN) {
		if (!cJSON_IsString(corpus))
			return tl_err_set(err, TL_EINVAL, "%s: quality.corpus: the training text (e.g. "
			                  "\"../data/tinyshakespeare.txt\", relative to this file)", c->source);
		char path[2048], real[4096];
		if (corpus->valuestring[0] == '/' || base_dir == NULL || !*base_dir)
			snprintf(path, sizeof path, "%s", corpus->valuestring);
		else
			snprintf(path, sizeof path, "%s/%s", base_dir, corpus->valuestring);
		if (realpath(path, real) == NULL)
			return tl_err_setsub(err, TL_EIO, errno, "%s: quality.corpus: %s: %s", c->source,
			                     path, strerror(errno));
		tl_strlcpy(q->corpus, real, sizeof q->corpus);
		cJSON_SetValuestring(corpus, real);
	}
	const cJSON *tasks = cJSON_GetObjectItemCaseSensitive(v, "tasks");
	cJSON *t;
	if (tasks) {
		if (!cJSON_IsArray(tasks))
			return tl_err_set(err, TL_EINVAL, "%s: quality.tasks: an array of MAD task names",
			                  c->source);
		int i = 0;
		cJSON_ArrayForEach(t, tasks) {
			int id = cJSON_IsString(t) ? qual_mad_task_lookup(t->valuestring) : -1;
			if (id < 0)
				return tl_err_set(err, TL_EINVAL, "%s: quality.tasks[%d]: not a MAD task (recall, "
				                  "fuzzy_recall, noisy_recall, selective_copy, compression, "
				                  "memorization)", c->source, i);
			q->mad_tasks |= 1u << id;
			i++;
		}
	}
	cJSON *cmd = cJSON_GetObjectItemCaseSensitive(v, "command");
	if (q->kind == EV_QUAL_COMMAND) {
		if (!cJSON_IsArray(cmd) || cJSON_GetArraySize(cmd) < 1 ||
		    cJSON_GetArraySize(cmd) > EV_CMD_MAX_ARGS)
			return tl_err_set(err, TL_EINVAL, "%s: quality.command: the evaluator command as an "
			                  "array of strings, e.g. [\"examples/evaluators/slurm-eval.sh\"]",
			                  c->source);
		int i = 0;
		cJSON_ArrayForEach(t, cmd) {
			if (!cJSON_IsString(t))
				return tl_err_set(err, TL_EINVAL, "%s: quality.command[%d]: a string", c->source, i);
			char path[2048], real[4096];
			const char *arg = t->valuestring;
			/* a relative path to an existing file is made absolute */
			if (i == 0 && strchr(arg, '/') && arg[0] != '/' && base_dir && *base_dir) {
				snprintf(path, sizeof path, "%s/%s", base_dir, arg);
				if (realpath(path, real) != NULL) {
					cJSON_SetValuestring(t, real);
					arg = t->valuestring;
				}
			}
			size_t n = strlen(arg);
			q->argv[i] = malloc(n + 1);
			if (q->argv[i] == NULL)
				return tl_err_set(err, TL_ENOMEM, "%s: out of memory", c->source);
			memcpy(q->argv[i], arg, n + 1);
			i++;
		}
	}
	if (parse_fidelity(c, cJSON_GetObjectItemCaseSensitive(v, "fidelity"), err) < 0)
		return TL_EINVAL;
	q->settings = cJSON_PrintUnformatted(v);
	if (q->settings == NULL)
		return tl_err_set(err, TL_ENOMEM, "%s: out of memory", c->source);
	tl_sha256_hex(q->settings, strlen(q->settings), q->settings_hash);
	for (int l = 0; l < q->n_levels; l++) {
		size_t n = strlen(q->settings) + 48;
		char *lt = malloc(n);
		if (lt == NULL)
			return tl_err_set(err, TL_ENOMEM, "%s: out of memory", c->source);
		snprintf(lt, n, "%s\nlevel-tokens=%lld", q->settings, (long long)q->budgets[l]);
		tl_sha256_hex(lt, strlen(lt), q->level_hash[l]);
		free(lt);
	}
	return 0;
}

/* "evaluation": "measure" | "predict" | {"mode": "predict-measure",
 * "measure_top": K} (also "measure" and "predict" as the object's mode). */
static int parse_evaluation(ev_config *c, const cJSON *v, const char *source, tl_err *err)
{
	const char *mode = "measure";
	c->bench.predict = EV_EVAL_MEASURE;
	c->bench.measure_top = 0;
	if (v == NULL)
		return 0;
	if (cJSON_IsObject(v)) {
		for (const cJSON *k = v->child; k; k = k->next)
			if (strcmp(k->string, "mode") && strcmp(k->string, "measure_top"))
				return tl_err_set(err, TL_EINVAL, "%s: evaluation.%s: unknown key (mode, "
				                  "measure_top)", source, k->string);
		const cJSON *m = cJSON_GetObjectItemCaseSensitive(v, "mode");
		if (!cJSON_IsString(m))
			return tl_err_set(err, TL_EINVAL, "%s: evaluation.mode: missing or not a string "
			                  "(\"measure\", \"predict\" or \"predict-measure\")", source);
		mode = m->valuestring;
		const cJSON *k = cJSON_GetObjectItemCaseSensitive(v, "measure_top");
		if (strcmp(mode, "predict-measure") == 0) {
			if (!cJSON_IsNumber(k) || k->valuedouble != (double)(int)k->valuedouble ||
			    k->valuedouble < 1 || k->valuedouble > 100000)
				return tl_err_set(err, TL_EINVAL, "%s: evaluation.measure_top: %s: the "
				                  "candidates of a generation measured for real, an integer "
				                  "1..100000", source, k ? "not an integer in range" : "missing");
			c->bench.measure_top = (int)k->valuedouble;
		} else if (k) {
			return tl_err_set(err, TL_EINVAL, "%s: evaluation.measure_top: only with mode "
			                  "\"predict-measure\"", source);
		}
	} else if (cJSON_IsString(v)) {
		mode = v->valuestring;
	} else {
		mode = NULL;
	}
	if (mode && !strcmp(mode, "measure"))
		c->bench.predict = EV_EVAL_MEASURE;
	else if (mode && !strcmp(mode, "predict"))
		c->bench.predict = EV_EVAL_PREDICT;
	else if (mode && !strcmp(mode, "predict-measure") && c->bench.measure_top > 0)
		c->bench.predict = EV_EVAL_PREDICT_MEASURE;
	else
		return tl_err_set(err, TL_EINVAL, "%s: evaluation: %s%s%s: not \"measure\" (every "
		                  "candidate on its devices), \"predict\" (from the devices' operator "
		                  "tables: tailor device profile-ops) or {\"mode\": \"predict-measure\", "
		                  "\"measure_top\": K} (predict all, measure the K best)", source,
		                  mode ? "\"" : "", mode ? mode : "not a string or object",
		                  mode ? "\"" : "");
	return 0;
}

int ev_config_parse(ev_config *c, const char *json, const char *source, const char *base_dir,
                    tl_err *err)
{
	memset(c, 0, sizeof *c);
	tl_strlcpy(c->source, source, sizeof c->source);
	cJSON *root = genome_json_parse(json, source, err);
	if (root == NULL)
		return TL_EPARSE;
	int rc = TL_EINVAL;
	if (!cJSON_IsObject(root)) {
		tl_err_set(err, TL_EINVAL, "%s: expected a JSON object", source);
		goto out;
	}
	static const char *const top[] = {"name", "space", "mode", "population", "generations",
	                                  "seed", "crossover", "objectives", "constraints",
	                                  "devices", "bench", "evaluation", "quality", "canary",
	                                  NULL};
	if (only_keys(root, top, c, "", err) < 0)
		goto out;
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "name");
	if (v && !cJSON_IsString(v)) {
		tl_err_set(err, TL_EINVAL, "%s: name: must be a string", source);
		goto out;
	}
	tl_strlcpy(c->name, v ? v->valuestring : "", sizeof c->name);
	v = cJSON_GetObjectItemCaseSensitive(root, "mode");
	if (v && !(cJSON_IsString(v) && (!strcmp(v->valuestring, "nsga2") ||
	                                 !strcmp(v->valuestring, "random")))) {
		tl_err_set(err, TL_EINVAL, "%s: mode: must be \"nsga2\" or \"random\"", source);
		goto out;
	}
	c->mode = v && !strcmp(v->valuestring, "random") ? EV_RANDOM : EV_NSGA2;
	if (get_int(&c->population, root, "population", 2, 100000, 16, c, "", err) < 0 ||
	    get_int(&c->generations, root, "generations", 1, 1000000, 10, c, "", err) < 0)
		goto out;
	v = cJSON_GetObjectItemCaseSensitive(root, "seed");
	c->seed = 1;
	if (v) {
		if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble != floor(v->valuedouble) ||
		    v->valuedouble > 9007199254740992.0) {
			tl_err_set(err, TL_EINVAL, "%s: seed: must be an integer from 0 to 2^53", source);
			goto out;
		}
		c->seed = (uint64_t)v->valuedouble;
	}
	v = cJSON_GetObjectItemCaseSensitive(root, "crossover");
	c->crossover = 0.9;
	if (v) {
		if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1) {
			tl_err_set(err, TL_EINVAL, "%s: crossover: a probability from 0 to 1", source);
			goto out;
		}
		c->crossover = v->valuedouble;
	}
	/* devices before metrics (metrics name them) */
	v = cJSON_GetObjectItemCaseSensitive(root, "devices");
	if (v) {
		if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) > EV_MAX_DEV) {
			tl_err_set(err, TL_EINVAL, "%s: devices: an array of at most %d device names",
			           source, EV_MAX_DEV);
			goto out;
		}
		const cJSON *d;
		cJSON_ArrayForEach(d, v) {
			if (!cJSON_IsString(d) || !*d->valuestring ||
			    strlen(d->valuestring) >= EV_METRIC_MAX) {
				tl_err_set(err, TL_EINVAL, "%s: devices[%d]: a device name (see 'tailor device "
				           "list')", source, c->n_dev);
				goto out;
			}
			tl_strlcpy(c->devices[c->n_dev++], d->valuestring, EV_METRIC_MAX);
		}
	}
	if (parse_quality(c, cJSON_GetObjectItemCaseSensitive(root, "quality"), base_dir, err) < 0)
		goto out;
	/* objectives */
	v = cJSON_GetObjectItemCaseSensitive(root, "objectives");
	if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) < 1 || cJSON_GetArraySize(v) > EV_MAX_OBJ) {
		tl_err_set(err, TL_EINVAL, "%s: objectives: an array of 1 to %d objects "
		           "{\"metric\": NAME, \"direction\": \"min\"|\"max\"}", source, EV_MAX_OBJ);
		goto out;
	}
	const cJSON *o;
	cJSON_ArrayForEach(o, v) {
		char path[64];
		snprintf(path, sizeof path, "objectives[%d]", c->n_obj);
		static const char *const ok[] = {"metric", "direction", "reference", NULL};
		if (!cJSON_IsObject(o)) {
			tl_err_set(err, TL_EINVAL, "%s: %s: must be an object", source, path);
			goto out;
		}
		if (only_keys(o, ok, c, path, err) < 0)
			goto out;
		const cJSON *mt = cJSON_GetObjectItemCaseSensitive(o, "metric");
		const cJSON *dir = cJSON_GetObjectItemCaseSensitive(o, "direction");
		const cJSON *ref = cJSON_GetObjectItemCaseSensitive(o, "reference");
		ev_objective *ob = &c->obj[c->n_obj];
		char p2[96];
		snprintf(p2, sizeof p2, "%s.metric", path);
		if (!cJSON_IsString(mt)) {
			tl_err_set(err, TL_EINVAL, "%s: %s: missing or not a string (" METRIC_HELP ")",
			           source, p2);
			goto out;
		}
		if (parse_metric(&ob->m, mt->valuestring, c, p2, err) < 0)
			goto out;
		if (dir && !(cJSON_IsString(dir) && (!strcmp(dir->valuestring, "min") ||
		                                     !strcmp(dir->valuestring, "max")))) {
			tl_err_set(err, TL_EINVAL, "%s: %s.direction: \"min\" or \"max\"", source, path);
			goto out;
		}
		ob->maximize = dir && !strcmp(dir->valuestring, "max");
		ob->ref = NAN;
		if (ref) {
			if (!cJSON_IsNumber(ref)) {
				tl_err_set(err, TL_EINVAL, "%s: %s.reference: a number (the hypervolume's "
				           "reference value of this objective)", source, path);
				goto out;
			}
			ob->ref = ref->valuedouble;
		}
		for (int i = 0; i < c->n_obj; i++)
			if (!strcmp(c->obj[i].m.name, ob->m.name)) {
				tl_err_set(err, TL_EINVAL, "%s: %s: '%s' is already objective %d", source, p2,
				           ob->m.name, i);
				goto out;
			}
		c->n_obj++;
	}
	/* constraints */
	v = cJSON_GetObjectItemCaseSensitive(root, "constraints");
	if (v) {
		if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) > EV_MAX_CON) {
			tl_err_set(err, TL_EINVAL, "%s: constraints: an array of at most %d objects "
			           "{\"metric\": NAME, \"max\": X, \"min\": Y}", source, EV_MAX_CON);
			goto out;
		}
		cJSON_ArrayForEach(o, v) {
			char path[64], p2[96];
			snprintf(path, sizeof path, "constraints[%d]", c->n_con);
			static const char *const ok[] = {"metric", "max", "min", NULL};
			if (!cJSON_IsObject(o)) {
				tl_err_set(err, TL_EINVAL, "%s: %s: must be an object", source, path);
				goto out;
			}
			if (only_keys(o, ok, c, path, err) < 0)
				goto out;
			ev_constraint *cn = &c->con[c->n_con];
			const cJSON *mt = cJSON_GetObjectItemCaseSensitive(o, "metric");
			const cJSON *mx = cJSON_GetObjectItemCaseSensitive(o, "max");
			const cJSON *mn = cJSON_GetObjectItemCaseSensitive(o, "min");
			snprintf(p2, sizeof p2, "%s.metric", path);
			if (!cJSON_IsString(mt)) {
				tl_err_set(err, TL_EINVAL, "%s: %s: missing or not a string", source, p2);
				goto out;
			}
			if (parse_metric(&cn->m, mt->valuestring, c, p2, err) < 0)
				goto out;
			if ((mx && !cJSON_IsNumber(mx)) || (mn && !cJSON_IsNumber(mn)) || (!mx && !mn)) {
				tl_err_set(err, TL_EINVAL, "%s: %s: give \"max\" and/or \"min\" as numbers",
				           source, path);
				goto out;
			}
			cn->max = mx ? mx->valuedouble : NAN;
			cn->min = mn ? mn->valuedouble : NAN;
			c->n_con++;
		}
	}
	/* bench settings of device metrics */
	c->bench = (ev_bench){64, 16, 0, 2, 1, "q4_0", 600.0, "", 0, 0, "", 600.0};
	v = cJSON_GetObjectItemCaseSensitive(root, "bench");
	if (v) {
		static const char *const ok[] = {"prompt", "gen", "depth", "threads", "repeat", "quant",
		                                 "timeout_s", "device_wait_s", "protocol", NULL};
		if (!cJSON_IsObject(v) || only_keys(v, ok, c, "bench", err) < 0) {
			if (!tl_err_isset(err))
				tl_err_set(err, TL_EINVAL, "%s: bench: must be an object", source);
			goto out;
		}
		if (get_int(&c->bench.prompt, v, "prompt", 1, 1 << 20, 64, c, "bench", err) < 0 ||
		    get_int(&c->bench.gen, v, "gen", 1, 1 << 20, 16, c, "bench", err) < 0 ||
		    get_int(&c->bench.depth, v, "depth", 0, 1 << 24, 0, c, "bench", err) < 0 ||
		    get_int(&c->bench.threads, v, "threads", 1, 256, 2, c, "bench", err) < 0 ||
		    get_int(&c->bench.repeat, v, "repeat", 1, 100, 1, c, "bench", err) < 0)
			goto out;
		const cJSON *q = cJSON_GetObjectItemCaseSensitive(v, "quant");
		if (q) {
			if (!cJSON_IsString(q) || !(in_list(q->valuestring, (const char *const[]){
			                                "q4_0", "q8_0", "f32", NULL}))) {
				tl_err_set(err, TL_EINVAL, "%s: bench.quant: q4_0, q8_0 or f32", source);
				goto out;
			}
			tl_strlcpy(c->bench.quant, q->valuestring, sizeof c->bench.quant);
		}
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(v, "timeout_s");
		if (t) {
			if (!cJSON_IsNumber(t) || t->valuedouble <= 0) {
				tl_err_set(err, TL_EINVAL, "%s: bench.timeout_s: seconds, > 0", source);
				goto out;
			}
			c->bench.timeout_s = t->valuedouble;
		}
		const cJSON *w = cJSON_GetObjectItemCaseSensitive(v, "device_wait_s");
		if (w) {
			if (!cJSON_IsNumber(w) || !(w->valuedouble >= 0 && w->valuedouble <= 7 * 86400)) {
				tl_err_set(err, TL_EINVAL,
				           "%s: bench.device_wait_s: seconds, 0 (stop at once) to 604800",
				           source);
				goto out;
			}
			c->bench.device_wait_s = w->valuedouble;
		}
		const cJSON *pr = cJSON_GetObjectItemCaseSensitive(v, "protocol");
		if (pr) {
			prof_protocol proto;
			char *text = cJSON_IsObject(pr) ? cJSON_PrintUnformatted(pr) : NULL;
			prof_protocol_init(&proto);
			if (text == NULL || prof_protocol_parse(&proto, text, err) < 0 ||
			    strlen(text) >= sizeof c->bench.protocol) {
				if (!tl_err_isset(err))
					tl_err_set(err, TL_EINVAL, "%s: bench.protocol: %s", source,
					           text ? "longer than 2047 characters"
					                : "must be an object (docs/devices.md, Measurement "
					                  "protocol)");
				else
					tl_err_prefix(err, "%s: bench", source);
				free(text);
				goto out;
			}
			tl_strlcpy(c->bench.protocol, text, sizeof c->bench.protocol);
			free(text);
		}
	}
	v = cJSON_GetObjectItemCaseSensitive(root, "evaluation");
	if (parse_evaluation(c, v, source, err) < 0)
		goto out;
	if (parse_canary(c, cJSON_GetObjectItemCaseSensitive(root, "canary"), base_dir, err) < 0)
		goto out;
	if (parse_space(c, root, base_dir, err) < 0)
		goto out;
	tl_strlcpy(c->bench.space_hash, genome_space_hash(c->space), sizeof c->bench.space_hash);
	c->json = cJSON_PrintUnformatted(root);
	if (c->json == NULL) {
		tl_err_set(err, TL_ENOMEM, "%s: out of memory", source);
		goto out;
	}
	tl_sha256_hex(c->json, strlen(c->json), c->hash);
	rc = 0;
out:
	cJSON_Delete(root);
	if (rc < 0)
		ev_config_free(c);
	return rc;
}

int ev_config_load(ev_config *c, const char *path, tl_err *err)
{
	char *text = NULL;
	size_t n;
	memset(c, 0, sizeof *c);
	if (tl_file_read(&text, &n, path, 0, err) < 0)
		return TL_EIO;
	char dir[1024];
	tl_strlcpy(dir, path, sizeof dir);
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	else
		strcpy(dir, ".");
	int rc = ev_config_parse(c, text, path, dir, err);
	free(text);
	return rc;
}

void ev_config_free(ev_config *c)
{
	free(c->canary);
	c->canary = NULL;
	for (int i = 0; i < EV_CMD_MAX_ARGS; i++) {
		free(c->quality.argv[i]);
		c->quality.argv[i] = NULL;
	}
	cJSON_free(c->quality.settings);
	c->quality.settings = NULL;
	genome_space_free(c->space);
	c->space = NULL;
	cJSON_free(c->json);
	c->json = NULL;
}
