/*
 * tests/test_db.c: the db room against the file system and against what a
 * user would see: a new file gets the whole schema, re-opening writes
 * nothing (the file's bytes are compared), a file from a newer tailor or an
 * interrupted migration is refused and left byte-for-byte unchanged, bad
 * paths get the sentence that names the directory, and the constraints of
 * the schema hold. Migration 4: a file made by migrations 1..3 with rows in
 * it migrates (rows kept, new columns NULL, the same schema as a new file);
 * the spread columns of measurements and the operator tables and
 * predictions (db_optables.h) round-trip, read back with plain SQL through
 * db_query_stream; devices.protocol round-trips and holds JSON objects only.
 * Migration 5: a version-4 file with rows migrates (rows kept, the same
 * schema as a new file); candidate_evals are set, replaced and read back,
 * the view predicted_vs_measured gives the relative errors worked out by
 * hand; canaries come back by device, genome and limit, newest last, and
 * the view canary_history gives the change from the previous one.
 * Files live in a mkdtemp directory under /tmp, removed at the end.
 *
 * Only the db room's headers, tl.h and libc here (no sqlite3.h): extended
 * result codes the checks need are written as numbers with their SQLite
 * names.
 */
#include "db.h"
#include "db_optables.h"
#include "db_query.h"
#include "db_runs.h"
#include "tl.h"
#include "tl_test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define SQLITE_CONSTRAINT_CHECK      275 /* from sqlite3.h */
#define SQLITE_CONSTRAINT_NOTNULL    1299 /* from sqlite3.h */
#define SQLITE_CONSTRAINT_PRIMARYKEY 1555 /* from sqlite3.h */
#define SQLITE_CONSTRAINT_FOREIGNKEY 787 /* from sqlite3.h */
#define SQLITE_NOTADB                26  /* from sqlite3.h */
#define SQLITE_READONLY              8   /* from sqlite3.h */

static char tmp[64];

static void path_in(char *buf, size_t size, const char *name)
{
	int n = snprintf(buf, size, "%s/%s", tmp, name);
	if (n < 0 || (size_t)n >= size) {
		fprintf(stderr, "test_db: path too long: %s/%s\n", tmp, name);
		exit(2);
	}
}

static bool file_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

/* sha256 of the whole file, or "" when it cannot be read. */
static void file_hash(const char *path, char hex[65])
{
	char *buf = NULL;
	size_t len = 0;
	tl_err err = TL_ERR_INIT;

	hex[0] = '\0';
	if (tl_file_read(&buf, &len, path, 0, &err) < 0) {
		fprintf(stderr, "test_db: %s\n", err.msg);
		return;
	}
	tl_sha256_hex(buf, len, hex);
	free(buf);
}

static int write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	if (f == NULL)
		return -1;
	size_t n = fwrite(data, 1, len, f);
	if (fclose(f) != 0 || n != len)
		return -1;
	return 0;
}

/* Open, expecting success; prints the error otherwise. */
static db_conn *open_ok(const char *path, int flags)
{
	tl_err err = TL_ERR_INIT;
	db_conn *db = NULL;
	int rc = db_open(&db, path, flags, &err);
	CHECK_MSG(rc == 0 && db != NULL, "db_open(%s): %d %s", path, rc, err.msg);
	return rc == 0 ? db : NULL;
}


/* ---- plain SQL -------------------------------------------------------- */

/* The result of a query as text: values joined by '|', rows by '\n', SQL
 * NULL as "NULL" (so "" is an empty string and "NULL" a missing value). */
typedef struct sql_text {
	char buf[65536]; /* the whole schema fits */
	size_t len;
	bool overflow;
} sql_text;

static int sql_row(void *ctx, int ncol, const char *const *names, const char *const *vals,
                   const int *types)
{
	sql_text *t = ctx;
	(void)names;
	for (int i = 0; i < ncol; i++) {
		const char *v = types[i] == DB_T_NULL ? "NULL" : vals[i];
		int n = snprintf(t->buf + t->len, sizeof t->buf - t->len, "%s%s",
		                 i ? "|" : (t->len ? "\n" : ""), v);
		if (n < 0 || (size_t)n >= sizeof t->buf - t->len) {
			t->overflow = true;
			return 1;
		}
		t->len += (size_t)n;
	}
	return 0;
}

/* Run sql (read-only) and return its rows as text in a static buffer;
 * "ERROR: ..." when it failed. */
static const char *sql_rows(db_conn *db, const char *query)
{
	static sql_text t;
	tl_err err = TL_ERR_INIT;
	memset(&t, 0, sizeof t);
	if (db_query_stream(db, query, NULL, 0, sql_row, &t, &err) < 0) {
		snprintf(t.buf, sizeof t.buf, "ERROR: %s", err.msg);
	} else if (t.overflow) {
		snprintf(t.buf, sizeof t.buf, "ERROR: result too long");
	}
	return t.buf;
}

/* A one-integer query; -1 when it failed. */
static long long sql_int(db_conn *db, const char *query)
{
	const char *r = sql_rows(db, query);
	char *end;
	long long v = strtoll(r, &end, 10);
	return end != r && *end == '\0' ? v : -1;
}

static void test_path_resolve(void)
{
	const char *saved = getenv("TAILOR_DB");
	char *copy = saved ? strdup(saved) : NULL;

	unsetenv("TAILOR_DB");
	CHECK_EQ_STR(db_path_resolve(NULL), "./tailor.db");
	CHECK_EQ_STR(db_path_resolve(""), "./tailor.db");
	CHECK_EQ_STR(db_path_resolve("/x/flag.db"), "/x/flag.db");
	setenv("TAILOR_DB", "/x/env.db", 1);
	CHECK_EQ_STR(db_path_resolve(NULL), "/x/env.db");
	CHECK_EQ_STR(db_path_resolve(""), "/x/env.db");
	CHECK_EQ_STR(db_path_resolve("/x/flag.db"), "/x/flag.db");
	setenv("TAILOR_DB", "", 1);
	CHECK_EQ_STR(db_path_resolve(NULL), "./tailor.db");

	if (copy != NULL)
		setenv("TAILOR_DB", copy, 1);
	else
		unsetenv("TAILOR_DB");
	free(copy);
}

/* A new file: every migration, every table, the local device, WAL. Then
 * re-opening it changes nothing, down to the bytes of the file. */
static void test_create_and_reopen(void)
{
	char path[256], wal[300], before[65], after[65];
	tl_err err = TL_ERR_INIT;
	db_info info, info2;

	path_in(path, sizeof path, "new.db");
	CHECK(!file_exists(path));
	db_conn *db = open_ok(path, 0);
	if (db == NULL)
		return;
	CHECK(file_exists(path));
	CHECK_EQ_STR(db_path(db), path);
	CHECK_EQ_INT(db_schema_version(db), DB_SCHEMA_VERSION);
	CHECK_EQ_INT(db_info_get(db, &info, &err), 0);
	CHECK_EQ_INT(info.schema_version, DB_SCHEMA_VERSION);
	CHECK_EQ_STR(info.journal_mode, "wal");
	CHECK_EQ_INT(info.devices, 1); /* 'local' */
	CHECK_EQ_INT(info.runs, 0);
	CHECK_EQ_INT(info.genomes, 0);
	CHECK_EQ_INT(info.candidates, 0);
	CHECK_EQ_INT(info.measurements, 0);
	CHECK_EQ_INT(info.quality, 0);
	CHECK_EQ_INT(info.events, 0);
	CHECK_EQ_INT(info.migrations, DB_SCHEMA_VERSION);
	CHECK(info.file_bytes > 0 || info.wal_bytes > 0);
	/* ISO-8601 UTC with milliseconds: 2025-01-31T12:00:00.123Z */
	CHECK_EQ_INT(strlen(info.migrated_at), 24);
	CHECK(info.migrated_at[10] == 'T' && info.migrated_at[23] == 'Z');
	db_close(db);

	/* The last connection's close checkpoints and removes the WAL. */
	int n = snprintf(wal, sizeof wal, "%s-wal", path);
	CHECK(n > 0 && (size_t)n < sizeof wal);
	CHECK(!file_exists(wal));
	file_hash(path, before);
	CHECK(before[0] != '\0');

	/* Reopen twice, reading in between: nothing may be written. */
	for (int i = 0; i < 2; i++) {
		db = open_ok(path, 0);
		if (db == NULL)
			return;
		CHECK_EQ_INT(db_schema_version(db), DB_SCHEMA_VERSION);
		CHECK_EQ_INT(db_info_get(db, &info2, &err), 0);
		CHECK_EQ_INT(info2.migrations, info.migrations);
		CHECK_EQ_STR(info2.migrated_at, info.migrated_at);
		CHECK_EQ_STR(info2.journal_mode, "wal");
		CHECK_EQ_INT(info2.wal_bytes, 0);
		db_close(db);
		file_hash(path, after);
		CHECK_EQ_STR(after, before);
	}

	/* Read-only open of the same file: same version, same counts. */
	db = open_ok(path, DB_OPEN_READONLY);
	if (db == NULL)
		return;
	CHECK_EQ_INT(db_schema_version(db), DB_SCHEMA_VERSION);
	CHECK_EQ_INT(db_info_get(db, &info2, &err), 0);
	CHECK_EQ_INT(info2.devices, 1);
	tl_err_clear(&err);
	CHECK(db_event_add(db, 0, 0, "info", "test", "read-only", NULL, &err) < 0);
	CHECK_EQ_INT(err.code, TL_EDB);
	CHECK_EQ_INT(err.sub & 0xff, SQLITE_READONLY);
	CHECK_CONTAINS(err.msg, "read-only");
	db_close(db);
	file_hash(path, after);
	CHECK_EQ_STR(after, before);
}

/* An empty file is an empty SQLite database: it gets the schema. */
static void test_empty_file(void)
{
	char path[256];
	path_in(path, sizeof path, "empty.db");
	CHECK_EQ_INT(write_file(path, "", 0), 0);
	db_conn *db = open_ok(path, 0);
	CHECK(db == NULL || db_schema_version(db) == DB_SCHEMA_VERSION);
	db_close(db);
}

/* ":memory:": the schema without a file, for other rooms' tests. */
static void test_memory(void)
{
	tl_err err = TL_ERR_INIT;
	db_info info;

	db_conn *db = open_ok(":memory:", 0);
	if (db == NULL)
		return;
	CHECK_EQ_INT(db_schema_version(db), DB_SCHEMA_VERSION);
	CHECK_EQ_INT(db_info_get(db, &info, &err), 0);
	CHECK_EQ_STR(info.journal_mode, "memory");
	CHECK_EQ_INT(info.devices, 1);
	CHECK_EQ_INT(db_event_add(db, 0, 1, "info", "t", "m", NULL, &err), 0);
	CHECK(db_event_add(db, 7, 0, "info", "t", "m", NULL, &err) < 0);
	CHECK(db_err_is_constraint(&err));
	db_close(db);
	CHECK(!file_exists(":memory:"));
}

