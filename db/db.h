/*
 * db/db.h: the results store. One SQLite file holds devices, runs, genomes,
 * candidates, measurements, quality results, events, operator latency
 * tables with the predictions made from them (db_optables.h), what each
 * candidate was ranked on (db_runs.h) and each device's canary history
 * (below) (DESIGN.md §8). This
 * room is the only one that includes sqlite3.h; everyone else goes through
 * the functions below and never sees SQL.
 *
 * Workload: one writer process per run (the search engine commits every
 * evaluation as it completes), any number of readers (`tailor query`, report,
 * an analyst's sqlite3 or pandas). WAL lets readers proceed while the writer
 * commits; the busy timeout absorbs two tailor processes writing at once
 * (e.g. `tailor device probe` during a run).
 *
 * Ownership: db_open returns a db_conn * owned by the caller, freed by
 * db_close (which accepts NULL).
 *
 * Usage:
 *     tl_err err = TL_ERR_INIT;
 *     db_conn *db = NULL;
 *     if (db_open(&db, db_path_resolve(flag_db), 0, &err) < 0) { ... }
 *     int v = db_schema_version(db);
 *     db_close(db);
 */
#ifndef DB_H
#define DB_H

#include <stdbool.h>
#include <stdint.h>

#include "tl.h"

typedef struct db_conn db_conn;

/* The schema version this build writes: the number of the last migration. */
#define DB_SCHEMA_VERSION 5

/* Default busy timeout (ms): long enough to ride out another process's
 * commit of one generation, short enough that a wedged writer is reported. */
#define DB_BUSY_TIMEOUT_MS 10000

enum {
	DB_OPEN_READONLY = 1 << 0, /* open an existing file read-only, no migration */
};

/* Note on DB_OPEN_READONLY: the file must exist (TL_ENOTFOUND otherwise); a
 * newer schema is still refused, an older one is opened as it is (check
 * db_schema_version before relying on tables of later migrations). */

/* The path to use: `flag` (from --db) when not NULL or empty, else the
 * environment variable TAILOR_DB when set and non-empty, else "./tailor.db".
 * Returns a pointer to one of those strings (not a copy). */
const char *db_path_resolve(const char *flag);

/* Open or create the database at `path`: WAL journal, foreign keys on, the
 * busy timeout, then forward migrations up to DB_SCHEMA_VERSION applied in
 * one transaction (all or nothing). Refuses, with one clear line:
 *  - a path whose directory is missing or not writable (says which and how
 *    to fix it), a path that is a directory, a file that is not SQLite;
 *  - a file whose schema version is newer than DB_SCHEMA_VERSION (written by
 *    a newer tailor): TL_EVERSION, the file is not touched.
 * SQLite failures carry the extended result code in err->sub.
 * The path ":memory:" opens a private in-memory database with the schema
 * (journal mode "memory", gone at db_close): for tests of other rooms. */
int db_open(db_conn **out, const char *path, int flags, tl_err *err);
void db_close(db_conn *db);

/* The path this connection was opened with. */
const char *db_path(const db_conn *db);
/* The schema version recorded in the file (after db_open: DB_SCHEMA_VERSION,
 * or the file's own version when opened read-only). */
int db_schema_version(db_conn *db);

/* Row counts of the main tables, for `tailor db info`. Counts are 0 for a
 * version-0 file (read-only open of an empty database). */
typedef struct db_info {
	int schema_version;
	int64_t devices, runs, genomes, candidates, measurements, quality, events;
	int64_t file_bytes;
	char journal_mode[16];
	/* Added for tests and `db info`: */
	int64_t migrations;   /* rows of schema_migrations (applied migrations) */
	char migrated_at[32]; /* applied_at of the newest one, ISO-8601 UTC, or "" */
	int64_t wal_bytes;    /* size of PATH-wal, 0 when absent (commits not yet
	                       * checkpointed into the file live there) */
} db_info;
int db_info_get(db_conn *db, db_info *out, tl_err *err);

/* True when err holds a SQLite constraint failure (CHECK, NOT NULL,
 * UNIQUE, FOREIGN KEY, a trigger's RAISE): the write was refused because of
 * the values, not because of the file. The exact kind is in err->sub (the
 * extended result code, e.g. 787 for a foreign key). */
bool db_err_is_constraint(const tl_err *err);

/* Explicit transactions for callers that group several writes (BEGIN
 * IMMEDIATE, so a second writer waits at the start, not at commit). When
 * db_commit fails the transaction may still be open: call db_rollback,
 * which is a no-op when no transaction is open. */
int db_begin(db_conn *db, tl_err *err);
int db_commit(db_conn *db, tl_err *err);
void db_rollback(db_conn *db);

/* Append an event (level "info", "warn" or "error"; kind a short word such
 * as "run.start"; run_id/device_id 0 when not applicable; data_json may be
 * NULL). Events are the audit log a run leaves behind. */
