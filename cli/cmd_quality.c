/*
 * cli/cmd_quality.c: `tailor quality`, the trust in the quality signal.
 *   fidelity  train genomes at a ladder of budgets (and seeds) and say how
 *             well the cheap budgets rank them (quality/fidelity.c); the
 *             table printed, every training and the study stored;
 *   ckpt      list or clean the training checkpoints (quality/ckpt.c).
 */
#include "cli.h"
#include "db.h"
#include "db_runs.h"
#include "genome.h"
#include "quality.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void quality_help(FILE *f)
{
	fprintf(f,
	        "usage: tailor quality fidelity (--samples K --space FILE | --run ID [--samples K])\n"
	        "                               --budgets N,N,... [options]\n"
	        "       tailor quality ckpt (list | clean [--older-than DAYS])\n"
	        "\n"
	        "fidelity: how far a cheap quality signal can be trusted. Every genome is\n"
	        "trained (the train evaluator's byte-level LM, a warm-up/stable/decay schedule)\n"
	        "at each budget, one training continued from checkpoints so the ladder costs\n"
	        "about its largest budget, and again at the lowest budget with other seeds.\n"
	        "Printed: val_bpb per genome and budget, the seed-noise floor (median absolute\n"
	        "paired difference, and sigma), each budget's spread and spread / noise,\n"
	        "Kendall's tau-b and Spearman's rho between every two budgets with 95%%\n"
	        "bootstrap intervals over genomes, and the first budget whose tau against the\n"
	        "highest reaches 0.8. Each training is stored in the quality table and the\n"
	        "study as an event (kind quality.fidelity; of run ID with --run), which\n"
	        "'tailor report' draws.\n"
	        "\n"
	        "  --samples K         genomes drawn from --space (seeded by --seed); with --run:\n"
	        "                      at most K of the run's evaluated genomes, evenly spread\n"
	        "                      (default 12)\n"
	        "  --space FILE        the search space to draw from\n"
	        "  --run ID            the genomes of run ID in the results database (--db)\n"
	        "  --frontier          with --run: only its frontier (the newest ranked\n"
	        "                      generation's feasible first front)\n"
	        "  --budgets LIST      training tokens, increasing, 2 to %d of them\n"
	        "  --seeds S           trainings per genome at the lowest budget (default 2)\n"
	        "  --width W           proxy width (default 64)\n"
	        "  --batch B, --seq L  sequences per step and their length (default 8, 64)\n"
	        "  --lr X              peak learning rate (default 0.002; floor X/10)\n"
	        "  --warmup STEPS      warm-up steps (default 5%% of the lowest budget's steps)\n"
	        "  --decay F           the decay's share of each budget (default 0.2)\n"
	        "  --val-tokens N      held-out tokens scored (default 8192)\n"
	        "  --corpus FILE       training text (default data/tinyshakespeare.txt)\n"
	        "  --threads N         trainer threads (default 2)\n"
	        "  --seed S            first training seed, and the draw's (default 1)\n"
	        "  --resamples N       bootstrap resamples (default 1000)\n"
	        "  --json              print the study as one JSON object\n"
	        "  -h, --help          this help\n"
	        "\n"
	        "ckpt: checkpoints live in $TAILOR_CACHE/ckpt (default ~/.cache/tailor/ckpt),\n"
	        "named by the genome, the trainer settings and the step; 'list' counts them,\n"
	        "'clean' removes them (those older than DAYS days with --older-than).\n",
	        QUAL_FIDELITY_MAX_BUDGETS);
}

static int parse_budgets(qual_fidelity_cfg *c, const char *list)
{
	char buf[512];
	tl_strlcpy(buf, list, sizeof buf);
	c->n_budgets = 0;
	char *save = NULL;
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		char *end;
		long long v = strtoll(t, &end, 10);
		if (end == t || *end || v < 1 || c->n_budgets == QUAL_FIDELITY_MAX_BUDGETS)
			return -1;
		if (c->n_budgets > 0 && v <= c->budgets[c->n_budgets - 1])
			return -1;
		c->budgets[c->n_budgets++] = v;
	}
	return c->n_budgets >= 2 ? 0 : -1;
}

/* ---- the study's genomes ----------------------------------------------------------- */

