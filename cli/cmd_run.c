/*
 * cli/cmd_run.c: `tailor run start|resume|status|list|stop`: the search runs
 * a researcher launches, watches and resumes (evolve/ does the work, the
 * database holds the state). On a terminal a live status line is redrawn;
 * otherwise one log line per generation (and per failure).
 */
#include "cli.h"
#include "db.h"
#include "db_runs.h"
#include "evolve.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void run_help(FILE *f)
{
	fprintf(f,
	        "usage: tailor [--db PATH] run start CONFIG [--name NAME] [--quiet]\n"
	        "       tailor [--db PATH] run resume ID [--quiet]\n"
	        "       tailor [--db PATH] run status [ID] [--json]\n"
	        "       tailor [--db PATH] run list\n"
	        "       tailor [--db PATH] run stop ID\n"
	        "\n"
	        "  start    create a run from a search config (docs/config.md) and run it\n"
	        "           to the end; prints the frontier when it finishes\n"
	        "  resume   continue a run that was stopped or killed: nothing evaluated is\n"
	        "           lost or evaluated again\n"
	        "  status   one run (default: the newest): progress, hypervolume per\n"
	        "           generation, the current frontier\n"
	        "  list     every run\n"
	        "  stop     ask a running run to stop after its current evaluation (it\n"
	        "           can be resumed); Ctrl-C in the running terminal does the same\n"
	        "\n"
	        "options:\n"
	        "  --name NAME  label of the run (default: the config's \"name\")\n"
	        "  --quiet      no progress output, only the final frontier\n"
	        "  --json       machine-readable status\n"
	        "  --db PATH    the database (default: $TAILOR_DB, else ./tailor.db)\n"
	        "  -h, --help   this help\n"
	        "\n"
	        "exit status: 0 finished or stopped as asked, 1 failure, 2 usage error\n");
}

/* ---- the live display -------------------------------------------------------- */

static volatile sig_atomic_t g_stop;

/* The first Ctrl-C asks the engine to stop after the evaluations in flight
 * (and says so); a second one, or SIGTERM, abandons them at once: every
 * finished evaluation is committed already, the ones in flight stay pending
 * and are redone by 'tailor run resume' (as after a kill -9), and the
 * children (harness, compiler) die with us. Only async-signal-safe calls. */
static void on_signal(int sig)
{
	static const char first[] =
	    "\ntailor: stopping after the evaluations in flight (Ctrl-C again abandons them; "
	    "'tailor run resume' redoes them)\n";
	static const char now[] = "\ntailor: abandoning the evaluations in flight; 'tailor run "
	                          "resume' redoes them\n";
	if (sig == SIGINT && g_stop == 0) {
		g_stop = 1;
		(void)!write(STDERR_FILENO, first, sizeof first - 1);
		return;
	}
	(void)!write(STDERR_FILENO, now, sizeof now - 1);
	_exit(128 + sig);
}

typedef struct live {
	bool tty, quiet;
	double t0;
	int last_gen_logged;
	int evals;                 /* evaluations done by this process */
	double eval_time;          /* their wall time */
	double t_last;
} live;

