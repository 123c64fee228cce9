/*
 * db/db_runs.h: runs, their generations and candidates, and what each
 * candidate was ranked on (docs/schema.md), for the search engine (evolve/),
 * `tailor run` and the report. Every function is one statement; the engine
 * groups them in transactions (db_begin / db_commit)
 * so that a generation's new candidates, or one evaluation's result, land
 * whole or not at all.
 */
#ifndef DB_RUNS_H
#define DB_RUNS_H

#include <stdbool.h>
#include <stdint.h>

#include "db.h"

typedef struct db_run {
	int64_t id;
	char name[128];
	char *config;          /* JSON text, malloc'd (db_run_clear frees it)   */
	char config_hash[65];
	char mode[16];         /* nsga2, random                                 */
	uint64_t seed;
	char status[16];       /* created running stopping stopped finished failed */
	int64_t generation;    /* current                                       */
	int64_t generations;   /* planned; 0: NULL                              */
	int64_t population;
	int64_t pid;           /* 0: NULL                                       */
	char host[128];
	char heartbeat_at[32], created_at[32], started_at[32], finished_at[32];
	char error[512];
} db_run;

void db_run_clear(db_run *r);

int db_run_create(db_conn *db, const char *name, const char *config_json,
                  const char *config_hash, const char *mode, uint64_t seed, int64_t generations,
                  int64_t population, const char *version, int64_t *id, tl_err *err);
/* TL_ENOTFOUND "run N: no such run (see 'tailor run list')". */
int db_run_get(db_conn *db, int64_t id, db_run *out, tl_err *err);
/* Every run, newest first: *out malloc'd, each entry's config NULL. */
int db_run_list(db_conn *db, db_run **out, size_t *n, tl_err *err);
/* status; error may be NULL. "running" also sets started_at (first time),
 * pid, host and the heartbeat; finished / stopped / failed set finished_at. */
int db_run_set_status(db_conn *db, int64_t id, const char *status, const char *error,
                      int64_t pid, const char *host, tl_err *err);
int db_run_set_generation(db_conn *db, int64_t id, int64_t generation, tl_err *err);
int db_run_heartbeat(db_conn *db, int64_t id, tl_err *err);

typedef struct db_candidate {
	int64_t id;
	int64_t generation;
	char genome_hash[65];
	char *text;            /* genome text (from genomes), malloc'd          */
	int64_t parent1, parent2; /* 0: NULL                                    */
	char origin[16];
	char status[16];       /* pending evaluating done failed skipped        */
	int rank;              /* -1: NULL                                      */
	double crowding;       /* NaN: NULL (INFINITY is stored as 1e308)       */
	int feasible;          /* -1: NULL                                      */
	double violation;      /* NaN: NULL                                     */
	char *objectives;      /* JSON object text or NULL, malloc'd            */
	char error[512];
} db_candidate;

void db_candidates_free(db_candidate *c, size_t n);

/* Insert a candidate (its genome row first, INSERT OR IGNORE; operators,
 * the genome's layers per operator label as a JSON object, may be NULL and
 * fills genomes.operators when it is NULL). status
 * "pending" for new ones, "done" with objectives for elites. TL_EEXIST when
 * the run already has this genome in this generation. */
int db_candidate_add(db_conn *db, int64_t run_id, int64_t generation, const char *hash,
                     const char *text, int64_t params, const char *operators,
                     int64_t parent1, int64_t parent2,
                     const char *origin, const char *status, const char *objectives,
                     int feasible, double violation, int64_t *id, tl_err *err);
/* The candidates of a generation, by id. */
int db_candidates_of(db_conn *db, int64_t run_id, int64_t generation, db_candidate **out,
                     size_t *n, tl_err *err);
/* A finished evaluation of this genome in this run (status done), if any:
 * *found set, its objectives / feasibility copied into out. */
int db_candidate_find_done(db_conn *db, int64_t run_id, const char *hash, db_candidate *out,
                           bool *found, tl_err *err);
/* Has the run ever held this genome (any generation, any status)? */
int db_run_has_genome(db_conn *db, int64_t run_id, const char *hash, bool *has, tl_err *err);
int db_candidate_set_result(db_conn *db, int64_t id, const char *status, const char *objectives,
                            int feasible, double violation, const char *error, tl_err *err);
int db_candidate_set_rank(db_conn *db, int64_t id, int rank, double crowding, tl_err *err);
/* Replace a done candidate's objectives (multi-fidelity: its quality at a
 * higher budget), nothing else. */
int db_candidate_set_objectives(db_conn *db, int64_t id, const char *objectives, tl_err *err);
/* Make the failed candidates of a generation pending again (a resumed run
 * retries them); *n how many. */
int db_candidates_retry_failed(db_conn *db, int64_t run_id, int64_t generation, int64_t *n,
                               tl_err *err);

/* Insert or replace a generation's summary; finished marks it done. */
int db_generation_put(db_conn *db, int64_t run_id, int64_t generation, int64_t evaluated,
                      int64_t feasible, int64_t frontier_size, double hypervolume,
                      const char *reference_point, bool finished, tl_err *err);
/* Is the generation's summary written and finished? */
int db_generation_finished(db_conn *db, int64_t run_id, int64_t generation, bool *finished,
                           tl_err *err);

/* ---- what a candidate was ranked on (candidate_evals, schema version 5) ------------ */

