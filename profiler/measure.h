/*
 * profiler/measure.h: the host side of measuring a candidate (prefix prof_).
 *
 * One chain measures an architecture on a registered device, `local`
 * included, for `tailor bench`, for the search engine and for the
 * predictor's validation (DESIGN.md §2, "one path per job"):
 *
 *   prof_job_init      the protocol of the device (defaults, the device's
 *                      overrides, the command's or run's protocol, flags) and
 *                      the text and hash stored with each shape
 *   prof_job_run       on a device worker of devices/pool.c (the only
 *                      scheduler): fingerprint, harness put (prof_harness_put:
 *                      built for the device's toolchain through the build
 *                      cache, uploaded, or built on the device), every shape
 *                      run under the protocol (prof_dev_measure), parsed into
 *                      a typed prof_measurement, recorded through db/ with
 *                      every raw repeat, the device's health updated
 *   prof_job_abandon   the pool gave the job up: recorded as failed
 *
 * The caller owns the pool; prof_pool_opts gives the callbacks for a pool
 * whose jobs are all prof_jobs (tailor bench, prof_measure_one). The search
 * engine wraps prof_job_run in its own callbacks to learn when each job ends.
 *
 * Threads: a prof_lab's db connection is used under lab->mu only, so one
 * connection serves every device worker and the caller's thread.
 *
 * Also here: predictions from a device's operator table (prof_predict_arch,
 * stored in `predictions`), used by the engine's "predict" and
 * "predict-measure" evaluation modes.
 */
#ifndef PROF_MEASURE_H
#define PROF_MEASURE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "db.h"
#include "dev.h"
#include "protocol.h"
#include "tl.h"

/* Why a measurement failed (measurements.failure stores the name). */
typedef enum prof_failure {
	PROF_FAIL_NONE = 0,
	PROF_FAIL_BUILD,    /* the harness did not compile                     */
	PROF_FAIL_CONNECT,  /* the device could not be reached                 */
	PROF_FAIL_TRANSFER, /* upload failed                                   */
	PROF_FAIL_TIMEOUT,  /* a run passed its timeout                        */
	PROF_FAIL_HARNESS,  /* the harness exited with a status                */
	PROF_FAIL_OUTPUT,   /* its output is not its JSON result               */
	PROF_FAIL_LOST,     /* the connection died under the job               */
	PROF_FAIL_OFFLINE,  /* the pool gave the job up                        */
	PROF_FAIL_BUSY,     /* another process held the device                 */
	PROF_FAIL_DB,       /* measured, but the database refused the row      */
} prof_failure;
/* "build", "connect", ...; "" for PROF_FAIL_NONE. */
const char *prof_failure_name(prof_failure f);

/* What to measure: the command's or the search's settings. */
typedef struct prof_bench_args {
	long long prompt, gen, depth; /* the shape (a --protocol file's shapes win) */
	long long threads;            /* 0: the protocol's, else the device's       */
	long long repeat;             /* > 1: the protocol's repeats (a search's
	                               * bench.repeat), or in_process's --repeat    */
	double timeout_s;             /* one harness run at most                    */
	uint64_t seed;
	const char *quant, *kv;
	/* protocol layers, NULL: not given (checked by prof_job_init):
	 * --protocol FILE, the search's bench.protocol (its shapes unused), then
	 * the flags' texts */
	const char *protocol_file, *protocol_json;
	const char *warmup, *repeats, *cv, *min_time;
	/* One harness run per shape, the harness's own --repeat R in-process
	 * repeats (no warm-up run, no CV check): a search on `local` without a
	 * bench.protocol, measured as fast as the quickstart needs, still stored
	 * like every measurement. */
	bool in_process;
} prof_bench_args;

/* One shape's outcome, every metric a field. */
typedef struct prof_measurement {
	int64_t id;          /* its measurements row; 0: not stored         */
	prof_shape shape;
	double ttft_ms, prefill_tok_s, decode_ms_p50, decode_ms_p95, decode_tok_s;
	double peak_rss_bytes, weight_bytes, cache_bytes;
	int threads;         /* as the harness reports; -1 unknown          */
	prof_result res;     /* the protocol's runs (raw repeats), statistics */
} prof_measurement;

typedef struct prof_job {
	/* set by prof_job_init */
	const db_device *dev;
	const prof_bench_args *a;
	const char *arch_text;                   /* the caller's, kept alive  */
	char arch_hash[65];                      /* the genome hash           */
	prof_protocol proto;                     /* this device's             */
	char *protocol[PROF_MAX_SHAPES];         /* stored per shape (JSON)   */
	char protocol_hash[PROF_MAX_SHAPES][65];
	void *user;                              /* the caller's              */
	/* results */
	bool done, ok;
	int n_ok;                                /* shapes measured           */
	char build_hash[65];
	prof_failure failure;
	int64_t failed_id;                       /* the failed row, 0: none   */
	char error[TL_ERR_MSG_MAX];
	prof_measurement m[PROF_MAX_SHAPES];     /* [0, n_ok)                 */
} prof_job;

typedef struct prof_lab {
	pthread_mutex_t *mu; /* held around every use of db                  */
	db_conn *db;
	int64_t run_id;      /* the run the measurements are for; 0: none     */
} prof_lab;