int db_event_add(db_conn *db, int64_t run_id, int64_t device_id,
                 const char *level, const char *kind, const char *message,
                 const char *data_json, tl_err *err);

/* ---- devices (db/devices.c) --------------------------------------------
 *
 * One row of `devices` (docs/schema.md). Text fields are "" for NULL; the
 * integers say when they are NULL. The struct is a plain value (no
 * pointers), so it can be copied to the worker thread that uses a device.
 * Validation of what a field may hold (names, transports, hosts) is the
 * devices room's job (dev_device_check); the table's CHECKs are the last
 * line. */
#define DB_DEVICE_LOCAL_ID 1

typedef struct db_device {
	int64_t id;              /* 0 before insertion; 1 is `local`              */
	char name[65];           /* [A-Za-z0-9][A-Za-z0-9._-]{0,63}               */
	char transport[8];       /* "local", "ssh" or "adb"                       */
	char host[256];          /* ssh: the device; adb: the lab host            */
	int port;                /* 1..65535; 0: NULL (22)                        */
	char user[128];          /* ssh login; "": the current user               */
	char key_path[1024];     /* private key file; "": agent or ~/.ssh/id_*    */
	bool use_agent;          /* authenticate with ssh-agent                   */
	char known_hosts[1024];  /* known_hosts file; "": ~/.ssh/known_hosts      */
	char adb_serial[128];    /* adb: the phone's serial on the lab host       */
	char adb_path[1024];     /* adb: the adb command there; "": adb           */
	char arch[64];           /* e.g. x86_64, aarch64 (probed or given)        */
	char toolchain_cc[256];  /* host-side compiler; "": cc                    */
	char toolchain_flags[512]; /* its flags; "": -O3 -march=native            */
	bool compile_on_device;  /* build in a work dir on the device with make   */
	char run_prefix[512];    /* words before the harness (taskset -c 4-7)     */
	int threads;             /* harness threads; 0: NULL (the default)        */
	char labels[1024];       /* JSON array of strings, "[]" by default        */
	bool enabled;            /* 0: never used by a search                     */
	char status[16];         /* unknown, online, offline, busy                */
	int fail_streak;         /* consecutive failures                          */
	char last_seen[32];      /* UTC time of the last successful contact       */
	char facts[16384];       /* JSON object of probed facts, "" when never    */
	char host_key[128];      /* fingerprint accepted by trust, "" when none   */
	char work_root[1024];    /* where run dirs are made; "": the default      */
	int timeout_s;           /* connect/read timeout, s; 0: NULL (10 s)       */
	/* The device's measurement-protocol overrides: a compact JSON object of
	 * profiler/protocol.h keys, applied over the defaults and before the
	 * command's or run's protocol; "": none (NULL). Since schema version 4. */
	char protocol[2048];
	char created_at[32], updated_at[32];
} db_device;

/* A zeroed device with the table's defaults (enabled, labels "[]", status
 * "unknown"). */
void db_device_init(db_device *d);
/* Insert d (d->id ignored) and set *id. A name that exists is TL_EEXIST
 * ("device add: NAME: a device of that name exists (...)"). */
int db_device_add(db_conn *db, const db_device *d, int64_t *id, tl_err *err);
/* The device called name, or TL_ENOTFOUND naming it. */
int db_device_get(db_conn *db, const char *name, db_device *out, tl_err *err);
int db_device_get_id(db_conn *db, int64_t id, db_device *out, tl_err *err);
/* Every device, ordered by id: *out is a malloc'd array the caller frees. */
int db_device_list(db_conn *db, db_device **out, size_t *n, tl_err *err);
/* Rewrite the operator's columns of row d->id (connection settings,
 * toolchain, run prefix, threads, labels, enabled, work root, timeout,
 * protocol). */
int db_device_update(db_conn *db, const db_device *d, tl_err *err);
/* Delete by name. `local` is refused by a trigger, a device with
 * measurements by a foreign key: both become TL_EINVAL with advice. */
int db_device_remove(db_conn *db, const char *name, tl_err *err);
int db_device_set_enabled(db_conn *db, int64_t id, bool enabled, tl_err *err);
/* Record the outcome of using a device: status ("online", "offline",
 * "unknown"), its failure streak, and last_seen = now when seen. */
int db_device_set_health(db_conn *db, int64_t id, const char *status, int fail_streak,
                         bool seen, tl_err *err);
/* Store probed facts (a JSON object) and, when arch is not empty, arch;
 * marks the device online and seen. */
int db_device_set_facts(db_conn *db, int64_t id, const char *facts_json, const char *arch,
                        tl_err *err);
int db_device_set_host_key(db_conn *db, int64_t id, const char *fingerprint, tl_err *err);

/* ---- canaries (db/canaries.c, schema version 5) -------------------------
 *
 * The canary is a fixed genome a run measures on every device at its start
 * and every few generations (evolve/, "canary" in docs/config.md); each of
 * those measurements is a canaries row, kept across runs, so a device's
 * drift can be followed over weeks. */
