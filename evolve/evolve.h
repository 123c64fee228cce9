/*
 * evolve/evolve.h: search configs and the run engine (prefix ev_).
 *
 * A run is a row of `runs` holding its config; the engine (ev_run_drive)
 * moves it forward one committed step at a time, so that a process killed
 * at any moment loses nothing and `tailor run resume` continues exactly
 * where it stopped:
 *   1. generation 0: the initial population is drawn (PCG32 stream 1 of the
 *      run's seed) and inserted in one transaction;
 *   2. every pending candidate is evaluated, its result committed alone; a
 *      genome the run has already evaluated is not evaluated again (its
 *      stored result is copied);
 *   3. when a generation is complete: fronts, crowding, the survivors, the
 *      hypervolume of the feasible first front; then, in one transaction,
 *      the generation's summary, the next generation's candidates (the
 *      survivors as 'elite' rows carrying their results, and the offspring,
 *      drawn from PCG32 stream 1000 + g) and the run's generation counter.
 * Everything random depends only on the seed and on stored results, so a
 * resumed run makes the same choices as an uninterrupted one.
 *
 * Metrics (docs/config.md): quality ones from the config's evaluator
 * (val_bpb, val_loss, train_loss from `train`; mad_<task> and mad_mean from
 * `mad`; any name the `command` returns), analytic ones computed from the genome
 * (params, params_nonembed, kv_bytes_per_token, state_bytes, cache_bytes,
 * flops_per_token, flops_prefill_per_token, flops_decode_per_token), device
 * ones (NAME@DEVICE with NAME one of ttft_ms, decode_ms, peak_rss_mb,
 * prefill_tok_s, decode_tok_s: ev_device_value) measured through
 * profiler/measure.h on the run's device pool (devices/pool.c, one worker
 * per device, the only scheduler) or predicted from the devices' operator
 * tables; every measurement and prediction is stored and candidate_evals
 * links each candidate to what it was ranked on.
 */
#ifndef EVOLVE_H
#define EVOLVE_H

#include <stdbool.h>
#include <stdint.h>

#include "db.h"
#include "genome.h"
#include "tl.h"

#define EV_MAX_OBJ 8
#define EV_MAX_CON 16
#define EV_MAX_DEV 16
#define EV_METRIC_MAX 64

enum ev_mode { EV_NSGA2 = 0, EV_RANDOM = 1 };

typedef struct ev_metric {
	char name[EV_METRIC_MAX]; /* as written: "decode_ms@local", "params"      */
	char base[EV_METRIC_MAX]; /* before '@': "decode_ms"                      */
	char device[EV_METRIC_MAX]; /* after '@', "" for analytic metrics         */
	bool analytic;
	bool quality;             /* from the quality evaluator (val_bpb, ...)    */
} ev_metric;

/* The quality evaluator of a config (docs/config.md). */
enum ev_qual_kind { EV_QUAL_ANALYTIC = 0, EV_QUAL_TRAIN, EV_QUAL_MAD, EV_QUAL_COMMAND };
#define EV_CMD_MAX_ARGS 32
#define EV_MAX_LEVELS 4 /* budgets of a multi-fidelity quality */
typedef struct ev_quality {
	enum ev_qual_kind kind;
	int width;                /* proxy width, 0: the genome's own             */
	int64_t tokens;           /* training token budget (0: evaluator default) */
	int64_t val_tokens;       /* train: held-out tokens scored (0: default)   */
	int batch, seq, threads, epochs;
	uint64_t seed;
	double lr;                /* 0: the evaluator's default                   */
	char corpus[1024];        /* train: the corpus (absolute path)            */
	unsigned mad_tasks;       /* mad: bit mask, 0: all six                     */
	char *argv[EV_CMD_MAX_ARGS + 1]; /* command: owned strings, NULL-ended      */
	int timeout_s;
	char *settings;           /* the config's "quality" object as JSON (owned) */
	char settings_hash[65];   /* SHA-256 of it: results are reused by it       */
	/* multi-fidelity (train only; docs/config.md "Multi-fidelity"): n_levels
	 * budgets (0: off), each a WSD training continued from the last; level
	 * L's results are stored under level_hash[L]; promote: the share of a
	 * level's best that go on to the next after each generation */
	int n_levels;
	int64_t budgets[EV_MAX_LEVELS];
	double promote;
	char level_hash[EV_MAX_LEVELS][65];
} ev_quality;

