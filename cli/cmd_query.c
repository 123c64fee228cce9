/*
 * cli/cmd_query.c: `tailor query`, `tailor frontier`, `tailor export`: the
 * analyst's questions to the results database, on a read-only connection,
 * rows streamed to the output as SQLite produces them (table, CSV, JSON or
 * JSON lines).
 */
#include "cli.h"
#include "db.h"
#include "db_query.h"
#include "db_runs.h"
#include "runcfg.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

enum fmt { F_TABLE, F_CSV, F_JSON, F_JSONL };

/* ---- writers ------------------------------------------------------------------ */

#define TABLE_BUFFER 200 /* rows looked at to size the columns */
#define TABLE_MAXW 48

typedef struct writer {
	enum fmt f;
	FILE *out;
	long long rows;
	/* table: the first rows, to size the columns */
	int ncol;
	char **names;
	char ***buf;
	int nbuf;
	int *w;
	bool flushed;
} writer;

static void csv_field(FILE *o, const char *s)
{
	if (s == NULL)
		return;
	if (strpbrk(s, ",\"\n\r") == NULL) {
		fputs(s, o);
		return;
	}
	fputc('"', o);
	for (; *s; s++) {
		if (*s == '"')
			fputc('"', o);
		fputc(*s, o);
	}
	fputc('"', o);
}

static void json_str(FILE *o, const char *s)
{
	fputc('"', o);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(o, "\\%c", *p);
		else if (*p < 0x20)
			fprintf(o, "\\u%04x", *p);
		else
			fputc(*p, o);
	}
	fputc('"', o);
}

static void json_row(FILE *o, int ncol, const char *const *names, const char *const *vals,
                     const int *types)
{
	fputc('{', o);
	for (int i = 0; i < ncol; i++) {
		if (i)
			fputc(',', o);
		json_str(o, names[i]);
		fputc(':', o);
		if (types[i] == DB_T_NULL)
			fputs("null", o);
		else if (types[i] == DB_T_TEXT)
			json_str(o, vals[i]);
		else if (strstr(vals[i], "inf") || strstr(vals[i], "nan"))
			fputs("null", o);
		else
			fputs(vals[i], o);
	}
	fputc('}', o);
}

static int utf8_len(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += ((unsigned char)*s & 0xc0) != 0x80;
	return n;
}

static void table_cell(FILE *o, const char *s, int w, bool last)
{
	int n = utf8_len(s);
	if (n > w) {
		int k = 0;
		const char *p = s;
		for (; *p && k < w - 1; p++) /* cut at a character boundary */
			k += ((unsigned char)p[1] & 0xc0) != 0x80;
		fwrite(s, 1, (size_t)(p - s), o);
		fputs("…", o);
		n = w;
	} else {
		fputs(s, o);
	}
	if (!last)
		fprintf(o, "%*s  ", w - n, "");
}

static void table_flush(writer *W)
{
	if (W->flushed || W->ncol == 0)
		return;
	for (int i = 0; i < W->ncol; i++)
		table_cell(W->out, W->names[i], W->w[i], i + 1 == W->ncol);
	fputc('\n', W->out);
	for (int i = 0; i < W->ncol; i++) {
		for (int k = 0; k < W->w[i]; k++)
			fputc('-', W->out);
		if (i + 1 < W->ncol)
			fputs("  ", W->out);
	}
	fputc('\n', W->out);
	for (int r = 0; r < W->nbuf; r++) {
		for (int i = 0; i < W->ncol; i++) {
			table_cell(W->out, W->buf[r][i], W->w[i], i + 1 == W->ncol);
			free(W->buf[r][i]);
		}
		free(W->buf[r]);
		fputc('\n', W->out);
	}
	W->nbuf = 0;
	W->flushed = true;
}

static char *dupstr(const char *s)
{
	size_t n = strlen(s);
	char *d = malloc(n + 1);
	if (d)
		memcpy(d, s, n + 1);
	return d;
}

