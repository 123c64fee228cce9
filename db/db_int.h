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
#include <stdint.h>

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

/* ---- statements with bound values and typed rows ----------------------
 *
 * Every statement of the table-group files goes through these: a list of
 * typed values bound to ?1, ?2, ... in order, then either run to completion
 * (db_write, db_insert), read as at most one row (db_get) or collected into
 * a growing array (db_collect). Each prepares, binds, steps and finalizes
 * itself, and turns a SQLite failure into one db_fail line naming `op`.
 *
 *   db_write(db, "UPDATE runs SET generation = ?2 WHERE id = ?1",
 *            DB_ARGS(DB_I64(id), DB_I64(generation)), "run generation", err);
 */

/* How a value is bound; the NULL rules are the schema's (docs/schema.md). */
enum db_arg_kind {
	DB_ARG_I64,      /* i as is */
	DB_ARG_ID,       /* i > 0, else NULL (ids, thread counts, optional positives) */
	DB_ARG_I64_OPT,  /* i >= 0, else NULL (counts and sizes where -1 is unknown) */
	DB_ARG_REAL,     /* d when finite, else NULL */
	DB_ARG_REAL_BIG, /* NaN: NULL; +-inf: +-1e308 (the crowding distance of a front's ends) */
	DB_ARG_TEXT,     /* s, NULL: NULL */
	DB_ARG_TEXT_OPT, /* s, NULL or "": NULL */
};

typedef struct db_arg {
	enum db_arg_kind kind;
	int64_t i;
	double d;
	const char *s; /* copied by SQLite when bound */
} db_arg;

#define DB_I64(v) {DB_ARG_I64, (int64_t)(v), 0, NULL}
#define DB_BOOL(b) {DB_ARG_I64, (b) ? 1 : 0, 0, NULL}
#define DB_ID(v) {DB_ARG_ID, (int64_t)(v), 0, NULL}
#define DB_I64_OPT(v) {DB_ARG_I64_OPT, (int64_t)(v), 0, NULL}
#define DB_REAL(v) {DB_ARG_REAL, 0, (v), NULL}
#define DB_REAL_BIG(v) {DB_ARG_REAL_BIG, 0, (v), NULL}
#define DB_TEXT(v) {DB_ARG_TEXT, 0, 0, (v)}
#define DB_TEXT_OPT(v) {DB_ARG_TEXT_OPT, 0, 0, (v)}
/* The array and its length, as the two arguments args, nargs. */
#define DB_ARGS(...) \
	(const db_arg[]){__VA_ARGS__}, sizeof((const db_arg[]){__VA_ARGS__}) / sizeof(db_arg)

/* Bind args[0..nargs) to ?1..?nargs of st. */
int db_bind(db_conn *db, sqlite3_stmt *st, const db_arg *args, size_t nargs, const char *op,
            tl_err *err);

/* db_prepare then db_bind; *st is NULL after a failure. */
int db_prepare_args(db_conn *db, sqlite3_stmt **st, const char *sql, const db_arg *args,
                    size_t nargs, const char *op, tl_err *err);

/* Run a statement that returns no rows (INSERT, UPDATE, DELETE). */
int db_write(db_conn *db, const char *sql, const db_arg *args, size_t nargs, const char *op,
             tl_err *err);

/* db_write, then *id (when not NULL) = the new row's id. */
int db_insert(db_conn *db, const char *sql, const db_arg *args, size_t nargs, const char *op,
              int64_t *id, tl_err *err);

/* Reads the current row of st into elem. Returns 0, or a negative code with
 * err set (what it allocated stays in elem for the row type's clear). */
typedef int (*db_read_fn)(sqlite3_stmt *st, void *elem, tl_err *err);

/* Readers of column 0, for db_get: as int64_t (NULL: 0), as double (NULL:
 * NaN). */
int db_read_i64(sqlite3_stmt *st, void *elem, tl_err *err);
int db_read_double(sqlite3_stmt *st, void *elem, tl_err *err);

/* The first row of a query into elem: 1 found, 0 no row (elem untouched),
 * or a negative code. */
int db_get(db_conn *db, const char *sql, const db_arg *args, size_t nargs, const char *op,
           db_read_fn read, void *elem, tl_err *err);

/* The elements of an array db_collect fills. */
typedef struct db_rowtype {
	size_t size;              /* sizeof one element */
	db_read_fn read;          /* reads a row into a zeroed element */
	void (*clear)(void *elem); /* frees what read allocated; NULL: nothing */
} db_rowtype;

/* Every row of a query into *out (malloc'd, doubling; NULL when there are
 * none), *n elements. On failure nothing is returned: the elements read so
 * far are cleared and freed, *out is NULL and *n 0. Out of memory is
 * "<op>: out of memory". */
int db_collect(db_conn *db, const char *sql, const db_arg *args, size_t nargs, const char *op,
               const db_rowtype *type, void **out, size_t *n, tl_err *err);

/* Column i as a double (NaN for NULL). */
double db_col_real(sqlite3_stmt *st, int i);

/* Column i as text copied into dst[0..size) ("" for NULL). */
void db_col_text(sqlite3_stmt *st, int i, char *dst, size_t size);

/* Column i as a malloc'd string in *dst (NULL for SQL NULL). Returns 0, or
 * TL_ENOMEM without setting an error (the caller names the row). */
int db_col_dup(sqlite3_stmt *st, int i, char **dst);

#endif /* DB_INT_H */
