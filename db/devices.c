/*
 * db/devices.c: the `devices` table (the device lab's registry, docs/devices.md).
 *
 * Workload: a handful of rows (a lab has tens of devices); reads by name at
 * the start of a command, a status write after every use of a device. Every
 * value is bound; a device name or host never becomes SQL text.
 */
#include "db_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The columns, in the order read_row expects. */
#define DEVICE_COLS                                                                  \
	"id, name, transport, host, port, user, key_path, use_agent, known_hosts, "      \
	"adb_serial, adb_path, arch, toolchain_cc, toolchain_flags, compile_on_device, " \
	"run_prefix, threads, labels, enabled, status, fail_streak, last_seen, facts, "  \
	"host_key, work_root, timeout_s, protocol, created_at, updated_at"

void db_device_init(db_device *d)
{
	memset(d, 0, sizeof *d);
	d->enabled = true;
	tl_strlcpy(d->labels, "[]", sizeof d->labels);
	tl_strlcpy(d->status, "unknown", sizeof d->status);
}

static void col_text(sqlite3_stmt *st, int i, char *buf, size_t n)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	tl_strlcpy(buf, t ? (const char *)t : "", n);
}

static void read_row(sqlite3_stmt *st, db_device *d)
{
	int i = 0;
	db_device_init(d);
	d->id = sqlite3_column_int64(st, i++);
	col_text(st, i++, d->name, sizeof d->name);
	col_text(st, i++, d->transport, sizeof d->transport);
	col_text(st, i++, d->host, sizeof d->host);
	d->port = sqlite3_column_int(st, i++);
	col_text(st, i++, d->user, sizeof d->user);
	col_text(st, i++, d->key_path, sizeof d->key_path);
	d->use_agent = sqlite3_column_int(st, i++) != 0;
	col_text(st, i++, d->known_hosts, sizeof d->known_hosts);
	col_text(st, i++, d->adb_serial, sizeof d->adb_serial);
	col_text(st, i++, d->adb_path, sizeof d->adb_path);
	col_text(st, i++, d->arch, sizeof d->arch);
	col_text(st, i++, d->toolchain_cc, sizeof d->toolchain_cc);
	col_text(st, i++, d->toolchain_flags, sizeof d->toolchain_flags);
	d->compile_on_device = sqlite3_column_int(st, i++) != 0;
	col_text(st, i++, d->run_prefix, sizeof d->run_prefix);
	d->threads = sqlite3_column_int(st, i++);
	col_text(st, i++, d->labels, sizeof d->labels);
	d->enabled = sqlite3_column_int(st, i++) != 0;
	col_text(st, i++, d->status, sizeof d->status);
	d->fail_streak = sqlite3_column_int(st, i++);
	col_text(st, i++, d->last_seen, sizeof d->last_seen);
	col_text(st, i++, d->facts, sizeof d->facts);
	col_text(st, i++, d->host_key, sizeof d->host_key);
	col_text(st, i++, d->work_root, sizeof d->work_root);
	d->timeout_s = sqlite3_column_int(st, i++);
	col_text(st, i++, d->protocol, sizeof d->protocol);
	col_text(st, i++, d->created_at, sizeof d->created_at);
	col_text(st, i++, d->updated_at, sizeof d->updated_at);
}

