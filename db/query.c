/*
 * db/query.c: streaming read-only queries (see db_query.h). Workload: one
 * call per `tailor query/frontier/export`, up to millions of rows; per row
 * one callback, no allocation beyond the column arrays.
 */
#include "db_int.h"
#include "db_query.h"

#include <ctype.h>
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