static int genomes_sampled(genome **out, int k, const char *space_path, uint64_t seed,
                           tl_err *err)
{
	genome_space *sp = NULL;
	int rc = genome_space_load(&sp, space_path, err);
	if (rc < 0)
		return rc;
	genome *g = calloc((size_t)k, sizeof *g);
	char(*seen)[65] = calloc((size_t)k, sizeof *seen);
	if (g == NULL || seen == NULL) {
		rc = tl_err_set(err, TL_ENOMEM, "quality fidelity: out of memory");
		goto out;
	}
	tl_rng rng;
	tl_rng_seed(&rng, seed, 4242);
	int n = 0;
	for (int tries = 0; n < k && tries < 100 * k; tries++) {
		if ((rc = genome_sample(&g[n], sp, &rng, err)) < 0)
			goto out;
		char h[65];
		if ((rc = genome_hash(&g[n], h, err)) < 0)
			goto out;
		bool dup = false;
		for (int j = 0; j < n && !dup; j++)
			dup = !strcmp(seen[j], h);
		if (!dup)
			memcpy(seen[n++], h, 65);
	}
	if (n < k)
		rc = tl_err_set(err, TL_EINVAL, "quality fidelity: space %s: only %d distinct genomes "
		                "in %d draws (ask fewer --samples)", space_path, n, 100 * k);
out:
	genome_space_free(sp);
	free(seen);
	if (rc < 0) {
		free(g);
		g = NULL;
	}
	*out = g;
	return rc;
}

/* At most k of the run's evaluated genomes, distinct, evenly spread over
 * the order they were evaluated in. */
static int genomes_of_run(genome **out, int *k, db_conn *db, int64_t run_id, bool frontier,
                          tl_err *err)
{
	db_candidate *c = NULL;
	size_t nc = 0;
	*out = NULL;
	int rc = db_candidates_all(db, run_id, &c, &nc, err);
	if (rc < 0)
		return rc;
	size_t *pick = calloc(nc ? nc : 1, sizeof *pick), m = 0;
	genome *g = NULL;
	if (pick == NULL) {
		rc = tl_err_set(err, TL_ENOMEM, "quality fidelity: out of memory");
		goto out;
	}
	int64_t last = -1; /* frontier: the newest ranked generation's first front */
	for (size_t i = 0; i < nc; i++)
		if (c[i].rank >= 0 && c[i].generation > last)
			last = c[i].generation;
	for (size_t i = 0; i < nc; i++) {
		if (strcmp(c[i].status, "done") || c[i].text == NULL)
			continue;
		if (frontier && (c[i].generation != last || c[i].rank != 0 || c[i].feasible != 1))
			continue;
		bool dup = false;
		for (size_t j = 0; j < m && !dup; j++)
			dup = !strcmp(c[pick[j]].genome_hash, c[i].genome_hash);
		if (!dup)
			pick[m++] = i;
	}
	if (m < 3) {
		rc = tl_err_set(err, TL_EINVAL, "quality fidelity: run %lld has %zu %s; a study needs "
		                "at least 3", (long long)run_id, m,
		                frontier ? "frontier genomes" : "evaluated genomes");
		goto out;
	}
	int n = *k < (int)m ? *k : (int)m;
	g = calloc((size_t)n, sizeof *g);
	if (g == NULL) {
		rc = tl_err_set(err, TL_ENOMEM, "quality fidelity: out of memory");
		goto out;
	}
	for (int i = 0; i < n; i++) {
		size_t at = pick[(size_t)((double)i * (double)m / n)];
		if ((rc = genome_parse(&g[i], c[at].text, "run genome", err)) < 0)
			goto out;
	}
	*k = n;
out:
	db_candidates_free(c, nc);
	free(pick);
	if (rc < 0)
		free(g);
	else
		*out = g;
	return rc;
}

/* ---- progress and storage ---------------------------------------------------------- */

typedef struct study {
	bool tty;
	int n;
	const genome *gs;
	db_conn *db;
	int64_t run_id;
	double last_print;
} study;

