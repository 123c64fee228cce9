/*
 * db/db_optables.h: operator latency tables and the predictions made from
 * them (docs/schema.md, tables op_tables, op_table_entries, predictions;
 * schema version 4).
 *
 * `tailor device profile-ops` measures a device once per layer
 * configuration of a search space and stores the result as one op_tables
 * row: the whole table as the profiler serialises it (table_json, what the
 * predictor loads) plus one op_table_entries row per layer configuration and
 * shape (for analysts' SQL). A latency predicted for a genome from a table
 * is a predictions row, linked to the measurement it was checked against
 * when there is one.
 *
 * Ownership: the strings of a db_optable read from the database are malloc'd
 * and freed by db_optable_clear (one) or db_optables_free (an array); the
 * strings of the structs passed to the _add functions are read, not taken.
 * Conventions as in db.h: 0 or a negative TL_E* code, the caller's tl_err,
 * one-line messages; constraint failures are TL_EDB with the SQLite code in
 * err->sub (db_err_is_constraint).
 *
 * Usage:
 *     db_optable t = {0};
 *     t.device_id = dev.id; t.space_hash = hash; t.quant = "q4_0"; t.kv = "f16";
 *     t.threads = -1; t.seconds = NAN; t.n_keys = n; t.n_archs = a; t.table_json = json;
 *     if (db_optable_add(db, &t, entries, n_entries, &id, &err) < 0) { ... }
 *     db_optable got;
 *     if (db_optable_latest(db, dev.id, hash, "q4_0", &got, &err) < 0) { ... }
 *     ... got.table_json ...
 *     db_optable_clear(&got);
 */
#ifndef DB_OPTABLES_H
#define DB_OPTABLES_H

#include <stddef.h>
#include <stdint.h>

#include "db.h"

/* One op_tables row. */
typedef struct db_optable {
	int64_t id;                 /* 0 before insertion                          */
	int64_t device_id;          /* devices.id, required                        */
	char *space_hash;           /* required                                    */
	char *space_name;           /* may be NULL                                 */
	char *quant;                /* weight format, e.g. q4_0; required          */
	char *kv;                   /* KV cache format, e.g. f16; required         */
	char *protocol;             /* JSON object or NULL                         */
	char *protocol_hash, *build_hash; /* may be NULL                           */
	char *device_fingerprint;   /* JSON object or NULL                         */
	char *table_json;           /* JSON object, required (NULL from _list)     */
	char *created_at;           /* set by the database; ignored by _add        */
	int64_t threads;            /* >= 1; -1: NULL (the harness default)        */
	int64_t n_keys, n_archs;    /* >= 0                                        */
	double seconds;             /* profiling wall time, s; NaN: NULL           */
} db_optable;

/* One op_table_entries row: one layer configuration at one shape. */
typedef struct db_optable_entry {
	const char *layer_key;      /* required                                    */
	int64_t prompt_len, gen_len, depth; /* P >= 1, N >= 1, D >= 0            */
	double prefill_ms, decode_ms, cv;   /* >= 0; NaN: NULL                     */
	int64_t weight_bytes, state_bytes;  /* >= 0; -1: NULL                      */
	int64_t instances;          /* layer instances measured, >= 0              */
} db_optable_entry;

/* Insert a table and its n entries in one transaction (nothing stored on
 * failure); *id (may be NULL) gets the new table's id. The strings of t and
 * e are read, not taken; t->id and t->created_at are ignored. A device that
 * does not exist is TL_ENOTFOUND; a value a CHECK refuses is TL_EDB naming
 * the entry. Opens its own transaction: not for use inside db_begin. */
int db_optable_add(db_conn *db, const db_optable *t, const db_optable_entry *e, size_t n,
                   int64_t *id, tl_err *err);
/* The newest table (highest id) of a device for a space hash and quant;
 * space_hash / quant NULL: any. TL_ENOTFOUND with a line naming the device
 * id (callers add the device name and the fix: run `tailor device
 * profile-ops`). *out is reset on entry; free it with db_optable_clear. */
int db_optable_latest(db_conn *db, int64_t device_id, const char *space_hash, const char *quant,
                      db_optable *out, tl_err *err);
/* Table id; TL_ENOTFOUND. *out as for db_optable_latest. */
int db_optable_get(db_conn *db, int64_t id, db_optable *out, tl_err *err);
/* All tables of a device, newest first, without table_json (NULL there):
 * *out is a malloc'd array of *n (NULL when none), freed with
 * db_optables_free. */
int db_optable_list(db_conn *db, int64_t device_id, db_optable **out, size_t *n, tl_err *err);
/* Delete table id; its entries and predictions go with it (ON DELETE
 * CASCADE). TL_ENOTFOUND when there is no such table. */
int db_optable_remove(db_conn *db, int64_t id, tl_err *err);
/* Free the strings of one table and zero it (accepts NULL). */
void db_optable_clear(db_optable *t);
/* Free an array from db_optable_list (accepts NULL). */
void db_optables_free(db_optable *t, size_t n);

/* One predictions row. */
typedef struct db_prediction {
	int64_t table_id;           /* op_tables.id, required                      */
	const char *genome_hash;    /* genomes.hash: the row must exist (callers
	                             * use db_genome_ensure first)                 */
	int64_t prompt_len, gen_len, depth; /* P >= 1, N >= 1, D >= 0            */
	double ttft_ms, decode_ms;  /* predicted, ms; NaN: NULL                    */
	int64_t peak_rss_bytes;     /* predicted; -1: NULL                         */
	int64_t measurement_id;     /* validated against; 0: NULL (none)           */
} db_prediction;

/* Insert a prediction; *id (may be NULL) gets its id. A genome, table or
 * measurement that does not exist is TL_ENOTFOUND naming it (the other
 * constraint failures are TL_EDB). */
int db_prediction_add(db_conn *db, const db_prediction *p, int64_t *id, tl_err *err);

#endif /* DB_OPTABLES_H */
