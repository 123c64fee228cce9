/*
 * db/db_query.h: run a caller's SELECT and stream its rows (tailor query,
 * tailor frontier, tailor export). Rows go to a callback one at a time, so a
 * result of millions of rows is never held in memory. Only statements that
 * do not write are run (sqlite3_stmt_readonly); open the connection with
 * DB_OPEN_READONLY as well, so a write is refused twice.
 */
#ifndef DB_QUERY_H
#define DB_QUERY_H

#include <stdint.h>

#include "db.h"

enum db_type { DB_T_NULL = 0, DB_T_INT = 1, DB_T_REAL = 2, DB_T_TEXT = 3 };

/* One row: ncol columns, their names, values as text (NULL for SQL NULL;
 * reals printed with the fewest of 15-17 significant digits that read back
 * exactly) and
 * types. Return non-zero to stop early. */
typedef int (*db_row_fn)(void *ctx, int ncol, const char *const *names, const char *const *vals,
                         const int *types);

/* Run one statement (trailing text other than white space and a ';' is an
 * error: one statement at a time), binding ints[0..nint) to ?1.. . A
 * statement that would write is refused with TL_EINVAL:
 *   "query: writes are refused (tailor query is read-only; use sqlite3 on a copy to change data)".
 * SQL errors carry SQLite's message. */
int db_query_stream(db_conn *db, const char *sql, const int64_t *ints, int nint, db_row_fn fn,
                    void *ctx, tl_err *err);

#endif /* DB_QUERY_H */