static void test_events_and_constraints(void)
{
	char path[256];
	tl_err err = TL_ERR_INIT;
	db_info info;

	path_in(path, sizeof path, "events.db");
	db_conn *db = open_ok(path, 0);
	if (db == NULL)
		return;

	CHECK_EQ_INT(db_event_add(db, 0, 0, "info", "test.start", "hello", "{\"n\": 1}", &err), 0);
	CHECK_EQ_INT(db_info_get(db, &info, &err), 0);
	CHECK_EQ_INT(info.events, 1);
	/* device 1 is 'local', which always exists */
	CHECK_EQ_INT(db_event_add(db, 0, 1, "warn", "device.slow", "local is slow", NULL, &err), 0);
	CHECK_MSG(err.code == 0, "%s", err.msg);

	/* A CHECK constraint: the level is one of three words. */
	tl_err_clear(&err);
	CHECK(db_event_add(db, 0, 0, "bogus", "test", "bad level", NULL, &err) < 0);
	CHECK_EQ_INT(err.code, TL_EDB);
	CHECK_EQ_INT(err.sub, SQLITE_CONSTRAINT_CHECK);
	CHECK(db_err_is_constraint(&err));
	CHECK_CONTAINS(err.msg, "db event add: ");
	CHECK_CONTAINS(err.msg, path);
	CHECK_CONTAINS(err.msg, "CHECK constraint failed");
	CHECK(strchr(err.msg, '\n') == NULL);

	/* JSON columns hold JSON. */
	tl_err_clear(&err);
	CHECK(db_event_add(db, 0, 0, "info", "test", "bad json", "{not json", &err) < 0);
	CHECK(db_err_is_constraint(&err));
	CHECK_CONTAINS(err.msg, "json_valid");

	/* NOT NULL: a message is required. */
	tl_err_clear(&err);
	CHECK(db_event_add(db, 0, 0, "info", "test", NULL, NULL, &err) < 0);
	CHECK(db_err_is_constraint(&err));
	CHECK_CONTAINS(err.msg, "NOT NULL");

	/* Foreign keys are enforced: there is no run 999 nor device 999. */
	tl_err_clear(&err);
	CHECK(db_event_add(db, 999, 0, "info", "test", "no such run", NULL, &err) < 0);
	CHECK_EQ_INT(err.code, TL_EDB);
	CHECK_EQ_INT(err.sub, SQLITE_CONSTRAINT_FOREIGNKEY);
	CHECK_CONTAINS(err.msg, "FOREIGN KEY");
	tl_err_clear(&err);
	CHECK(db_event_add(db, 0, 999, "info", "test", "no such device", NULL, &err) < 0);
	CHECK_EQ_INT(err.sub, SQLITE_CONSTRAINT_FOREIGNKEY);

	/* First error wins: a later failure does not overwrite the cause. */
	CHECK(db_event_add(db, 0, 0, "bogus", "test", "second", NULL, &err) < 0);
	CHECK_EQ_INT(err.sub, SQLITE_CONSTRAINT_FOREIGNKEY);

	/* The failed inserts left nothing behind. */
	tl_err_clear(&err);
	CHECK_EQ_INT(db_info_get(db, &info, &err), 0);
	CHECK_EQ_INT(info.events, 2);

	/* Transactions: rolled back writes vanish, committed ones stay. */
	CHECK_EQ_INT(db_begin(db, &err), 0);
	CHECK_EQ_INT(db_event_add(db, 0, 0, "info", "tx", "rolled back", NULL, &err), 0);
	db_rollback(db);
	db_rollback(db); /* no transaction open: a no-op */
	CHECK_EQ_INT(db_info_get(db, &info, &err), 0);
	CHECK_EQ_INT(info.events, 2);
	CHECK_EQ_INT(db_begin(db, &err), 0);
	CHECK_EQ_INT(db_event_add(db, 0, 0, "info", "tx", "one", NULL, &err), 0);
	CHECK_EQ_INT(db_event_add(db, 0, 0, "info", "tx", "two", NULL, &err), 0);
	CHECK_EQ_INT(db_commit(db, &err), 0);
	CHECK_MSG(err.code == 0, "%s", err.msg);
	/* BEGIN inside a transaction is an error, not a silent nesting. */
	CHECK_EQ_INT(db_begin(db, &err), 0);
	tl_err_clear(&err);
	CHECK(db_begin(db, &err) < 0);
	CHECK_EQ_INT(err.code, TL_EDB);
	db_rollback(db);
	db_close(db);

	/* Committed rows survive a reopen. */
	db = open_ok(path, 0);
	if (db == NULL)
		return;
	tl_err_clear(&err);
	CHECK_EQ_INT(db_info_get(db, &info, &err), 0);
	CHECK_EQ_INT(info.events, 4);
	db_close(db);
}

/* A file from a newer tailor is refused, read-write and read-only, and is
 * not modified in any way. */
static void test_newer_version(void)
{
	char path[256], before[65], after[65], want[64];
	tl_err err = TL_ERR_INIT;

	path_in(path, sizeof path, "newer.db");
	db_conn *db = open_ok(path, 0);
	if (db == NULL)
		return;
	CHECK_EQ_INT(db_debug_set_schema_version(db, DB_SCHEMA_VERSION + 1, &err), 0);
	CHECK_MSG(err.code == 0, "%s", err.msg);
	db_close(db);
	file_hash(path, before);

	for (int ro = 0; ro < 2; ro++) {
		tl_err_clear(&err);
		db = (db_conn *)&err; /* must be reset to NULL */
		int rc = db_open(&db, path, ro ? DB_OPEN_READONLY : 0, &err);
		CHECK_EQ_INT(rc, TL_EVERSION);
		CHECK_EQ_INT(err.code, TL_EVERSION);
		CHECK(db == NULL);
		CHECK_CONTAINS(err.msg, "newer");
		CHECK_CONTAINS(err.msg, path);
		snprintf(want, sizeof want, "schema version %d", DB_SCHEMA_VERSION + 1);
		CHECK_CONTAINS(err.msg, want);
		snprintf(want, sizeof want, "up to %d", DB_SCHEMA_VERSION);
		CHECK_CONTAINS(err.msg, want);
		file_hash(path, after);
		CHECK_EQ_STR(after, before);
	}
	/* PRAGMA user_version newer than the recorded migrations (a newer
	 * tailor, or a hand edit): refused too (issue 14) */
	char uv[256], sql[64];
	path_in(uv, sizeof uv, "newer-uv.db");
	snprintf(sql, sizeof sql, "PRAGMA user_version = %d;", DB_SCHEMA_VERSION + 3);
	tl_err_clear(&err);
	CHECK_MSG(db_debug_create(uv, DB_SCHEMA_VERSION, sql, &err) == 0, "%s", err.msg);
	tl_err_clear(&err);
	db = NULL;
	CHECK_EQ_INT(db_open(&db, uv, 0, &err), TL_EVERSION);
	snprintf(want, sizeof want, "schema version %d", DB_SCHEMA_VERSION + 3);
	CHECK_CONTAINS(err.msg, want);
	db_close(db);
}

/* A migration that fails half-way leaves the file as it was: here the file
 * claims version 0 while its tables exist, so migration 1 fails on its
 * first CREATE TABLE, after schema_migrations was (re)created in the same
 * transaction. */
static void test_failed_migration_is_atomic(void)
{
	char path[256], before[65], after[65];
	tl_err err = TL_ERR_INIT;

	path_in(path, sizeof path, "half.db");
	db_conn *db = open_ok(path, 0);
	if (db == NULL)
		return;
	CHECK_EQ_INT(db_debug_set_schema_version(db, 0, &err), 0);
	CHECK_EQ_INT(db_schema_version(db), 0);
	db_close(db);
	file_hash(path, before);

	int rc = db_open(&db, path, 0, &err);
	CHECK_EQ_INT(rc, TL_EDB);
	CHECK(db == NULL);
	CHECK_CONTAINS(err.msg, "db migrate: ");
	CHECK_CONTAINS(err.msg, "migration 1");
	CHECK_CONTAINS(err.msg, "already exists");
	CHECK(err.sub != 0);
	file_hash(path, after);
	CHECK_EQ_STR(after, before);

	/* Read-only sees the file's own version and does not migrate. */
	db = open_ok(path, DB_OPEN_READONLY);
	CHECK(db == NULL || db_schema_version(db) == 0);
	db_close(db);
	file_hash(path, after);
	CHECK_EQ_STR(after, before);
}

static void test_bad_paths(void)
{
	char path[256], dir[256], before[65], after[65];
	tl_err err = TL_ERR_INIT;
	db_conn *db = NULL;

	/* Missing directory: named, not created. */
	path_in(dir, sizeof dir, "nope/sub");
	path_in(path, sizeof path, "nope/sub/tailor.db");
	CHECK_EQ_INT(db_open(&db, path, 0, &err), TL_EIO);
	CHECK(db == NULL);
	CHECK_CONTAINS(err.msg, "db open: ");
	CHECK_CONTAINS(err.msg, path);
	CHECK_CONTAINS(err.msg, "directory ");
	CHECK_CONTAINS(strstr(err.msg, "directory "), dir);
	CHECK_CONTAINS(err.msg, "does not exist");
	CHECK_CONTAINS(err.msg, "--db");
	CHECK_EQ_INT(err.sub, ENOENT);
	path_in(dir, sizeof dir, "nope");
	CHECK(!file_exists(dir));

	/* The path is a directory. */
	tl_err_clear(&err);
	CHECK(db_open(&db, tmp, 0, &err) < 0);
	CHECK(db == NULL);
	CHECK_CONTAINS(err.msg, "is a directory");

	/* A file in place of the directory. */
	path_in(dir, sizeof dir, "plain");
	CHECK_EQ_INT(write_file(dir, "x", 1), 0);
	path_in(path, sizeof path, "plain/tailor.db");
	tl_err_clear(&err);
	CHECK(db_open(&db, path, 0, &err) < 0);
	CHECK_CONTAINS(err.msg, "is not a directory");

	/* Not a SQLite file: refused, left alone. */
	static const char junk[] =
	    "This is a text file, not a database. It is longer than the 100 "
	    "bytes of a SQLite header so that SQLite reads a whole header of "
	    "junk and says so, rather than treating a short file as empty.\n";
	path_in(path, sizeof path, "junk.db");
	CHECK_EQ_INT(write_file(path, junk, sizeof junk - 1), 0);
	file_hash(path, before);
	for (int ro = 0; ro < 2; ro++) {
		tl_err_clear(&err);
		CHECK_EQ_INT(db_open(&db, path, ro ? DB_OPEN_READONLY : 0, &err), TL_EDB);
		CHECK(db == NULL);
		CHECK_EQ_INT(err.sub & 0xff, SQLITE_NOTADB);
		CHECK_CONTAINS(err.msg, path);
		CHECK_CONTAINS(err.msg, "not a SQLite database");
		file_hash(path, after);
		CHECK_EQ_STR(after, before);
	}

	/* Read-only does not create. */
	path_in(path, sizeof path, "absent.db");
	tl_err_clear(&err);
	CHECK_EQ_INT(db_open(&db, path, DB_OPEN_READONLY, &err), TL_ENOTFOUND);
	CHECK_CONTAINS(err.msg, "no such file");
	CHECK(!file_exists(path));

	/* Empty path, unknown flags. */
	tl_err_clear(&err);
	CHECK_EQ_INT(db_open(&db, "", 0, &err), TL_EUSAGE);
	tl_err_clear(&err);
	path_in(path, sizeof path, "flags.db");
	CHECK_EQ_INT(db_open(&db, path, 1 << 7, &err), TL_EINVAL);
	CHECK(!file_exists(path));

	db_close(NULL);
}

