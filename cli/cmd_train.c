/*
 * cli/cmd_train.c: `tailor train`: one quality evaluation of a genome, alone
 * (quality/quality.h): the built-in `train` (byte-level LM on a corpus) or
 * `mad` (the six MAD tasks) evaluator on this machine's cores, or the
 * `command` evaluator (an external program, e.g. a Slurm job). A progress
 * line on stderr, then the result and the loss curve on stdout; with --run,
 * the curve and metrics are stored as an event of that run.
 */
#include "cli.h"
#include "db.h"
#include "genome.h"
#include "quality.h"

#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void train_help(FILE *f)
{
	fprintf(f,
	        "usage: tailor train GENOME [--evaluator train|mad|command] [--width W]\n"
	        "                    [--tokens N] [--seed S] [--threads T] [--batch B] [--seq L]\n"
	        "                    [--lr LR] [--corpus FILE] [--val-tokens N] [--tasks LIST]\n"
	        "                    [--train-examples N] [--test-examples N] [--epochs E]\n"
	        "                    [--command CMD] [--timeout SEC] [--run ID] [--json]\n"
	        "\n"
	        "Estimate the quality of GENOME by training its reduced-width proxy (full depth,\n"
	        "the same head dim, d_model = W) on this machine's CPU, deterministically for a\n"
	        "seed whatever the thread count, or by an external command.\n"
	        "\n"
	        "evaluators:\n"
	        "  train    byte-level language modelling on a corpus (default: the project's\n"
	        "           data/tinyshakespeare.txt); the last 10%% is held out; prints the\n"
	        "           validation loss (nats/byte) and bits per byte\n"
	        "  mad      the MAD synthetic tasks at their published settings (recall,\n"
	        "           fuzzy_recall, noisy_recall, selective_copy, compression,\n"
	        "           memorization); prints test accuracy per task\n"
	        "  command  runs CMD with the genome and arch as JSON on stdin and reads\n"
	        "           {\"metrics\": {...}} from its stdout (docs/quality.md)\n"
	        "\n"
	        "options:\n"
	        "  --evaluator E       train (default), mad or command\n"
	        "  --width W           proxy width (default 128; 0: the genome's own)\n"
	        "  --tokens N          training tokens (default 1048576; mad: per task,\n"
	        "                      0 = --epochs over the training set)\n"
	        "  --seed S            weights, batches and MAD data (default 1)\n"
	        "  --threads T         threads (default 2)\n"
	        "  --batch B           sequences per step (default 8)\n"
	        "  --seq L             train: tokens per sequence (default 256)\n"
	        "  --lr LR             peak learning rate (default 0.002; AdamW, 5%% warm-up,\n"
	        "                      cosine to LR/10, weight decay 0.1, clip 1.0)\n"
	        "  --corpus FILE       train: the corpus (bytes are tokens)\n"
	        "  --val-tokens N      train: held-out tokens scored (default 65536; 0: all)\n"
	        "  --tasks LIST        mad: comma-separated task names (default: all six)\n"
	        "  --train-examples N  mad: training examples (default: published, 12800)\n"
	        "  --test-examples N   mad: test examples (default 1280)\n"
	        "  --epochs E          mad: epochs when --tokens is 0 (default 1)\n"
	        "  --command CMD       command: the program and its arguments, split at spaces\n"
	        "  --timeout SEC       command: kill it after SEC seconds (default 86400)\n"
	        "  --run ID            store the curve and metrics as an event of run ID in the\n"
	        "                      results database (--db)\n"
	        "  --json              print the result as one JSON object\n"
	        "  -h, --help          this help\n");
}

typedef struct progress {
	bool tty;
	const char *what;
} progress;

static void on_progress(void *ud, const qual_point *p, int64_t total)
{
	const progress *pr = ud;
	if (!pr->tty)
		return;
	fprintf(stderr, "\r%s%s%s step %lld/%lld  tokens %lld  loss %.4f  lr %.2e   ", pr->what,
	        p->task >= 0 ? " " : "", p->task >= 0 ? qual_mad_task_name(p->task) : "",
	        (long long)p->step, (long long)total, (long long)p->tokens, p->loss, p->lr);
	fflush(stderr);
}

