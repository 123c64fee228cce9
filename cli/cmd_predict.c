/*
 * cli/cmd_predict.c: operator tables and the predictor from the command line
 * (profiler/profile.h; docs/devices.md "Operator tables and the predictor").
 *
 *   tailor device profile-ops NAME --space FILE   measure a device's table
 *   tailor predict GENOME --device NAME            predict from it
 *   tailor predict --validate --device NAME --space FILE --samples K
 *                                                  measure K random genomes
 *                                                  and say how good it is
 *
 * Flags, printing and exit codes only: the profiling, the predictions and
 * the validation (minutes to hours on a device) are profiler/profile.c's,
 * whose progress lines this file prints on stderr as they come.
 */
#include "cli.h"
#include "db.h"
#include "genome.h"
#include "op_arch.h"
#include "profile.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

/* A progress line of profiler/profile.c, on stderr as "tailor: LINE". */
static void progress_line(void *ctx, const char *line)
{
	(void)ctx;
	fprintf(stderr, "tailor: %s\n", line);
}

/* ---- profile-ops --------------------------------------------------------------- */

static void profile_help(FILE *f)
{
	fprintf(f,
	        "usage: tailor [--db PATH] device profile-ops NAME --space FILE [--protocol FILE]\n"
	        "              [--samples N] [--instances R] [--layers L] [--quant Q] [--seed S]\n"
	        "              [--repeats R] [--warmup W] [--timeout SEC] [--json]\n"
	        "\n"
	        "Measure the operator table of device NAME for a search space: the layer\n"
	        "configurations the space produces (found in N random genomes), each measured\n"
	        "R times inside profiling models laid out like the space's genomes, layer by\n"
	        "layer (prefill of the prompt, decode step at the depth, weight, state and\n"
	        "activation bytes), at every shape of the protocol. The table is stored in the\n"
	        "database; 'tailor predict' sums its entries for any genome of the space.\n"
	        "\n"
	        "options:\n"
	        "  --space FILE      the search space (JSON); required\n"
	        "  --protocol FILE   measurement protocol (docs/devices.md): repeats, CV\n"
	        "                    threshold, thermal gate, threads, shapes {prompt, gen,\n"
	        "                    depth} (default: P 512, N 128 at depths 4096 and 32768)\n"
	        "  --samples N       random genomes whose layers are profiled (default 3000)\n"
	        "  --instances R     times each configuration is measured (default 3)\n"
	        "  --layers L        layers of a profiling model (default: the mean depth of\n"
	        "                    the samples)\n"
	        "  --quant Q         weights: q4_0 (default), q8_0, f32\n"
	        "  --seed S          seed of the samples (default 1)\n"
	        "  --repeats R, --warmup W   override the protocol's\n"
	        "  --timeout SEC     one harness run at most (default 900)\n"
	        "  --ref-every N     measure the first model again after every N models and\n"
	        "                    at the end; each model's times are scaled to the\n"
	        "                    device's state at the start, interpolated between these\n"
	        "                    readings (a device drifts by per cents over minutes);\n"
	        "                    0: at the end only (default 5)\n"
	        "  --json            print the table (JSON) instead of a summary\n"
	        "  -h, --help        this help\n");
}

static void profile_print(const prof_profile_out *out, const char *name, const char *space_file,
                          bool json)
{
	if (json) {
		printf("%s\n", out->table_json);
		return;
	}
	printf("operator table %lld of %s for %s: %zu layer configurations x %zu shape(s), "
	       "from %zu profiling models in %.0f s\n", (long long)out->table_id, name, space_file,
	       out->n_keys, out->n_shapes, out->n_archs, out->seconds);
	for (size_t sh = 0; sh < out->n_shapes; sh++) {
		const prof_fixed *f = &out->fixed[sh];
		const prof_shape *shp = &out->shapes[sh];
		printf("  P%lld/N%lld/D%lld: fixed prefill %.2f ms, fixed decode %.3f ms, memory "
		       "%.1f MiB + %.2f x activations (%lld runs)\n", (long long)shp->prompt,
		       (long long)shp->gen, (long long)shp->depth, f->prefill_ms, f->decode_ms,
		       f->rss_bytes / 1048576.0, f->rss_alpha, (long long)f->runs);
	}
	printf("  per configuration: tailor query \"SELECT layer_key, prefill_ms, decode_ms, cv "
	       "FROM op_table_entries WHERE table_id = %lld ORDER BY decode_ms DESC\"\n",
	       (long long)out->table_id);
}

