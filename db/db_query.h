/*
 * db/db_query.h: run a caller's SELECT and stream its rows (tailor query),
 * and the two run tables of tailor frontier and tailor export. Rows go to a callback one at a time, so a
 * result of millions of rows is never held in memory. Only statements that
 * do not write are run (sqlite3_stmt_readonly); open the connection with
 * DB_OPEN_READONLY as well, so a write is refused twice.
 */
#ifndef DB_QUERY_H
#define DB_QUERY_H

#include <stddef.h>
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

/* The metric columns of the two below: for each of metrics[0..n_metrics)
 * (the run's objectives then constraints; a repeated name once, a name
 * holding '"' left out) a column of that name with the candidate's value
 * from candidates.objectives (NULL when it has none). Both stream like
 * db_query_stream; run_id need not exist (no rows then). */

/* The feasible first front of the run's newest ranked generation, by
 * candidate id: candidate, generation (1-based), genome (the hash's first 12
 * characters), the metrics, genome_params, operators, text. */
int db_query_frontier(db_conn *db, int64_t run_id, const char *const *metrics, size_t n_metrics,
                      db_row_fn fn, void *ctx, tl_err *err);

/* Every candidate of the run (every generation), by id: candidate,
 * generation (1-based), genome_hash, origin, parent1_id, parent2_id, status,
 * rank, crowding, feasible, violation, the metrics, genome_params,
 * operators, error, created_at, evaluated_at, text. */
int db_query_export(db_conn *db, int64_t run_id, const char *const *metrics, size_t n_metrics,
                    db_row_fn fn, void *ctx, tl_err *err);

#endif /* DB_QUERY_H */
