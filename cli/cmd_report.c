/*
 * cli/cmd_report.c: `tailor report RUN -o FILE`: the run's self-contained
 * HTML report (report/report.h). The file is written next to its final name
 * and renamed into place, so a failed report never leaves half a file.
 */
#include "cli.h"
#include "db.h"
#include "report.h"
#include "runcfg.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void report_help(FILE *f)
{
	fprintf(f,
	        "usage: tailor [--db PATH] report RUN -o FILE\n"
	        "\n"
	        "Write the run's report: one HTML file with everything inline (no network,\n"
	        "no script): a Pareto scatter for each pair of objectives with the frontier\n"
	        "highlighted, hypervolume per generation, the share of each operator in the\n"
	        "population per generation, the frontier genomes as strips of coloured\n"
	        "cells (one per layer) and every frontier candidate's metrics; when the run\n"
	        "has them, the predictor against the measurements (error per genome and\n"
	        "device, RMSPE of decode ms) and the canary history of its devices.\n"
	        "\n"
	        "options:\n"
	        "  -o, --output FILE  the HTML file (required; '-' for standard output)\n"
	        "  --db PATH          the database (default: $TAILOR_DB, else ./tailor.db)\n"
	        "  -h, --help         this help\n");
}

int cmd_report(int argc, char **argv, cli_ctx *ctx)
{
	static const struct option longopts[] = {
		{"help", no_argument, NULL, 'h'}, {"output", required_argument, NULL, 'o'},
		{"db", required_argument, NULL, 'd'}, {NULL, 0, NULL, 0},
	};
	const char *out = NULL, *db_flag = ctx->db_flag;
	int c;
	cli_opt_reset();
	while ((c = cli_opt_next(argc, argv, "ho:", longopts, "report")) != -1) {
		switch (c) {
		case 'h': report_help(stdout); return CLI_OK;
		case 'o': out = optarg; break;
		case 'd': db_flag = optarg; break;
		default: return CLI_USAGE;
		}
	}
	if (optind + 1 != argc)
		return cli_usage("report", "give one RUN id");
	if (out == NULL)
		return cli_usage("report", "-o FILE is required (the HTML file to write)");
	tl_err err = TL_ERR_INIT;
	int64_t run;
	if (tl_parse_i64(&run, argv[optind], 1, INT64_MAX, "RUN", &err) < 0)
		return cli_usage("report", "'%s': not a run id (see 'tailor run list')", argv[optind]);
	db_conn *db = NULL;
	/* opened as usual (an older file gets the views the report reads); the
	 * report itself only reads */
	if (db_open(&db, db_path_resolve(db_flag), 0, &err) < 0)
		return cli_fail(&err);
	/* the config's objectives and text, for the report to plot and show */
	evo_run_metrics *m = NULL;
	if (evo_run_metrics_load(&m, db, run, &err) < 0) {
		db_close(db);
		return cli_fail(&err);
	}
	report_objective obj[EV_MAX_OBJ];
	for (int i = 0; i < m->n_obj; i++)
		obj[i] = (report_objective){m->obj[i].metric, m->obj[i].maximize};
	report_config cfg = {obj, m->n_obj, m->config_text};
	int rc;
	if (!strcmp(out, "-")) {
		rc = report_write(db, run, &cfg, stdout, &err);
	} else {
		char tmp[4096];
		snprintf(tmp, sizeof tmp, "%s.tmp%ld", out, (long)getpid());
		FILE *f = fopen(tmp, "w");
		if (f == NULL) {
			tl_err_setsub(&err, TL_EIO, errno, "report: -o %s: cannot write: %s", out,
			              strerror(errno));
			evo_run_metrics_free(m);
			db_close(db);
			return cli_fail(&err);
		}
		rc = report_write(db, run, &cfg, f, &err);
		if (fclose(f) != 0 && rc == 0)
			rc = tl_err_setsub(&err, TL_EIO, errno, "report: %s: write failed: %s", tmp,
			                   strerror(errno));
		if (rc == 0 && rename(tmp, out) != 0)
			rc = tl_err_setsub(&err, TL_EIO, errno, "report: %s: cannot rename into place: %s",
			                   out, strerror(errno));
		if (rc < 0)
			remove(tmp);
		else
			fprintf(stderr, "tailor: report of run %lld written to %s\n", (long long)run, out);
	}
	evo_run_metrics_free(m);
	db_close(db);
	return rc < 0 ? cli_fail(&err) : CLI_OK;
}