int cmd_profile_ops(int argc, char **argv, cli_ctx *ctx)
{
	static const struct option longopts[] = {
	    {"help", no_argument, NULL, 'h'},        {"db", required_argument, NULL, 'D'},
	    {"space", required_argument, NULL, 'S'}, {"protocol", required_argument, NULL, 'P'},
	    {"samples", required_argument, NULL, 'n'}, {"instances", required_argument, NULL, 'i'},
	    {"layers", required_argument, NULL, 'L'}, {"quant", required_argument, NULL, 'q'},
	    {"seed", required_argument, NULL, 's'},  {"repeats", required_argument, NULL, 'r'},
	    {"warmup", required_argument, NULL, 'w'}, {"timeout", required_argument, NULL, 't'},
	    {"json", no_argument, NULL, 'j'},        {"ref-every", required_argument, NULL, 'R'},
	    {NULL, 0, NULL, 0},
	};
	const char *db_flag = ctx->db_flag, *space_file = NULL;
	prof_profile_opts o = PROF_PROFILE_OPTS_INIT;
	long long timeout = 900;
	bool json = false;
	int c;
	o.progress = progress_line;
	cli_opt_reset();
	while ((c = cli_opt_next(argc, argv, "hj", longopts, "device profile-ops")) != -1) {
		switch (c) {
		case 'h': profile_help(stdout); return CLI_OK;
		case 'D': db_flag = optarg; break;
		case 'S': space_file = optarg; break;
		case 'P': o.protocol_file = optarg; break;
		case 'n':
			if (cli_int_arg(&o.samples, optarg, 1, 1000000, "device profile-ops", "--samples") < 0)
				return CLI_USAGE;
			break;
		case 'i':
			if (cli_int_arg(&o.instances, optarg, 1, 100, "device profile-ops", "--instances") < 0)
				return CLI_USAGE;
			break;
		case 'L':
			if (cli_int_arg(&o.layers, optarg, 2, OP_MAX_LAYERS - 4, "device profile-ops",
			                "--layers") < 0)
				return CLI_USAGE;
			break;
		case 'q':
			if (strcmp(optarg, "q4_0") && strcmp(optarg, "q8_0") && strcmp(optarg, "f32"))
				return cli_usage("device profile-ops", "--quant: '%s': not a weight type "
				                 "(q4_0, q8_0 or f32)", optarg);
			o.quant = optarg;
			break;
		case 's':
			if (cli_int_arg(&o.seed, optarg, 0, (1LL << 62), "device profile-ops", "--seed") < 0)
				return CLI_USAGE;
			break;
		case 'r': o.repeats = optarg; break;
		case 'w': o.warmup = optarg; break;
		case 't':
			if (cli_int_arg(&timeout, optarg, 1, 86400, "device profile-ops", "--timeout") < 0)
				return CLI_USAGE;
			break;
		case 'j': json = true; break;
		case 'R':
			if (cli_int_arg(&o.ref_every, optarg, 0, 100000, "device profile-ops",
			                "--ref-every") < 0)
				return CLI_USAGE;
			break;
		default: return CLI_USAGE;
		}
	}
	if (optind + 1 != argc)
		return cli_usage("device profile-ops", optind >= argc ? "missing the device NAME"
		                                                      : "one device NAME only");
	if (space_file == NULL)
		return cli_usage("device profile-ops", "--space FILE is required (the space whose "
		                 "layers are profiled)");
	o.timeout_s = (double)timeout;
	const char *name = argv[optind];
	tl_err err = TL_ERR_INIT;
	prof_protocol proto; /* the flags checked before the device is looked up */
	if (prof_profile_protocol(&proto, NULL, &o, &err) < 0)
		return err.code == TL_EUSAGE ? cli_usage("device profile-ops", "%s", err.msg)
		                             : cli_fail(&err);

	db_conn *db = NULL;
	db_device dev;
	prof_profile_out out;
	int rc = CLI_FAIL;
	memset(&out, 0, sizeof out);
	if (db_open(&db, db_path_resolve(db_flag), 0, &err) < 0 ||
	    db_device_get(db, name, &dev, &err) < 0 ||
	    prof_profile_ops(&out, db, &dev, space_file, &o, &err) < 0)
		rc = cli_fail(&err);
	else {
		profile_print(&out, name, space_file, json);
		rc = CLI_OK;
	}
	prof_profile_out_free(&out);
	db_close(db);
	return rc;
}

