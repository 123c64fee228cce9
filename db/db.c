/*
 * db/db.c: the connection. Opening checks the path before SQLite sees it (so
 * a missing or read-only directory gets a sentence, not "unable to open
 * database file"), configures the connection (WAL, foreign keys, busy
 * timeout), refuses files written by a newer tailor without touching them,
 * and applies the pending migrations of migrations.c in one transaction.
 * Also here: transactions, the row counts of `tailor db info`, and events.
 *
 * Workload: a handful of opens per process; the cost that matters is that
 * re-opening an up-to-date file reads a few header pages and writes nothing,
 * so readers (`tailor query`, an analyst's sqlite3) never contend with it.
 */
#include "db_int.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DB_DEFAULT_PATH "./tailor.db"

/* STRICT tables appeared in SQLite 3.37.0; json_valid is built in from 3.38
 * (and in most 3.37 builds). An older library would fail migration 1 with a
 * syntax error; say what is wrong instead. */
#define DB_SQLITE_MIN 3037000

const char *db_path_resolve(const char *flag)
{
	if (flag != NULL && flag[0] != '\0')
		return flag;
	const char *env = getenv("TAILOR_DB");
	if (env != NULL && env[0] != '\0')
		return env;
	return DB_DEFAULT_PATH;
}

/* ---- errors and statement helpers (db_int.h) -------------------------- */

int db_fail(db_conn *db, int rc, const char *op, tl_err *err)
{
	const char *path = db->path;
	const char *dir = db->dir;
	const char *msg = db->h != NULL ? sqlite3_errmsg(db->h) : sqlite3_errstr(rc);
	int sys = db->h != NULL ? sqlite3_system_errno(db->h) : 0;

	/* The connection's message may belong to an older failure when the
	 * caller passes a code it got elsewhere (sqlite3_open_v2 without a
	 * handle, a finalize): prefer the generic text then. */
	if (db->h != NULL && sqlite3_extended_errcode(db->h) != rc)
		msg = sqlite3_errstr(rc);

	switch (rc & 0xff) {
	case SQLITE_NOTADB:
		return tl_err_setsub(err, TL_EDB, rc,
		                     "db %s: %s: not a SQLite database (%s); pass --db with "
		                     "the path of a tailor database or of a new file",
		                     op, path, msg);
	case SQLITE_CANTOPEN: {
		/* SQLite retries a failed read-write open read-only, so the errno
		 * it keeps is often that retry's ENOENT: ask the directory too. */
		int why = 0;
		if (sys == EACCES || sys == EPERM || sys == EROFS)
			why = sys;
		else if (!db->readonly && access(dir, W_OK | X_OK) != 0 &&
		         (errno == EACCES || errno == EPERM || errno == EROFS))
			why = errno;
		if (why != 0)
			return tl_err_setsub(err, TL_EDB, rc,
			                     "db %s: %s: directory %s is not writable (%s: %s); "
			                     "fix its permissions or pass --db PATH in a "
			                     "directory you can write",
			                     op, path, dir, msg, strerror(why));
		return tl_err_setsub(err, TL_EDB, rc,
		                     "db %s: %s: cannot open the file (%s%s%s); check that "
		                     "directory %s exists and is writable, or pass --db PATH",
		                     op, path, msg, sys ? ": " : "", sys ? strerror(sys) : "", dir);
	}
	case SQLITE_READONLY:
		/* These three are about the -wal/-shm files beside the database,
		 * which even a reader of a WAL file may need to create. */
		if ((rc == SQLITE_READONLY_DIRECTORY || rc == SQLITE_READONLY_CANTINIT ||
		     rc == SQLITE_READONLY_CANTLOCK) &&
		    db->readonly)
			return tl_err_setsub(err, TL_EDB, rc,
			                     "db %s: %s: directory %s is not writable (%s); even "
			                     "a reader of a WAL database creates %s-shm there: "
			                     "ask the owner for write access to the directory, "
			                     "or copy %s (and %s-wal if present) elsewhere",
			                     op, path, dir, msg, path, path, path);
		if (rc == SQLITE_READONLY_DIRECTORY || rc == SQLITE_READONLY_CANTINIT ||
		    rc == SQLITE_READONLY_CANTLOCK)
			return tl_err_setsub(err, TL_EDB, rc,
			                     "db %s: %s: directory %s is not writable (%s); fix "
			                     "its permissions or pass --db PATH in a directory "
			                     "you can write",
			                     op, path, dir, msg);
		if (db->readonly)
			return tl_err_setsub(err, TL_EDB, rc,
			                     "db %s: %s: the database was opened read-only (%s)",
			                     op, path, msg);
		return tl_err_setsub(err, TL_EDB, rc,
		                     "db %s: %s: the file is not writable (%s); fix its "
		                     "permissions or pass --db PATH",
		                     op, path, msg);
	case SQLITE_BUSY:
		return tl_err_setsub(err, TL_EDB, rc,
		                     "db %s: %s: another process held the database for more "
		                     "than %d ms (%s); retry when it is done",
		                     op, path, DB_BUSY_TIMEOUT_MS, msg);
	case SQLITE_FULL:
	case SQLITE_IOERR: {
		/* the file (or its disk) became read-only under us: chattr +i, a
		 * filesystem remounted read-only after an error */
		char wal[PATH_MAX];
		int ro = 0;
		snprintf(wal, sizeof wal, "%s-wal", path);
		if (sys == EPERM || sys == EROFS || sys == EACCES)
			ro = sys;
		else if (!db->readonly && path[0] &&
		         (access(path, W_OK) != 0 || (access(wal, F_OK) == 0 && access(wal, W_OK) != 0)) &&
		         (errno == EPERM || errno == EROFS || errno == EACCES))
			ro = errno;
		if (ro != 0)
			return tl_err_setsub(err, TL_EDB, rc,
			                     "db %s: %s: the database became read-only (%s: %s): make "
			                     "it (and %s-wal) writable again; what was committed is "
			                     "kept, 'tailor run resume' continues a run",
			                     op, path, msg, strerror(ro), path);
		/* a write that found no room: a full disk or a file-size limit
		 * (EFBIG); every step before it is committed */
		if ((rc & 0xff) == SQLITE_FULL || rc == SQLITE_IOERR_WRITE || sys == ENOSPC ||
		    sys == EFBIG || sys == EDQUOT)
			return tl_err_setsub(err, TL_EDB, rc,
			                     "db %s: %s: a write failed, no room to write most often "
			                     "(%s%s%s): free space on its disk (or raise the file-size "
			                     "limit); what was committed is kept, 'tailor run resume' "
			                     "continues a run",
			                     op, path, msg, sys ? ": " : "", sys ? strerror(sys) : "");
		break;
	}
	}
	return tl_err_setsub(err, TL_EDB, rc, "db %s: %s: %s", op, path, msg);
}

