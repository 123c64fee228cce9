/*
 * db/db.h: the results store. One SQLite file holds devices, runs, genomes,
 * candidates, measurements, quality results and events (DESIGN.md §8). This
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
#define DB_SCHEMA_VERSION 1

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

/* For tests only: make the file's recorded schema version `version` (rows
 * of schema_migrations above it are deleted; if the highest remaining is
 * below it, a row named "debug: ..." is added). Used to fake a file from a
 * newer tailor, or an interrupted migration. Never called by tailor. */
int db_debug_set_schema_version(db_conn *db, int version, tl_err *err);

#endif /* DB_H */