/* ---- predict ------------------------------------------------------------------------ */

static void predict_help(FILE *f)
{
	fprintf(f,
	        "usage: tailor [--db PATH] predict GENOME --device NAME [--table ID]\n"
	        "              [--prompt P --gen N --depth D] [--json]\n"
	        "       tailor [--db PATH] predict --validate --device NAME --space FILE\n"
	        "              [--samples K] [--seed S] [--protocol FILE] [--table ID] [--json]\n"
	        "\n"
	        "Predict a genome's TTFT, decode latency and peak RSS on a device by summing\n"
	        "its layers' entries in the device's operator table plus the table's fixed\n"
	        "costs ('tailor device profile-ops' makes the table). Without --prompt/--gen/\n"
	        "--depth, at every shape of the table; between shapes, interpolated.\n"
	        "\n"
	        "--validate measures K random genomes of the space on the device for real\n"
	        "(each stored as a measurement, with its prediction) and prints, per metric,\n"
	        "the RMSPE, the bias, the largest error and the share within 5%% and 10%%.\n"
	        "\n"
	        "options:\n"
	        "  --device NAME     the device (required)\n"
	        "  --table ID        this table (default: the device's newest; with --space,\n"
	        "                    its newest for that space)\n"
	        "  --space FILE      the search space (required with --validate)\n"
	        "  --prompt P, --gen N, --depth D   the shape (all three)\n"
	        "  --samples K       genomes to measure (default 30)\n"
	        "  --seed S          seed of the genomes (default 2: not the table's samples)\n"
	        "  --protocol FILE   protocol of the measurements (default: the table's)\n"
	        "  --timeout SEC     one measurement at most (default 900)\n"
	        "  --ref-every N     measure the table's reference model again every N genomes\n"
	        "                    (and before and after them; 0: only before and after):\n"
	        "                    the device's drift since the table, and the accuracy\n"
	        "                    with predictions corrected by it (default 5)\n"
	        "  --json            JSON output\n"
	        "  -h, --help        this help\n");
}

static void acc_row(const char *metric, const prof_accuracy *a)
{
	printf("%-14s %4zu  %6.2f%%  %+6.2f%%  %6.2f%%  %6.1f%%  %6.1f%%\n", metric, a->n,
	       100 * a->rmspe, 100 * a->bias, 100 * a->max_abs, 100 * a->within5, 100 * a->within10);
}