int db_prepare(db_conn *db, sqlite3_stmt **st, const char *sql, const char *op, tl_err *err)
{
	*st = NULL;
	int rc = sqlite3_prepare_v2(db->h, sql, -1, st, NULL);
	if (rc != SQLITE_OK) {
		db_fail(db, rc, op, err);
		sqlite3_finalize(*st);
		*st = NULL;
		return TL_EDB;
	}
	return 0;
}

int db_exec(db_conn *db, const char *sql, const char *op, tl_err *err)
{
	int rc = sqlite3_exec(db->h, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return db_fail(db, rc, op, err);
	return 0;
}

int db_step_done(db_conn *db, sqlite3_stmt **st, const char *op, tl_err *err)
{
	int rc = sqlite3_step(*st);
	int ret = 0;

	if (rc == SQLITE_ROW)
		ret = tl_err_set(err, TL_EFAIL,
		                 "db %s: %s: statement returned rows "
		                 "where none were expected",
		                 op, db->path);
	else if (rc != SQLITE_DONE)
		ret = db_fail(db, rc, op, err);
	sqlite3_finalize(*st);
	*st = NULL;
	return ret;
}

int db_query_i64(db_conn *db, const char *sql, int64_t *out, const char *op, tl_err *err)
{
	*out = 0;
	int ret = db_get(db, sql, NULL, 0, op, db_read_i64, out, err);
	return ret < 0 ? ret : 0;
}

/* A one-row text result (a PRAGMA) copied into buf. */
typedef struct text_buf {
	char *buf;
	size_t size;
} text_buf;

static int read_text_buf(sqlite3_stmt *st, void *elem, tl_err *err)
{
	text_buf *t = elem;
	db_col_text(st, 0, t->buf, t->size);
	return 0;
}

static int db_query_text(db_conn *db, const char *sql, char *buf, size_t size, const char *op,
                         tl_err *err)
{
	text_buf t = {buf, size};
	buf[0] = '\0';
	int ret = db_get(db, sql, NULL, 0, op, read_text_buf, &t, err);
	return ret < 0 ? ret : 0;
}

/* ---- bound statements and typed rows (db_int.h) ------------------------ */

int db_bind(db_conn *db, sqlite3_stmt *st, const db_arg *args, size_t nargs, const char *op,
            tl_err *err)
{
	for (size_t k = 0; k < nargs; k++) {
		const db_arg *a = &args[k];
		int i = (int)k + 1, rc;
		switch (a->kind) {
		case DB_ARG_I64:
			rc = sqlite3_bind_int64(st, i, a->i);
			break;
		case DB_ARG_ID:
		case DB_ARG_I64_OPT:
			if (a->i > 0 || (a->kind == DB_ARG_I64_OPT && a->i == 0))
				rc = sqlite3_bind_int64(st, i, a->i);
			else
				rc = sqlite3_bind_null(st, i);
			break;
		case DB_ARG_REAL:
			rc = isfinite(a->d) ? sqlite3_bind_double(st, i, a->d) : sqlite3_bind_null(st, i);
			break;
		case DB_ARG_REAL_BIG:
			/* SQLite REAL has no infinity in JSON or in pandas-friendly
			 * form: the largest finite magnitude stands for it. */
			if (isnan(a->d))
				rc = sqlite3_bind_null(st, i);
			else
				rc = sqlite3_bind_double(st, i,
				                         isinf(a->d) ? (a->d > 0 ? 1e308 : -1e308) : a->d);
			break;
		case DB_ARG_TEXT:
		case DB_ARG_TEXT_OPT:
			if (a->s != NULL && (a->kind == DB_ARG_TEXT || a->s[0] != '\0'))
				rc = sqlite3_bind_text(st, i, a->s, -1, SQLITE_TRANSIENT);
			else
				rc = sqlite3_bind_null(st, i);
			break;
		default:
			rc = SQLITE_MISUSE;
		}
		if (rc != SQLITE_OK)
			return db_fail(db, rc, op, err);
	}
	return 0;
}

int db_prepare_args(db_conn *db, sqlite3_stmt **st, const char *sql, const db_arg *args,
                    size_t nargs, const char *op, tl_err *err)
{
	if (db_prepare(db, st, sql, op, err) < 0)
		return TL_EDB;
	if (db_bind(db, *st, args, nargs, op, err) < 0) {
		sqlite3_finalize(*st);
		*st = NULL;
		return TL_EDB;
	}
	return 0;
}

int db_write(db_conn *db, const char *sql, const db_arg *args, size_t nargs, const char *op,
             tl_err *err)
{
	sqlite3_stmt *st;
	if (db_prepare_args(db, &st, sql, args, nargs, op, err) < 0)
		return TL_EDB;
	return db_step_done(db, &st, op, err);
}

int db_insert(db_conn *db, const char *sql, const db_arg *args, size_t nargs, const char *op,
              int64_t *id, tl_err *err)
{
	int ret = db_write(db, sql, args, nargs, op, err);
	if (ret == 0 && id != NULL)
		*id = sqlite3_last_insert_rowid(db->h);
	return ret;
}

int db_read_i64(sqlite3_stmt *st, void *elem, tl_err *err)
{
	*(int64_t *)elem = sqlite3_column_int64(st, 0);
	return 0;
}

int db_read_double(sqlite3_stmt *st, void *elem, tl_err *err)
{
	*(double *)elem = db_col_real(st, 0);
	return 0;
}

int db_get(db_conn *db, const char *sql, const db_arg *args, size_t nargs, const char *op,
           db_read_fn read, void *elem, tl_err *err)
{
	sqlite3_stmt *st;
	if (db_prepare_args(db, &st, sql, args, nargs, op, err) < 0)
		return TL_EDB;
	int rc = sqlite3_step(st), ret = 0;
	if (rc == SQLITE_ROW) {
		ret = read(st, elem, err);
		if (ret == 0)
			ret = 1;
	} else if (rc != SQLITE_DONE) {
		ret = db_fail(db, rc, op, err);
	}
	sqlite3_finalize(st);
	return ret;
}

int db_collect(db_conn *db, const char *sql, const db_arg *args, size_t nargs, const char *op,
               const db_rowtype *type, void **out, size_t *n, tl_err *err)
{
	sqlite3_stmt *st;
	char *v = NULL;
	size_t len = 0, cap = 0;
	int rc, ret = 0;

	*out = NULL;
	*n = 0;
	if (db_prepare_args(db, &st, sql, args, nargs, op, err) < 0)
		return TL_EDB;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (len == cap) {
			size_t ncap = cap ? 2 * cap : 16;
			char *nv = realloc(v, ncap * type->size);
			if (nv == NULL) {
				ret = tl_err_set(err, TL_ENOMEM, "%s: out of memory", op);
				goto fail;
			}
			v = nv;
			cap = ncap;
		}
		void *e = v + len * type->size;
		memset(e, 0, type->size);
		len++; /* counted before reading, so that a failed read is cleared too */
		if ((ret = type->read(st, e, err)) < 0)
			goto fail;
	}
	if (rc != SQLITE_DONE) {
		ret = db_fail(db, rc, op, err);
		goto fail;
	}
	sqlite3_finalize(st);
	*out = v;
	*n = len;
	return 0;

fail:
	sqlite3_finalize(st);
	for (size_t i = 0; type->clear != NULL && i < len; i++)
		type->clear(v + i * type->size);
	free(v);
	return ret;
}