typedef struct db_canary {
	int64_t id;             /* 0 before insertion; higher is newer            */
	int64_t device_id;      /* devices.id, required                           */
	int64_t run_id;         /* the run that measured it; 0: NULL              */
	int64_t generation;     /* of that run, 0-based, >= 0                     */
	int64_t measurement_id; /* the measurement behind it; 0: NULL             */
	char canary_hash[65];   /* arch hash of the canary genome (64 hex)        */
	char build_hash[65];    /* the harness's build key; "": NULL              */
	char created_at[32];    /* set by the database                            */
	double decode_ms, ttft_ms; /* medians, ms; NaN: NULL                     */
	double peak_rss_mb;     /* MiB; NaN: NULL                                 */
} db_canary;

/* Insert c (c->id and c->created_at ignored) and set *id (may be NULL). A
 * device, run or measurement that does not exist, or a hash that is not 64
 * lowercase hex, is refused (TL_EDB, db_err_is_constraint). */
int db_canary_add(db_conn *db, const db_canary *c, int64_t *id, tl_err *err);
/* The canaries of device_id, newest last: canary_hash NULL: every canary
 * of the device, else those of that genome; limit 0: all, else the newest
 * `limit` of them. *out malloc'd (NULL when none), the caller free()s it. */
int db_canary_history(db_conn *db, int64_t device_id, const char *canary_hash, size_t limit,
                      db_canary **out, size_t *n, tl_err *err);

/* ---- genomes and measurements (db/measurements.c) ---------------------- */

/* Make sure the genome row exists (INSERT OR IGNORE): measurements refer to
 * it. params < 0: NULL. */
int db_genome_ensure(db_conn *db, const char *hash, const char *text, int64_t params,
                     tl_err *err);

/* One measurement. Pointers may be NULL (stored as NULL), integers < 0 and
 * doubles that are NaN are NULL, ids 0 are NULL. */
typedef struct db_measurement {
	const char *genome_hash;   /* required                                  */
	int64_t candidate_id, run_id, device_id; /* device_id required          */
	const char *build_hash, *quant;
	int64_t prompt_len, gen_len, depth, threads;
	const char *protocol;      /* JSON object                                */
	const char *protocol_hash;
	const char *device_fingerprint; /* JSON object                           */
	int64_t repeats;
	double ttft_ms, prefill_tok_s, decode_ms_p50, decode_ms_p95, decode_tok_s;
	int64_t peak_rss_bytes, weight_bytes, cache_bytes;
	double cv;
	int64_t remeasured;        /* >= 0                                       */
	/* The spread of the final round's repeats (the medians above are over
	 * them), as profiler/protocol.h prof_stats defines it: p95 by nearest
	 * rank, min, max; CV = sample sd / mean. decode_ms_* are over the
	 * repeats' decode_ms_p50, as cv is. Since schema version 4. */
	double ttft_ms_rep_p95, ttft_ms_rep_min, ttft_ms_rep_max, ttft_cv;
	double decode_ms_rep_p95, decode_ms_rep_min, decode_ms_rep_max;
	int64_t peak_rss_rep_min, peak_rss_rep_max; /* bytes                     */
	const char *status;        /* "ok" or "failed"                           */
	const char *error;         /* one line when failed                       */
	const char *failure;       /* kind when failed: build, connect, transfer,
	                            * timeout, harness, output, lost, offline, busy */
} db_measurement;

/* An initialised measurement: every optional field NULL (NaN, -1, 0 or
 * NULL as the field's type says), status "failed". */
void db_measurement_init(db_measurement *m);

typedef struct db_repeat {
	const char *raw; /* the harness's JSON, whole (required)                */
	double ttft_ms, prefill_tok_s, decode_ms_p50, decode_ms_p95, decode_tok_s;
	int64_t peak_rss_bytes;
	double temp_before_c, temp_after_c;
} db_repeat;

void db_repeat_init(db_repeat *r);

/* Insert the measurement and its repeats in one transaction; *id (may be
 * NULL) gets the new row's id. */
int db_measurement_add(db_conn *db, const db_measurement *m, const db_repeat *reps, size_t n,
                       int64_t *id, tl_err *err);

/* For tests only: make the file's recorded schema version `version` (rows
 * of schema_migrations above it are deleted; if the highest remaining is
 * below it, a row named "debug: ..." is added). Used to fake a file from a
 * newer tailor, or an interrupted migration. Never called by tailor. */
int db_debug_set_schema_version(db_conn *db, int version, tl_err *err);

/* For tests only: create a new file at path as a tailor of schema version
 * `version` (1..DB_SCHEMA_VERSION) would have left it: migrations 1..version
 * applied and recorded, then `sql` (fixture rows; may be NULL), all in one
 * transaction. The file is closed again; open it with db_open to migrate
 * it. TL_EEXIST when path exists. Never called by tailor. */
int db_debug_create(const char *path, int version, const char *sql, tl_err *err);

#endif /* DB_H */