static void on_progress(void *ud, int genome_i, int budget, int seed, int64_t done,
                        int64_t total, double seconds)
{
	study *s = ud;
	double now = tl_now_s();
	if (now - s->last_print < (s->tty ? 0.5 : 30.0))
		return;
	s->last_print = now;
	double eta = done > 0 ? seconds * (double)(total - done) / (double)done : NAN;
	char e[32] = "?";
	if (isfinite(eta) && eta >= 0)
		snprintf(e, sizeof e, "%dm%02ds", (int)(eta / 60), (int)eta % 60);
	fprintf(stderr, "%sfidelity: genome %d/%d, budget %d, seed %d: %.1f%% of %lld tokens, %.0f s, "
	        "ETA %s%s", s->tty ? "\r" : "", genome_i + 1, s->n, budget + 1, seed + 1,
	        100.0 * (double)done / (double)(total ? total : 1), (long long)total, seconds, e,
	        s->tty ? "   " : "\n");
	fflush(stderr);
}

static int on_result(void *ud, int genome_i, int budget, int seed, const qual_train_cfg *c,
                     const qual_result *r, tl_err *err)
{
	study *s = ud;
	(void)budget;
	(void)seed;
	char hash[65], sh[65], settings[512];
	int rc = genome_hash(&s->gs[genome_i], hash, err);
	if (rc < 0)
		return rc;
	snprintf(settings, sizeof settings,
	         "{\"schedule\":\"wsd\",\"tokens\":%lld,\"seed\":%llu,\"width\":%d,\"batch\":%d,"
	         "\"seq\":%d,\"lr\":%.9g,\"warmup\":%lld,\"decay\":%.6g,\"val_tokens\":%lld}",
	         (long long)c->tokens, (unsigned long long)c->seed, c->width, c->batch, c->seq,
	         c->opt.lr, (long long)c->opt.warmup, c->decay_frac, (long long)c->val_tokens);
	tl_sha256_hex(settings, strlen(settings), sh);
	char *text = genome_to_text(&s->gs[genome_i]);
	if (text == NULL)
		return tl_err_set(err, TL_ENOMEM, "quality fidelity: out of memory");
	rc = db_genome_ensure(s->db, hash, text, -1, err);
	free(text);
	if (rc == 0)
		rc = db_quality_put(s->db, hash, s->run_id, 0, "train", settings, sh, "val_bpb", r->val_bpb,
	                    NULL, err);
	return rc;
}

static cJSON *agreement_json(const qual_agreement *a)
{
	cJSON *o = cJSON_CreateObject();
	const char *k[] = {"tau", "tau_lo", "tau_hi", "rho", "rho_lo", "rho_hi"};
	const double v[] = {a->tau, a->tau_lo, a->tau_hi, a->rho, a->rho_lo, a->rho_hi};
	for (int i = 0; o && i < 6; i++)
		if (isfinite(v[i]))
			cJSON_AddNumberToObject(o, k[i], v[i]);
		else
			cJSON_AddNullToObject(o, k[i]);
	return o;
}