/*
 * A directory without write permission. Root ignores permissions, so a
 * root test drops to nobody (65534) in a child first; the child reports by
 * exit status: 0 refused with "not writable", 1 opened, 2 other message,
 * 3 could not drop privileges.
 */
static void test_readonly_dir(void)
{
	char dir[256], path[256];

	path_in(dir, sizeof dir, "ro");
	path_in(path, sizeof path, "ro/tailor.db");
	CHECK_EQ_INT(mkdir(dir, 0555), 0);
	CHECK_EQ_INT(chmod(dir, 0555), 0); /* whatever the umask */

	fflush(stderr);
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid < 0)
		return;
	if (pid == 0) {
		if (geteuid() == 0) {
			if (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0)
				_exit(3);
		}
		tl_err err = TL_ERR_INIT;
		db_conn *db = NULL;
		if (db_open(&db, path, 0, &err) == 0) {
			db_close(db);
			_exit(1);
		}
		if (strstr(err.msg, "not writable") == NULL || strstr(err.msg, dir) == NULL) {
			fprintf(stderr, "     child got: %s\n", err.msg);
			_exit(2);
		}
		_exit(0);
	}
	int status = 0;
	CHECK_EQ_INT(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status));
	CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	          "child exit %d (1 opened, 2 wrong message, 3 setuid failed)",
	          WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	CHECK(!file_exists(path));
	chmod(dir, 0755);
}


/* ---- migration 4 ------------------------------------------------------ */

#define G1 "1111111111111111111111111111111111111111111111111111111111111111"
#define G2 "2222222222222222222222222222222222222222222222222222222222222222"

/* The new columns of measurements, in migration order. */
#define SPREAD_COLS                                                                     \
	"ttft_ms_rep_p95, ttft_ms_rep_min, ttft_ms_rep_max, ttft_cv, decode_ms_rep_p95, " \
	"decode_ms_rep_min, decode_ms_rep_max, peak_rss_rep_min, peak_rss_rep_max"
#define SPREAD_NULL "NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL"

/* The schema as SQLite keeps it (without rootpage, which depends on the
 * order pages were allocated in), malloc'd. */
static char *schema_of(db_conn *db)
{
	return strdup(sql_rows(db, "SELECT type, name, tbl_name, sql FROM sqlite_schema "
	                           "ORDER BY type, name"));
}

/* A file as tailor 3 left it, with a genome, two measurements (one ok, one
 * failed) and a repeat, migrates through 4 to the current version: the rows
 * are all there, the new columns are NULL, the new tables empty, and the
 * schema is the one a new file gets. */
static void test_migrate_v3(void)
{
	static const char fixture[] =
	    "INSERT INTO genomes (hash, text, params) VALUES ('" G1 "', 'fixture', 1000);\n"
	    "INSERT INTO measurements (genome_hash, device_id, quant, prompt_len, gen_len, depth,\n"
	    "  repeats, ttft_ms, decode_ms_p50, peak_rss_bytes, cv, status)\n"
	    "  VALUES ('" G1 "', 1, 'q4_0', 128, 32, 0, 3, 12.5, 4.25, 1048576, 0.02, 'ok');\n"
	    "INSERT INTO measurement_repeats (measurement_id, repeat_index, raw, ttft_ms)\n"
	    "  VALUES (1, 0, '{\"ttft_ms\": 12.5}', 12.5);\n"
	    "INSERT INTO measurements (genome_hash, device_id, status, error, failure)\n"
	    "  VALUES ('" G1 "', 1, 'failed', 'connection refused', 'connect');\n";
	char path[256], fresh[256];
	tl_err err = TL_ERR_INIT;
	db_info info;

	path_in(path, sizeof path, "v3.db");
	CHECK_EQ_INT(db_debug_create(path, 3, fixture, &err), 0);
	CHECK_MSG(err.code == 0, "%s", err.msg);
	/* the helper refuses what it cannot do */
	tl_err_clear(&err);
	CHECK_EQ_INT(db_debug_create(path, 3, NULL, &err), TL_EEXIST);
	tl_err_clear(&err);
	path_in(fresh, sizeof fresh, "v0.db");
	CHECK_EQ_INT(db_debug_create(fresh, 0, NULL, &err), TL_EINVAL);
	CHECK(!file_exists(fresh));
	tl_err_clear(&err);

	/* It really is version 3: read-only sees 3, no new columns or tables. */
	db_conn *db = open_ok(path, DB_OPEN_READONLY);
	if (db == NULL)
		return;
	CHECK_EQ_INT(db_schema_version(db), 3);
	CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM measurements"), 2);
	CHECK_EQ_INT(sql_int(db, "PRAGMA user_version"), 3);
	CHECK_CONTAINS(sql_rows(db, "SELECT ttft_cv FROM measurements"), "no such column");
	CHECK_CONTAINS(sql_rows(db, "SELECT count(*) FROM op_tables"), "no such table");
	db_close(db);

	db = open_ok(path, 0);
	if (db == NULL)
		return;
	CHECK_EQ_INT(db_schema_version(db), DB_SCHEMA_VERSION);
	CHECK_EQ_INT(db_info_get(db, &info, &err), 0);
	CHECK_EQ_INT(info.schema_version, DB_SCHEMA_VERSION);
	CHECK_EQ_INT(info.migrations, DB_SCHEMA_VERSION);
	CHECK_EQ_INT(info.measurements, 2);
	CHECK_EQ_INT(info.genomes, 1);
	CHECK_EQ_INT(sql_int(db, "PRAGMA user_version"), DB_SCHEMA_VERSION);
	CHECK_EQ_STR(sql_rows(db, "SELECT name FROM schema_migrations WHERE version = 4"),
	             "spread and operator tables: measurements.ttft_ms_rep_p95 ... "
	             "peak_rss_rep_max, ttft_cv; tables op_tables, op_table_entries, predictions; "
	             "devices.protocol");
	/* the rows survived, the new columns are NULL */
	CHECK_EQ_STR(sql_rows(db, "SELECT id, status, quant, ttft_ms, decode_ms_p50, peak_rss_bytes, "
	                          "cv, failure FROM measurements ORDER BY id"),
	             "1|ok|q4_0|12.5|4.25|1048576|0.02|NULL\n"
	             "2|failed|NULL|NULL|NULL|NULL|NULL|connect");
	CHECK_EQ_STR(sql_rows(db, "SELECT " SPREAD_COLS " FROM measurements ORDER BY id"),
	             SPREAD_NULL "\n" SPREAD_NULL);
	CHECK_EQ_STR(sql_rows(db, "SELECT name, protocol FROM devices"), "local|NULL");
	CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM measurement_repeats"), 1);
	CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM op_tables"), 0);
	CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM op_table_entries"), 0);
	CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM predictions"), 0);
	CHECK_EQ_STR(sql_rows(db, "PRAGMA foreign_key_check"), "");
	CHECK_EQ_STR(sql_rows(db, "PRAGMA integrity_check"), "ok");
	char *migrated = schema_of(db);
	db_close(db);

	/* The same schema, comment for comment, as a file created now. */
	path_in(fresh, sizeof fresh, "v3-fresh.db");
	db = open_ok(fresh, 0);
	if (db == NULL) {
		free(migrated);
		return;
	}
	char *created = schema_of(db);
	CHECK(migrated != NULL && created != NULL);
	CHECK(created != NULL && strstr(created, "CREATE TABLE op_table_entries") != NULL);
	CHECK(created != NULL && strstr(created, "ttft_cv REAL") != NULL);
	CHECK(created != NULL && strstr(created, "protocol TEXT -- JSON object of protocol keys") != NULL);
	CHECK_MSG(migrated && created && strcmp(migrated, created) == 0,
	          "schema of a migrated v3 file differs from a new file's (%zu vs %zu bytes)",
	          migrated ? strlen(migrated) : 0, created ? strlen(created) : 0);
	free(migrated);
	free(created);
	db_close(db);
}

/* The spread of the repeats is stored next to the medians; NaN and -1 are
 * NULL; a negative value is refused. */
static void test_measurement_spread(void)
{
	tl_err err = TL_ERR_INIT;
	db_measurement m;
	int64_t id = 0, id2 = 0;

	db_conn *db = open_ok(":memory:", 0);
	if (db == NULL)
		return;
	CHECK_EQ_INT(db_genome_ensure(db, G1, "g1", 1000, &err), 0);

	db_measurement_init(&m);
	CHECK(isnan(m.ttft_ms_rep_p95) && isnan(m.ttft_ms_rep_min) && isnan(m.ttft_ms_rep_max));
	CHECK(isnan(m.ttft_cv) && isnan(m.decode_ms_rep_p95) && isnan(m.decode_ms_rep_min));
	CHECK(isnan(m.decode_ms_rep_max));
	CHECK_EQ_INT(m.peak_rss_rep_min, -1);
	CHECK_EQ_INT(m.peak_rss_rep_max, -1);

	m.genome_hash = G1;
	m.device_id = DB_DEVICE_LOCAL_ID;
	m.status = "ok";
	m.repeats = 5;
	m.ttft_ms = 10.5;
	m.decode_ms_p50 = 2.25;
	m.peak_rss_bytes = 3000000;
	m.cv = 0.125;
	m.ttft_ms_rep_p95 = 12.75;
	m.ttft_ms_rep_min = 9.5;
	m.ttft_ms_rep_max = 12.75;
	m.ttft_cv = 0.0625;
	m.decode_ms_rep_p95 = 2.5;
	m.decode_ms_rep_min = 2;
	m.decode_ms_rep_max = 2.5;
	m.peak_rss_rep_min = 2900000;
	m.peak_rss_rep_max = 3100000;
	CHECK_EQ_INT(db_measurement_add(db, &m, NULL, 0, &id, &err), 0);
	CHECK_MSG(err.code == 0, "%s", err.msg);
	CHECK(id > 0);

	/* defaults: the new columns NULL */
	db_measurement_init(&m);
	m.genome_hash = G1;
	m.device_id = DB_DEVICE_LOCAL_ID;
	m.error = "harness exited with status 1";
	m.failure = "harness";
	CHECK_EQ_INT(db_measurement_add(db, &m, NULL, 0, &id2, &err), 0);
	CHECK(id2 > id);

	CHECK_EQ_STR(sql_rows(db, "SELECT id, ttft_ms, cv, " SPREAD_COLS
	                          " FROM measurements ORDER BY id"),
	             "1|10.5|0.125|12.75|9.5|12.75|0.0625|2.5|2|2.5|2900000|3100000\n"
	             "2|NULL|NULL|" SPREAD_NULL);
	/* integers are INTEGER, reals REAL (STRICT keeps them so) */
	CHECK_EQ_STR(sql_rows(db, "SELECT typeof(decode_ms_rep_min), typeof(peak_rss_rep_max) "
	                          "FROM measurements WHERE id = 1"),
	             "real|integer");

	/* infinities are "not given" too (bind_d); a negative spread is refused */
	db_measurement_init(&m);
	m.genome_hash = G1;
	m.device_id = DB_DEVICE_LOCAL_ID;
	m.status = "ok";
	m.ttft_cv = INFINITY;
	m.decode_ms_rep_min = -1.0;
	tl_err_clear(&err);
	CHECK(db_measurement_add(db, &m, NULL, 0, &id, &err) < 0);
	CHECK_EQ_INT(id, 0);
	CHECK_EQ_INT(err.sub, SQLITE_CONSTRAINT_CHECK);
	CHECK_CONTAINS(err.msg, "decode_ms_rep_min");
	m.decode_ms_rep_min = NAN;
	tl_err_clear(&err);
	CHECK_EQ_INT(db_measurement_add(db, &m, NULL, 0, &id, &err), 0);
	CHECK_EQ_STR(sql_rows(db, "SELECT ttft_cv FROM measurements WHERE id = 3"), "NULL");
	CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM measurements"), 3);
	db_close(db);
}

