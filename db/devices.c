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

static int read_row(sqlite3_stmt *st, void *elem, tl_err *err)
{
	db_device *d = elem;
	int i = 0;
	db_device_init(d);
	d->id = sqlite3_column_int64(st, i++);
	db_col_text(st, i++, d->name, sizeof d->name);
	db_col_text(st, i++, d->transport, sizeof d->transport);
	db_col_text(st, i++, d->host, sizeof d->host);
	d->port = sqlite3_column_int(st, i++);
	db_col_text(st, i++, d->user, sizeof d->user);
	db_col_text(st, i++, d->key_path, sizeof d->key_path);
	d->use_agent = sqlite3_column_int(st, i++) != 0;
	db_col_text(st, i++, d->known_hosts, sizeof d->known_hosts);
	db_col_text(st, i++, d->adb_serial, sizeof d->adb_serial);
	db_col_text(st, i++, d->adb_path, sizeof d->adb_path);
	db_col_text(st, i++, d->arch, sizeof d->arch);
	db_col_text(st, i++, d->toolchain_cc, sizeof d->toolchain_cc);
	db_col_text(st, i++, d->toolchain_flags, sizeof d->toolchain_flags);
	d->compile_on_device = sqlite3_column_int(st, i++) != 0;
	db_col_text(st, i++, d->run_prefix, sizeof d->run_prefix);
	d->threads = sqlite3_column_int(st, i++);
	db_col_text(st, i++, d->labels, sizeof d->labels);
	d->enabled = sqlite3_column_int(st, i++) != 0;
	db_col_text(st, i++, d->status, sizeof d->status);
	d->fail_streak = sqlite3_column_int(st, i++);
	db_col_text(st, i++, d->last_seen, sizeof d->last_seen);
	db_col_text(st, i++, d->facts, sizeof d->facts);
	db_col_text(st, i++, d->host_key, sizeof d->host_key);
	db_col_text(st, i++, d->work_root, sizeof d->work_root);
	d->timeout_s = sqlite3_column_int(st, i++);
	db_col_text(st, i++, d->protocol, sizeof d->protocol);
	db_col_text(st, i++, d->created_at, sizeof d->created_at);
	db_col_text(st, i++, d->updated_at, sizeof d->updated_at);
	return 0;
}

/* The operator's columns, shared by INSERT and UPDATE (parameters 1..21). */
#define DEVICE_SETTINGS_ARGS(d)                                                              \
	DB_TEXT((d)->name), DB_TEXT((d)->transport), DB_TEXT_OPT((d)->host), DB_ID((d)->port),   \
	    DB_TEXT_OPT((d)->user), DB_TEXT_OPT((d)->key_path), DB_BOOL((d)->use_agent),         \
	    DB_TEXT_OPT((d)->known_hosts), DB_TEXT_OPT((d)->adb_serial),                         \
	    DB_TEXT_OPT((d)->adb_path), DB_TEXT_OPT((d)->arch), DB_TEXT_OPT((d)->toolchain_cc),  \
	    DB_TEXT_OPT((d)->toolchain_flags), DB_BOOL((d)->compile_on_device),                  \
	    DB_TEXT_OPT((d)->run_prefix), DB_ID((d)->threads),                                   \
	    DB_TEXT((d)->labels[0] ? (d)->labels : "[]"), DB_BOOL((d)->enabled),                 \
	    DB_TEXT_OPT((d)->work_root), DB_ID((d)->timeout_s),                                  \
	    DB_TEXT_OPT((d)->protocol) /* the CHECK refuses text that is not an object */