double db_col_real(sqlite3_stmt *st, int i)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

void db_col_text(sqlite3_stmt *st, int i, char *dst, size_t size)
{
	const unsigned char *s = sqlite3_column_text(st, i);
	tl_strlcpy(dst, s ? (const char *)s : "", size);
}

int db_col_dup(sqlite3_stmt *st, int i, char **dst)
{
	const unsigned char *s = sqlite3_column_text(st, i);
	*dst = NULL;
	if (s == NULL)
		return 0;
	size_t len = (size_t)sqlite3_column_bytes(st, i);
	*dst = malloc(len + 1);
	if (*dst == NULL)
		return TL_ENOMEM;
	memcpy(*dst, s, len + 1);
	return 0;
}

/* ---- opening ---------------------------------------------------------- */

/* The directory part of path, as the user wrote it: "." for a bare name,
 * "/" for a file in the root. Trailing slashes of the directory part are
 * dropped ("a//b" -> "a"). */
static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	if (slash == NULL)
		return strdup(".");
	while (slash > path && slash[-1] == '/')
		slash--;
	if (slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}

/*
 * What SQLite would report as "unable to open database file", said before it
 * tries, with the fix. Root passes access(W_OK) on any directory; that case
 * (and a race with chmod) still ends in SQLite's CANTOPEN/READONLY, which
 * db_fail words the same way.
 */