/* The study as JSON (the event's data and --json). */
static char *study_json(const qual_fidelity *f, const genome *gs, const qual_fidelity_cfg *cfg)
{
	cJSON *o = cJSON_CreateObject();
	cJSON *b = cJSON_AddArrayToObject(o, "budgets");
	for (int i = 0; i < f->nb; i++)
		cJSON_AddItemToArray(b, cJSON_CreateNumber((double)f->budgets[i]));
	cJSON_AddNumberToObject(o, "seeds", f->ns);
	cJSON_AddNumberToObject(o, "width", cfg->train.width);
	cJSON_AddNumberToObject(o, "batch", cfg->train.batch);
	cJSON_AddNumberToObject(o, "seq", cfg->train.seq);
	cJSON_AddNumberToObject(o, "seconds", f->seconds);
	if (isfinite(f->noise_median)) {
		cJSON_AddNumberToObject(o, "noise_median", f->noise_median);
		cJSON_AddNumberToObject(o, "noise_sigma", f->noise_sigma);
		cJSON_AddItemToObject(o, "seed_agreement", agreement_json(&f->seed_agree));
	}
	if (f->enough >= 0)
		cJSON_AddNumberToObject(o, "enough_budget", (double)f->budgets[f->enough]);
	else
		cJSON_AddNullToObject(o, "enough_budget");
	cJSON *sp = cJSON_AddArrayToObject(o, "spread");
	for (int i = 0; i < f->nb; i++)
		cJSON_AddItemToArray(sp, cJSON_CreateNumber(f->spread[i]));
	cJSON *ag = cJSON_AddArrayToObject(o, "agreement");
	for (int a = 0; a < f->nb; a++)
		for (int c = a + 1; c < f->nb; c++) {
			cJSON *x = agreement_json(&f->agree[a * f->nb + c]);
			cJSON_AddNumberToObject(x, "a", (double)f->budgets[a]);
			cJSON_AddNumberToObject(x, "b", (double)f->budgets[c]);
			cJSON_AddItemToArray(ag, x);
		}
	cJSON *gj = cJSON_AddArrayToObject(o, "genomes");
	for (int i = 0; i < f->n; i++) {
		cJSON *x = cJSON_CreateObject();
		char h[65];
		tl_err e = TL_ERR_INIT;
		if (genome_hash(&gs[i], h, &e) == 0)
			cJSON_AddStringToObject(x, "hash", h);
		cJSON *q = cJSON_AddArrayToObject(x, "val_bpb");
		for (int k = 0; k < f->nb; k++)
			cJSON_AddItemToArray(q, cJSON_CreateNumber(f->q[(size_t)i * f->nb + k]));
		cJSON *qs = cJSON_AddArrayToObject(x, "seeds_val_bpb");
		for (int s = 0; s < f->ns; s++)
			cJSON_AddItemToArray(qs, cJSON_CreateNumber(f->qs[(size_t)i * f->ns + s]));
		cJSON_AddItemToArray(gj, x);
	}
	char *text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return text;
}

static void fmt_budget(char *out, size_t n, int64_t b)
{
	if (b >= 1 << 20 && b % (1 << 20) == 0)
		snprintf(out, n, "%lldM", (long long)(b >> 20));
	else if (b >= 1024 && b % 1024 == 0)
		snprintf(out, n, "%lldK", (long long)(b >> 10));
	else
		snprintf(out, n, "%lld", (long long)b);
}

static void print_study(const qual_fidelity *f, const genome *gs)
{
	char bn[QUAL_FIDELITY_MAX_BUDGETS][24];
	for (int b = 0; b < f->nb; b++)
		fmt_budget(bn[b], sizeof bn[b], f->budgets[b]);
	printf("val_bpb by budget (seed 1)%s\n", f->ns > 1 ? "; the other seeds at the lowest" : "");
	printf("  %-12s", "genome");
	for (int b = 0; b < f->nb; b++)
		printf(" %9s", bn[b]);
	for (int s = 1; s < f->ns; s++) {
		char lab[40];
		snprintf(lab, sizeof lab, "s%d@%s", s + 1, bn[0]);
		printf(" %9s", lab);
	}
	printf("\n");
	for (int i = 0; i < f->n; i++) {
		char h[65] = "?";
		tl_err e = TL_ERR_INIT;
		genome_hash(&gs[i], h, &e);
		printf("  %-12.12s", h);
		for (int b = 0; b < f->nb; b++)
			printf(" %9.4f", f->q[(size_t)i * f->nb + b]);
		for (int s = 1; s < f->ns; s++)
			printf(" %9.4f", f->qs[(size_t)i * f->ns + s]);
		printf("\n");
	}
	if (isfinite(f->noise_median))
		printf("\nseed noise at %s: median |paired difference| %.4f bpb, sigma %.4f; tau seed 1 vs "
		       "2 %.2f [%.2f, %.2f]\n",
		       bn[0], f->noise_median, f->noise_sigma, f->seed_agree.tau, f->seed_agree.tau_lo,
		       f->seed_agree.tau_hi);
	printf("\n  %-9s %8s %14s %26s %26s\n", "budget", "spread", "spread/noise",
	       "tau vs highest [95%]", "rho vs highest [95%]");
	for (int b = 0; b < f->nb; b++) {
		const qual_agreement *a = &f->agree[b * f->nb + f->nb - 1];
		char sn[16] = "-", t[40] = "-", r[40] = "-";
		if (isfinite(f->noise_median) && f->noise_median > 0)
			snprintf(sn, sizeof sn, "%.1f", f->spread[b] / f->noise_median);
		if (b < f->nb - 1) {
			snprintf(t, sizeof t, "%.2f [%.2f, %.2f]", a->tau, a->tau_lo, a->tau_hi);
			snprintf(r, sizeof r, "%.2f [%.2f, %.2f]", a->rho, a->rho_lo, a->rho_hi);
		}
		printf("  %-9s %8.4f %14s %26s %26s\n", bn[b], f->spread[b], sn, t, r);
	}
	if (f->nb > 2) {
		printf("\nevery pair:\n");
		for (int a = 0; a < f->nb; a++)
			for (int b = a + 1; b < f->nb; b++) {
				const qual_agreement *x = &f->agree[a * f->nb + b];
				printf("  %s vs %s: tau %.2f [%.2f, %.2f], rho %.2f [%.2f, %.2f]\n", bn[a], bn[b],
				       x->tau, x->tau_lo, x->tau_hi, x->rho, x->rho_lo, x->rho_hi);
			}
	}
	if (f->enough >= 0)
		printf("\nfirst budget ranking as the highest does (tau >= 0.8): %s\n", bn[f->enough]);
	else
		printf("\nno lower budget ranks as the highest does (tau >= 0.8): trust the highest only\n");
	printf("wall time %.0f s\n", f->seconds);
}