static int on_row(void *ctx, int ncol, const char *const *names, const char *const *vals,
                  const int *types)
{
	writer *W = ctx;
	FILE *o = W->out;
	if (W->rows == 0) {
		W->ncol = ncol;
		if (W->f == F_CSV) {
			for (int i = 0; i < ncol; i++) {
				if (i)
					fputc(',', o);
				csv_field(o, names[i]);
			}
			fputc('\n', o);
		} else if (W->f == F_JSON) {
			fputs("[\n", o);
		} else if (W->f == F_TABLE) {
			W->names = calloc((size_t)ncol, sizeof *W->names);
			W->w = calloc((size_t)ncol, sizeof *W->w);
			W->buf = calloc(TABLE_BUFFER, sizeof *W->buf);
			if (!W->names || !W->w || !W->buf)
				return 1;
			for (int i = 0; i < ncol; i++) {
				W->names[i] = dupstr(names[i]);
				W->w[i] = utf8_len(names[i]);
			}
		}
	}
	switch (W->f) {
	case F_CSV:
		for (int i = 0; i < ncol; i++) {
			if (i)
				fputc(',', o);
			csv_field(o, vals[i]);
		}
		fputc('\n', o);
		break;
	case F_JSON:
		if (W->rows)
			fputs(",\n", o);
		json_row(o, ncol, names, vals, types);
		break;
	case F_JSONL:
		json_row(o, ncol, names, vals, types);
		fputc('\n', o);
		break;
	case F_TABLE:
		if (!W->flushed && W->nbuf < TABLE_BUFFER) {
			char **row = calloc((size_t)ncol, sizeof *row);
			if (!row)
				return 1;
			for (int i = 0; i < ncol; i++) {
				row[i] = dupstr(vals[i] ? vals[i] : "NULL");
				int n = utf8_len(row[i]);
				if (n > W->w[i])
					W->w[i] = n > TABLE_MAXW ? TABLE_MAXW : n;
			}
			W->buf[W->nbuf++] = row;
		} else {
			table_flush(W);
			for (int i = 0; i < ncol; i++)
				table_cell(o, vals[i] ? vals[i] : "NULL", W->w[i], i + 1 == ncol);
			fputc('\n', o);
		}
		break;
	}
	W->rows++;
	return ferror(o) ? 1 : 0;
}

static void writer_end(writer *W)
{
	if (W->f == F_JSON)
		fputs(W->rows ? "\n]\n" : "[]\n", W->out);
	if (W->f == F_TABLE) {
		table_flush(W);
		if (W->names) {
			for (int i = 0; i < W->ncol; i++)
				free(W->names[i]);
		}
		free(W->names);
		free(W->w);
		free(W->buf);
		fprintf(stderr, "(%lld row%s)\n", W->rows, W->rows == 1 ? "" : "s");
	}
	fflush(W->out);
}

/* ---- the frontier's noise marks ------------------------------------------------------- */

/* The frontier's rows, held so each can be compared with its neighbour in
 * val_bpb: a member whose val_bpb is within the run's measured seed noise
 * (its newest `tailor quality fidelity --run` study: the median absolute
 * paired difference) of the next one is not told apart from it by the
 * training; the last column says so. */
typedef struct held {
	int ncol, n, cap;
	char **names;
	char ***vals;
	int **types;
} held;

static int hold_row(void *ctx, int ncol, const char *const *names, const char *const *vals,
                    const int *types)
{
	held *H = ctx;
	if (H->n == 0) {
		H->ncol = ncol;
		H->names = calloc((size_t)ncol, sizeof *H->names);
		if (H->names == NULL)
			return 1;
		for (int i = 0; i < ncol; i++)
			H->names[i] = dupstr(names[i]);
	}
	if (H->n == H->cap) {
		int cap = H->cap ? 2 * H->cap : 16;
		char ***v = realloc(H->vals, (size_t)cap * sizeof *v);
		int **t = realloc(H->types, (size_t)cap * sizeof *t);
		if (v)
			H->vals = v;
		if (t)
			H->types = t;
		if (v == NULL || t == NULL)
			return 1;
		H->cap = cap;
	}
	char **row = calloc((size_t)ncol + 1, sizeof *row);
	int *ty = calloc((size_t)ncol + 1, sizeof *ty);
	if (row == NULL || ty == NULL) {
		free(row);
		free(ty);
		return 1;
	}
	for (int i = 0; i < ncol; i++) {
		row[i] = vals[i] ? dupstr(vals[i]) : NULL;
		ty[i] = types[i];
	}
	H->vals[H->n] = row;
	H->types[H->n++] = ty;
	return 0;
}