/* One candidate_evals row: on a device, whether the candidate's device
 * metrics came from a measurement or a prediction. measurement_id /
 * prediction_id 0: none (or deleted since: a prediction goes with its
 * operator table). */
typedef struct db_candidate_eval {
	int64_t candidate_id, device_id, measurement_id, prediction_id;
	char used[16]; /* "measured" or "predicted" */
} db_candidate_eval;

/* Record what candidate_id was ranked on, on device_id: used "measured" or
 * "predicted"; measurement_id / prediction_id 0: none. Replaces the row of
 * the same candidate and device (a resumed run evaluating it again; an
 * elite copying another candidate's result records the copy the same way).
 * A used other than the two, or an id that names no row, is refused
 * (TL_EDB, db_err_is_constraint). */
int db_candidate_eval_set(db_conn *db, int64_t candidate_id, int64_t device_id,
                          int64_t measurement_id, int64_t prediction_id, const char *used,
                          tl_err *err);
/* The rows of a candidate, by device id: *out malloc'd (NULL when none), the
 * caller free()s it. */
int db_candidate_evals_of(db_conn *db, int64_t candidate_id, db_candidate_eval **out, size_t *n,
                          tl_err *err);

/* One row of the view predicted_vs_measured: a candidate with both a
 * prediction and a successful measurement on a device. NaN: NULL. */
typedef struct db_pvm {
	int64_t candidate_id;
	int64_t generation;       /* 0-based                                       */
	char genome_hash[65];
	char device[65];          /* the device's name                             */
	double pred_ttft_ms, meas_ttft_ms;
	double pred_decode_ms, meas_decode_ms; /* meas: decode_ms_p50             */
	double pred_peak_rss_mb, meas_peak_rss_mb; /* MiB (bytes / 1048576)        */
} db_pvm;

/* The run's rows of predicted_vs_measured, by candidate id then device name:
 * *out malloc'd (NULL when none), the caller free()s it. An elite copy of a
 * candidate repeats its genome's row under its own candidate id. */
int db_run_pvm(db_conn *db, int64_t run_id, db_pvm **out, size_t *n, tl_err *err);

/* A device a run used: one that holds a measurement, a candidate_evals row
 * or a canary of the run. */
typedef struct db_run_device {
	int64_t id;
	char name[65];
	char transport[8];
	/* from the device fingerprint of its newest measurement in the run
	 * ("" when it has none): what the figures were measured on */
	char cpu[128], arch[32], os[128], kernel[96], toolchain[160];
	int64_t cores;               /* 0: unknown */
	int64_t n_ok, n_failed;      /* the run's measurements on it */
} db_run_device;

/* The devices run_id used, by id: *out malloc'd (NULL when none), the caller
 * free()s it. */
int db_run_devices(db_conn *db, int64_t run_id, db_run_device **out, size_t *n, tl_err *err);

/* A reason a run's evaluations failed and how often: candidates by their
 * error, or measurements by device, failure kind and error. */
typedef struct db_run_failure {
	char device[65];   /* measurements: the device; candidates: "" */
	char kind[16];     /* measurements: the failure kind; candidates: "" */
	char error[512];
	int64_t n;
} db_run_failure;

/* The most frequent reasons (at most `max`, most frequent first) the run's
 * candidates (measurements false) or measurements (true) failed: *out
 * malloc'd (NULL when none), the caller free()s it. */
int db_run_failures(db_conn *db, int64_t run_id, bool measurements, int max,
                    db_run_failure **out, size_t *n, tl_err *err);

/* ---- quality results --------------------------------------------------------- */

/* A stored quality result of a genome under an evaluator and its settings
 * (the `quality` table; *found false when there is none or it failed). */
int db_quality_get(db_conn *db, const char *hash, const char *evaluator,
                   const char *settings_hash, const char *metric, double *value, bool *found,
                   tl_err *err);
/* Store one (replacing an earlier row of the same key). value NaN: failed,
 * with error. ids 0: NULL. */
int db_quality_put(db_conn *db, const char *hash, int64_t run_id, int64_t candidate_id,
                   const char *evaluator, const char *settings, const char *settings_hash,
                   const char *metric, double value, const char *error, tl_err *err);

/* ---- events of a run ---------------------------------------------------------- */

/* The data (JSON text) of the run's events whose kind starts with
 * kind_prefix, oldest first: *out a malloc'd array of *n malloc'd strings
 * (db_strings_free). Events without data are skipped. */
int db_run_events_data(db_conn *db, int64_t run_id, const char *kind_prefix, char ***out,
                       size_t *n, tl_err *err);
void db_strings_free(char **v, size_t n);

/* ---- for reports ---------------------------------------------------------- */

/* Every candidate of the run, all generations, by id. */
int db_candidates_all(db_conn *db, int64_t run_id, db_candidate **out, size_t *n, tl_err *err);

typedef struct db_generation {
	int64_t generation, evaluated, feasible, frontier_size;
	double hypervolume; /* NaN: NULL */
} db_generation;
/* The run's finished generations, in order. */
int db_generations_of(db_conn *db, int64_t run_id, db_generation **out, size_t *n, tl_err *err);

typedef struct db_opshare {
	int64_t generation;
	char op[32];
	int64_t layers;
	double share;
} db_opshare;
/* The view generation_operators for one run, by generation then operator. */
int db_operator_shares(db_conn *db, int64_t run_id, db_opshare **out, size_t *n, tl_err *err);

#endif /* DB_RUNS_H */