static int fidelity(int argc, char **argv, cli_ctx *ctx)
{
	static const struct option longopts[] = {
		{"help", no_argument, NULL, 'h'},
		{"samples", required_argument, NULL, 'k'},
		{"space", required_argument, NULL, 's'},
		{"run", required_argument, NULL, 'R'},
		{"budgets", required_argument, NULL, 'B'},
		{"seeds", required_argument, NULL, 'N'},
		{"width", required_argument, NULL, 'w'},
		{"batch", required_argument, NULL, 'b'},
		{"seq", required_argument, NULL, 'L'},
		{"lr", required_argument, NULL, 'r'},
		{"warmup", required_argument, NULL, 'W'},
		{"decay", required_argument, NULL, 'D'},
		{"val-tokens", required_argument, NULL, 'v'},
		{"corpus", required_argument, NULL, 'c'},
		{"threads", required_argument, NULL, 't'},
		{"seed", required_argument, NULL, 'S'},
		{"resamples", required_argument, NULL, 'x'},
		{"json", no_argument, NULL, 'j'},
		{"frontier", no_argument, NULL, 'F'},
		{NULL, 0, NULL, 0},
	};
	qual_fidelity_cfg fc = {.seeds = 2, .resamples = 1000};
	qual_train_cfg *t = &fc.train;
	*t = qual_train_cfg_default();
	t->width = 64;
	t->batch = 8;
	t->seq = 64;
	t->val_tokens = 8192;
	long long k = 0, run_id = 0, threads = 2, v;
	const char *space = NULL;
	bool json = false, budgets = false, frontier = false;
	char corpus_buf[PATH_MAX + 64], dir[4200];
	tl_err err = TL_ERR_INIT;
	int c;
	cli_opt_reset();
	while ((c = cli_opt_next(argc, argv, "h", longopts, "quality fidelity")) != -1) {
		switch (c) {
		case 'h': quality_help(stdout); return CLI_OK;
		case 'k':
			if (cli_int_arg(&k, optarg, 3, 10000, "quality fidelity", "--samples") < 0)
				return CLI_USAGE;
			break;
		case 's': space = optarg; break;
		case 'R':
			if (cli_int_arg(&run_id, optarg, 1, LLONG_MAX, "quality fidelity", "--run") < 0)
				return CLI_USAGE;
			break;
		case 'B':
			if (parse_budgets(&fc, optarg) < 0)
				return cli_usage("quality fidelity", "--budgets: '%s' (2 to %d token counts, "
				                 "increasing, comma-separated: 16384,131072,1048576)",
				                 optarg, QUAL_FIDELITY_MAX_BUDGETS);
			budgets = true;
			break;
		case 'N':
			if (cli_int_arg(&v, optarg, 1, 16, "quality fidelity", "--seeds") < 0)
				return CLI_USAGE;
			fc.seeds = (int)v;
			break;
		case 'w':
			if (cli_int_arg(&v, optarg, 8, 65536, "quality fidelity", "--width") < 0)
				return CLI_USAGE;
			t->width = (int)v;
			break;
		case 'b':
			if (cli_int_arg(&v, optarg, 1, 4096, "quality fidelity", "--batch") < 0)
				return CLI_USAGE;
			t->batch = (int)v;
			break;
		case 'L':
			if (cli_int_arg(&v, optarg, 2, 65536, "quality fidelity", "--seq") < 0)
				return CLI_USAGE;
			t->seq = (int)v;
			break;
		case 'r': {
			double lr;
			if (tl_parse_double(&lr, optarg, "--lr", &err) < 0 || !(lr > 0 && lr < 1))
				return cli_usage("quality fidelity", "--lr: '%s' (a number in (0, 1))", optarg);
			t->opt.lr = lr;
			t->opt.min_lr = lr / 10;
			break;
		}
		case 'W':
			if (cli_int_arg(&v, optarg, 1, 1LL << 30, "quality fidelity", "--warmup") < 0)
				return CLI_USAGE;
			t->opt.warmup = v;
			break;
		case 'D': {
			double d;
			if (tl_parse_double(&d, optarg, "--decay", &err) < 0 || !(d > 0 && d < 1))
				return cli_usage("quality fidelity", "--decay: '%s' (a share in (0, 1))",
				                 optarg);
			t->decay_frac = d;
			break;
		}
		case 'v':
			if (cli_int_arg(&v, optarg, 1, 1LL << 40, "quality fidelity", "--val-tokens") < 0)
				return CLI_USAGE;
			t->val_tokens = v;
			break;
		case 'c': t->corpus = optarg; break;
		case 't':
			if (cli_int_arg(&threads, optarg, 1, OP_POOL_MAX_THREADS, "quality fidelity",
			                "--threads") < 0)
				return CLI_USAGE;
			break;
		case 'S':
			if (tl_parse_u64(&t->seed, optarg, "--seed", &err) < 0)
				return cli_usage("quality fidelity", "%s", err.msg);
			break;
		case 'x':
			if (cli_int_arg(&v, optarg, 0, 1000000, "quality fidelity", "--resamples") < 0)
				return CLI_USAGE;
			fc.resamples = (int)v;
			break;
		case 'j': json = true; break;
		case 'F': frontier = true; break;
		default: return CLI_USAGE;
		}
	}
	if (optind < argc)
		return cli_usage("quality fidelity", "unexpected argument '%s'", argv[optind]);
	if (frontier && run_id == 0)
		return cli_usage("quality fidelity", "--frontier goes with --run ID");
	if (!budgets)
		return cli_usage("quality fidelity", "missing --budgets (e.g. 16384,131072,1048576)");
	if (run_id == 0 && (space == NULL || k == 0))
		return cli_usage("quality fidelity", "give --run ID, or --samples K with --space FILE");
	if (run_id == 0 && space == NULL)
		return cli_usage("quality fidelity", "--samples needs --space FILE");
	int64_t step_tokens = (int64_t)t->batch * t->seq;
	if (fc.budgets[0] < 2 * step_tokens)
		return cli_usage("quality fidelity", "--budgets: %lld tokens is less than two steps of "
		                 "%d x %d tokens", (long long)fc.budgets[0], t->batch, t->seq);
	if (t->opt.warmup <= 0) {
		t->opt.warmup = (int64_t)(t->warmup_frac * (double)(fc.budgets[0] / step_tokens));
		if (t->opt.warmup < 1)
			t->opt.warmup = 1;
	}
	if (t->corpus == NULL)
		t->corpus = cli_default_corpus(corpus_buf, sizeof corpus_buf);
	if (qual_ckpt_dir(dir, sizeof dir, &err) < 0)
		return cli_fail(&err);
	t->ckpt_dir = dir;
	t->threads = (int)threads;

	db_conn *db = NULL;
	genome *gs = NULL;
	op_pool *pool = NULL;
	qual_fidelity f = {0};
	char *js = NULL;
	int n = (int)(k ? k : 12), rc;
	if ((rc = db_open(&db, db_path_resolve(ctx->db_flag), 0, &err)) < 0)
		goto out;
	if (run_id) {
		db_run r;
		if ((rc = db_run_get(db, run_id, &r, &err)) < 0)
			goto out;
		db_run_clear(&r);
		rc = genomes_of_run(&gs, &n, db, run_id, frontier, &err);
	} else {
		rc = genomes_sampled(&gs, n, space, t->seed, &err);
	}
	if (rc < 0 || (rc = op_pool_create(&pool, (int)threads, &err)) < 0)
		goto out;
	study st = {.tty = isatty(STDERR_FILENO), .n = n, .gs = gs, .db = db, .run_id = run_id};
	fc.progress = on_progress;
	fc.result = on_result;
	fc.progress_ud = &st;
	fprintf(stderr, "fidelity: %d genomes, budgets", n);
	for (int b = 0; b < fc.n_budgets; b++)
		fprintf(stderr, "%s%lld", b ? "," : " ", (long long)fc.budgets[b]);
	fprintf(stderr, ", %d seed(s), width %d, %d threads; checkpoints in %s\n", fc.seeds,
	        t->width, (int)threads, dir);
	rc = qual_fidelity_run(&f, gs, n, &fc, pool, &err);
	if (st.tty)
		fputs("\r\033[K", stderr);
	if (rc < 0)
		goto out;
	js = study_json(&f, gs, &fc);
	if (js == NULL) {
		rc = tl_err_set(&err, TL_ENOMEM, "quality fidelity: out of memory");
		goto out;
	}
	char msg[200];
	snprintf(msg, sizeof msg, "fidelity study: %d genomes, %d budgets, %d seeds, %.0f s", n,
	         f.nb, f.ns, f.seconds);
	if ((rc = db_event_add(db, run_id, 0, "info", "quality.fidelity", msg, js, &err)) < 0)
		goto out;
	if (json)
		printf("%s\n", js);
	else
		print_study(&f, gs);
out:
	free(js);
	qual_fidelity_free(&f);
	op_pool_free(pool);
	free(gs);
	db_close(db);
	return rc < 0 ? cli_fail(&err) : CLI_OK;
}