static int db_check_path(db_conn *db, tl_err *err)
{
	struct stat st;

	if (stat(db->path, &st) == 0) {
		if (S_ISDIR(st.st_mode))
			return tl_err_setsub(err, TL_EIO, EISDIR,
			                     "db open: %s: is a directory (pass the path of a "
			                     "file, e.g. %s/tailor.db)",
			                     db->path, db->path);
		if (!db->readonly && access(db->path, W_OK) != 0) {
			int e = errno;
			return tl_err_setsub(err, TL_EIO, e,
			                     "db open: %s: the file is not writable (%s); fix its "
			                     "permissions, or read it with 'tailor query' (which opens "
			                     "it read-only)",
			                     db->path, strerror(e));
		}
	} else if (errno != ENOENT) {
		/* ENOTDIR or EACCES on a path component: name the directory. */
		int e = errno;
		if (stat(db->dir, &st) == 0 && !S_ISDIR(st.st_mode))
			return tl_err_setsub(err, TL_EIO, ENOTDIR,
			                     "db open: %s: %s is not a directory", db->path,
			                     db->dir);
		return tl_err_setsub(err, TL_EIO, e, "db open: %s: %s", db->path, strerror(e));
	} else if (db->readonly) {
		return tl_err_setsub(err, TL_ENOTFOUND, ENOENT,
		                     "db open: %s: no such file (a read-only open does not "
		                     "create one; check --db or TAILOR_DB)",
		                     db->path);
	}

	if (stat(db->dir, &st) != 0) {
		int e = errno;
		if (e == ENOENT)
			return tl_err_setsub(err, TL_EIO, ENOENT,
			                     "db open: %s: directory %s does not exist (create "
			                     "it or pass --db PATH)",
			                     db->path, db->dir);
		return tl_err_setsub(err, TL_EIO, e, "db open: %s: directory %s: %s", db->path,
		                     db->dir, strerror(e));
	}
	if (!S_ISDIR(st.st_mode))
		return tl_err_setsub(err, TL_EIO, ENOTDIR, "db open: %s: %s is not a directory",
		                     db->path, db->dir);
	/* WAL puts PATH-wal and PATH-shm beside the file: the directory must be
	 * writable even when the file already exists. */
	if (!db->readonly && access(db->dir, W_OK | X_OK) != 0) {
		int e = errno;
		return tl_err_setsub(err, TL_EIO, e,
		                     "db open: %s: directory %s is not writable (%s); fix its "
		                     "permissions or pass --db PATH in a directory you can "
		                     "write",
		                     db->path, db->dir, strerror(e));
	}
	return 0;
}