/* Bind text, "" as NULL. */
static void bind_opt(sqlite3_stmt *st, int i, const char *s)
{
	if (s != NULL && *s)
		sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

static void bind_pos(sqlite3_stmt *st, int i, int v)
{
	if (v > 0)
		sqlite3_bind_int(st, i, v);
	else
		sqlite3_bind_null(st, i);
}

/* The operator's columns, shared by INSERT and UPDATE (parameters 1..21). */
static void bind_settings(sqlite3_stmt *st, const db_device *d)
{
	sqlite3_bind_text(st, 1, d->name, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(st, 2, d->transport, -1, SQLITE_TRANSIENT);
	bind_opt(st, 3, d->host);
	bind_pos(st, 4, d->port);
	bind_opt(st, 5, d->user);
	bind_opt(st, 6, d->key_path);
	sqlite3_bind_int(st, 7, d->use_agent ? 1 : 0);
	bind_opt(st, 8, d->known_hosts);
	bind_opt(st, 9, d->adb_serial);
	bind_opt(st, 10, d->adb_path);
	bind_opt(st, 11, d->arch);
	bind_opt(st, 12, d->toolchain_cc);
	bind_opt(st, 13, d->toolchain_flags);
	sqlite3_bind_int(st, 14, d->compile_on_device ? 1 : 0);
	bind_opt(st, 15, d->run_prefix);
	bind_pos(st, 16, d->threads);
	sqlite3_bind_text(st, 17, d->labels[0] ? d->labels : "[]", -1, SQLITE_TRANSIENT);
	sqlite3_bind_int(st, 18, d->enabled ? 1 : 0);
	bind_opt(st, 19, d->work_root);
	bind_pos(st, 20, d->timeout_s);
	bind_opt(st, 21, d->protocol); /* the CHECK refuses text that is not an object */
}

int db_device_add(db_conn *db, const db_device *d, int64_t *id, tl_err *err)
{
	sqlite3_stmt *st;
	if (id)
		*id = 0;
	if (db_prepare(db, &st,
	               "INSERT INTO devices (name, transport, host, port, user, key_path, use_agent, "
	               "known_hosts, adb_serial, adb_path, arch, toolchain_cc, toolchain_flags, "
	               "compile_on_device, run_prefix, threads, labels, enabled, work_root, "
	               "timeout_s, protocol) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, "
	               "?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)",
	               "device add", err) < 0)
		return TL_EDB;
	bind_settings(st, d);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_CONSTRAINT_UNIQUE) {
		sqlite3_finalize(st);
		return tl_err_setsub(err, TL_EEXIST, rc,
		                     "device add: %s: a device of that name exists (remove it first, "
		                     "or choose another name)",
		                     d->name);
	}
	if (rc != SQLITE_DONE) {
		db_fail(db, rc, "device add", err);
		sqlite3_finalize(st);
		return TL_EDB;
	}
	sqlite3_finalize(st);
	if (id)
		*id = sqlite3_last_insert_rowid(db->h);
	return 0;
}

static int get_one(db_conn *db, sqlite3_stmt *st, db_device *out, const char *what, tl_err *err)
{
	int rc = sqlite3_step(st);
	int ret = 0;
	if (rc == SQLITE_ROW)
		read_row(st, out);
	else if (rc == SQLITE_DONE)
		ret = tl_err_set(err, TL_ENOTFOUND,
		                 "device: %s: no such device (see tailor device list; register it "
		                 "with tailor device add)",
		                 what);
	else
		ret = db_fail(db, rc, "device get", err);
	sqlite3_finalize(st);
	return ret;
}

int db_device_get(db_conn *db, const char *name, db_device *out, tl_err *err)
{
	sqlite3_stmt *st;
	if (db_prepare(db, &st, "SELECT " DEVICE_COLS " FROM devices WHERE name = ?1", "device get",
	               err) < 0)
		return TL_EDB;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
	return get_one(db, st, out, name, err);
}

int db_device_get_id(db_conn *db, int64_t id, db_device *out, tl_err *err)
{
	sqlite3_stmt *st;
	char what[32];
	if (db_prepare(db, &st, "SELECT " DEVICE_COLS " FROM devices WHERE id = ?1", "device get",
	               err) < 0)
		return TL_EDB;
	sqlite3_bind_int64(st, 1, id);
	snprintf(what, sizeof what, "id %lld", (long long)id);
	return get_one(db, st, out, what, err);
}

int db_device_list(db_conn *db, db_device **out, size_t *n, tl_err *err)
{
	sqlite3_stmt *st;
	size_t cap = 8;
	*out = NULL;
	*n = 0;
	db_device *v = malloc(cap * sizeof *v);
	if (v == NULL)
		return tl_err_set(err, TL_ENOMEM, "device list: out of memory");
	if (db_prepare(db, &st, "SELECT " DEVICE_COLS " FROM devices ORDER BY id", "device list",
	               err) < 0) {
		free(v);
		return TL_EDB;
	}
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n == cap) {
			db_device *p = realloc(v, 2 * cap * sizeof *v);
			if (p == NULL) {
				sqlite3_finalize(st);
				free(v);
				return tl_err_set(err, TL_ENOMEM, "device list: out of memory");
			}
			v = p;
			cap *= 2;
		}
		read_row(st, &v[(*n)++]);
	}
	if (rc != SQLITE_DONE) {
		db_fail(db, rc, "device list", err);
		sqlite3_finalize(st);
		free(v);
		*n = 0;
		return TL_EDB;
	}
	sqlite3_finalize(st);
	*out = v;
	return 0;
}