static db_optable optable(int64_t device_id, const char *space, const char *quant,
                          const char *json)
{
	db_optable t;
	memset(&t, 0, sizeof t);
	t.device_id = device_id;
	t.space_hash = (char *)space;
	t.quant = (char *)quant;
	t.kv = (char *)"f16";
	t.threads = -1;
	t.seconds = NAN;
	t.table_json = (char *)json;
	return t;
}

static db_optable_entry entry(const char *key, int64_t P, double decode_ms)
{
	db_optable_entry e;
	memset(&e, 0, sizeof e);
	e.layer_key = key;
	e.prompt_len = P;
	e.gen_len = 32;
	e.depth = 0;
	e.prefill_ms = 1.5;
	e.decode_ms = decode_ms;
	e.cv = NAN;
	e.weight_bytes = 4096;
	e.state_bytes = -1;
	e.instances = 2;
	return e;
}

static long long count_where(db_conn *db, const char *table, const char *col, int64_t v)
{
	char q[160];
	snprintf(q, sizeof q, "SELECT count(*) FROM %s WHERE %s = %lld", table, col, (long long)v);
	return sql_int(db, q);
}

/* Tables of operator latencies: add (all or nothing), get, latest by
 * device, space and quant, list; predictions; deleting a table takes its
 * entries and predictions with it. */
static void test_optables(void)
{
	char path[256];
	tl_err err = TL_ERR_INIT;
	db_optable got;
	int64_t t1 = 0, t2 = 0, t3 = 0, t4 = 0, other = 0, id = 0;

	path_in(path, sizeof path, "optables.db");
	db_conn *db = open_ok(path, 0);
	if (db == NULL)
		return;
	db_device d;
	db_device_init(&d);
	tl_strlcpy(d.name, "pi", sizeof d.name);
	tl_strlcpy(d.transport, "ssh", sizeof d.transport);
	tl_strlcpy(d.host, "10.0.0.7", sizeof d.host);
	CHECK_EQ_INT(db_device_add(db, &d, &other, &err), 0);
	CHECK(other > 1);

	/* t1: every field given, three entries */
	db_optable t = optable(1, "s1", "q4_0", "{\"version\": 1, \"keys\": {\"a\": 1}}");
	t.space_name = (char *)"tiny";
	t.threads = 4;
	t.protocol = (char *)"{\"repeats\": 3}";
	t.protocol_hash = (char *)"ph";
	t.build_hash = (char *)"bh";
	t.device_fingerprint = (char *)"{\"cpu\": \"x\"}";
	t.n_keys = 2;
	t.n_archs = 1;
	t.seconds = 12.5;
	db_optable_entry e[3] = {entry("gqa:h4", 128, 0.5), entry("gqa:h4", 512, 0.75),
	                         entry("swiglu:x4", 128, 0.25)};
	e[2].cv = 0.03;
	e[2].state_bytes = 0;
	e[2].weight_bytes = -1;
	CHECK_EQ_INT(db_optable_add(db, &t, e, 3, &t1, &err), 0);
	CHECK_MSG(err.code == 0, "%s", err.msg);
	/* t2: same device and space, another quant, no entries, optional fields NULL */
	t = optable(1, "s1", "q8_0", "{\"version\": 2}");
	CHECK_EQ_INT(db_optable_add(db, &t, NULL, 0, &t2, &err), 0);
	/* t3: another space; t4: another device */
	t = optable(1, "s2", "q4_0", "{\"version\": 3}");
	CHECK_EQ_INT(db_optable_add(db, &t, e, 1, &t3, &err), 0);
	t = optable(other, "s1", "q4_0", "{\"version\": 4}");
	CHECK_EQ_INT(db_optable_add(db, &t, e, 2, &t4, &err), 0);
	CHECK(t1 > 0 && t2 > t1 && t3 > t2 && t4 > t3);

	/* entries stored, NULLs where asked */
	CHECK_EQ_INT(count_where(db, "op_table_entries", "table_id", t1), 3);
	CHECK_EQ_INT(count_where(db, "op_table_entries", "table_id", t2), 0);
	CHECK_EQ_INT(count_where(db, "op_table_entries", "table_id", t3), 1);
	CHECK_EQ_INT(count_where(db, "op_table_entries", "table_id", t4), 2);
	CHECK_EQ_STR(sql_rows(db, "SELECT layer_key, prompt_len, gen_len, depth, prefill_ms, "
	                          "decode_ms, weight_bytes, state_bytes, instances, cv "
	                          "FROM op_table_entries WHERE table_id = 1 "
	                          "ORDER BY layer_key, prompt_len"),
	             "gqa:h4|128|32|0|1.5|0.5|4096|NULL|2|NULL\n"
	             "gqa:h4|512|32|0|1.5|0.75|4096|NULL|2|NULL\n"
	             "swiglu:x4|128|32|0|1.5|0.25|NULL|0|2|0.03");

	/* get: every field back */
	CHECK_EQ_INT(db_optable_get(db, t1, &got, &err), 0);
	CHECK_EQ_INT(got.id, t1);
	CHECK_EQ_INT(got.device_id, 1);
	CHECK_EQ_STR(got.space_hash, "s1");
	CHECK_EQ_STR(got.space_name, "tiny");
	CHECK_EQ_STR(got.quant, "q4_0");
	CHECK_EQ_STR(got.kv, "f16");
	CHECK_EQ_INT(got.threads, 4);
	CHECK_EQ_STR(got.protocol, "{\"repeats\": 3}");
	CHECK_EQ_STR(got.protocol_hash, "ph");
	CHECK_EQ_STR(got.build_hash, "bh");
	CHECK_EQ_STR(got.device_fingerprint, "{\"cpu\": \"x\"}");
	CHECK_EQ_INT(got.n_keys, 2);
	CHECK_EQ_INT(got.n_archs, 1);
	CHECK(got.seconds == 12.5);
	CHECK_EQ_STR(got.table_json, "{\"version\": 1, \"keys\": {\"a\": 1}}");
	CHECK(got.created_at != NULL && strlen(got.created_at) == 24 && got.created_at[23] == 'Z');
	db_optable_clear(&got);
	CHECK(got.space_hash == NULL && got.table_json == NULL && got.id == 0);
	db_optable_clear(&got); /* twice: harmless */
	db_optable_clear(NULL);
	CHECK_EQ_INT(db_optable_get(db, t2, &got, &err), 0);
	CHECK_EQ_INT(got.threads, -1);
	CHECK(isnan(got.seconds));
	CHECK(got.space_name == NULL && got.protocol == NULL && got.device_fingerprint == NULL);
	CHECK_EQ_INT(got.n_keys, 0);
	db_optable_clear(&got);
	tl_err_clear(&err);
	CHECK_EQ_INT(db_optable_get(db, 999, &got, &err), TL_ENOTFOUND);
	CHECK_CONTAINS(err.msg, "999");
	CHECK(got.table_json == NULL);

	/* latest: the newest matching table */
	static const struct {
		int64_t dev;
		const char *space, *quant;
		int which; /* 1..4: t1..t4, 0: none */
	} cases[] = {
	    {1, NULL, NULL, 3},   {1, "s1", NULL, 2},   {1, "s1", "q4_0", 1}, {1, NULL, "q4_0", 3},
	    {1, NULL, "q8_0", 2}, {1, "s2", "q8_0", 0}, {1, "s3", NULL, 0},   {2, "s1", "q4_0", 4},
	    {2, NULL, NULL, 4},   {2, "s2", NULL, 0},   {999, NULL, NULL, 0},
	};
	int64_t ids[5] = {0, t1, t2, t3, t4};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int64_t dev = cases[i].dev == 2 ? other : cases[i].dev;
		tl_err_clear(&err);
		int rc = db_optable_latest(db, dev, cases[i].space, cases[i].quant, &got, &err);
		if (cases[i].which) {
			CHECK_MSG(rc == 0 && got.id == ids[cases[i].which],
			          "case %zu: rc %d id %lld, want table %lld (%s)", i, rc,
			          (long long)got.id, (long long)ids[cases[i].which], err.msg);
			CHECK(got.table_json != NULL && strstr(got.table_json, "version") != NULL);
		} else {
			CHECK_MSG(rc == TL_ENOTFOUND, "case %zu: rc %d id %lld", i, rc,
			          (long long)got.id);
			char want[32];
			snprintf(want, sizeof want, "device %lld", (long long)dev);
			CHECK_CONTAINS(err.msg, want);
			CHECK(strchr(err.msg, '\n') == NULL);
		}
		db_optable_clear(&got);
	}
	tl_err_clear(&err);
	CHECK_EQ_INT(db_optable_latest(db, 1, "s2", "q8_0", &got, &err), TL_ENOTFOUND);
	CHECK_EQ_STR(err.msg, "op table: device 1: no operator table for space s2 with quant q8_0");

	/* list: newest first, without table_json */
	db_optable *list = (db_optable *)&err;
	size_t n = 99;
	CHECK_EQ_INT(db_optable_list(db, 1, &list, &n, &err), 0);
	CHECK_EQ_INT(n, 3);
	if (n == 3 && list != NULL) {
		CHECK_EQ_INT(list[0].id, t3);
		CHECK_EQ_INT(list[1].id, t2);
		CHECK_EQ_INT(list[2].id, t1);
		CHECK_EQ_STR(list[0].space_hash, "s2");
		CHECK_EQ_STR(list[2].space_name, "tiny");
		CHECK_EQ_INT(list[2].threads, 4);
		CHECK(list[0].table_json == NULL && list[2].table_json == NULL);
		CHECK(list[1].created_at != NULL);
	}
	db_optables_free(list, n);
	CHECK_EQ_INT(db_optable_list(db, 999, &list, &n, &err), 0);
	CHECK_EQ_INT(n, 0);
	CHECK(list == NULL);
	db_optables_free(NULL, 0);

	/* all or nothing: a bad entry (negative decode_ms) stores neither the
	 * table nor the entries before it */
	long long tables = sql_int(db, "SELECT count(*) FROM op_tables");
	long long entries = sql_int(db, "SELECT count(*) FROM op_table_entries");
	CHECK_EQ_INT(tables, 4);
	CHECK_EQ_INT(entries, 6);
	db_optable_entry bad[3] = {entry("a", 128, 1), entry("b", 128, -1), entry("c", 128, 1)};
	t = optable(1, "s1", "q4_0", "{}");
	id = 77;
	tl_err_clear(&err);
	CHECK_EQ_INT(db_optable_add(db, &t, bad, 3, &id, &err), TL_EDB);
	CHECK_EQ_INT(id, 0);
	CHECK_EQ_INT(err.sub, SQLITE_CONSTRAINT_CHECK);
	CHECK(db_err_is_constraint(&err));
	CHECK_CONTAINS(err.msg, "entry 1 (b, P 128 N 32 D 0)");
	CHECK_CONTAINS(err.msg, "decode_ms >= 0");
	CHECK(strchr(err.msg, '\n') == NULL);
	/* a repeated key and shape: the primary key */
	db_optable_entry dup[2] = {entry("a", 128, 1), entry("a", 128, 2)};
	tl_err_clear(&err);
	CHECK_EQ_INT(db_optable_add(db, &t, dup, 2, &id, &err), TL_EDB);
	CHECK_EQ_INT(err.sub, SQLITE_CONSTRAINT_PRIMARYKEY);
	/* a shape out of range */
	db_optable_entry p0[1] = {entry("a", 0, 1)};
	tl_err_clear(&err);
	CHECK_EQ_INT(db_optable_add(db, &t, p0, 1, &id, &err), TL_EDB);
	CHECK_EQ_INT(err.sub, SQLITE_CONSTRAINT_CHECK);
	/* the table row itself: JSON that is not an object, no table_json, no device */
	t.table_json = (char *)"[1, 2]";
	tl_err_clear(&err);
	CHECK_EQ_INT(db_optable_add(db, &t, e, 3, &id, &err), TL_EDB);
	CHECK_EQ_INT(err.sub, SQLITE_CONSTRAINT_CHECK);
	CHECK_CONTAINS(err.msg, "table_json");
	t.table_json = NULL;
	tl_err_clear(&err);
	CHECK_EQ_INT(db_optable_add(db, &t, e, 3, &id, &err), TL_EDB);
	CHECK_EQ_INT(err.sub, SQLITE_CONSTRAINT_NOTNULL);
	t = optable(999, "s1", "q4_0", "{}");
	tl_err_clear(&err);
	CHECK_EQ_INT(db_optable_add(db, &t, e, 3, &id, &err), TL_ENOTFOUND);
	CHECK_CONTAINS(err.msg, "device 999");
	CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM op_tables"), tables);
	CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM op_table_entries"), entries);

	/* predictions */
	int64_t mid = 0, p1 = 0, p2 = 0, p3 = 0;
	db_measurement m;
	tl_err_clear(&err);
	CHECK_EQ_INT(db_genome_ensure(db, G1, "g1", 1000, &err), 0);
	db_measurement_init(&m);
	m.genome_hash = G1;
	m.device_id = 1;
	m.status = "ok";
	m.ttft_ms = 20;
	CHECK_EQ_INT(db_measurement_add(db, &m, NULL, 0, &mid, &err), 0);
	db_prediction p = {.table_id = t1, .genome_hash = G1, .prompt_len = 128, .gen_len = 32,
	                   .depth = 0, .ttft_ms = 19.5, .decode_ms = 2.5, .peak_rss_bytes = 5000,
	                   .measurement_id = 0};
	CHECK_EQ_INT(db_prediction_add(db, &p, &p1, &err), 0);
	CHECK_MSG(err.code == 0, "%s", err.msg);
	p.measurement_id = mid;
	p.ttft_ms = NAN;
	p.peak_rss_bytes = -1;
	p.depth = 4096;
	CHECK_EQ_INT(db_prediction_add(db, &p, &p2, &err), 0);
	p.table_id = t2;
	p.measurement_id = 0;
	CHECK_EQ_INT(db_prediction_add(db, &p, &p3, &err), 0);
	CHECK(p1 > 0 && p2 > p1 && p3 > p2);
	char q[256];
	snprintf(q, sizeof q,
	         "SELECT table_id, genome_hash = '" G1 "', prompt_len, gen_len, depth, ttft_ms, "
	         "decode_ms, peak_rss_bytes, measurement_id, length(created_at) FROM predictions "
	         "ORDER BY id");
	char want[256];
	snprintf(want, sizeof want,
	         "%lld|1|128|32|0|19.5|2.5|5000|NULL|24\n"
	         "%lld|1|128|32|4096|NULL|2.5|NULL|%lld|24\n"
	         "%lld|1|128|32|4096|NULL|2.5|NULL|NULL|24",
	         (long long)t1, (long long)t1, (long long)mid, (long long)t2);
	CHECK_EQ_STR(sql_rows(db, q), want);
	/* what is missing is named */
	p.table_id = t1;
	p.genome_hash = G2;
	id = 5;
	tl_err_clear(&err);
	CHECK_EQ_INT(db_prediction_add(db, &p, &id, &err), TL_ENOTFOUND);
	CHECK_EQ_INT(id, 0);
	CHECK_CONTAINS(err.msg, "genome " G2);
	CHECK_CONTAINS(err.msg, "db_genome_ensure");
	p.genome_hash = G1;
	p.table_id = 999;
	tl_err_clear(&err);
	CHECK_EQ_INT(db_prediction_add(db, &p, &id, &err), TL_ENOTFOUND);
	CHECK_CONTAINS(err.msg, "op table 999");
	p.table_id = t1;
	p.measurement_id = 999;
	tl_err_clear(&err);
	CHECK_EQ_INT(db_prediction_add(db, &p, &id, &err), TL_ENOTFOUND);
	CHECK_CONTAINS(err.msg, "measurement 999");
	p.measurement_id = 0;
	p.gen_len = 0;
	tl_err_clear(&err);
	CHECK_EQ_INT(db_prediction_add(db, &p, &id, &err), TL_EDB);
	CHECK_EQ_INT(err.sub, SQLITE_CONSTRAINT_CHECK);
	p.gen_len = 32;
	p.decode_ms = -0.5;
	tl_err_clear(&err);
	CHECK_EQ_INT(db_prediction_add(db, &p, &id, &err), TL_EDB);
	CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM predictions"), 3);

	/* deleting a table takes its entries and predictions, nothing else */
	tl_err_clear(&err);
	CHECK_EQ_INT(db_optable_remove(db, t1, &err), 0);
	CHECK_MSG(err.code == 0, "%s", err.msg);
	CHECK_EQ_INT(count_where(db, "op_tables", "id", t1), 0);
	CHECK_EQ_INT(count_where(db, "op_table_entries", "table_id", t1), 0);
	CHECK_EQ_INT(count_where(db, "predictions", "table_id", t1), 0);
	CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM op_table_entries"), entries - 3);
	CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM predictions"), 1);
	CHECK_EQ_INT(count_where(db, "predictions", "table_id", t2), 1);
	CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM measurements"), 1);
	tl_err_clear(&err);
	CHECK_EQ_INT(db_optable_remove(db, t1, &err), TL_ENOTFOUND);
	tl_err_clear(&err);
	CHECK_EQ_INT(db_optable_latest(db, 1, "s1", "q4_0", &got, &err), TL_ENOTFOUND);
	db_optable_clear(&got);

	/* a device with operator tables is kept by the foreign key */
	tl_err_clear(&err);
	CHECK(db_device_remove(db, "pi", &err) < 0);
	CHECK_EQ_INT(count_where(db, "op_tables", "id", t4), 1);
	CHECK_EQ_STR(sql_rows(db, "PRAGMA foreign_key_check"), "");
	db_close(db);
}