static double held_num(const held *H, int r, int c)
{
	const char *v = H->vals[r][c];
	return v ? strtod(v, NULL) : NAN;
}

/* Mark, then write every held row with the column "within_noise". */
static int emit_marked(held *H, double noise, writer *W)
{
	int q = -1, h = -1;
	for (int i = 0; i < H->ncol; i++) {
		if (!strcmp(H->names[i], "val_bpb"))
			q = i;
		if (!strcmp(H->names[i], "genome"))
			h = i;
	}
	int *ord = calloc((size_t)(H->n ? H->n : 1), sizeof *ord);
	if (ord == NULL)
		return 1;
	for (int i = 0; i < H->n; i++)
		ord[i] = i;
	for (int i = 1; i < H->n && q >= 0; i++) /* by val_bpb: a few dozen rows */
		for (int j = i; j > 0 && held_num(H, ord[j], q) < held_num(H, ord[j - 1], q); j--) {
			int t = ord[j];
			ord[j] = ord[j - 1];
			ord[j - 1] = t;
		}
	for (int k = 0; k < H->n && q >= 0 && isfinite(noise); k++) {
		int r = ord[k];
		char mark[160] = "";
		for (int d = -1; d <= 1; d += 2) {
			if (k + d < 0 || k + d >= H->n)
				continue;
			int o = ord[k + d];
			double diff = fabs(held_num(H, r, q) - held_num(H, o, q));
			if (diff < noise && mark[0] == '\0')
				snprintf(mark, sizeof mark, "%.4f from %.12s (noise %.4f)", diff,
				         h >= 0 && H->vals[o][h] ? H->vals[o][h] : "?", noise);
		}
		if (mark[0])
			H->vals[r][H->ncol] = dupstr(mark);
		H->types[r][H->ncol] = mark[0] ? DB_T_TEXT : DB_T_NULL;
	}
	const char **names = calloc((size_t)H->ncol + 1, sizeof *names);
	int rc = names == NULL;
	for (int i = 0; names && i < H->ncol; i++)
		names[i] = H->names[i];
	if (names)
		names[H->ncol] = "within_noise";
	for (int i = 0; i < H->n && rc == 0; i++)
		rc = on_row(W, H->ncol + 1, names, (const char *const *)H->vals[i], H->types[i]);
	free(names);
	free(ord);
	return rc;
}

static void held_free(held *H)
{
	for (int i = 0; i < H->n; i++) {
		for (int c = 0; c <= H->ncol; c++)
			free(H->vals[i][c]);
		free(H->vals[i]);
		free(H->types[i]);
	}
	for (int i = 0; i < H->ncol && H->names; i++)
		free(H->names[i]);
	free(H->names);
	free(H->vals);
	free(H->types);
}

/* The run's measured seed noise of val_bpb (NaN: none measured). */
static double run_noise(db_conn *db, int64_t run)
{
	char **ev = NULL;
	size_t n = 0;
	tl_err err = TL_ERR_INIT;
	double noise = NAN;
	if (db_run_events_data(db, run, "quality.fidelity", &ev, &n, &err) == 0 && n > 0) {
		cJSON *j = cJSON_Parse(ev[n - 1]);
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "noise_median");
		if (cJSON_IsNumber(v) && v->valuedouble >= 0)
			noise = v->valuedouble;
		cJSON_Delete(j);
	}
	db_strings_free(ev, n);
	return noise;
}