typedef struct ev_objective {
	ev_metric m;
	bool maximize;
	double ref;               /* reference point value, NaN: derived          */
} ev_objective;

typedef struct ev_constraint {
	ev_metric m;
	double max, min;          /* NaN: no bound on that side                   */
} ev_constraint;

enum { EV_EVAL_MEASURE = 0, EV_EVAL_PREDICT = 1, EV_EVAL_PREDICT_MEASURE = 2 };

/* The harness settings of device metrics. */
typedef struct ev_bench {
	int prompt, gen, depth, threads, repeat;
	char quant[8];
	double timeout_s;
	/* bench.protocol: the measurement protocol (profiler/protocol.h) as a
	 * JSON object, checked by the config parser; "": none (device metrics
	 * then use the protocol's defaults on lab devices and the in-process
	 * harness on local). Its shapes are not used: prompt/gen/depth are. */
	char protocol[2048];
	/* evaluation (docs/config.md): EV_EVAL_PREDICT: device metrics come
	 * from the device's operator table (profiler/optable.h) instead of a
	 * measurement; EV_EVAL_PREDICT_MEASURE: every candidate predicted, the
	 * measure_top best of a generation by their predicted objectives (and
	 * any the table cannot predict) measured, measured values used where
	 * they exist. space_hash names the space whose table is preferred. */
	int predict;
	int measure_top;
	char space_hash[65];
	/* a device that cannot be reached (connect, transfer, a connection
	 * lost) is waited for this long, retrying with backoff, before the run
	 * stops with its candidates pending (their results are not failures) */
	double device_wait_s;
} ev_bench;

typedef struct ev_config {
	char source[512];          /* the file, for messages                      */
	char name[128];
	genome_space *space;       /* owned                                        */
	enum ev_mode mode;
	int population, generations;
	uint64_t seed;
	double crossover;          /* probability of crossover per offspring pair */
	ev_objective obj[EV_MAX_OBJ];
	int n_obj;
	ev_constraint con[EV_MAX_CON];
	int n_con;
	char devices[EV_MAX_DEV][EV_METRIC_MAX];
	int n_dev;
	ev_bench bench;
	ev_quality quality;
	/* the canary: a fixed genome measured on every device at the start of the
	 * run and every canary_every generations; a decode latency more than
	 * canary_drift (relative) away from its first measurement is reported
	 * (event canary.drift) */
	char *canary;              /* genome text, NULL: none (owned)            */
	int canary_every;
	double canary_drift;
	char *json;                /* the config as stored in runs.config (owned):
	                            * the file's JSON with an inline space        */
	char hash[65];             /* SHA-256 of that JSON                        */
} ev_config;

/* Load a config file, or parse one (source names it in errors; base_dir is
 * where a relative space path is looked up). Errors: one line with the file,
 * the JSON path and what is allowed, e.g.
 *   "q.json: objectives[1].metric: 'latency': unknown metric (analytic: params,
 *    ...; per device: decode_ms@DEVICE, ...)". */
int ev_config_load(ev_config *c, const char *path, tl_err *err);
int ev_config_parse(ev_config *c, const char *json, const char *source, const char *base_dir,
                    tl_err *err);
void ev_config_free(ev_config *c);

/* The value of an analytic metric for a genome (NaN when the name is not
 * analytic). */
double ev_analytic(const char *base, const genome_stats *s);

/* Run the config's quality evaluator on g: vals[i] for each metric i of the
 * config (objectives then constraints) that is a quality metric (others
 * untouched). threads: the trainer's pool. */
