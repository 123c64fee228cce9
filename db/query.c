/*
 * db/query.c: streaming read-only queries (see db_query.h): the caller's SQL
 * of `tailor query`, and the two SELECTs of `tailor frontier` and `tailor
 * export`, which have a column per metric of the run. Workload: one call per
 * command, up to millions of rows; per row one callback, no allocation
 * beyond the column arrays.
 */
#include "db_int.h"
#include "db_query.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int db_query_stream(db_conn *db, const char *sql, const int64_t *ints, int nint, db_row_fn fn,
                    void *ctx, tl_err *err)
{
	sqlite3_stmt *st = NULL;
	const char *tail = NULL;
	int rc = sqlite3_prepare_v2(db->h, sql, -1, &st, &tail);
	if (rc != SQLITE_OK)
		return tl_err_setsub(err, TL_EINVAL, rc, "query: %s", sqlite3_errmsg(db->h));
	if (st == NULL)
		return tl_err_set(err, TL_EINVAL, "query: no SQL statement given");
	for (const char *p = tail; p && *p; p++)
		if (!isspace((unsigned char)*p) && *p != ';') {
			sqlite3_finalize(st);
			return tl_err_set(err, TL_EINVAL, "query: one statement at a time (found more "
			                  "after the first: '%.30s')", p);
		}
	if (!sqlite3_stmt_readonly(st)) {
		sqlite3_finalize(st);
		return tl_err_set(err, TL_EINVAL, "query: writes are refused (tailor query is read-only; "
		                  "use sqlite3 on a copy to change data)");
	}
	for (int i = 0; i < nint; i++)
		sqlite3_bind_int64(st, i + 1, ints[i]);
	int ncol = sqlite3_column_count(st);
	const char **names = calloc((size_t)(ncol ? ncol : 1), sizeof *names);
	const char **vals = calloc((size_t)(ncol ? ncol : 1), sizeof *vals);
	int *types = calloc((size_t)(ncol ? ncol : 1), sizeof *types);
	char (*num)[32] = calloc((size_t)(ncol ? ncol : 1), sizeof *num);
	if (!names || !vals || !types || !num) {
		sqlite3_finalize(st);
		free(names);
		free(vals);
		free(types);
		free(num);
		return tl_err_set(err, TL_ENOMEM, "query: out of memory");
	}
	for (int i = 0; i < ncol; i++)
		names[i] = sqlite3_column_name(st, i);
	int out = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		for (int i = 0; i < ncol; i++) {
			switch (sqlite3_column_type(st, i)) {
			case SQLITE_NULL:
				types[i] = DB_T_NULL;
				vals[i] = NULL;
				break;
			case SQLITE_INTEGER:
				types[i] = DB_T_INT;
				snprintf(num[i], sizeof num[i], "%lld", (long long)sqlite3_column_int64(st, i));
				vals[i] = num[i];
				break;
			case SQLITE_FLOAT:
				types[i] = DB_T_REAL;
				{
					/* the shortest of 15, 16, 17 digits that reads back exactly */
					double v = sqlite3_column_double(st, i);
					for (int prec = 15; prec <= 17; prec++) {
						snprintf(num[i], sizeof num[i], "%.*g", prec, v);
						if (strtod(num[i], NULL) == v)
							break;
					}
				}
				vals[i] = num[i];
				break;
			default:
				types[i] = DB_T_TEXT;
				vals[i] = (const char *)sqlite3_column_text(st, i);
				if (vals[i] == NULL)
					vals[i] = "";
				break;
			}
		}
		if (fn(ctx, ncol, names, vals, types) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	if (rc != SQLITE_DONE)
		out = tl_err_setsub(err, TL_EDB, rc, "query: %s", sqlite3_errmsg(db->h));
	sqlite3_finalize(st);
	free(names);
	free(vals);
	free(types);
	free(num);
	return out;
}

/* ", json_extract(c.objectives, '$."m"') AS "m"" for each distinct metric;
 * a name holding '"' cannot be a JSON path key and is left out. Quoted with
 * SQLite's own %q (string literal) and %w (identifier). */
static void metric_columns(sqlite3_str *sql, const char *const *metrics, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		bool dup = strchr(metrics[i], '"') != NULL;
		for (size_t j = 0; j < i && !dup; j++)
			dup = strcmp(metrics[i], metrics[j]) == 0;
		if (!dup)
			sqlite3_str_appendf(sql, ", json_extract(c.objectives, '$.\"%q\"') AS \"%w\"",
			                    metrics[i], metrics[i]);
	}
}

/* head, the metric columns, tail; run with run_id in ?1. */
static int run_query(db_conn *db, const char *head, const char *tail, int64_t run_id,
                     const char *const *metrics, size_t n_metrics, db_row_fn fn, void *ctx,
                     const char *op, tl_err *err)
{
	sqlite3_str *b = sqlite3_str_new(db->h);
	sqlite3_str_appendall(b, head);
	metric_columns(b, metrics, n_metrics);
	sqlite3_str_appendall(b, tail);
	char *sql = sqlite3_str_finish(b);
	if (sql == NULL)
		return tl_err_set(err, TL_ENOMEM, "%s: out of memory", op);
	int ret = db_query_stream(db, sql, &run_id, 1, fn, ctx, err);
	sqlite3_free(sql);
	return ret;
}

int db_query_frontier(db_conn *db, int64_t run_id, const char *const *metrics, size_t n_metrics,
                      db_row_fn fn, void *ctx, tl_err *err)
{
	return run_query(db,
	                 "SELECT c.id AS candidate, c.generation + 1 AS generation, "
	                 "substr(c.genome_hash, 1, 12) AS genome",
	                 ", g.params AS genome_params, g.operators, g.text "
	                 "FROM candidates c JOIN genomes g ON g.hash = c.genome_hash "
	                 "WHERE c.run_id = ?1 AND c.rank = 0 AND c.feasible = 1 AND c.generation = "
	                 "(SELECT max(generation) FROM candidates WHERE run_id = ?1 AND rank IS NOT "
	                 "NULL) ORDER BY c.id",
	                 run_id, metrics, n_metrics, fn, ctx, "frontier", err);
}

int db_query_export(db_conn *db, int64_t run_id, const char *const *metrics, size_t n_metrics,
                    db_row_fn fn, void *ctx, tl_err *err)
{
	return run_query(db,
	                 "SELECT c.id AS candidate, c.generation + 1 AS generation, c.genome_hash, "
	                 "c.origin, c.parent1_id, c.parent2_id, c.status, c.rank, c.crowding, "
	                 "c.feasible, c.violation",
	                 ", g.params AS genome_params, g.operators, c.error, c.created_at, "
	                 "c.evaluated_at, g.text FROM candidates c "
	                 "JOIN genomes g ON g.hash = c.genome_hash WHERE c.run_id = ?1 ORDER BY c.id",
	                 run_id, metrics, n_metrics, fn, ctx, "export", err);
}