static int ckpt(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"help", no_argument, NULL, 'h'},
		{"older-than", required_argument, NULL, 'o'},
		{NULL, 0, NULL, 0},
	};
	long long days = 0;
	int c;
	cli_opt_reset();
	while ((c = cli_opt_next(argc, argv, "h", longopts, "quality ckpt")) != -1) {
		switch (c) {
		case 'h': quality_help(stdout); return CLI_OK;
		case 'o':
			if (cli_int_arg(&days, optarg, 0, 100000, "quality ckpt", "--older-than") < 0)
				return CLI_USAGE;
			break;
		default: return CLI_USAGE;
		}
	}
	if (optind >= argc)
		return cli_usage("quality ckpt", "missing 'list' or 'clean'");
	bool clean = !strcmp(argv[optind], "clean");
	if (!clean && strcmp(argv[optind], "list"))
		return cli_usage("quality ckpt", "unknown subcommand '%s' (list or clean)", argv[optind]);
	if (optind + 1 < argc)
		return cli_usage("quality ckpt", "unexpected argument '%s'", argv[optind + 1]);
	char dir[4200];
	tl_err err = TL_ERR_INIT;
	int64_t files, bytes;
	if (qual_ckpt_dir(dir, sizeof dir, &err) < 0 ||
	    qual_ckpt_scan(dir, days * 86400, clean, &files, &bytes, &err) < 0)
		return cli_fail(&err);
	printf("%s %lld checkpoint file(s), %.1f MiB, in %s\n", clean ? "removed" : "holds",
	       (long long)files, (double)bytes / (1024.0 * 1024.0), dir);
	return CLI_OK;
}

int cmd_quality(int argc, char **argv, cli_ctx *ctx)
{
	if (argc < 2)
		return cli_usage("quality", "missing subcommand (fidelity or ckpt)");
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		quality_help(stdout);
		return CLI_OK;
	}
	if (!strcmp(argv[1], "fidelity"))
		return fidelity(argc - 1, argv + 1, ctx);
	if (!strcmp(argv[1], "ckpt"))
		return ckpt(argc - 1, argv + 1);
	return cli_usage("quality", "unknown subcommand '%s' (fidelity or ckpt)", argv[1]);
}