int ev_quality_eval(const ev_config *c, const genome *g, double *vals, tl_err *err);
/* The same, with a stop request polled between training steps (stop may be
 * NULL): TL_ESTOPPED when it said stop. */
int ev_quality_eval_stoppable(const ev_config *c, const genome *g, double *vals,
                              bool (*stop)(void *ud), void *stop_ud, tl_err *err);
/* Multi-fidelity: the evaluation at level L (budget budgets[L]), a WSD
 * training that continues from the checkpoint of the level below. */
int ev_quality_eval_level(const ev_config *c, const genome *g, int level, double *vals,
                          bool (*stop)(void *ud), void *stop_ud, tl_err *err);

/* What a device measurement gives. */
typedef struct ev_measured {
	double ttft_ms, decode_ms, peak_rss_mb, prefill_tok_s, decode_tok_s;
	int64_t measurement_id;   /* its measurements row, 0: none (a seam's)     */
	int64_t prediction_id;    /* its predictions row, 0: none                 */
	bool predicted;           /* the values are a prediction                  */
	char build_hash[65];      /* the harness build, "" unknown                */
} ev_measured;

/* The value of device metric `base` (ttft_ms, decode_ms, peak_rss_mb,
 * prefill_tok_s, decode_tok_s) in x; NaN for another name. */
double ev_device_value(const char *base, const ev_measured *x);

typedef struct ev_progress {
	int64_t run_id;
	int generation, generations;
	int done, total;           /* candidates of this generation               */
	int frontier;              /* feasible first front of the last generation */
	double hypervolume;        /* of the last finished generation, NaN before */
	const char *last;          /* "evaluated 3fa1...: decode_ms@local 7.8 ..." */
	const char *queues;        /* per device (and quality) work done this
	                            * generation, "local 5/12, quality 3/12"; ""   */
} ev_progress;

typedef struct ev_ops {
	/* A test's seam, NULL in tailor: measure (or, under evaluation predict,
	 * predict) the genome on a device with the bench settings; return 0 or
	 * a negative code with err set (the candidate is recorded as failed
	 * with that message, the run goes on). Its devices need not be
	 * registered: the pool gets stand-ins, without locks. */
	int (*measure)(void *ctx, const char *device, const genome *g, const char *arch_text,
	               const ev_bench *b, ev_measured *out, tl_err *err);
	/* Progress after each evaluation and generation (may be NULL). */
	void (*progress)(void *ctx, const ev_progress *p);
	/* Polled between evaluations: true stops the run gracefully (status
	 * 'stopped', resumable). The run's status 'stopping' (tailor run stop)
	 * is polled too. May be NULL. */
	bool (*stop)(void *ctx);
	void *ctx;
} ev_ops;

/* Multi-fidelity ranking (exposed for its test): n points of m objectives
 * (minimization form) at each level, v[L] + i*m; level[i] the highest level
 * i reached; a dominates b when it does at min(level a, level b), so two
 * candidates are never compared at budgets they did not both reach. Fronts
 * by Deb's counting (a cycle, which mixed levels can make, shares a front);
 * crowding within a front at its lowest level. -1: out of memory. */
int ev_mf_rank(int n, int m, const double *const *v, const int *level, const double *viol,
               int *rank, double *crowd);

/* Create a run for a config (status 'created'). */
int ev_run_create(db_conn *db, const ev_config *c, int64_t *run_id, tl_err *err);

/* Drive run_id until it finishes, is stopped, or fails. The run's config is
 * read back from the database (so resume needs nothing else); base_dir is
 * not needed (the stored config holds the space inline). Returns 0 when the
 * run finished or stopped (*finished tells which), negative on an error that
 * ends the run (recorded as status 'failed'). */
int ev_run_drive(db_conn *db, int64_t run_id, const ev_ops *ops, bool *finished, tl_err *err);

#endif /* EVOLVE_H */