int db_device_add(db_conn *db, const db_device *d, int64_t *id, tl_err *err)
{
	sqlite3_stmt *st;
	if (id)
		*id = 0;
	if (db_prepare_args(db, &st,
	                    "INSERT INTO devices (name, transport, host, port, user, key_path, "
	                    "use_agent, known_hosts, adb_serial, adb_path, arch, toolchain_cc, "
	                    "toolchain_flags, compile_on_device, run_prefix, threads, labels, "
	                    "enabled, work_root, timeout_s, protocol) VALUES (?1, ?2, ?3, ?4, ?5, "
	                    "?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, "
	                    "?21)",
	                    DB_ARGS(DEVICE_SETTINGS_ARGS(d)), "device add", err) < 0)
		return TL_EDB;
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

/* One device by `sql` (its key in ?1); `what` names it when there is none. */
static int get_one(db_conn *db, const char *sql, db_arg key, const char *what, db_device *out,
                   tl_err *err)
{
	int ret = db_get(db, sql, &key, 1, "device get", read_row, out, err);
	if (ret == 0)
		return tl_err_set(err, TL_ENOTFOUND,
		                  "device: %s: no such device (see tailor device list; register it "
		                  "with tailor device add)",
		                  what);
	return ret < 0 ? ret : 0;
}

int db_device_get(db_conn *db, const char *name, db_device *out, tl_err *err)
{
	return get_one(db, "SELECT " DEVICE_COLS " FROM devices WHERE name = ?1",
	               (db_arg)DB_TEXT(name), name, out, err);
}

int db_device_get_id(db_conn *db, int64_t id, db_device *out, tl_err *err)
{
	char what[32];
	snprintf(what, sizeof what, "id %lld", (long long)id);
	return get_one(db, "SELECT " DEVICE_COLS " FROM devices WHERE id = ?1", (db_arg)DB_I64(id),
	               what, out, err);
}

static const db_rowtype device_rows = {sizeof(db_device), read_row, NULL};

int db_device_list(db_conn *db, db_device **out, size_t *n, tl_err *err)
{
	return db_collect(db, "SELECT " DEVICE_COLS " FROM devices ORDER BY id", NULL, 0,
	                  "device list", &device_rows, (void **)out, n, err);
}

int db_device_update(db_conn *db, const db_device *d, tl_err *err)
{
	return db_write(db,
	                "UPDATE devices SET name = ?1, transport = ?2, host = ?3, port = ?4, "
	                "user = ?5, key_path = ?6, use_agent = ?7, known_hosts = ?8, "
	                "adb_serial = ?9, adb_path = ?10, arch = ?11, toolchain_cc = ?12, "
	                "toolchain_flags = ?13, compile_on_device = ?14, run_prefix = ?15, "
	                "threads = ?16, labels = ?17, enabled = ?18, work_root = ?19, "
	                "timeout_s = ?20, protocol = ?21 WHERE id = ?22",
	                DB_ARGS(DEVICE_SETTINGS_ARGS(d), DB_I64(d->id)), "device update", err);
}

int db_device_remove(db_conn *db, const char *name, tl_err *err)
{
	int64_t n = 0;
	db_device d;
	int ret;

	if ((ret = db_device_get(db, name, &d, err)) < 0)
		return ret;
	if (d.id == DB_DEVICE_LOCAL_ID)
		return tl_err_set(err, TL_EINVAL,
		                  "device remove: local: the built-in device always exists (disable "
		                  "it with tailor device disable local)");
	if (db_get(db, "SELECT count(*) FROM measurements WHERE device_id = ?1",
	           DB_ARGS(DB_I64(d.id)), "device remove", db_read_i64, &n, err) < 0)
		return TL_EDB;
	if (n > 0)
		return tl_err_set(err, TL_EINVAL,
		                  "device remove: %s: %lld measurements were taken on it and keep "
		                  "referring to it (disable it instead: tailor device disable %s)",
		                  name, (long long)n, name);
	return db_write(db, "DELETE FROM devices WHERE id = ?1", DB_ARGS(DB_I64(d.id)),
	                "device remove", err);
}

int db_device_set_enabled(db_conn *db, int64_t id, bool enabled, tl_err *err)
{
	/* Re-enabling also forgets the failure streak: the operator says the
	 * device is fixed. */
	return db_write(db,
	                "UPDATE devices SET enabled = ?1, fail_streak = CASE WHEN ?1 THEN 0 ELSE "
	                "fail_streak END, status = CASE WHEN ?1 AND status = 'offline' THEN "
	                "'unknown' ELSE status END WHERE id = ?2",
	                DB_ARGS(DB_BOOL(enabled), DB_I64(id)), "device enable", err);
}

int db_device_set_health(db_conn *db, int64_t id, const char *status, int fail_streak,
                         bool seen, tl_err *err)
{
	return db_write(db,
	                "UPDATE devices SET status = ?1, fail_streak = ?2, last_seen = CASE WHEN ?3 "
	                "THEN strftime('%Y-%m-%dT%H:%M:%fZ', 'now') ELSE last_seen END WHERE id = ?4",
	                DB_ARGS(DB_TEXT(status), DB_I64(fail_streak < 0 ? 0 : fail_streak),
	                        DB_BOOL(seen), DB_I64(id)),
	                "device status", err);
}

int db_device_set_facts(db_conn *db, int64_t id, const char *facts_json, const char *arch,
                        tl_err *err)
{
	return db_write(db,
	                "UPDATE devices SET facts = ?1, arch = coalesce(?2, arch), status = 'online', "
	                "fail_streak = 0, last_seen = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') "
	                "WHERE id = ?3",
	                DB_ARGS(DB_TEXT(facts_json), DB_TEXT_OPT(arch), DB_I64(id)), "device facts",
	                err);
}

int db_device_set_host_key(db_conn *db, int64_t id, const char *fingerprint, tl_err *err)
{
	return db_write(db, "UPDATE devices SET host_key = ?1 WHERE id = ?2",
	                DB_ARGS(DB_TEXT_OPT(fingerprint), DB_I64(id)), "device trust", err);
}