/* devices.protocol (a device's measurement-protocol overrides) round-trips
 * through add, get, list and update; "" is NULL; text that is not a JSON
 * object is refused by the column's CHECK. */
static void test_device_protocol(void)
{
	char path[256];
	tl_err err = TL_ERR_INIT;
	db_device d, g;
	int64_t id = 0;
	static const char proto[] = "{\"delay_s\":2,\"thermal\":{\"max_temp_c\":60},"
	                            "\"pin\":\"taskset -c 4-7\"}";

	path_in(path, sizeof path, "devproto.db");
	db_conn *db = open_ok(path, 0);
	if (db == NULL)
		return;
	/* local has none */
	CHECK_EQ_INT(db_device_get(db, "local", &g, &err), 0);
	CHECK_EQ_STR(g.protocol, "");
	db_device_init(&d);
	CHECK_EQ_STR(d.protocol, "");
	tl_strlcpy(d.name, "phone", sizeof d.name);
	tl_strlcpy(d.transport, "ssh", sizeof d.transport);
	tl_strlcpy(d.host, "10.0.0.9", sizeof d.host);
	tl_strlcpy(d.protocol, proto, sizeof d.protocol);
	CHECK_EQ_INT(db_device_add(db, &d, &id, &err), 0);
	CHECK_MSG(err.code == 0, "%s", err.msg);
	CHECK_EQ_INT(db_device_get(db, "phone", &g, &err), 0);
	CHECK_EQ_STR(g.protocol, proto);
	CHECK_EQ_STR(sql_rows(db, "SELECT json_extract(protocol, '$.thermal.max_temp_c'), "
	                          "json_type(protocol) FROM devices WHERE name = 'phone'"),
	             "60|object");
	/* another device without: NULL, not "" */
	tl_strlcpy(d.name, "board", sizeof d.name);
	d.protocol[0] = '\0';
	CHECK_EQ_INT(db_device_add(db, &d, NULL, &err), 0);
	CHECK_EQ_STR(sql_rows(db, "SELECT name, protocol FROM devices ORDER BY id"),
	             "local|NULL\n"
	             "phone|" "{\"delay_s\":2,\"thermal\":{\"max_temp_c\":60},"
	             "\"pin\":\"taskset -c 4-7\"}\n"
	             "board|NULL");
	db_device *all = NULL;
	size_t n = 0;
	CHECK_EQ_INT(db_device_list(db, &all, &n, &err), 0);
	CHECK_EQ_INT(n, 3);
	if (n == 3) {
		CHECK_EQ_STR(all[0].protocol, "");
		CHECK_EQ_STR(all[1].protocol, proto);
		CHECK_EQ_STR(all[2].protocol, "");
	}
	free(all);
	/* update: set, then clear; the other settings stay */
	CHECK_EQ_INT(db_device_get(db, "board", &g, &err), 0);
	tl_strlcpy(g.protocol, "{\"repeats\":2,\"warmup\":0}", sizeof g.protocol);
	CHECK_EQ_INT(db_device_update(db, &g, &err), 0);
	CHECK_EQ_INT(db_device_get_id(db, g.id, &g, &err), 0);
	CHECK_EQ_STR(g.protocol, "{\"repeats\":2,\"warmup\":0}");
	CHECK_EQ_STR(g.host, "10.0.0.9");
	CHECK_EQ_INT(db_device_get(db, "phone", &g, &err), 0);
	g.protocol[0] = '\0';
	CHECK_EQ_INT(db_device_update(db, &g, &err), 0);
	CHECK_EQ_STR(sql_rows(db, "SELECT protocol FROM devices WHERE name = 'phone'"), "NULL");
	/* the column holds JSON objects only */
	const char *bad[] = {"[1, 2]", "{\"repeats\": ", "3", "\"x\""};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		tl_err_clear(&err);
		tl_strlcpy(g.protocol, bad[i], sizeof g.protocol);
		CHECK_EQ_INT(db_device_update(db, &g, &err), TL_EDB);
		CHECK_EQ_INT(err.sub, SQLITE_CONSTRAINT_CHECK);
		tl_err_clear(&err);
		tl_strlcpy(d.name, "bad", sizeof d.name);
		tl_strlcpy(d.protocol, bad[i], sizeof d.protocol);
		CHECK_EQ_INT(db_device_add(db, &d, NULL, &err), TL_EDB);
		CHECK_EQ_INT(err.sub, SQLITE_CONSTRAINT_CHECK);
	}
	CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM devices"), 3);
	CHECK_EQ_STR(sql_rows(db, "SELECT protocol FROM devices WHERE name = 'phone'"), "NULL");
	db_close(db);
}