static int parse_tasks(unsigned *mask, const char *list)
{
	*mask = 0;
	char buf[256];
	tl_strlcpy(buf, list, sizeof buf);
	char *save = NULL;
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		int k = qual_mad_task_lookup(t);
		if (k < 0)
			return -1;
		*mask |= 1u << k;
	}
	return *mask ? 0 : -1;
}

int cmd_train(int argc, char **argv, cli_ctx *ctx)
{
	static const struct option longopts[] = {
		{"help", no_argument, NULL, 'h'},
		{"evaluator", required_argument, NULL, 'e'},
		{"width", required_argument, NULL, 'w'},
		{"tokens", required_argument, NULL, 'n'},
		{"seed", required_argument, NULL, 'S'},
		{"threads", required_argument, NULL, 't'},
		{"batch", required_argument, NULL, 'b'},
		{"seq", required_argument, NULL, 'L'},
		{"lr", required_argument, NULL, 'r'},
		{"corpus", required_argument, NULL, 'c'},
		{"val-tokens", required_argument, NULL, 'v'},
		{"tasks", required_argument, NULL, 'T'},
		{"train-examples", required_argument, NULL, 'x'},
		{"test-examples", required_argument, NULL, 'y'},
		{"epochs", required_argument, NULL, 'E'},
		{"command", required_argument, NULL, 'C'},
		{"timeout", required_argument, NULL, 'o'},
		{"run", required_argument, NULL, 'R'},
		{"json", no_argument, NULL, 'j'},
		{NULL, 0, NULL, 0},
	};
	qual_train_cfg cfg = qual_train_cfg_default();
	const char *evaluator = "train", *command = NULL;
	long long threads = 2, timeout = 86400, run_id = 0, v;
	bool json = false;
	char corpus_buf[PATH_MAX + 64];
	tl_err err = TL_ERR_INIT;
	int c;

	cli_opt_reset();
	while ((c = cli_opt_next(argc, argv, "h", longopts, "train")) != -1) {
		switch (c) {
		case 'h': train_help(stdout); return CLI_OK;
		case 'e':
			if (strcmp(optarg, "train") && strcmp(optarg, "mad") && strcmp(optarg, "command"))
				return cli_usage("train", "--evaluator: '%s' (train, mad or command)", optarg);
			evaluator = optarg;
			break;
		case 'w':
			if (cli_int_arg(&v, optarg, 0, 65536, "train", "--width") < 0)
				return CLI_USAGE;
			cfg.width = (int)v;
			break;
		case 'n':
			if (cli_int_arg(&v, optarg, 0, 1LL << 40, "train", "--tokens") < 0)
				return CLI_USAGE;
			cfg.tokens = v;
			break;
		case 'S':
			if (tl_parse_u64(&cfg.seed, optarg, "--seed", &err) < 0)
				return cli_usage("train", "%s", err.msg);
			break;
		case 't':
			if (cli_int_arg(&threads, optarg, 1, OP_POOL_MAX_THREADS, "train", "--threads") < 0)
				return CLI_USAGE;
			break;
		case 'b':
			if (cli_int_arg(&v, optarg, 1, 4096, "train", "--batch") < 0)
				return CLI_USAGE;
			cfg.batch = (int)v;
			break;
		case 'L':
			if (cli_int_arg(&v, optarg, 2, 65536, "train", "--seq") < 0)
				return CLI_USAGE;
			cfg.seq = (int)v;
			break;
		case 'r': {
			double lr;
			if (tl_parse_double(&lr, optarg, "--lr", &err) < 0 || !(lr > 0 && lr < 1))
				return cli_usage("train", "--lr: '%s' (a number in (0, 1))", optarg);
			cfg.opt.lr = lr;
			cfg.opt.min_lr = lr / 10;
			break;
		}
		case 'c': cfg.corpus = optarg; break;
		case 'v':
			if (cli_int_arg(&v, optarg, 0, 1LL << 40, "train", "--val-tokens") < 0)
				return CLI_USAGE;
			cfg.val_tokens = v;
			break;
		case 'T':
			if (parse_tasks(&cfg.mad_tasks, optarg) < 0)
				return cli_usage("train", "--tasks: '%s' (comma-separated: recall, "
				                 "fuzzy_recall, noisy_recall, selective_copy, compression, "
				                 "memorization)", optarg);
			break;
		case 'x':
			if (cli_int_arg(&v, optarg, 1, 1LL << 24, "train", "--train-examples") < 0)
				return CLI_USAGE;
			cfg.mad_train_examples = v;
			break;
		case 'y':
			if (cli_int_arg(&v, optarg, 1, 1LL << 24, "train", "--test-examples") < 0)
				return CLI_USAGE;
			cfg.mad_test_examples = v;
			break;
		case 'E':
			if (cli_int_arg(&v, optarg, 1, 100000, "train", "--epochs") < 0)
				return CLI_USAGE;
			cfg.mad_epochs = (int)v;
			break;
		case 'C': command = optarg; break;
		case 'o':
			if (cli_int_arg(&timeout, optarg, 1, 1LL << 30, "train", "--timeout") < 0)
				return CLI_USAGE;
			break;
		case 'R':
			if (cli_int_arg(&run_id, optarg, 1, LLONG_MAX, "train", "--run") < 0)
				return CLI_USAGE;
			break;
		case 'j': json = true; break;
		default: return CLI_USAGE;
		}
	}
	if (optind >= argc)
		return cli_usage("train", "missing GENOME argument");
	if (argc - optind > 1)
		return cli_usage("train", "unexpected argument '%s'", argv[optind + 1]);
	if (!strcmp(evaluator, "command") && command == NULL)
		return cli_usage("train", "--evaluator command needs --command CMD");
	if (!strcmp(evaluator, "train") && cfg.tokens == 0)
		return cli_usage("train", "--tokens must be >= 1 for the train evaluator");
	genome g;
	if (cli_load_genome(&g, argv[optind], &err) < 0)
		return cli_fail(&err);
	char hash[65];
	if (genome_hash(&g, hash, &err) < 0)
		return cli_fail(&err);

	if (!strcmp(evaluator, "command")) {
		char buf[4096], *words[128];
		int nw = 0;
		tl_strlcpy(buf, command, sizeof buf);
		char *save = NULL;
		for (char *w = strtok_r(buf, " ", &save); w && nw < 127; w = strtok_r(NULL, " ", &save))
			words[nw++] = w;
		words[nw] = NULL;
		if (nw == 0)
			return cli_usage("train", "--command: empty");
		qual_cmd_cfg cc = {words, (int)timeout, NULL};
		qual_metric *ms = NULL;
		int nm = 0;
		if (qual_eval_command(&ms, &nm, &g, &cc, &err) < 0)
			return cli_fail(&err);
		if (json) {
			printf("{\"genome_hash\":\"%s\",\"evaluator\":\"command\",\"metrics\":{", hash);
			for (int i = 0; i < nm; i++)
				printf("%s\"%s\":%.17g", i ? "," : "", ms[i].name, ms[i].value);
			printf("}}\n");
		} else {
			printf("genome    %s\nevaluator command (%s)\n", hash, words[0]);
			for (int i = 0; i < nm; i++)
				printf("%-24s %.6g\n", ms[i].name, ms[i].value);
		}
		free(ms);
		return CLI_OK;
	}

	bool mad = !strcmp(evaluator, "mad");
	if (!mad && cfg.corpus == NULL)
		cfg.corpus = cli_default_corpus(corpus_buf, sizeof corpus_buf);
	op_pool *pool = NULL;
	if (op_pool_create(&pool, (int)threads, &err) < 0)
		return cli_fail(&err);
	progress pr = {isatty(STDERR_FILENO) != 0, mad ? "mad" : "train"};
	cfg.progress = on_progress;
	cfg.progress_ud = &pr;
	cfg.threads = (int)threads;
	qual_result r;
	int rc = mad ? qual_eval_mad(&r, &g, &cfg, pool, &err)
	             : qual_eval_train(&r, &g, &cfg, pool, &err);
	op_pool_free(pool);
	if (pr.tty)
		fprintf(stderr, "\n");
	if (rc < 0)
		return cli_fail(&err);

	/* the result as JSON: printed with --json, stored with --run */
	size_t cap = 4096 + (size_t)r.n_curve * 128, len = 0;
	char *js = malloc(cap);
	if (js == NULL) {
		qual_result_free(&r);
		tl_err_set(&err, TL_ENOMEM, "out of memory");
		return cli_fail(&err);
	}
#define PUT(...) len += (size_t)snprintf(js + len, cap - len, __VA_ARGS__)
	PUT("{\"genome_hash\":\"%s\",\"evaluator\":\"%s\",\"proxy_arch_hash\":\"%s\","
	    "\"settings\":{\"width\":%d,\"tokens\":%lld,\"batch\":%d,\"seq\":%d,\"seed\":%llu,"
	    "\"lr\":%g,\"threads\":%lld},\"params\":%lld,\"steps\":%lld,\"tokens\":%lld,"
	    "\"seconds\":%.3f,\"tokens_per_s\":%.1f,\"metrics\":{",
	    hash, evaluator, r.arch_hash, cfg.width, (long long)cfg.tokens, cfg.batch,
	    mad ? 0 : cfg.seq, (unsigned long long)cfg.seed, cfg.opt.lr, threads,
	    (long long)r.params, (long long)r.steps, (long long)r.tokens, r.seconds,
	    r.tokens_per_s);
	if (mad) {
		bool first = true;
		for (int t = 0; t < QUAL_MAD_TASKS; t++)
			if (!isnan(r.mad_acc[t])) {
				PUT("%s\"mad.%s\":%.6f", first ? "" : ",", qual_mad_task_name(t), r.mad_acc[t]);
				first = false;
			}
	} else {
		PUT("\"val_loss\":%.6f,\"val_bpb\":%.6f,\"train_loss\":%.6f", r.val_loss, r.val_bpb,
		    r.train_loss);
	}
	PUT("},\"curve\":[");
	for (int i = 0; i < r.n_curve; i++) {
		const qual_point *p = &r.curve[i];
		PUT("%s{\"task\":\"%s\",\"step\":%lld,\"tokens\":%lld,\"loss\":%.6f,\"lr\":%.3e}",
		    i ? "," : "", p->task >= 0 ? qual_mad_task_name(p->task) : "lm",
		    (long long)p->step, (long long)p->tokens, p->loss, p->lr);
	}
	PUT("]}");
#undef PUT
	if (json) {
		printf("%s\n", js);
	} else {
		printf("genome       %s\nproxy        width %d, %lld parameters (arch %.12s)\n"
		       "trained      %lld steps, %lld tokens in %.1f s (%.0f tokens/s, %lld threads)\n",
		       hash, cfg.width, (long long)r.params, r.arch_hash, (long long)r.steps,
		       (long long)r.tokens, r.seconds, r.tokens_per_s, threads);
		if (mad) {
			for (int t = 0; t < QUAL_MAD_TASKS; t++)
				if (!isnan(r.mad_acc[t]))
					printf("mad.%-20s accuracy %.4f\n", qual_mad_task_name(t), r.mad_acc[t]);
		} else {
			printf("val_loss     %.4f nats/byte\nval_bpb      %.4f bits/byte\n"
			       "train_loss   %.4f (last 10%% of steps)\n", r.val_loss, r.val_bpb,
			       r.train_loss);
		}
		printf("\nloss curve\n%-16s %8s %12s %10s %10s\n", "task", "step", "tokens", "loss",
		       "lr");
		for (int i = 0; i < r.n_curve; i++) {
			const qual_point *p = &r.curve[i];
			printf("%-16s %8lld %12lld %10.4f %10.2e\n",
			       p->task >= 0 ? qual_mad_task_name(p->task) : "lm", (long long)p->step,
			       (long long)p->tokens, p->loss, p->lr);
		}
	}
	rc = CLI_OK;
	if (run_id > 0) {
		db_conn *db = NULL;
		char msg[256];
		snprintf(msg, sizeof msg, "quality %s of genome %.12s: %lld steps", evaluator, hash,
		         (long long)r.steps);
		if (db_open(&db, db_path_resolve(ctx->db_flag), 0, &err) < 0 ||
		    db_event_add(db, run_id, 0, "info", "quality.curve", msg, js, &err) < 0)
			rc = cli_fail(&err);
		db_close(db);
	}
	free(js);
	qual_result_free(&r);
	return rc;
}