/* `predict GENOME`: a row (or a JSON object) per shape. */
static void predictions_print(const prof_genome_pred *p, size_t n, const char *genome_arg,
                              const char *device, int64_t table_id, bool json)
{
	if (!json) {
		if (n > 0)
			printf("%s on %s (table %lld):\n%-22s %12s %12s %12s\n", genome_arg, device,
			       (long long)table_id, "prompt/gen/depth", "TTFT ms", "decode ms", "peak MiB");
		for (size_t i = 0; i < n; i++) {
			char sh[64];
			snprintf(sh, sizeof sh, "%lld/%lld/%lld", (long long)p[i].shape.prompt,
			         (long long)p[i].shape.gen, (long long)p[i].shape.depth);
			printf("%-22s %12.2f %12.3f %12.1f%s%s\n", sh, p[i].pred.ttft_ms, p[i].pred.decode_ms,
			       p[i].pred.peak_rss_bytes / 1048576.0, p[i].pred.note[0] ? "  " : "",
			       p[i].pred.note);
		}
		return;
	}
	cJSON *out = cJSON_CreateArray();
	for (size_t i = 0; i < n; i++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "prompt", (double)p[i].shape.prompt);
		cJSON_AddNumberToObject(o, "gen", (double)p[i].shape.gen);
		cJSON_AddNumberToObject(o, "depth", (double)p[i].shape.depth);
		cJSON_AddNumberToObject(o, "ttft_ms", p[i].pred.ttft_ms);
		cJSON_AddNumberToObject(o, "decode_ms", p[i].pred.decode_ms);
		cJSON_AddNumberToObject(o, "peak_rss_bytes", p[i].pred.peak_rss_bytes);
		cJSON_AddNumberToObject(o, "table_id", (double)table_id);
		cJSON_AddStringToObject(o, "note", p[i].pred.note);
		cJSON_AddItemToArray(out, o);
	}
	char *s = cJSON_PrintUnformatted(out);
	printf("%s\n", s ? s : "[]");
	free(s);
	cJSON_Delete(out);
}

/* --validate --json: {"table_id", "accuracy": {shape: {metric: ...}},
 * "genomes": [...]}. */
static void validation_json(const prof_validation *v)
{
	static const char *const mn[3] = {"ttft", "decode", "peak_rss"};
	cJSON *summary = cJSON_CreateObject();
	for (size_t i = 0; i < v->n_shapes; i++) {
		const prof_val_shape *vs = &v->shapes[i];
		char sk[64];
		snprintf(sk, sizeof sk, "%lld/%lld/%lld", (long long)vs->shape.prompt,
		         (long long)vs->shape.gen, (long long)vs->shape.depth);
		cJSON *so = cJSON_AddObjectToObject(summary, sk);
		for (int q = 0; q < 3; q++) {
			cJSON *x = cJSON_AddObjectToObject(so, mn[q]);
			cJSON_AddNumberToObject(x, "n", (double)vs->acc[q].n);
			cJSON_AddNumberToObject(x, "rmspe", vs->acc[q].rmspe);
			cJSON_AddNumberToObject(x, "bias", vs->acc[q].bias);
			cJSON_AddNumberToObject(x, "max_abs", vs->acc[q].max_abs);
			cJSON_AddNumberToObject(x, "within5", vs->acc[q].within5);
			cJSON_AddNumberToObject(x, "within10", vs->acc[q].within10);
		}
		for (int q = 0; vs->corrected && q < 2; q++) {
			cJSON *x = cJSON_AddObjectToObject(so, q ? "decode_drift_corrected"
			                                         : "ttft_drift_corrected");
			cJSON_AddNumberToObject(x, "mean_ratio", vs->mean_ratio[q]);
			cJSON_AddNumberToObject(x, "rmspe", vs->corr[q].rmspe);
			cJSON_AddNumberToObject(x, "bias", vs->corr[q].bias);
			cJSON_AddNumberToObject(x, "max_abs", vs->corr[q].max_abs);
			cJSON_AddNumberToObject(x, "within5", vs->corr[q].within5);
			cJSON_AddNumberToObject(x, "within10", vs->corr[q].within10);
		}
	}
	cJSON *genomes = cJSON_CreateArray();
	static const char *const names[6] = {"pred_ttft_ms", "pred_decode_ms", "pred_peak_rss_bytes",
	                                      "ttft_ms", "decode_ms", "peak_rss_bytes"};
	for (size_t k = 0; k < v->n_genomes; k++)
		for (size_t i = 0; i < v->n_shapes; i++) {
			const prof_val_point *pt = &v->points[k * v->n_shapes + i];
			const prof_shape *sh = &v->shapes[i].shape;
			if (!pt->ok)
				continue;
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "genome_hash", pt->genome_hash);
			cJSON_AddNumberToObject(o, "prompt", (double)sh->prompt);
			cJSON_AddNumberToObject(o, "gen", (double)sh->gen);
			cJSON_AddNumberToObject(o, "depth", (double)sh->depth);
			for (int q = 0; q < 6; q++)
				cJSON_AddNumberToObject(o, names[q], q < 3 ? pt->pred[q] : pt->meas[q - 3]);
			cJSON_AddItemToArray(genomes, o);
		}
	cJSON *j = cJSON_CreateObject();
	cJSON_AddNumberToObject(j, "table_id", (double)v->table_id);
	cJSON_AddItemToObject(j, "accuracy", summary);
	cJSON_AddItemToObject(j, "genomes", genomes);
	char *s = cJSON_PrintUnformatted(j);
	printf("%s\n", s ? s : "{}");
	free(s);
	cJSON_Delete(j);
}