int db_device_update(db_conn *db, const db_device *d, tl_err *err)
{
	sqlite3_stmt *st;
	if (db_prepare(db, &st,
	               "UPDATE devices SET name = ?1, transport = ?2, host = ?3, port = ?4, "
	               "user = ?5, key_path = ?6, use_agent = ?7, known_hosts = ?8, "
	               "adb_serial = ?9, adb_path = ?10, arch = ?11, toolchain_cc = ?12, "
	               "toolchain_flags = ?13, compile_on_device = ?14, run_prefix = ?15, "
	               "threads = ?16, labels = ?17, enabled = ?18, work_root = ?19, "
	               "timeout_s = ?20, protocol = ?21 WHERE id = ?22",
	               "device update", err) < 0)
		return TL_EDB;
	bind_settings(st, d);
	sqlite3_bind_int64(st, 22, d->id);
	return db_step_done(db, &st, "device update", err);
}

int db_device_remove(db_conn *db, const char *name, tl_err *err)
{
	sqlite3_stmt *st;
	int64_t n = 0;
	db_device d;
	int ret;

	if ((ret = db_device_get(db, name, &d, err)) < 0)
		return ret;
	if (d.id == DB_DEVICE_LOCAL_ID)
		return tl_err_set(err, TL_EINVAL,
		                  "device remove: local: the built-in device always exists (disable "
		                  "it with tailor device disable local)");
	if (db_prepare(db, &st, "SELECT count(*) FROM measurements WHERE device_id = ?1",
	               "device remove", err) < 0)
		return TL_EDB;
	sqlite3_bind_int64(st, 1, d.id);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (n > 0)
		return tl_err_set(err, TL_EINVAL,
		                  "device remove: %s: %lld measurements were taken on it and keep "
		                  "referring to it (disable it instead: tailor device disable %s)",
		                  name, (long long)n, name);
	if (db_prepare(db, &st, "DELETE FROM devices WHERE id = ?1", "device remove", err) < 0)
		return TL_EDB;
	sqlite3_bind_int64(st, 1, d.id);
	return db_step_done(db, &st, "device remove", err);
}

int db_device_set_enabled(db_conn *db, int64_t id, bool enabled, tl_err *err)
{
	sqlite3_stmt *st;
	/* Re-enabling also forgets the failure streak: the operator says the
	 * device is fixed. */
	if (db_prepare(db, &st,
	               "UPDATE devices SET enabled = ?1, fail_streak = CASE WHEN ?1 THEN 0 ELSE "
	               "fail_streak END, status = CASE WHEN ?1 AND status = 'offline' THEN 'unknown' "
	               "ELSE status END WHERE id = ?2",
	               "device enable", err) < 0)
		return TL_EDB;
	sqlite3_bind_int(st, 1, enabled ? 1 : 0);
	sqlite3_bind_int64(st, 2, id);
	return db_step_done(db, &st, "device enable", err);
}

int db_device_set_health(db_conn *db, int64_t id, const char *status, int fail_streak,
                         bool seen, tl_err *err)
{
	sqlite3_stmt *st;
	if (db_prepare(db, &st,
	               "UPDATE devices SET status = ?1, fail_streak = ?2, last_seen = CASE WHEN ?3 "
	               "THEN strftime('%Y-%m-%dT%H:%M:%fZ', 'now') ELSE last_seen END WHERE id = ?4",
	               "device status", err) < 0)
		return TL_EDB;
	sqlite3_bind_text(st, 1, status, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int(st, 2, fail_streak < 0 ? 0 : fail_streak);
	sqlite3_bind_int(st, 3, seen ? 1 : 0);
	sqlite3_bind_int64(st, 4, id);
	return db_step_done(db, &st, "device status", err);
}

int db_device_set_facts(db_conn *db, int64_t id, const char *facts_json, const char *arch,
                        tl_err *err)
{
	sqlite3_stmt *st;
	if (db_prepare(db, &st,
	               "UPDATE devices SET facts = ?1, arch = coalesce(?2, arch), status = 'online', "
	               "fail_streak = 0, last_seen = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') "
	               "WHERE id = ?3",
	               "device facts", err) < 0)
		return TL_EDB;
	sqlite3_bind_text(st, 1, facts_json, -1, SQLITE_TRANSIENT);
	bind_opt(st, 2, arch);
	sqlite3_bind_int64(st, 3, id);
	return db_step_done(db, &st, "device facts", err);
}

int db_device_set_host_key(db_conn *db, int64_t id, const char *fingerprint, tl_err *err)
{
	sqlite3_stmt *st;
	if (db_prepare(db, &st, "UPDATE devices SET host_key = ?1 WHERE id = ?2", "device trust",
	               err) < 0)
		return TL_EDB;
	bind_opt(st, 1, fingerprint);
	sqlite3_bind_int64(st, 2, id);
	return db_step_done(db, &st, "device trust", err);
}