static void fmt_dur(char *buf, size_t n, double s)
{
	if (!isfinite(s) || s < 0) {
		snprintf(buf, n, "?");
		return;
	}
	long t = (long)(s + 0.5);
	if (t >= 3600)
		snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
	else
		snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

static void on_progress(void *ctx, const ev_progress *p)
{
	live *L = ctx;
	if (L->quiet)
		return;
	double now = tl_now_s();
	bool gen_end = p->last && strncmp(p->last, "generation ", 11) == 0;
	if (!gen_end && p->last && strncmp(p->last, "evaluated", 9) == 0) {
		L->evals++;
		L->eval_time += now - L->t_last;
	}
	L->t_last = now;
	/* ETA: the mean evaluation time of this process times what is left */
	double per = L->evals ? L->eval_time / L->evals : NAN;
	long left = (long)(p->total - p->done) + (long)(p->generations - p->generation - 1) *
	                                            (p->total > 0 ? p->total / 2 : 0);
	char el[32], eta[32];
	fmt_dur(el, sizeof el, now - L->t0);
	fmt_dur(eta, sizeof eta, per * (double)left);
	if (L->tty) {
		fprintf(stderr, "\r\033[Krun %lld  gen %d/%d  candidates %d/%d  frontier %d  HV %.4g  "
		        "elapsed %s  ETA %s%s%s", (long long)p->run_id, p->generation + 1,
		        p->generations, p->done, p->total, p->frontier, p->hypervolume, el, eta,
		        p->queues && *p->queues ? "  queues: " : "", p->queues ? p->queues : "");
		if (gen_end && p->generation + 1 == p->generations)
			fputc('\n', stderr);
		fflush(stderr);
	} else if (gen_end) {
		fprintf(stderr, "tailor: run %lld: generation %d/%d done: %d candidates, frontier %d, "
		        "hypervolume %.6g, elapsed %s\n", (long long)p->run_id, p->generation + 1,
		        p->generations, p->total, p->frontier, p->hypervolume, el);
	}
	if (p->last && strncmp(p->last, "failed", 6) == 0 && !L->tty)
		fprintf(stderr, "tailor: run %lld: %s\n", (long long)p->run_id, p->last);
	if (p->last && strncmp(p->last, "canary", 6) == 0)
		fprintf(stderr, "%stailor: run %lld: %s\n", L->tty ? "\r\033[K" : "",
		        (long long)p->run_id, p->last);
}

static bool on_stop(void *ctx)
{
	(void)ctx;
	return g_stop != 0;
}

/* ---- frontier and status ------------------------------------------------------- */

/* The feasible first front of the newest ranked generation. */
static int print_frontier(db_conn *db, const db_run *r, FILE *f, tl_err *err)
{
	for (int64_t g = r->generation; g >= 0; g--) {
		db_candidate *k = NULL;
		size_t n = 0;
		if (db_candidates_of(db, r->id, g, &k, &n, err) < 0)
			return TL_EDB;
		int shown = 0;
		for (size_t i = 0; i < n; i++)
			if (k[i].rank == 0 && k[i].feasible == 1)
				shown++;
		if (shown == 0) {
			db_candidates_free(k, n);
			continue;
		}
		fprintf(f, "frontier of run %lld (generation %lld, %d genomes, feasible, first front):\n",
		        (long long)r->id, (long long)g + 1, shown);
		for (size_t i = 0; i < n; i++) {
			if (k[i].rank != 0 || k[i].feasible != 1)
				continue;
			fprintf(f, "  %.12s  %s\n", k[i].genome_hash, k[i].objectives ? k[i].objectives : "");
			/* the backbone, by operator names */
			genome gn;
			tl_err perr = TL_ERR_INIT;
			if (k[i].text && genome_parse(&gn, k[i].text, "frontier", &perr) == 0) {
				fprintf(f, "      %d layers:", gn.n_layers);
				for (int l = 0; l < gn.n_layers; l++)
					fprintf(f, " %s", genome_class_label(&gn.classes[gn.layers[l].cls]));
				fputc('\n', f);
			}
		}
		db_candidates_free(k, n);
		return 0;
	}
	fprintf(f, "run %lld has no feasible evaluated candidate yet\n", (long long)r->id);
	return 0;
}

static int open_db(db_conn **db, cli_ctx *ctx, tl_err *err)
{
	return db_open(db, db_path_resolve(ctx->db_flag), 0, err);
}

static int drive(db_conn *db, int64_t id, bool quiet, cli_ctx *ctx)
{
	tl_err err = TL_ERR_INIT;
	live L = {ctx->is_tty && isatty(STDERR_FILENO), quiet, tl_now_s(), -1, 0, 0,
	          tl_now_s()};
	/* device metrics: the engine measures through profiler/measure.h */
	ev_ops ops = {NULL, on_progress, on_stop, &L};
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	bool finished = false;
	if (!quiet)
		fprintf(stderr, "tailor: run %lld in %s (Ctrl-C stops it; 'tailor run resume %lld' "
		        "continues)\n", (long long)id, db_path(db), (long long)id);
	int rc = ev_run_drive(db, id, &ops, &finished, &err);
	if (L.tty && !quiet)
		fputs("\r\033[K", stderr);
	if (rc < 0)
		return cli_fail(&err);
	db_run r;
	if (db_run_get(db, id, &r, &err) < 0)
		return cli_fail(&err);
	if (!finished)
		fprintf(stderr, "tailor: run %lld stopped at generation %lld; resume with 'tailor run "
		        "resume %lld'\n", (long long)id, (long long)r.generation + 1, (long long)id);
	int prc = print_frontier(db, &r, stdout, &err);
	db_run_clear(&r);
	return prc < 0 ? cli_fail(&err) : CLI_OK;
}

static int parse_id(int64_t *id, const char *s)
{
	tl_err err = TL_ERR_INIT;
	if (tl_parse_i64(id, s, 1, INT64_MAX, "run ID", &err) < 0) {
		cli_usage("run", "'%s': not a run id (see 'tailor run list')", s);
		return -1;
	}
	return 0;
}

/* `run resume|stop ID`: the ID parsed, the database opened, the run read;
 * CLI_OK, or the exit status (nothing left open). */
static int one_run(db_conn **db, db_run *r, int nargs, const char *arg, const char *verb,
                   cli_ctx *ctx)
{
	tl_err err = TL_ERR_INIT;
	int64_t id;
	if (nargs != 1)
		return cli_usage("run", "%s takes one run ID", verb);
	if (parse_id(&id, arg) < 0)
		return CLI_USAGE;
	if (open_db(db, ctx, &err) < 0)
		return cli_fail(&err);
	if (db_run_get(*db, id, r, &err) < 0) {
		db_close(*db);
		*db = NULL;
		return cli_fail(&err);
	}
	return CLI_OK;
}

/* Is the run being driven by a live process on this host? */
static bool alive(const db_run *r)
{
	char host[128] = "";
	gethostname(host, sizeof host - 1);
	if (r->pid <= 0 || strcmp(r->host, host) != 0)
		return false;
	return kill((pid_t)r->pid, 0) == 0 || errno == EPERM;
}

static int status_json(db_conn *db, const db_run *r, tl_err *err)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "id", (double)r->id);
	cJSON_AddStringToObject(o, "name", r->name);
	cJSON_AddStringToObject(o, "status", r->status);
	cJSON_AddStringToObject(o, "mode", r->mode);
	cJSON_AddNumberToObject(o, "generation", (double)r->generation);
	cJSON_AddNumberToObject(o, "generations", (double)r->generations);
	cJSON_AddNumberToObject(o, "population", (double)r->population);
	cJSON *gens = cJSON_AddArrayToObject(o, "candidates_per_generation");
	for (int64_t g = 0; g <= r->generation; g++) {
		db_candidate *k = NULL;
		size_t n = 0;
		if (db_candidates_of(db, r->id, g, &k, &n, err) < 0) {
			cJSON_Delete(o);
			return TL_EDB;
		}
		int done = 0;
		for (size_t i = 0; i < n; i++)
			done += !strcmp(k[i].status, "done") || !strcmp(k[i].status, "failed");
		cJSON *x = cJSON_CreateObject();
		cJSON_AddNumberToObject(x, "generation", (double)g);
		cJSON_AddNumberToObject(x, "candidates", (double)n);
		cJSON_AddNumberToObject(x, "evaluated", done);
		cJSON_AddItemToArray(gens, x);
		db_candidates_free(k, n);
	}
	char *s = cJSON_Print(o);
	puts(s ? s : "{}");
	cJSON_free(s);
	cJSON_Delete(o);
	return 0;
}