/* --validate: the accuracy table of each shape. */
static void validation_print(const prof_validation *v, const char *device,
                             const char *space_file, long long seed)
{
	printf("predictor accuracy on %s: table %lld, %zu random genomes of %s (seed %lld)\n", device,
	       (long long)v->table_id, v->n_genomes, space_file, seed);
	for (size_t i = 0; i < v->n_shapes; i++) {
		const prof_val_shape *vs = &v->shapes[i];
		printf("\nprompt/gen/depth %lld/%lld/%lld\n%-14s %4s  %7s  %7s  %7s  %7s  %7s\n",
		       (long long)vs->shape.prompt, (long long)vs->shape.gen, (long long)vs->shape.depth,
		       "metric", "n", "RMSPE", "bias", "max", "<=5%", "<=10%");
		acc_row("TTFT", &vs->acc[0]);
		acc_row("decode", &vs->acc[1]);
		acc_row("peak RSS", &vs->acc[2]);
		if (vs->corrected) {
			printf("drift-corrected (x the reference model's ratio now/then from %zu "
			       "readings, mean ttft %.4f, decode %.4f):\n", v->n_readings, vs->mean_ratio[0],
			       vs->mean_ratio[1]);
			acc_row("TTFT", &vs->corr[0]);
			acc_row("decode", &vs->corr[1]);
		}
	}
}