/* ---- commands --------------------------------------------------------------------- */

static void help(FILE *f, const char *cmd)
{
	if (!strcmp(cmd, "query"))
		fprintf(f,
		        "usage: tailor [--db PATH] query SQL [--format table|csv|json|jsonl]\n"
		        "       tailor [--db PATH] query --file FILE [--format ...]\n"
		        "\n"
		        "Run one SELECT on the results database, read-only (a statement that would\n"
		        "write is refused), and stream its rows. The tables and views are described\n"
		        "in docs/schema.md; examples/queries/*.sql holds analysts' questions\n"
		        "(tailor query --file examples/queries/best_under_memory.sql). SQL that\n"
		        "starts with a '--' comment goes after a lone '--' or in a --file.\n");
	else if (!strcmp(cmd, "frontier"))
		fprintf(f,
		        "usage: tailor [--db PATH] frontier RUN [--format table|csv|json|jsonl]\n"
		        "\n"
		        "The feasible first front of the run's newest ranked generation: one row\n"
		        "per genome with every objective and constraint metric as a column, the\n"
		        "parameter count and the genome text. The last column, within_noise, marks\n"
		        "a member whose val_bpb is closer to its neighbour's (in val_bpb order) than\n"
		        "the run's measured seed noise ('tailor quality fidelity --run RUN'): the\n"
		        "training does not tell the two apart. Empty when no noise was measured.\n");
	else
		fprintf(f,
		        "usage: tailor [--db PATH] export RUN [--format csv|json|jsonl] [-o FILE]\n"
		        "\n"
		        "Every candidate of the run (every generation): origin, parents, status,\n"
		        "rank, crowding, feasibility, violation, every metric as a column, the\n"
		        "genome's parameters, operators and text. Rows are streamed.\n");
	fprintf(f,
	        "\n"
	        "options:\n"
	        "  --format F   table (default for query and frontier), csv, json (an array\n"
	        "               of objects) or jsonl (one object per line; default for export)\n"
	        "  -o FILE      write there instead of standard output\n"
	        "  --file FILE  (query) read the SQL from FILE ('-': standard input)\n"
	        "  --db PATH    the database (default: $TAILOR_DB, else ./tailor.db)\n"
	        "  -h, --help   this help\n");
}