/* ---- migration 5: candidate_evals, canaries ---------------------------- */

#define G3 "3333333333333333333333333333333333333333333333333333333333333333"
#define CA "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define CB "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

/* A file as tailor 4 left it (a device, a run, a candidate, a measurement
 * with its spread, an operator table and a prediction checked against the
 * measurement) migrates to 5: every row kept, the new tables empty, the
 * views there and empty, the same schema as a new file; the old rows then
 * take part in the new tables. */
static void test_migrate_v4(void)
{
	static const char fixture[] =
	    "INSERT INTO devices (id, name, transport, host, protocol)\n"
	    "  VALUES (2, 'phone', 'ssh', 'phone.lab', '{\"repeats\": 3}');\n"
	    "INSERT INTO runs (id, name, config, seed, status) VALUES (1, 'old', '{}', 7, 'finished');\n"
	    "INSERT INTO genomes (hash, text, params) VALUES ('" G1 "', 'fixture', 1000);\n"
	    "INSERT INTO candidates (id, run_id, generation, genome_hash, origin, status)\n"
	    "  VALUES (1, 1, 0, '" G1 "', 'sample', 'done');\n"
	    "INSERT INTO measurements (genome_hash, candidate_id, run_id, device_id, ttft_ms,\n"
	    "  decode_ms_p50, peak_rss_bytes, ttft_cv, status)\n"
	    "  VALUES ('" G1 "', 1, 1, 2, 100, 4, 2097152, 0.01, 'ok');\n"
	    "INSERT INTO op_tables (device_id, space_hash, quant, kv, n_keys, n_archs, table_json)\n"
	    "  VALUES (2, 's', 'q4_0', 'f16', 1, 1, '{}');\n"
	    "INSERT INTO predictions (table_id, genome_hash, prompt_len, gen_len, depth, ttft_ms,\n"
	    "  decode_ms, peak_rss_bytes, measurement_id)\n"
	    "  VALUES (1, '" G1 "', 128, 32, 0, 110, 5, 3145728, 1);\n";
	char path[256], fresh[256];
	tl_err err = TL_ERR_INIT;
	db_info info;

	path_in(path, sizeof path, "v4.db");
	CHECK_EQ_INT(db_debug_create(path, 4, fixture, &err), 0);
	CHECK_MSG(err.code == 0, "%s", err.msg);
	db_conn *db = open_ok(path, DB_OPEN_READONLY);
	if (db == NULL)
		return;
	CHECK_EQ_INT(db_schema_version(db), 4);
	CHECK_CONTAINS(sql_rows(db, "SELECT count(*) FROM candidate_evals"), "no such table");
	CHECK_CONTAINS(sql_rows(db, "SELECT count(*) FROM canary_history"), "no such table");
	db_close(db);

	db = open_ok(path, 0);
	if (db == NULL)
		return;
	CHECK_EQ_INT(db_schema_version(db), 5);
	CHECK_EQ_INT(db_info_get(db, &info, &err), 0);
	CHECK_EQ_INT(info.migrations, 5);
	CHECK_EQ_INT(info.devices, 2);
	CHECK_EQ_INT(info.runs, 1);
	CHECK_EQ_INT(info.candidates, 1);
	CHECK_EQ_INT(info.measurements, 1);
	CHECK_EQ_INT(sql_int(db, "PRAGMA user_version"), 5);
	CHECK_EQ_STR(sql_rows(db, "SELECT name FROM schema_migrations WHERE version = 5"),
	             "ranked on and canaries: tables candidate_evals, canaries; views "
	             "predicted_vs_measured, canary_history");
	CHECK_EQ_STR(sql_rows(db, "SELECT name, protocol FROM devices ORDER BY id"),
	             "local|NULL\nphone|{\"repeats\": 3}");
	CHECK_EQ_STR(sql_rows(db, "SELECT id, status, ttft_ms, decode_ms_p50, ttft_cv FROM "
	                          "measurements"),
	             "1|ok|100|4|0.01");
	CHECK_EQ_STR(sql_rows(db, "SELECT id, decode_ms, measurement_id FROM predictions"),
	             "1|5|1");
	CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM op_tables"), 1);
	CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM candidate_evals"), 0);
	CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM canaries"), 0);
	CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM predicted_vs_measured"), 0);
	CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM canary_history"), 0);
	CHECK_EQ_STR(sql_rows(db, "PRAGMA foreign_key_check"), "");
	CHECK_EQ_STR(sql_rows(db, "PRAGMA integrity_check"), "ok");

	/* the old rows in the new tables: pred 5 vs 4 ms is +25 % */
	CHECK_EQ_INT(db_candidate_eval_set(db, 1, 2, 1, 1, "measured", &err), 0);
	CHECK_MSG(err.code == 0, "%s", err.msg);
	CHECK_EQ_STR(sql_rows(db, "SELECT run_id, candidate_id, device, decode_rel_err, "
	                          "ttft_rel_err, peak_rss_rel_err FROM predicted_vs_measured"),
	             "1|1|phone|0.25|0.1|0.5");
	db_canary k;
	memset(&k, 0, sizeof k);
	k.device_id = 2;
	k.run_id = 1;
	k.measurement_id = 1;
	tl_strlcpy(k.canary_hash, CA, sizeof k.canary_hash);
	k.decode_ms = 4;
	k.ttft_ms = k.peak_rss_mb = NAN;
	CHECK_EQ_INT(db_canary_add(db, &k, NULL, &err), 0);
	CHECK_EQ_STR(sql_rows(db, "SELECT device, run, decode_ms FROM canary_history"),
	             "phone|old|4");
	char *migrated = schema_of(db);
	db_close(db);

	path_in(fresh, sizeof fresh, "v4-fresh.db");
	db = open_ok(fresh, 0);
	if (db == NULL) {
		free(migrated);
		return;
	}
	char *created = schema_of(db);
	CHECK(created != NULL && strstr(created, "CREATE TABLE candidate_evals") != NULL);
	CHECK(created != NULL && strstr(created, "CREATE VIEW canary_history") != NULL);
	CHECK_MSG(migrated && created && strcmp(migrated, created) == 0,
	          "schema of a migrated v4 file differs from a new file's (%zu vs %zu bytes)",
	          migrated ? strlen(migrated) : 0, created ? strlen(created) : 0);
	free(migrated);
	free(created);
	db_close(db);
}

static int64_t measurement(db_conn *db, const char *hash, int64_t run, int64_t cand,
                           int64_t device, double ttft, double decode, int64_t rss, bool ok)
{
	tl_err err = TL_ERR_INIT;
	db_measurement m;
	int64_t id = 0;
	db_measurement_init(&m);
	m.genome_hash = hash;
	m.run_id = run;
	m.candidate_id = cand;
	m.device_id = device;
	m.ttft_ms = ttft;
	m.decode_ms_p50 = decode;
	m.peak_rss_bytes = rss;
	m.status = ok ? "ok" : "failed";
	CHECK_EQ_INT(db_measurement_add(db, &m, NULL, 0, &id, &err), 0);
	CHECK_MSG(err.code == 0, "%s", err.msg);
	return id;
}

static int64_t prediction(db_conn *db, int64_t table, const char *hash, double ttft,
                          double decode, int64_t rss)
{
	tl_err err = TL_ERR_INIT;
	db_prediction p = {table, hash, 128, 32, 0, ttft, decode, rss, 0};
	int64_t id = 0;
	CHECK_EQ_INT(db_prediction_add(db, &p, &id, &err), 0);
	CHECK_MSG(err.code == 0, "%s", err.msg);
	return id;
}

static int64_t candidate(db_conn *db, int64_t run, int64_t gen, const char *hash,
                         const char *origin)
{
	tl_err err = TL_ERR_INIT;
	int64_t id = 0;
	CHECK_EQ_INT(db_candidate_add(db, run, gen, hash, "g", 1000, NULL, 0, 0, origin, "done",
	                              "{}", 1, 0, &id, &err),
	             0);
	CHECK_MSG(err.code == 0, "%s", err.msg);
	return id;
}

/* What a candidate was ranked on: set, replace, read back; the view
 * predicted_vs_measured against relative errors worked out by hand; what
 * the table refuses; deleting an operator table nulls prediction_id. */