/*
 * The schema version of the file: max(version) of schema_migrations, 0 for
 * a file without tables. Reading it is also the first access to the file,
 * where SQLite finds out whether it is a database at all. A SQLite file of
 * someone else's (tables but no schema_migrations, or another
 * application_id) is refused: migrating it would mix our tables into it.
 */
static int db_version_read(db_conn *db, int *version, tl_err *err)
{
	int64_t has, n, v, app;

	*version = 0;
	if (db_query_i64(db,
	                 "SELECT count(*) FROM sqlite_schema "
	                 "WHERE type = 'table' AND name = 'schema_migrations'",
	                 &has, "open", err) < 0)
		return TL_EDB;
	if (db_query_i64(db, "PRAGMA application_id", &app, "open", err) < 0)
		return TL_EDB;
	if (app != 0 && app != DB_APPLICATION_ID)
		return tl_err_set(err, TL_EINVAL,
		                  "db open: %s: a SQLite database of another application "
		                  "(application_id %lld); pass --db with the path of a "
		                  "tailor database or of a new file",
		                  db->path, (long long)app);
	if (!has) {
		if (db_query_i64(db,
		                 "SELECT count(*) FROM sqlite_schema "
		                 "WHERE name NOT LIKE 'sqlite!_%' ESCAPE '!'",
		                 &n, "open", err) < 0)
			return TL_EDB;
		if (n > 0)
			return tl_err_set(err, TL_EINVAL,
			                  "db open: %s: a SQLite database but not a tailor one "
			                  "(no schema_migrations table, %lld other schema "
			                  "object(s)); pass --db with the path of a tailor "
			                  "database or of a new file",
			                  db->path, (long long)n);
		return 0;
	}
	if (db_query_i64(db, "SELECT coalesce(max(version), 0) FROM schema_migrations", &v, "open",
	                 err) < 0)
		return TL_EDB;
	if (v < 0)
		return tl_err_set(err, TL_EINVAL,
		                  "db open: %s: schema version %lld is "
		                  "negative (the file was edited by hand?)",
		                  db->path, (long long)v);
	/* the migrations also set user_version: a newer tailor may have
	 * written only that (or a hand edit): the higher of the two counts */
	int64_t uv = 0;
	if (db_query_i64(db, "PRAGMA user_version", &uv, "open", err) < 0)
		return TL_EDB;
	if (uv > v)
		v = uv;
	*version = v > INT_MAX ? INT_MAX : (int)v;
	return 0;
}

static int db_refuse_newer(db_conn *db, int version, tl_err *err)
{
	return tl_err_set(err, TL_EVERSION,
	                  "db open: %s: schema version %d was written by a newer tailor "
	                  "(this one knows up to %d); upgrade tailor or use another --db",
	                  db->path, version, DB_SCHEMA_VERSION);
}