/* Prepare a job for device d: the protocol (defaults, d's overrides, the
 * --protocol file, the search's protocol, the flags: TL_EUSAGE naming the
 * flag, or the device when it clashes with d's settings), the stored
 * protocol texts. arch_text is kept by pointer. */
int prof_job_init(prof_job *job, const prof_bench_args *a, const db_device *d,
                  const char *arch_text, tl_err *err);
/* Free what a job holds (its texts and results); the job may be re-inited. */
void prof_job_free(prof_job *job);

/* Run the job on device d (a dev_job_fn body): returns DEV_JOB_OK,
 * DEV_JOB_FAILED or DEV_JOB_DEVICE; every shape measured, or the failure,
 * is recorded in lab->db (under lab->mu), and the device's health. */
int prof_job_run(prof_lab *lab, dev_session **session, const db_device *d, prof_job *job);
/* The pool gave the job up (offline, busy): recorded as a failed row. */
void prof_job_abandon(prof_lab *lab, const db_device *d, prof_job *job, const char *why);
/* The pool's health report: the device's status and an event. */
void prof_lab_health(prof_lab *lab, const db_device *d, const char *status, int streak);

/* Pool options whose jobs are prof_jobs over lab (run, abandon, health). */
void prof_pool_opts(dev_pool_opts *o, prof_lab *lab, double timeout_s);

/* Measure arch_text on one registered device now (its lock, a pool of one):
 * the job filled (prof_job_free it); 0 when measured, else the failure's
 * code with err naming the device and reason (the failure is recorded). The
 * genome row is ensured first (genome_text may be "" when the arch's genome
 * is already stored). */
int prof_measure_one(prof_job *job, db_conn *db, const db_device *d, const char *arch_text,
                     const char *genome_text, const prof_bench_args *a, tl_err *err);

/* The summary of a measured shape as the harness's JSON object with its
 * figures replaced by the protocol's medians and a "protocol_result" object
 * (cJSON_Delete); NULL when out of memory. */
struct cJSON;
struct cJSON *prof_measurement_json(const prof_measurement *m);

/* ---- the pieces ----------------------------------------------------------- */

/* Put a harness on a device: built for its toolchain through the build cache
 * and uploaded, or, when the device compiles itself, the build dir pushed
 * and made there. The harness is WD/tailor-bench in a fresh work dir (wd;
 * the caller removes it with dev_workdir_remove, also after a failure when
 * wd[0]). arch_text NULL: a harness without an architecture (give --arch).
 * With arch_file (and not compile_on_device) the harness is built without
 * the architecture, which goes to WD/arch.txt: one build serves every
 * candidate. build_hash gets the build key; *failure says where it failed
 * (PROF_FAIL_BUILD or PROF_FAIL_TRANSFER). */
int prof_harness_put(dev_session *s, const char *arch_text, bool arch_file, const char *quant,
                     char *wd, size_t wd_n, char build_hash[65], prof_failure *failure,
                     tl_err *err);

/* Run the harness of work dir wd under protocol p (one shape, the caller's
 * arguments after the binary, NULL-ended): the device's run prefix (or the
 * protocol's pin), the thermal gate, warm-ups, repeats, re-measurement; res
 * filled (prof_result_free). *failure: the kind of a failure. */
int prof_dev_measure(dev_session *s, const db_device *d, const char *wd,
                     const char *const *hargs, const prof_protocol *p, double timeout_s,
                     prof_result *res, prof_failure *failure, tl_err *err);

/* Apply device d's protocol overrides (every key but "shapes") to *p; *p is
 * unchanged on failure ("device pixel7: protocol: $.delay_s: ..."). */
int prof_device_protocol(prof_protocol *p, const db_device *d, tl_err *err);
/* Check a device's protocol overrides (a JSON object) and compact them into
 * out (db_device.protocol); *shapes: whether it lists "shapes" (kept but
 * never used). */
int prof_device_protocol_text(char *out, size_t n, const char *json, bool *shapes, tl_err *err);

/* The harness's --probe on the device (read and copy bandwidth, FMA and
 * int8-dot peaks): *out the kept figures with the build id (cJSON_Delete). */
int prof_bandwidth_probe(dev_session *s, const db_device *d, double timeout_s, struct cJSON **out,
                         tl_err *err);

/* ---- predictions ------------------------------------------------------------ */

typedef struct prof_prediction {
	int64_t id;                  /* its predictions row                  */
	int64_t table_id;
	double ttft_ms, decode_ms, peak_rss_bytes;
	bool approximated;           /* a key outside the table, estimated  */
} prof_prediction;

/* Predict arch_text on device device_id at shape sh from the device's newest
 * operator table for space_hash (else its newest); lab->mu is held for the
 * database. Nothing is stored. TL_ENOTFOUND when the device has no table
 * (the message says how to make one); TL_EINVAL when the arch is outside
 * it. */
int prof_predict_arch(prof_lab *lab, int64_t device_id, const char *device_name,
                      const char *space_hash, const char *arch_text, const prof_shape *sh,
                      prof_prediction *out, tl_err *err);
/* Store a prediction of the genome arch_hash at shape sh (the genome row
 * ensured from genome_text), linked to measurement_id when > 0; out->id
 * gets the row's id. Under lab->mu. */
int prof_prediction_store(prof_lab *lab, prof_prediction *p, const char *arch_hash,
                          const char *genome_text, const prof_shape *sh, int64_t measurement_id,
                          tl_err *err);

#endif /* PROF_MEASURE_H */