static void test_candidate_evals(void)
{
	tl_err err = TL_ERR_INIT;
	db_device d;
	int64_t phone = 0, run = 0, run2 = 0, table = 0;

	db_conn *db = open_ok(":memory:", 0);
	if (db == NULL)
		return;
	db_device_init(&d);
	tl_strlcpy(d.name, "phone", sizeof d.name);
	tl_strlcpy(d.transport, "ssh", sizeof d.transport);
	tl_strlcpy(d.host, "phone.lab", sizeof d.host);
	CHECK_EQ_INT(db_device_add(db, &d, &phone, &err), 0);
	CHECK_EQ_INT(db_run_create(db, "r", "{}", NULL, "nsga2", 1, 2, 4, "test", &run, &err), 0);
	CHECK_EQ_INT(db_run_create(db, "r2", "{}", NULL, "nsga2", 1, 2, 4, "test", &run2, &err), 0);
	int64_t c1 = candidate(db, run, 0, G1, "sample");
	int64_t c3 = candidate(db, run, 0, G2, "sample");
	int64_t c2 = candidate(db, run, 1, G1, "elite"); /* copies c1's result */
	int64_t c4 = candidate(db, run, 1, G2, "mutate");
	int64_t c5 = candidate(db, run2, 0, G1, "sample");
	db_optable t = optable(phone, "s", "q4_0", "{}");
	CHECK_EQ_INT(db_optable_add(db, &t, NULL, 0, &table, &err), 0);
	CHECK_MSG(err.code == 0, "%s", err.msg);

	/* G1: predicted 90 ms / 5 ms / 3 MiB, measured 100 / 4 / 2 MiB;
	 * G2: predicted 60 / 9 / 1 MiB, measured 50 / 10 / 1 MiB */
	int64_t m1 = measurement(db, G1, run, c1, phone, 100, 4, 2097152, true);
	int64_t m2 = measurement(db, G2, run, c3, phone, 50, 10, 1048576, true);
	int64_t mf = measurement(db, G2, run, c4, phone, NAN, NAN, -1, false);
	int64_t p1 = prediction(db, table, G1, 90, 5, 3145728);
	int64_t p2 = prediction(db, table, G2, 60, 9, 1048576);

	CHECK_EQ_INT(db_candidate_eval_set(db, c1, phone, m1, p1, "measured", &err), 0);
	CHECK_EQ_INT(db_candidate_eval_set(db, c1, DB_DEVICE_LOCAL_ID, 0, p1, "predicted", &err), 0);
	CHECK_EQ_INT(db_candidate_eval_set(db, c2, phone, m1, p1, "measured", &err), 0);
	/* c3 first ranked on its prediction, then measured: the row is replaced */
	CHECK_EQ_INT(db_candidate_eval_set(db, c3, phone, 0, p2, "predicted", &err), 0);
	CHECK_EQ_INT(db_candidate_eval_set(db, c3, phone, m2, p2, "measured", &err), 0);
	CHECK_EQ_INT(db_candidate_eval_set(db, c4, phone, mf, p2, "predicted", &err), 0);
	CHECK_EQ_INT(db_candidate_eval_set(db, c5, phone, m1, p1, "measured", &err), 0);
	CHECK_MSG(err.code == 0, "%s", err.msg);
	CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM candidate_evals"), 6);

	db_candidate_eval *e = NULL;
	size_t n = 0;
	CHECK_EQ_INT(db_candidate_evals_of(db, c1, &e, &n, &err), 0);
	CHECK_EQ_INT(n, 2);
	if (n == 2) {
		CHECK_EQ_INT(e[0].candidate_id, c1);
		CHECK_EQ_INT(e[0].device_id, DB_DEVICE_LOCAL_ID);
		CHECK_EQ_INT(e[0].measurement_id, 0);
		CHECK_EQ_INT(e[0].prediction_id, p1);
		CHECK_EQ_STR(e[0].used, "predicted");
		CHECK_EQ_INT(e[1].device_id, phone);
		CHECK_EQ_INT(e[1].measurement_id, m1);
		CHECK_EQ_INT(e[1].prediction_id, p1);
		CHECK_EQ_STR(e[1].used, "measured");
	}
	free(e);
	CHECK_EQ_INT(db_candidate_evals_of(db, c3, &e, &n, &err), 0);
	CHECK_EQ_INT(n, 1);
	if (n == 1) {
		CHECK_EQ_INT(e[0].measurement_id, m2);
		CHECK_EQ_INT(e[0].prediction_id, p2);
		CHECK_EQ_STR(e[0].used, "measured");
	}
	free(e);
	e = (db_candidate_eval *)&n; /* reset on entry */
	CHECK_EQ_INT(db_candidate_evals_of(db, 999, &e, &n, &err), 0);
	CHECK(e == NULL && n == 0);

	/* the view: both a prediction and a successful measurement (not c1 on
	 * local, not c4 whose measurement failed); relative errors (pred-meas)/meas */
	CHECK_EQ_STR(sql_rows(db, "SELECT candidate_id, generation, device, used, "
	                          "round(ttft_rel_err, 9), round(decode_rel_err, 9), "
	                          "round(peak_rss_rel_err, 9) FROM predicted_vs_measured "
	                          "WHERE run_id = 1 ORDER BY candidate_id"),
	             "1|0|phone|measured|-0.1|0.25|0.5\n"
	             "2|0|phone|measured|0.2|-0.1|0\n"
	             "3|1|phone|measured|-0.1|0.25|0.5");
	db_pvm *p = NULL;
	CHECK_EQ_INT(db_run_pvm(db, run, &p, &n, &err), 0);
	CHECK_MSG(err.code == 0, "%s", err.msg);
	CHECK_EQ_INT(n, 3);
	if (n == 3) {
		CHECK_EQ_INT(p[0].candidate_id, c1);
		CHECK_EQ_INT(p[0].generation, 0);
		CHECK_EQ_STR(p[0].genome_hash, G1);
		CHECK_EQ_STR(p[0].device, "phone");
		CHECK_NEAR(p[0].pred_ttft_ms, 90, 0, 0);
		CHECK_NEAR(p[0].meas_ttft_ms, 100, 0, 0);
		CHECK_NEAR(p[0].pred_decode_ms, 5, 0, 0);
		CHECK_NEAR(p[0].meas_decode_ms, 4, 0, 0);
		CHECK_NEAR(p[0].pred_peak_rss_mb, 3, 0, 0);
		CHECK_NEAR(p[0].meas_peak_rss_mb, 2, 0, 0);
		CHECK_NEAR((p[0].pred_decode_ms - p[0].meas_decode_ms) / p[0].meas_decode_ms, 0.25,
		           1e-12, 0);
		CHECK_EQ_INT(p[1].candidate_id, c3);
		CHECK_EQ_STR(p[1].genome_hash, G2);
		CHECK_NEAR((p[1].pred_decode_ms - p[1].meas_decode_ms) / p[1].meas_decode_ms, -0.1,
		           1e-12, 0);
		CHECK_NEAR(p[1].pred_peak_rss_mb, 1, 0, 0);
		CHECK_EQ_INT(p[2].candidate_id, c2);
		CHECK_EQ_INT(p[2].generation, 1);
	}
	free(p);
	CHECK_EQ_INT(db_run_pvm(db, run2, &p, &n, &err), 0);
	CHECK_EQ_INT(n, 1);
	free(p);
	CHECK_EQ_INT(db_run_pvm(db, 999, &p, &n, &err), 0);
	CHECK(p == NULL && n == 0);

	/* the devices of a run: local (c1's prediction there) and the phone */
	db_run_device *rd = NULL;
	CHECK_EQ_INT(db_run_devices(db, run, &rd, &n, &err), 0);
	CHECK_EQ_INT(n, 2);
	if (n == 2) {
		CHECK_EQ_STR(rd[0].name, "local");
		CHECK_EQ_INT(rd[1].id, phone);
		CHECK_EQ_STR(rd[1].name, "phone");
	}
	free(rd);

	/* refused: another word, an id that names nothing */
	tl_err_clear(&err);
	CHECK_EQ_INT(db_candidate_eval_set(db, c1, phone, m1, p1, "guessed", &err), TL_EDB);
	CHECK_EQ_INT(err.sub, SQLITE_CONSTRAINT_CHECK);
	CHECK(db_err_is_constraint(&err));
	tl_err_clear(&err);
	CHECK_EQ_INT(db_candidate_eval_set(db, c1, phone, m1, p1, NULL, &err), TL_EDB);
	CHECK_EQ_INT(err.sub, SQLITE_CONSTRAINT_NOTNULL);
	tl_err_clear(&err);
	CHECK_EQ_INT(db_candidate_eval_set(db, 999, phone, m1, p1, "measured", &err), TL_EDB);
	CHECK_EQ_INT(err.sub, SQLITE_CONSTRAINT_FOREIGNKEY);
	CHECK_CONTAINS(err.msg, "candidate eval: candidate 999, device");
	CHECK_CONTAINS(err.msg, "not in the database");
	tl_err_clear(&err);
	CHECK_EQ_INT(db_candidate_eval_set(db, c1, phone, 999, p1, "measured", &err), TL_EDB);
	CHECK_EQ_INT(err.sub, SQLITE_CONSTRAINT_FOREIGNKEY);
	tl_err_clear(&err);
	CHECK_EQ_INT(db_candidate_eval_set(db, c1, 999, m1, p1, "measured", &err), TL_EDB);
	CHECK_EQ_INT(err.sub, SQLITE_CONSTRAINT_FOREIGNKEY);
	tl_err_clear(&err);
	/* the refused writes left c1's row as it was */
	CHECK_EQ_STR(sql_rows(db, "SELECT measurement_id, prediction_id, used FROM "
	                          "candidate_evals WHERE candidate_id = 1 AND device_id = 2"),
	             "1|1|measured");

	/* removing the operator table removes its predictions; the evals stay,
	 * prediction_id NULL, and leave the view */
	CHECK_EQ_INT(db_optable_remove(db, table, &err), 0);
	CHECK_MSG(err.code == 0, "%s", err.msg);
	CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM candidate_evals"), 6);
	CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM candidate_evals WHERE prediction_id IS "
	                         "NOT NULL"),
	             0);
	CHECK_EQ_INT(db_candidate_evals_of(db, c3, &e, &n, &err), 0);
	CHECK(n == 1 && e[0].prediction_id == 0 && e[0].measurement_id == m2);
	free(e);
	CHECK_EQ_INT(db_run_pvm(db, run, &p, &n, &err), 0);
	CHECK_EQ_INT(n, 0);
	free(p);
	CHECK_EQ_STR(sql_rows(db, "PRAGMA foreign_key_check"), "");
	db_close(db);
}

static db_canary canary(int64_t device, const char *hash, int64_t run, int64_t gen,
                        double decode_ms)
{
	db_canary k;
	memset(&k, 0, sizeof k);
	k.id = 77; /* ignored */
	k.device_id = device;
	k.run_id = run;
	k.generation = gen;
	tl_strlcpy(k.canary_hash, hash, sizeof k.canary_hash);
	tl_strlcpy(k.created_at, "ignored", sizeof k.created_at);
	k.decode_ms = decode_ms;
	k.ttft_ms = 10 * decode_ms;
	k.peak_rss_mb = 64;
	return k;
}

/* A device's canaries across runs: add, history by genome and limit
 * (newest last), NULLs, what is refused, the view canary_history. */