static const char schema_migrations_sql[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations (\n"
    "  version INTEGER PRIMARY KEY, -- migration number, 1..\n"
    "  name TEXT NOT NULL, -- what the migration did\n"
    "  applied_at TEXT NOT NULL -- when, UTC ISO-8601\n"
    ") STRICT;\n";

static int db_migration_record(db_conn *db, int version, const char *name, tl_err *err)
{
	return db_write(db,
	                "INSERT INTO schema_migrations (version, name, applied_at) "
	                "VALUES (?1, ?2, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
	                DB_ARGS(DB_I64(version), DB_TEXT(name)), "migrate", err);
}

/* Apply every migration above the file's version, all in one transaction:
 * either the file reaches DB_SCHEMA_VERSION or it is left as it was. The
 * version is read again under the write lock, since another process may
 * have migrated the file between our first read and BEGIN IMMEDIATE. */
static int db_migrate(db_conn *db, tl_err *err)
{
	int cur, ret;

	if (db_exec(db, "BEGIN IMMEDIATE", "migrate", err) < 0)
		return TL_EDB;
	ret = db_exec(db, schema_migrations_sql, "migrate", err);
	if (ret < 0)
		goto out_rollback;
	ret = db_version_read(db, &cur, err);
	if (ret < 0)
		goto out_rollback;
	if (cur > DB_SCHEMA_VERSION) {
		ret = db_refuse_newer(db, cur, err);
		goto out_rollback;
	}
	for (size_t i = 0; i < db_migrations_count; i++) {
		const db_migration *m = &db_migrations[i];
		if (m->version <= cur)
			continue;
		int rc = sqlite3_exec(db->h, m->sql, NULL, NULL, NULL);
		if (rc != SQLITE_OK) {
			ret = tl_err_setsub(err, TL_EDB, sqlite3_extended_errcode(db->h),
			                    "db migrate: %s: migration %d (%s): %s", db->path,
			                    m->version, m->name, sqlite3_errmsg(db->h));
			goto out_rollback;
		}
		ret = db_migration_record(db, m->version, m->name, err);
		if (ret < 0)
			goto out_rollback;
	}
	ret = db_exec(db, "COMMIT", "migrate", err);
	if (ret < 0)
		goto out_rollback;
	db->version = DB_SCHEMA_VERSION;
	/* Move the new schema from the WAL into the file now, so that a copy
	 * of tailor.db alone (without -wal) taken during the first run still
	 * has its tables. Passive: never waits for readers; if it cannot
	 * finish, the next automatic checkpoint will, so failure is ignored. */
	if (!db->memory)
		sqlite3_wal_checkpoint_v2(db->h, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	return 0;

out_rollback:
	db_rollback(db);
	return ret;
}

/* Connection settings. None of them writes to the file except switching a
 * rollback-journal file to WAL (once: the mode is persistent). */
static int db_configure(db_conn *db, tl_err *err)
{
	int64_t fk;

	sqlite3_busy_timeout(db->h, DB_BUSY_TIMEOUT_MS);
	/* Defensive: no writable_schema or other ways to corrupt the file from
	 * SQL. The schema stays trusted (the default): SQLite 3.40 does not mark
	 * json_valid innocuous, so with trusted_schema off every insert into a
	 * table with a JSON CHECK fails with "unsafe use of json_valid()". */
	sqlite3_db_config(db->h, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
	if (db_exec(db, "PRAGMA foreign_keys = ON", "open", err) < 0)
		return TL_EDB;
	if (db_query_i64(db, "PRAGMA foreign_keys", &fk, "open", err) < 0)
		return TL_EDB;
	if (fk != 1)
		return tl_err_set(err, TL_EDB,
		                  "db open: %s: SQLite was built without "
		                  "foreign key support; tailor needs it",
		                  db->path);
	return 0;
}

static int db_set_wal(db_conn *db, tl_err *err)
{
	char mode[16] = "";
	sqlite3_stmt *st;
	int rc, waited_ms = 0;

	/* Switching a file to WAL takes an exclusive lock, and SQLite returns
	 * SQLITE_BUSY at once, without the busy handler, when another
	 * connection holds a shared lock (observed: 10 processes creating one
	 * file, ~1 in 300 trials). Wait here instead, as the busy timeout
	 * would. Once the file is WAL the pragma is a no-op and never busy. */
	for (;;) {
		if (db_prepare(db, &st, "PRAGMA journal_mode = WAL", "open", err) < 0)
			return TL_EDB;
		rc = sqlite3_step(st);
		if (rc != SQLITE_BUSY || waited_ms >= DB_BUSY_TIMEOUT_MS)
			break;
		sqlite3_finalize(st);
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
		waited_ms += 10;
	}
	if (rc == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(st, 0);
		if (t != NULL)
			tl_strlcpy(mode, (const char *)t, sizeof mode);
	} else if (rc != SQLITE_DONE) {
		db_fail(db, rc, "open", err);
		sqlite3_finalize(st);
		return TL_EDB;
	}
	sqlite3_finalize(st);
	if (strcmp(mode, "wal") != 0)
		return tl_err_set(err, TL_EDB,
		                  "db open: %s: could not switch to WAL (journal mode is "
		                  "'%s'); the file system may not support shared memory "
		                  "(network file systems do not): put the database on a "
		                  "local disk",
		                  db->path, mode);
	/* In WAL, NORMAL syncs at checkpoints only: a committed evaluation
	 * survives kill -9 of tailor; a power cut may lose the last commits
	 * but never corrupts the file. */
	return db_exec(db, "PRAGMA synchronous = NORMAL", "open", err);
}

int db_open(db_conn **out, const char *path, int flags, tl_err *err)
{
	db_conn *db;
	int ret, rc, version;

	*out = NULL;
	if (path == NULL || path[0] == '\0')
		return tl_err_set(err, TL_EUSAGE,
		                  "db open: (no path): the database path "
		                  "is empty (pass --db PATH)");
	if (flags & ~DB_OPEN_READONLY)
		return tl_err_set(err, TL_EINVAL, "db open: %s: unknown flags 0x%x", path,
		                  (unsigned)flags);
	if (sqlite3_libversion_number() < DB_SQLITE_MIN)
		return tl_err_set(err, TL_EVERSION,
		                  "db open: %s: SQLite %s is too old "
		                  "(tailor needs 3.37 or newer for STRICT tables)",
		                  path, sqlite3_libversion());

	db = calloc(1, sizeof *db);
	if (db == NULL)
		return tl_err_set(err, TL_ENOMEM, "db open: %s: out of memory", path);
	db->readonly = (flags & DB_OPEN_READONLY) != 0;
	db->path = strdup(path);
	if (db->path != NULL)
		db->dir = dir_of(path);
	if (db->path == NULL || db->dir == NULL) {
		ret = tl_err_set(err, TL_ENOMEM, "db open: %s: out of memory", path);
		goto out_close;
	}
	/* ":memory:" is SQLite's private in-memory database: no file to
	 * check, and no WAL (shared memory between processes makes no sense
	 * there). Useful to tests of other rooms. */
	db->memory = strcmp(path, ":memory:") == 0;
	if (!db->memory) {
		ret = db_check_path(db, err);
		if (ret < 0)
			goto out_close;
	}

	rc = sqlite3_open_v2(
	    path, &db->h,
	    db->readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (db->h == NULL) {
		ret = tl_err_setsub(err, TL_ENOMEM, rc, "db open: %s: out of memory", path);
		goto out_close;
	}
	sqlite3_extended_result_codes(db->h, 1);
	if (rc != SQLITE_OK) {
		ret = db_fail(db, sqlite3_extended_errcode(db->h), "open", err);
		goto out_close;
	}
	/* SQLite quietly falls back to read-only when the file cannot be
	 * opened for writing; a writer wants to hear it now, not at the first
	 * commit of a run. */
	if (!db->readonly && sqlite3_db_readonly(db->h, "main") == 1) {
		ret = tl_err_setsub(err, TL_EDB, SQLITE_READONLY,
		                    "db open: %s: the file is not writable; fix its "
		                    "permissions or pass --db PATH",
		                    path);
		goto out_close;
	}
	ret = db_configure(db, err);
	if (ret < 0)
		goto out_close;

	/* Read the version before anything may write: a newer file is left
	 * exactly as it was (not even switched to WAL). One read transaction,
	 * so that its queries see one state of a file another process may be
	 * migrating at this moment. */
	ret = db_exec(db, "BEGIN", "open", err);
	if (ret < 0)
		goto out_close;
	ret = db_version_read(db, &version, err);
	if (ret == 0)
		ret = db_exec(db, "COMMIT", "open", err);
	db_rollback(db);
	if (ret < 0)
		goto out_close;
	if (version > DB_SCHEMA_VERSION) {
		ret = db_refuse_newer(db, version, err);
		goto out_close;
	}
	db->version = version;
	if (db->readonly)
		goto out_ok;

	if (!db->memory) {
		ret = db_set_wal(db, err);
		if (ret < 0)
			goto out_close;
	}
	if (version < DB_SCHEMA_VERSION) {
		ret = db_migrate(db, err);
		if (ret < 0)
			goto out_close;
	}
out_ok:
	*out = db;
	return 0;

out_close:
	db_close(db);
	return ret;
}

void db_close(db_conn *db)
{
	if (db == NULL)
		return;
	/* _v2: statements a caller forgot would otherwise keep the file open
	 * silently; with v2 the handle is released when they are finalized. */
	sqlite3_close_v2(db->h);
	free(db->dir);
	free(db->path);
	free(db);
}

const char *db_path(const db_conn *db)
{
	return db->path;
}

int db_schema_version(db_conn *db)
{
	return db->version;
}

bool db_err_is_constraint(const tl_err *err)
{
	return err != NULL && err->code == TL_EDB && (err->sub & 0xff) == SQLITE_CONSTRAINT;
}

/* ---- info ------------------------------------------------------------- */

int db_info_get(db_conn *db, db_info *out, tl_err *err)
{
	/* Table names are fixed here, not values: nothing to bind. */
	static const struct {
		const char *sql;
		size_t off;
	} counts[] = {
	    {"SELECT count(*) FROM devices", offsetof(db_info, devices)},
	    {"SELECT count(*) FROM runs", offsetof(db_info, runs)},
	    {"SELECT count(*) FROM genomes", offsetof(db_info, genomes)},
	    {"SELECT count(*) FROM candidates", offsetof(db_info, candidates)},
	    {"SELECT count(*) FROM measurements", offsetof(db_info, measurements)},
	    {"SELECT count(*) FROM quality", offsetof(db_info, quality)},
	    {"SELECT count(*) FROM events", offsetof(db_info, events)},
	    {"SELECT count(*) FROM schema_migrations", offsetof(db_info, migrations)},
	};
	struct stat st;

	memset(out, 0, sizeof *out);
	out->schema_version = db->version;
	if (stat(db->path, &st) == 0)
		out->file_bytes = (int64_t)st.st_size;
	char wal[PATH_MAX];
	if ((size_t)snprintf(wal, sizeof wal, "%s-wal", db->path) < sizeof wal &&
	    stat(wal, &st) == 0)
		out->wal_bytes = (int64_t)st.st_size;
	if (db_query_text(db, "PRAGMA journal_mode", out->journal_mode, sizeof out->journal_mode,
	                  "info", err) < 0)
		return TL_EDB;
	/* A version-0 file (read-only open of an empty database) has no tables
	 * to count. */
	if (db->version < 1)
		return 0;
	for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
		int64_t *dst = (int64_t *)((char *)out + counts[i].off);
		if (db_query_i64(db, counts[i].sql, dst, "info", err) < 0)
			return TL_EDB;
	}
	return db_query_text(db, "SELECT max(applied_at) FROM schema_migrations", out->migrated_at,
	                     sizeof out->migrated_at, "info", err);
}

/* ---- transactions ----------------------------------------------------- */

int db_begin(db_conn *db, tl_err *err)
{
	return db_exec(db, "BEGIN IMMEDIATE", "begin", err);
}

int db_commit(db_conn *db, tl_err *err)
{
	return db_exec(db, "COMMIT", "commit", err);
}

void db_rollback(db_conn *db)
{
	/* Some failures (SQLITE_FULL, IOERR, BUSY in some cases) already
	 * rolled the transaction back; ROLLBACK then would only add an
	 * error. Errors of ROLLBACK itself are not reported: the caller is
	 * already unwinding from the failure that matters. */
	if (db != NULL && db->h != NULL && !sqlite3_get_autocommit(db->h))
		sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
}

/* ---- events ----------------------------------------------------------- */

int db_event_add(db_conn *db, int64_t run_id, int64_t device_id, const char *level,
                 const char *kind, const char *message, const char *data_json, tl_err *err)
{
	/* A NULL level/kind/message is bound as NULL: it meets the NOT NULL
	 * constraints and is reported as such. */
	return db_write(db,
	                "INSERT INTO events (run_id, device_id, level, kind, "
	                "message, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	                DB_ARGS(DB_ID(run_id), DB_ID(device_id), DB_TEXT(level), DB_TEXT(kind),
	                        DB_TEXT(message), DB_TEXT(data_json)),
	                "event add", err);
}

/* ---- testing ---------------------------------------------------------- */

int db_debug_set_schema_version(db_conn *db, int version, tl_err *err)
{
	int64_t cur;
	int ret;

	if (version < 0)
		return tl_err_set(err, TL_EINVAL,
		                  "db debug: %s: schema version %d is "
		                  "negative",
		                  db->path, version);
	if (db_begin(db, err) < 0)
		return TL_EDB;
	ret = db_write(db, "DELETE FROM schema_migrations WHERE version > ?1",
	               DB_ARGS(DB_I64(version)), "debug", err);
	if (ret < 0)
		goto out_rollback;
	ret = db_query_i64(db, "SELECT coalesce(max(version), 0) FROM schema_migrations", &cur,
	                   "debug", err);
	if (ret < 0)
		goto out_rollback;
	if (cur < version) {
		ret = db_migration_record(db, version,
		                          "debug: set by "
		                          "db_debug_set_schema_version",
		                          err);
		if (ret < 0)
			goto out_rollback;
	}
	/* the migrations set user_version too, and open reads the higher */
	char uv[48];
	snprintf(uv, sizeof uv, "PRAGMA user_version = %d", version);
	if ((ret = db_exec(db, uv, "debug", err)) < 0)
		goto out_rollback;
	ret = db_commit(db, err);
	if (ret < 0)
		goto out_rollback;
	db->version = version;
	return 0;

out_rollback:
	db_rollback(db);
	return ret;
}