int cmd_query(int argc, char **argv, cli_ctx *ctx)
{
	const char *cmd = argv[0];
	static const struct option longopts[] = {
		{"help", no_argument, NULL, 'h'},      {"format", required_argument, NULL, 'f'},
		{"output", required_argument, NULL, 'o'}, {"db", required_argument, NULL, 'd'},
		{"file", required_argument, NULL, 'F'},   {NULL, 0, NULL, 0},
	};
	const char *sqlfile = NULL;
	char *sqlbuf = NULL;
	bool is_export = !strcmp(cmd, "export");
	enum fmt f = is_export ? F_JSONL : F_TABLE;
	const char *outpath = NULL, *db_flag = ctx->db_flag;
	int c;
	cli_opt_reset();
	while ((c = cli_opt_next(argc, argv, "hf:o:", longopts, cmd)) != -1) {
		switch (c) {
		case 'h': help(stdout, cmd); return CLI_OK;
		case 'f':
			if (!strcmp(optarg, "table") && !is_export)
				f = F_TABLE;
			else if (!strcmp(optarg, "csv"))
				f = F_CSV;
			else if (!strcmp(optarg, "json"))
				f = F_JSON;
			else if (!strcmp(optarg, "jsonl"))
				f = F_JSONL;
			else
				return cli_usage(cmd, "--format: '%s': %s", optarg,
				                 is_export ? "csv, json or jsonl" : "table, csv, json or jsonl");
			break;
		case 'o': outpath = optarg; break;
		case 'd': db_flag = optarg; break;
		case 'F':
			if (strcmp(cmd, "query") != 0)
				return cli_usage(cmd, "--file goes with 'query'");
			sqlfile = optarg;
			break;
		default: return CLI_USAGE;
		}
	}
	tl_err ferr = TL_ERR_INIT;
	if (sqlfile) {
		if (optind != argc)
			return cli_usage(cmd, "give the SQL either as an argument or with --file, not both");
		size_t len = 0;
		int frc;
		if (!strcmp(sqlfile, "-")) {
			size_t cap = 65536;
			sqlbuf = malloc(cap);
			frc = sqlbuf ? 0 : tl_err_set(&ferr, TL_ENOMEM, "query: out of memory");
			size_t r;
			while (frc == 0 && (r = fread(sqlbuf + len, 1, cap - len - 1, stdin)) > 0) {
				len += r;
				if (len + 1 == cap) {
					char *p2 = realloc(sqlbuf, cap *= 2);
					if (!p2)
						frc = tl_err_set(&ferr, TL_ENOMEM, "query: out of memory");
					else
						sqlbuf = p2;
				}
			}
			if (frc == 0)
				sqlbuf[len] = '\0';
		} else {
			frc = tl_file_read(&sqlbuf, &len, sqlfile, 0, &ferr);
		}
		if (frc < 0) {
			free(sqlbuf);
			return cli_fail(&ferr);
		}
		argv[--optind] = sqlbuf; /* the SQL becomes the one argument */
	}
	if (optind + 1 != argc)
		return cli_usage(cmd, "%s", !strcmp(cmd, "query") ? "give one SQL statement (quoted)"
		                                                 : "give one RUN id");
	tl_err err = TL_ERR_INIT;
	int64_t run = 0;
	if (strcmp(cmd, "query") != 0 &&
	    tl_parse_i64(&run, argv[optind], 1, INT64_MAX, "RUN", &err) < 0)
		return cli_usage(cmd, "'%s': not a run id (see 'tailor run list')", argv[optind]);
	db_conn *db = NULL;
	/* query: read-only, as the file is; frontier and export: opened as usual
	 * (an older file gets the current schema), their statements only read */
	if (db_open(&db, db_path_resolve(db_flag), !strcmp(cmd, "query") ? DB_OPEN_READONLY : 0,
	            &err) < 0)
		return cli_fail(&err);
	FILE *out = stdout;
	if (outpath && (out = fopen(outpath, "w")) == NULL) {
		tl_err_setsub(&err, TL_EIO, errno, "%s: -o %s: cannot write: %s", cmd, outpath,
		              strerror(errno));
		db_close(db);
		return cli_fail(&err);
	}
	writer W = {.f = f, .out = out};
	int rc = 0;
	if (!strcmp(cmd, "query")) {
		rc = db_query_stream(db, argv[optind], NULL, 0, on_row, &W, &err);
	} else {
		/* a column per metric of the run's config: objectives, constraints */
		evo_run_metrics *m = NULL;
		const char *names[EV_MAX_OBJ + EV_MAX_CON];
		if ((rc = evo_run_metrics_load(&m, db, run, &err)) == 0) {
			size_t nm = evo_run_metrics_names(m, names);
			if (is_export) {
				rc = db_query_export(db, run, names, nm, on_row, &W, &err);
			} else {
				held H = {0};
				rc = db_query_frontier(db, run, names, nm, hold_row, &H, &err);
				if (rc == 0 && H.n > 0 && emit_marked(&H, run_noise(db, run), &W) != 0)
					rc = tl_err_set(&err, TL_EIO, "frontier: write failed");
				held_free(&H);
			}
		}
		evo_run_metrics_free(m);
	}
	if (rc == 0)
		writer_end(&W);
	if (out != stdout && fclose(out) != 0 && rc == 0)
		rc = tl_err_setsub(&err, TL_EIO, errno, "%s: -o %s: write failed", cmd, outpath);
	db_close(db);
	free(sqlbuf);
	return rc < 0 ? cli_fail(&err) : CLI_OK;
}