static void test_canaries(void)
{
	tl_err err = TL_ERR_INIT;
	db_device d;
	int64_t phone = 0, board = 0, r1 = 0, r2 = 0, r3 = 0, id = 0;

	db_conn *db = open_ok(":memory:", 0);
	if (db == NULL)
		return;
	db_device_init(&d);
	tl_strlcpy(d.name, "phone", sizeof d.name);
	tl_strlcpy(d.transport, "local", sizeof d.transport);
	CHECK_EQ_INT(db_device_add(db, &d, &phone, &err), 0);
	tl_strlcpy(d.name, "board", sizeof d.name);
	CHECK_EQ_INT(db_device_add(db, &d, &board, &err), 0);
	CHECK_EQ_INT(db_run_create(db, "r1", "{}", NULL, "nsga2", 1, 2, 4, "test", &r1, &err), 0);
	CHECK_EQ_INT(db_run_create(db, "r2", "{}", NULL, "nsga2", 1, 2, 4, "test", &r2, &err), 0);
	CHECK_EQ_INT(db_run_create(db, "r3", "{}", NULL, "nsga2", 1, 2, 4, "test", &r3, &err), 0);
	CHECK_EQ_INT(db_genome_ensure(db, G3, "g3", 10, &err), 0);
	int64_t m = measurement(db, G3, r2, 0, phone, 120, 12, 1048576, true);

	/* phone, canary A: 10, 11 (run 1), 12 (run 2), 13 (no run); canary B:
	 * 20, 21; board, canary A: 30 */
	db_canary k = canary(phone, CA, r1, 0, 10);
	tl_strlcpy(k.build_hash, "build-1", sizeof k.build_hash);
	CHECK_EQ_INT(db_canary_add(db, &k, &id, &err), 0);
	CHECK_MSG(err.code == 0, "%s", err.msg);
	CHECK_EQ_INT(id, 1);
	k = canary(phone, CB, r1, 0, 20);
	CHECK_EQ_INT(db_canary_add(db, &k, &id, &err), 0);
	k = canary(phone, CA, r1, 5, 11);
	CHECK_EQ_INT(db_canary_add(db, &k, &id, &err), 0);
	k = canary(board, CA, r2, 0, 30);
	CHECK_EQ_INT(db_canary_add(db, &k, &id, &err), 0);
	k = canary(phone, CA, r2, 0, 12);
	k.measurement_id = m;
	CHECK_EQ_INT(db_canary_add(db, &k, &id, &err), 0);
	k = canary(phone, CB, r2, 0, 21);
	CHECK_EQ_INT(db_canary_add(db, &k, &id, &err), 0);
	k = canary(phone, CA, 0, 3, 13);
	k.ttft_ms = k.peak_rss_mb = NAN;
	CHECK_EQ_INT(db_canary_add(db, &k, NULL, &err), 0);
	CHECK_MSG(err.code == 0, "%s", err.msg);
	CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM canaries"), 7);

	db_canary *h = NULL;
	size_t n = 0;
	CHECK_EQ_INT(db_canary_history(db, phone, CA, 0, &h, &n, &err), 0);
	CHECK_EQ_INT(n, 4);
	if (n == 4) {
		CHECK_EQ_INT(h[0].id, 1);
		CHECK_EQ_INT(h[0].device_id, phone);
		CHECK_EQ_STR(h[0].canary_hash, CA);
		CHECK_EQ_STR(h[0].build_hash, "build-1");
		CHECK_EQ_INT(h[0].run_id, r1);
		CHECK_EQ_INT(h[0].measurement_id, 0);
		CHECK_NEAR(h[0].decode_ms, 10, 0, 0);
		CHECK_NEAR(h[0].ttft_ms, 100, 0, 0);
		CHECK_NEAR(h[0].peak_rss_mb, 64, 0, 0);
		CHECK_EQ_INT(strlen(h[0].created_at), 24);
		CHECK_EQ_INT(h[1].generation, 5);
		CHECK_NEAR(h[1].decode_ms, 11, 0, 0);
		CHECK_EQ_STR(h[1].build_hash, "");
		CHECK_EQ_INT(h[2].measurement_id, m);
		CHECK_EQ_INT(h[2].run_id, r2);
		CHECK_EQ_INT(h[3].run_id, 0);
		CHECK_EQ_INT(h[3].generation, 3);
		CHECK_NEAR(h[3].decode_ms, 13, 0, 0);
		CHECK(isnan(h[3].ttft_ms) && isnan(h[3].peak_rss_mb));
	}
	free(h);
	/* the newest two, newest last */
	CHECK_EQ_INT(db_canary_history(db, phone, CA, 2, &h, &n, &err), 0);
	CHECK_EQ_INT(n, 2);
	if (n == 2) {
		CHECK_NEAR(h[0].decode_ms, 12, 0, 0);
		CHECK_NEAR(h[1].decode_ms, 13, 0, 0);
	}
	free(h);
	/* a limit over the count: all of them */
	CHECK_EQ_INT(db_canary_history(db, phone, CB, 10, &h, &n, &err), 0);
	CHECK_EQ_INT(n, 2);
	if (n == 2) {
		CHECK_NEAR(h[0].decode_ms, 20, 0, 0);
		CHECK_NEAR(h[1].decode_ms, 21, 0, 0);
	}
	free(h);
	/* every canary of the device, in order; the newest three of them */
	CHECK_EQ_INT(db_canary_history(db, phone, NULL, 0, &h, &n, &err), 0);
	CHECK_EQ_INT(n, 6);
	for (size_t i = 1; i < n; i++)
		CHECK(h[i].id > h[i - 1].id && h[i].device_id == phone);
	free(h);
	CHECK_EQ_INT(db_canary_history(db, phone, NULL, 3, &h, &n, &err), 0);
	CHECK_EQ_INT(n, 3);
	if (n == 3) {
		CHECK_NEAR(h[0].decode_ms, 12, 0, 0);
		CHECK_NEAR(h[1].decode_ms, 21, 0, 0);
		CHECK_NEAR(h[2].decode_ms, 13, 0, 0);
	}
	free(h);
	CHECK_EQ_INT(db_canary_history(db, board, NULL, 0, &h, &n, &err), 0);
	CHECK_EQ_INT(n, 1);
	free(h);
	h = (db_canary *)&n; /* reset on entry */
	CHECK_EQ_INT(db_canary_history(db, board, CB, 0, &h, &n, &err), 0);
	CHECK(h == NULL && n == 0);
	CHECK_MSG(err.code == 0, "%s", err.msg);

	/* NULLs as the schema says */
	CHECK_EQ_STR(sql_rows(db, "SELECT build_hash, run_id, measurement_id, ttft_ms, peak_rss_mb "
	                          "FROM canaries WHERE id = 7"),
	             "NULL|NULL|NULL|NULL|NULL");
	/* the view: names, and the change from the previous canary of the genome
	 * on the device: 11/10 - 1, 12/11 - 1, 13/12 - 1 */
	CHECK_EQ_STR(sql_rows(db, "SELECT device, run, generation, round(decode_change, 6) FROM "
	                          "canary_history WHERE canary_hash = '" CA "' AND device = 'phone' "
	                          "ORDER BY id"),
	             "phone|r1|0|NULL\nphone|r1|5|0.1\nphone|r2|0|0.090909\nphone|NULL|3|0.083333");
	CHECK_EQ_STR(sql_rows(db, "SELECT device, run, decode_change FROM canary_history WHERE "
	                          "device = 'board'"),
	             "board|r2|NULL");

	/* a run that only measured canaries used those devices */
	db_run_device *rd = NULL;
	CHECK_EQ_INT(db_run_devices(db, r1, &rd, &n, &err), 0);
	CHECK(n == 1 && rd[0].id == phone);
	free(rd);
	CHECK_EQ_INT(db_run_devices(db, r2, &rd, &n, &err), 0);
	CHECK(n == 2 && rd[0].id == phone && rd[1].id == board);
	free(rd);
	CHECK_EQ_INT(db_run_devices(db, r3, &rd, &n, &err), 0);
	CHECK(rd == NULL && n == 0);

	/* refused: a hash that is not one, a negative generation or latency, a
	 * device, run or measurement that is not there */
	/* 63 characters; 64 with an upper-case or a non-hex one */
	const char *bad_hash[] = {"", "abc", CA + 1,
	                          "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
	                          "000000000000000000000000000000000000000000000000000000000000000g"};
	for (size_t i = 0; i < sizeof bad_hash / sizeof bad_hash[0]; i++) {
		k = canary(phone, bad_hash[i], r1, 0, 10);
		tl_err_clear(&err);
		id = 5;
		CHECK_EQ_INT(db_canary_add(db, &k, &id, &err), TL_EDB);
		CHECK_EQ_INT(err.sub, SQLITE_CONSTRAINT_CHECK);
		CHECK_EQ_INT(id, 0);
	}
	k = canary(phone, CA, r1, -1, 10);
	tl_err_clear(&err);
	CHECK_EQ_INT(db_canary_add(db, &k, NULL, &err), TL_EDB);
	CHECK_EQ_INT(err.sub, SQLITE_CONSTRAINT_CHECK);
	k = canary(phone, CA, r1, 0, -1);
	tl_err_clear(&err);
	CHECK_EQ_INT(db_canary_add(db, &k, NULL, &err), TL_EDB);
	CHECK_EQ_INT(err.sub, SQLITE_CONSTRAINT_CHECK);
	k = canary(999, CA, r1, 0, 10);
	tl_err_clear(&err);
	CHECK_EQ_INT(db_canary_add(db, &k, NULL, &err), TL_EDB);
	CHECK_EQ_INT(err.sub, SQLITE_CONSTRAINT_FOREIGNKEY);
	CHECK_CONTAINS(err.msg, "canary add: device 999, run 1, measurement 0: one of them is not");
	k = canary(phone, CA, 999, 0, 10);
	tl_err_clear(&err);
	CHECK_EQ_INT(db_canary_add(db, &k, NULL, &err), TL_EDB);
	CHECK(db_err_is_constraint(&err));
	k = canary(phone, CA, r1, 0, 10);
	k.measurement_id = 999;
	tl_err_clear(&err);
	CHECK_EQ_INT(db_canary_add(db, &k, NULL, &err), TL_EDB);
	CHECK_EQ_INT(err.sub, SQLITE_CONSTRAINT_FOREIGNKEY);
	CHECK_EQ_INT(sql_int(db, "SELECT count(*) FROM canaries"), 7);
	db_close(db);
}

static void rm_tree(const char *path)
{
	struct stat st;
	if (lstat(path, &st) != 0)
		return;
	if (S_ISDIR(st.st_mode)) {
		chmod(path, 0755);
		DIR *d = opendir(path);
		if (d != NULL) {
			struct dirent *e;
			while ((e = readdir(d)) != NULL) {
				if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
					continue;
				char sub[512];
				int n = snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
				if (n > 0 && (size_t)n < sizeof sub)
					rm_tree(sub);
			}
			closedir(d);
		}
		rmdir(path);
	} else {
		unlink(path);
	}
}

int main(void)
{
	tl_strlcpy(tmp, "/tmp/tailor-test-db-XXXXXX", sizeof tmp);
	if (mkdtemp(tmp) == NULL) {
		perror("test_db: mkdtemp");
		return 2;
	}
	/* 0755 so that the unprivileged child of test_readonly_dir can reach
	 * its subdirectory. */
	chmod(tmp, 0755);

	test_path_resolve();
	test_create_and_reopen();
	test_empty_file();
	test_memory();
	test_events_and_constraints();
	test_newer_version();
	test_failed_migration_is_atomic();
	test_bad_paths();
	test_readonly_dir();
	test_migrate_v3();
	test_measurement_spread();
	test_optables();
	test_device_protocol();
	test_migrate_v4();
	test_candidate_evals();
	test_canaries();

	rm_tree(tmp);
	return tl_test_end();
}
