/*
 * db/db_int.h: what the files of the db room share and nobody else sees: the
 * connection struct, the migration table, and the helpers that turn a SQLite
 * failure into one tl_err line. Table-group files (runs, candidates,
 * measurements...) include this; other rooms include db.h only.
 */
#ifndef DB_INT_H
#define DB_INT_H

#include <sqlite3.h>
#include <stddef.h>

#include "db.h"

/* PRAGMA application_id of every tailor database: "tail" in ASCII
 * (0x7461696C), so `file` and tools that read the SQLite header can tell a
 * tailor file from another SQLite file. Set by migration 1. */
#define DB_APPLICATION_ID 1952541036

struct db_conn {
	sqlite3 *h;    /* the SQLite handle, owned */
	char *path;    /* the path as given to db_open, owned */
	char *dir;     /* its directory ("." for a bare name), owned; for messages */
	bool readonly; /* opened with DB_OPEN_READONLY */
	bool memory;   /* path ":memory:": in-memory database, no WAL */
	int version;   /* schema version of the file after db_open */
};

/*
 * One forward migration. Migrations are numbered 1, 2, ... with no gaps, in
 * array order; the schema version of a file is the highest version recorded
 * in schema_migrations. A migration's SQL is static text (never built from
 * values) and runs inside the single BEGIN IMMEDIATE transaction that applies
 * every pending migration, so it must not contain BEGIN/COMMIT, VACUUM, or
 * PRAGMA foreign_keys (a no-op inside a transaction). A migration that
 * rebuilds a table follows SQLite's "12-step" ALTER TABLE procedure with
 * foreign keys left on, which is safe as long as the new table keeps the
 * same rows. Each migration ends with `PRAGMA user_version = N;` so that
 * tools reading only the header see the version too; schema_migrations stays
 * the authority. Released migrations are never edited: change the schema by
 * appending one.
 */
typedef struct db_migration {
	int version;      /* 1.. in array order */
	const char *name; /* short description, stored in schema_migrations.name */
	const char *sql;  /* statements, run with sqlite3_exec */
} db_migration;

extern const db_migration db_migrations[];
extern const size_t db_migrations_count;

/* Record a SQLite failure as TL_EDB with the extended result code `rc` in
 * err->sub and the message "db <op>: <path>: <reason>". The reason is
 * SQLite's message, turned into advice for the failures a user can fix (a
 * directory or file that is not writable, a file that is not a database, a
 * lock held too long). Call it before finalizing the failed statement: the
 * connection's message belongs to the last failure. Returns TL_EDB. */
int db_fail(db_conn *db, int rc, const char *op, tl_err *err);

/* Prepare one static statement; on failure records it via db_fail. */
int db_prepare(db_conn *db, sqlite3_stmt **st, const char *sql, const char *op, tl_err *err);

/* Run static SQL without parameters or results (BEGIN, COMMIT, a
 * migration). Values never go through here: they are bound. */
int db_exec(db_conn *db, const char *sql, const char *op, tl_err *err);

/* Step a statement that returns no rows to completion and finalize it (also
 * on failure). *st is set to NULL. */
int db_step_done(db_conn *db, sqlite3_stmt **st, const char *op, tl_err *err);

/* Run a statement returning one integer (count, max...) into *out and
 * finalize it. A NULL result reads as 0. */
int db_query_i64(db_conn *db, const char *sql, int64_t *out, const char *op, tl_err *err);

#endif /* DB_INT_H */