int cmd_predict(int argc, char **argv, cli_ctx *ctx)
{
	static const struct option longopts[] = {
	    {"help", no_argument, NULL, 'h'},         {"db", required_argument, NULL, 'D'},
	    {"device", required_argument, NULL, 'd'}, {"table", required_argument, NULL, 'T'},
	    {"space", required_argument, NULL, 'S'},  {"prompt", required_argument, NULL, 'p'},
	    {"gen", required_argument, NULL, 'n'},    {"depth", required_argument, NULL, 'e'},
	    {"validate", no_argument, NULL, 'V'},     {"samples", required_argument, NULL, 'k'},
	    {"seed", required_argument, NULL, 's'},   {"protocol", required_argument, NULL, 'P'},
	    {"timeout", required_argument, NULL, 't'}, {"json", no_argument, NULL, 'j'},
	    {"ref-every", required_argument, NULL, 'R'}, {NULL, 0, NULL, 0},
	};
	long long ref_every = 5;
	const char *db_flag = ctx->db_flag, *device = NULL, *space_file = NULL, *proto_file = NULL;
	long long table_id = 0, prompt = -1, gen = -1, depth = -1, samples = 30, seed = 2;
	long long timeout = 900;
	bool validate = false, json = false;
	int c;
	cli_opt_reset();
	while ((c = cli_opt_next(argc, argv, "hj", longopts, "predict")) != -1) {
		switch (c) {
		case 'h': predict_help(stdout); return CLI_OK;
		case 'D': db_flag = optarg; break;
		case 'd': device = optarg; break;
		case 'T':
			if (cli_int_arg(&table_id, optarg, 1, INT64_MAX, "predict", "--table") < 0)
				return CLI_USAGE;
			break;
		case 'S': space_file = optarg; break;
		case 'p':
			if (cli_int_arg(&prompt, optarg, 1, 1 << 24, "predict", "--prompt") < 0)
				return CLI_USAGE;
			break;
		case 'n':
			if (cli_int_arg(&gen, optarg, 1, 1 << 24, "predict", "--gen") < 0)
				return CLI_USAGE;
			break;
		case 'e':
			if (cli_int_arg(&depth, optarg, 0, 1LL << 34, "predict", "--depth") < 0)
				return CLI_USAGE;
			break;
		case 'V': validate = true; break;
		case 'k':
			if (cli_int_arg(&samples, optarg, 1, 100000, "predict", "--samples") < 0)
				return CLI_USAGE;
			break;
		case 's':
			if (cli_int_arg(&seed, optarg, 0, 1LL << 62, "predict", "--seed") < 0)
				return CLI_USAGE;
			break;
		case 'P': proto_file = optarg; break;
		case 't':
			if (cli_int_arg(&timeout, optarg, 1, 86400, "predict", "--timeout") < 0)
				return CLI_USAGE;
			break;
		case 'j': json = true; break;
		case 'R':
			if (cli_int_arg(&ref_every, optarg, 0, 100000, "predict", "--ref-every") < 0)
				return CLI_USAGE;
			break;
		default: return CLI_USAGE;
		}
	}
	if (device == NULL)
		return cli_usage("predict", "--device NAME is required (the device whose table to use)");
	if (validate ? optind != argc : optind + 1 != argc)
		return cli_usage("predict", validate ? "--validate takes no GENOME (it samples --space)"
		                                     : "give one GENOME (or --validate)");
	if (validate && space_file == NULL)
		return cli_usage("predict", "--validate needs --space FILE (the genomes it draws)");
	if ((prompt < 0) != (gen < 0) || (prompt < 0) != (depth < 0))
		return cli_usage("predict", "--prompt, --gen and --depth go together");

	tl_err err = TL_ERR_INIT;
	db_conn *db = NULL;
	db_device dev;
	prof_device_table t = {0};
	genome_space *space = NULL;
	prof_shape shape = {prompt, gen, depth};
	const prof_shape *one = prompt >= 0 ? &shape : NULL; /* NULL: the table's shapes */
	int rc = CLI_FAIL;
	if ((space_file && genome_space_load(&space, space_file, &err) < 0) ||
	    db_open(&db, db_path_resolve(db_flag), 0, &err) < 0 ||
	    db_device_get(db, device, &dev, &err) < 0 ||
	    prof_device_table_load(&t, db, &dev, table_id, space, &err) < 0)
		goto out;
	if (!validate) {
		genome g;
		prof_genome_pred p[PROF_MAX_SHAPES];
		size_t n = 0;
		if (cli_load_genome(&g, argv[optind], &err) < 0)
			goto out;
		int prc = prof_predict_genome(p, &n, db, &t, &g, one, &err);
		if (prc == 0 || !json) /* text: the rows made before a failure */
			predictions_print(p, n, argv[optind], device, t.row.id, json);
		if (prc == 0)
			rc = CLI_OK;
		goto out;
	}
	/* --validate: K genomes, each predicted then measured on the device,
	 * under the table's protocol (or --protocol FILE) */
	prof_validate_opts vo = {.space = space, .shape = one, .samples = (size_t)samples,
	                         .seed = (uint64_t)seed, .protocol_file = proto_file,
	                         .timeout_s = (double)timeout, .ref_every = ref_every,
	                         .progress = progress_line};
	prof_validation v;
	if (prof_validate(&v, db, &dev, &t, &vo, &err) == 0) {
		if (json)
			validation_json(&v);
		else
			validation_print(&v, device, space_file, seed);
		rc = CLI_OK;
	}
	prof_validation_free(&v);
out:
	if (rc != CLI_OK)
		rc = cli_fail(&err);
	prof_device_table_free(&t);
	genome_space_free(space);
	db_close(db);
	return rc;
}