int cmd_run(int argc, char **argv, cli_ctx *ctx)
{
	static const struct option longopts[] = {
		{"help", no_argument, NULL, 'h'},       {"name", required_argument, NULL, 'n'},
		{"quiet", no_argument, NULL, 'q'},      {"json", no_argument, NULL, 'j'},
		{"db", required_argument, NULL, 'd'},   {NULL, 0, NULL, 0},
	};
	const char *name = NULL;
	bool quiet = false, json = false;
	int c;
	cli_ctx local = *ctx;
	cli_opt_reset();
	while ((c = cli_opt_next(argc, argv, "hn:qj", longopts, "run")) != -1) {
		switch (c) {
		case 'h': run_help(stdout); return CLI_OK;
		case 'n': name = optarg; break;
		case 'q': quiet = true; break;
		case 'j': json = true; break;
		case 'd': local.db_flag = optarg; break;
		default: return CLI_USAGE;
		}
	}
	if (optind >= argc)
		return cli_usage("run", "missing subcommand (start, resume, status, list or stop)");
	const char *sub = argv[optind++];
	int nargs = argc - optind;
	tl_err err = TL_ERR_INIT;
	db_conn *db = NULL;
	int rc = CLI_OK;

	if (!strcmp(sub, "start")) {
		if (nargs != 1)
			return cli_usage("run", "start takes one CONFIG file");
		ev_config cfg;
		if (ev_config_load(&cfg, argv[optind], &err) < 0)
			return cli_fail(&err);
		if (name)
			tl_strlcpy(cfg.name, name, sizeof cfg.name);
		int64_t id = 0;
		/* a new database knows only local: a config naming another device
		 * fails before the file is made */
		const char *path = db_path_resolve(local.db_flag);
		if (access(path, F_OK) != 0)
			for (int i = 0; i < cfg.n_dev; i++)
				if (strcmp(cfg.devices[i], "local") != 0) {
					tl_err_set(&err, TL_ENOTFOUND, "%s: devices[%d]: '%s': no such device: %s "
					           "does not exist yet and a new database knows only 'local' "
					           "(register it first with 'tailor --db %s device add')",
					           argv[optind], i, cfg.devices[i], path, path);
					ev_config_free(&cfg);
					return cli_fail(&err);
				}
		if (open_db(&db, &local, &err) < 0) {
			ev_config_free(&cfg);
			return cli_fail(&err);
		}
		/* the devices must be registered (local always is) */
		for (int i = 0; i < cfg.n_dev; i++) {
			db_device d;
			if (db_device_get(db, cfg.devices[i], &d, &err) < 0) {
				tl_err_clear(&err);
				tl_err_set(&err, TL_ENOTFOUND, "%s: devices[%d]: '%s': no such device in %s "
				           "(register it with 'tailor device add', see 'tailor device list')",
				           argv[optind], i, cfg.devices[i], db_path(db));
				ev_config_free(&cfg);
				db_close(db);
				return cli_fail(&err);
			}
		}
		if (ev_run_create(db, &cfg, &id, &err) < 0) {
			ev_config_free(&cfg);
			db_close(db);
			return cli_fail(&err);
		}
		ev_config_free(&cfg);
		rc = drive(db, id, quiet, &local);
	} else if (!strcmp(sub, "resume")) {
		db_run r;
		int orc = one_run(&db, &r, nargs, argv[optind], "resume", &local);
		if (orc != CLI_OK)
			return orc;
		int64_t id = r.id;
		if ((!strcmp(r.status, "running") || !strcmp(r.status, "stopping")) && alive(&r)) {
			tl_err_set(&err, TL_EBUSY, "run %lld: being run by process %lld on this host "
			           "(stop it with 'tailor run stop %lld' first)", (long long)id,
			           (long long)r.pid, (long long)id);
			db_run_clear(&r);
			db_close(db);
			return cli_fail(&err);
		}
		db_run_clear(&r);
		rc = drive(db, id, quiet, &local);
	} else if (!strcmp(sub, "status")) {
		if (nargs > 1)
			return cli_usage("run", "status takes at most one run ID");
		int64_t id = 0;
		if (nargs == 1 && parse_id(&id, argv[optind]) < 0)
			return CLI_USAGE;
		if (open_db(&db, &local, &err) < 0)
			return cli_fail(&err);
		if (id == 0) {
			db_run *all = NULL;
			size_t n = 0;
			if (db_run_list(db, &all, &n, &err) < 0 || n == 0) {
				free(all);
				if (!tl_err_isset(&err))
					tl_err_set(&err, TL_ENOTFOUND, "run status: %s holds no run (start one "
					           "with 'tailor run start CONFIG')", db_path(db));
				db_close(db);
				return cli_fail(&err);
			}
			id = all[0].id;
			free(all);
		}
		db_run r;
		if (db_run_get(db, id, &r, &err) < 0) {
			db_close(db);
			return cli_fail(&err);
		}
		if (json) {
			if (status_json(db, &r, &err) < 0)
				rc = cli_fail(&err);
		} else {
			printf("run %lld%s%s%s: %s, %s, generation %lld of %lld, population %lld\n",
			       (long long)r.id, r.name[0] ? " (" : "", r.name, r.name[0] ? ")" : "",
			       r.status, r.mode, (long long)r.generation + 1, (long long)r.generations,
			       (long long)r.population);
			if (r.error[0])
				printf("error: %s\n", r.error);
			if ((!strcmp(r.status, "running") || !strcmp(r.status, "stopping")) && !alive(&r))
				printf("note: its process %lld is gone (killed?): 'tailor run resume %lld' "
				       "continues it\n", (long long)r.pid, (long long)r.id);
			db_candidate *k = NULL;
			size_t n = 0;
			if (db_candidates_of(db, r.id, r.generation, &k, &n, &err) == 0) {
				int done = 0, failed = 0;
				for (size_t i = 0; i < n; i++) {
					done += !strcmp(k[i].status, "done");
					failed += !strcmp(k[i].status, "failed");
				}
				printf("current generation: %zu candidates, %d evaluated, %d failed\n", n, done,
				       failed);
				db_candidates_free(k, n);
			}
			if (print_frontier(db, &r, stdout, &err) < 0)
				rc = cli_fail(&err);
		}
		db_run_clear(&r);
	} else if (!strcmp(sub, "list")) {
		if (nargs != 0)
			return cli_usage("run", "list takes no argument");
		if (open_db(&db, &local, &err) < 0)
			return cli_fail(&err);
		db_run *all = NULL;
		size_t n = 0;
		if (db_run_list(db, &all, &n, &err) < 0) {
			db_close(db);
			return cli_fail(&err);
		}
		printf("%-5s %-20s %-9s %-6s %-11s %-10s %s\n", "id", "name", "status", "mode",
		       "generation", "population", "created");
		for (size_t i = 0; i < n; i++)
			printf("%-5lld %-20.20s %-9s %-6s %5lld/%-5lld %-10lld %s\n", (long long)all[i].id,
			       all[i].name, all[i].status, all[i].mode, (long long)all[i].generation + 1,
			       (long long)all[i].generations, (long long)all[i].population,
			       all[i].created_at);
		free(all);
	} else if (!strcmp(sub, "stop")) {
		db_run r;
		int orc = one_run(&db, &r, nargs, argv[optind], "stop", &local);
		if (orc != CLI_OK)
			return orc;
		int64_t id = r.id;
		if (strcmp(r.status, "running") != 0) {
			tl_err_set(&err, TL_EINVAL, "run %lld: is %s, not running (nothing to stop)",
			           (long long)id, r.status);
			rc = cli_fail(&err);
		} else if (!alive(&r)) {
			/* killed: record it as stopped so it reads right; resume works */
			if (db_run_set_status(db, id, "stopped", NULL, 0, NULL, &err) < 0)
				rc = cli_fail(&err);
			else
				printf("run %lld: its process was gone; marked stopped\n", (long long)id);
		} else if (db_run_set_status(db, id, "stopping", NULL, r.pid, r.host, &err) < 0) {
			rc = cli_fail(&err);
		} else {
			printf("run %lld: asked to stop after its current evaluation\n", (long long)id);
		}
		db_run_clear(&r);
	} else {
		return cli_usage("run", "unknown subcommand '%s' (start, resume, status, list or stop)",
		                 sub);
	}
	db_close(db);
	return rc;
}
