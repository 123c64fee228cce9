/*
 * cli/cmd_predict.c: operator tables and the predictor from the command line
 * (profiler/optable.h; docs/devices.md "Operator tables and the predictor").
 *
 *   tailor device profile-ops NAME --space FILE   measure a device's table
 *   tailor predict GENOME --device NAME            predict from it
 *   tailor predict --validate --device NAME --space FILE --samples K
 *                                                  measure K random genomes
 *                                                  and say how good it is
 */
#include "cli.h"
#include "db.h"
#include "db_optables.h"
#include "dev.h"
#include "genome.h"
#include "op_arch.h"
#include "op_emit.h"
#include "optable.h"
#include "protocol.h"
#include "tailor_config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>


/* The arch of a genome (text malloc'd into *text, parsed into *a). */
static int genome_arch_of(op_arch *a, char **text, const genome *g, tl_err *err)
{
	if (cli_genome_arch_text(text, NULL, g, err) < 0)
		return err->code;
	return op_arch_parse(a, *text, "genome", err);
}

/* The protocol of a table: defaults, the device's settings, --protocol
 * FILE, then the flags (the order of every measurement on a device). */
static int load_protocol(prof_protocol *p, const db_device *d, const char *file,
                         const char *repeats, const char *warmup, tl_err *err)
{
	int64_t v;
	prof_protocol_init(p);
	if (d && cli_device_protocol(p, d, err) < 0)
		return err->code;
	if (file && prof_protocol_load(p, file, err) < 0)
		return err->code;
	if (repeats) {
		if (tl_parse_i64(&v, repeats, 1, PROF_MAX_REPEATS, "--repeats", err) < 0)
			return TL_EUSAGE;
		p->repeats = (int)v;
		if (p->max_repeats < p->repeats)
			p->max_repeats = p->repeats;
	}
	if (warmup) {
		if (tl_parse_i64(&v, warmup, 0, PROF_MAX_WARMUP, "--warmup", err) < 0)
			return TL_EUSAGE;
		p->warmup = (int)v;
	}
	return prof_protocol_check(p, err);
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

/* One run's --layer-times arrays into obs (arrays of n). */
typedef struct obs_buf {
	double *v; /* 5 x n */
	prof_obs obs;
} obs_buf;

static int read_obs(obs_buf *b, const char *raw, int n, tl_err *err)
{
	cJSON *j = cJSON_Parse(raw);
	static const char *names[5] = {"layer_prefill_ms", "layer_decode_ms", "layer_weight_bytes",
	                               "layer_state_bytes", "layer_act_bytes"};
	free(b->v);
	b->v = calloc((size_t)5 * (size_t)n, sizeof *b->v);
	if (j == NULL || b->v == NULL) {
		cJSON_Delete(j);
		return tl_err_set(err, TL_EPARSE, "profile-ops: the harness's output is not JSON");
	}
	for (int k = 0; k < 5; k++) {
		const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, names[k]);
		if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) != n) {
			cJSON_Delete(j);
			return tl_err_set(err, TL_EPARSE, "profile-ops: the harness's output lacks %s of "
			                  "%d layers (a harness without --layer-times: rebuild)", names[k], n);
		}
		for (int i = 0; i < n; i++)
			b->v[k * n + i] = cJSON_GetArrayItem(arr, i)->valuedouble;
	}
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "ttft_ms");
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "decode_ms_p50");
	const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "peak_rss_bytes");
	b->obs = (prof_obs){cJSON_IsNumber(t) ? t->valuedouble : NAN,
	                    cJSON_IsNumber(d) ? d->valuedouble : NAN,
	                    cJSON_IsNumber(r) ? r->valuedouble : NAN,
	                    b->v, b->v + n, b->v + 2 * n, b->v + 3 * n, b->v + 4 * n};
	cJSON_Delete(j);
	return 0;
}

/* The first profiling model (arch-000.txt in wd) at shape sh: TTFT and
 * decode now, for the drift readings. */
static int measure_ref(dev_session *s, const db_device *dev, const char *wd,
                       const prof_protocol *proto, const prof_shape *sh, const char *quant,
                       long long threads, long long timeout, double *ttft, double *dec,
                       tl_err *err)
{
	char num[4][24], failure[16];
	snprintf(num[0], 24, "%lld", (long long)sh->prompt);
	snprintf(num[1], 24, "%lld", (long long)sh->gen);
	snprintf(num[2], 24, "%lld", (long long)sh->depth);
	snprintf(num[3], 24, "%lld", threads);
	const char *hargs[] = {"--arch", "arch-000.txt", "--prompt", num[0], "--gen", num[1],
	                       "--depth", num[2], "--quant", quant, "--kv", "f16", "--repeat", "1",
	                       threads > 0 ? "--threads" : NULL, num[3], NULL};
	prof_result res;
	int rc = cli_dev_measure(s, dev, wd, hargs, proto, (double)timeout, &res, failure, err);
	if (rc == 0) {
		*ttft = res.ttft_ms.median;
		*dec = res.decode_ms_p50.median;
	} else {
		tl_err_prefix(err, "the reference model (%s)", failure);
	}
	prof_result_free(&res);
	return rc;
}

/* A measured run waiting for its drift correction. */
typedef struct pending_run {
	size_t model, shape;
	char *raw;
} pending_run;

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
	const char *db_flag = ctx->db_flag, *space_file = NULL, *proto_file = NULL;
	const char *quant = "q4_0", *repeats = NULL, *warmup = NULL;
	long long ref_every = 5;
	long long samples = 3000, instances = 3, layers = 0, seed = 1, timeout = 900;
	bool json = false;
	int c;
	cli_opt_reset();
	while ((c = cli_opt_next(argc, argv, "hj", longopts, "device profile-ops")) != -1) {
		switch (c) {
		case 'h': profile_help(stdout); return CLI_OK;
		case 'D': db_flag = optarg; break;
		case 'S': space_file = optarg; break;
		case 'P': proto_file = optarg; break;
		case 'n':
			if (cli_int_arg(&samples, optarg, 1, 1000000, "device profile-ops", "--samples") < 0)
				return CLI_USAGE;
			break;
		case 'i':
			if (cli_int_arg(&instances, optarg, 1, 100, "device profile-ops", "--instances") < 0)
				return CLI_USAGE;
			break;
		case 'L':
			if (cli_int_arg(&layers, optarg, 2, OP_MAX_LAYERS - 4, "device profile-ops",
			                "--layers") < 0)
				return CLI_USAGE;
			break;
		case 'q':
			if (strcmp(optarg, "q4_0") && strcmp(optarg, "q8_0") && strcmp(optarg, "f32"))
				return cli_usage("device profile-ops", "--quant: '%s': not a weight type "
				                 "(q4_0, q8_0 or f32)", optarg);
			quant = optarg;
			break;
		case 's':
			if (cli_int_arg(&seed, optarg, 0, (1LL << 62), "device profile-ops", "--seed") < 0)
				return CLI_USAGE;
			break;
		case 'r': repeats = optarg; break;
		case 'w': warmup = optarg; break;
		case 't':
			if (cli_int_arg(&timeout, optarg, 1, 86400, "device profile-ops", "--timeout") < 0)
				return CLI_USAGE;
			break;
		case 'j': json = true; break;
		case 'R':
			if (cli_int_arg(&ref_every, optarg, 0, 100000, "device profile-ops", "--ref-every") < 0)
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
	const char *name = argv[optind];
	tl_err err = TL_ERR_INIT;
	prof_protocol proto;
	if (load_protocol(&proto, NULL, proto_file, repeats, warmup, &err) < 0)
		return err.code == TL_EUSAGE ? cli_usage("device profile-ops", "%s", err.msg)
		                             : cli_fail(&err);

	genome_space *space = NULL;
	prof_keyset ks = {0};
	prof_table *table = NULL;
	char **archs = NULL, *arch_text = NULL, *fp = NULL, *tjson = NULL, *pjson = NULL;
	size_t n_archs = 0;
	db_conn *db = NULL;
	db_device dev;
	dev_lock *lock = NULL;
	dev_session *s = NULL;
	char wd[DEV_PATH_MAX] = "", build_hash[65] = "";
	obs_buf ob = {0};
	op_arch *a = malloc(sizeof *a);
	pending_run *pend = NULL;
	size_t n_pend = 0, cap_pend = 0, n_rd = 0;
	double *rd_pos = NULL, *rd_t = NULL, *rd_d = NULL; /* drift readings */
	int rc = CLI_FAIL;
	double t0 = tl_now_s();
	if (a == NULL) {
		tl_err_set(&err, TL_ENOMEM, "out of memory");
		goto fail;
	}
	/* the device first: a wrong name should not wait for the sampling */
	if (db_open(&db, db_path_resolve(db_flag), 0, &err) < 0 || db_device_get(db, name, &dev, &err) < 0)
		goto fail;
	if (!dev.enabled) {
		tl_err_set(&err, TL_EINVAL, "device %s is disabled (tailor device enable %s)", name, name);
		goto fail;
	}
	if (load_protocol(&proto, &dev, proto_file, repeats, warmup, &err) < 0 ||
	    genome_space_load(&space, space_file, &err) < 0)
		goto fail;
	/* 1. the layer configurations of the space */
	tl_rng rng;
	tl_rng_seed(&rng, (uint64_t)seed, 0x70726f66 /* "prof" */);
	for (long long i = 0; i < samples; i++) {
		genome g;
		if (genome_sample(&g, space, &rng, &err) < 0 || genome_arch_of(a, &arch_text, &g, &err) < 0 ||
		    prof_keyset_add_arch(&ks, a, &err) < 0)
			goto fail;
		free(arch_text);
		arch_text = NULL;
	}
	/* 2. the profiling models */
	if (prof_plan(&archs, &n_archs, &ks, (int)instances, (int)layers, &err) < 0)
		goto fail;
	fprintf(stderr, "tailor: profile-ops: %zu layer configurations in %lld genomes of %s; %zu "
	        "profiling models x %zu shape(s)\n", ks.n, samples, space_file, n_archs,
	        proto.n_shapes);
	if (prof_table_create(&table, &ks, proto.shapes, proto.n_shapes, &err) < 0)
		goto fail;
	/* 3. the device */
	if (dev_lock_acquire(&lock, &dev, 600, &err) < 0 || dev_session_open(&s, &dev, &err) < 0)
		goto fail;
	double temp;
	if (dev_fingerprint(s, &fp, &temp, &err) < 0)
		goto fail;
	int stage = 0;
	if (cli_dev_harness(s, NULL, quant, wd, sizeof wd, build_hash, &stage, &err) < 0)
		goto fail;
	long long threads = proto.threads ? proto.threads : dev.threads;
	double ref_t[PROF_MAX_SHAPES], ref_d[PROF_MAX_SHAPES];
	size_t max_rd = n_archs / (ref_every > 0 ? (size_t)ref_every : n_archs + 1) + 3;
	rd_pos = calloc(max_rd, sizeof *rd_pos);
	rd_t = calloc(max_rd * proto.n_shapes, sizeof *rd_t);
	rd_d = calloc(max_rd * proto.n_shapes, sizeof *rd_d);
	if (!rd_pos || !rd_t || !rd_d) {
		tl_err_set(&err, TL_ENOMEM, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < n_archs; i++) {
		char local[1024], remote[64];
		if (cli_temp_file(local, sizeof local, "tailor-prof", archs[i], &err) < 0) {
			tl_err_prefix(&err, "profile-ops");
			goto fail;
		}
		snprintf(remote, sizeof remote, "arch-%03zu.txt", i);
		int up = dev_upload(s, local, wd, remote, 0644, &err);
		unlink(local);
		if (up < 0 || op_arch_parse(a, archs[i], remote, &err) < 0)
			goto fail;
		for (size_t sh = 0; sh < proto.n_shapes; sh++) {
			char num[5][24];
			snprintf(num[0], 24, "%lld", (long long)proto.shapes[sh].prompt);
			snprintf(num[1], 24, "%lld", (long long)proto.shapes[sh].gen);
			snprintf(num[2], 24, "%lld", (long long)proto.shapes[sh].depth);
			snprintf(num[3], 24, "%lld", threads);
			const char *hargs[] = {"--arch", remote, "--prompt", num[0], "--gen", num[1],
			                       "--depth", num[2], "--quant", quant, "--kv", "f16",
			                       "--repeat", "1", "--layer-times",
			                       threads > 0 ? "--threads" : NULL, num[3], NULL};
			prof_result res;
			char failure[16];
			if (cli_dev_measure(s, &dev, wd, hargs, &proto, (double)timeout, &res, failure,
			                    &err) < 0) {
				prof_result_free(&res);
				tl_err_prefix(&err, "profile-ops: %s: model %zu (%s)", name, i, failure);
				goto fail;
			}
			for (size_t k = res.first; k < res.n; k++) {
				if (n_pend == cap_pend) {
					cap_pend = cap_pend ? cap_pend * 2 : 64;
					pending_run *np = realloc(pend, cap_pend * sizeof *np);
					if (np == NULL) {
						prof_result_free(&res);
						tl_err_set(&err, TL_ENOMEM, "out of memory");
						goto fail;
					}
					pend = np;
				}
				pend[n_pend++] = (pending_run){i, sh, res.samples[k].raw};
				res.samples[k].raw = NULL; /* taken */
			}
			if (i == 0) { /* the first drift reading: the state the table is scaled to */
				ref_t[sh] = rd_t[sh] = res.ttft_ms.median;
				ref_d[sh] = rd_d[sh] = res.decode_ms_p50.median;
				rd_pos[0] = 0.5;
				n_rd = 1;
			}
			fprintf(stderr, "tailor: profile-ops: model %zu/%zu (%d layers) P%lld/N%lld/D%lld: "
			        "ttft %.1f ms, decode %.3f ms (cv %.1f%%%s), %.1f MiB; %.0f s\n", i + 1,
			        n_archs, a->n_layers, (long long)proto.shapes[sh].prompt,
			        (long long)proto.shapes[sh].gen, (long long)proto.shapes[sh].depth,
			        res.ttft_ms.median, res.decode_ms_p50.median, 100 * res.decode_ms_p50.cv,
			        res.remeasured ? ", re-measured" : "", res.peak_rss_bytes.median / 1048576.0,
			        tl_now_s() - t0);
			prof_result_free(&res);
		}
		if (ref_every > 0 && (i + 1) % (size_t)ref_every == 0 && i + 1 < n_archs &&
		    n_rd >= 1 && n_rd + 1 < max_rd) {
			size_t S = proto.n_shapes;
			for (size_t sh = 0; sh < S; sh++)
				if (measure_ref(s, &dev, wd, &proto, &proto.shapes[sh], quant, threads, timeout,
				                &rd_t[n_rd * S + sh], &rd_d[n_rd * S + sh], &err) < 0)
					goto fail;
			rd_pos[n_rd++] = (double)(i + 1);
		}
	}
	/* the last drift reading, then every run scaled to the first reading's
	 * state (ratios interpolated at the run's place) and recorded */
	if (n_rd >= 1 && n_rd < max_rd && rd_pos[n_rd - 1] < (double)n_archs) {
		for (size_t sh = 0; sh < proto.n_shapes; sh++)
			if (measure_ref(s, &dev, wd, &proto, &proto.shapes[sh], quant, threads, timeout,
			                &rd_t[n_rd * proto.n_shapes + sh], &rd_d[n_rd * proto.n_shapes + sh],
			                &err) < 0)
				goto fail;
		rd_pos[n_rd++] = (double)n_archs;
	}
	for (size_t r = 0; r < n_rd; r++)
		for (size_t sh = 0; sh < proto.n_shapes; sh++)
			fprintf(stderr, "tailor: profile-ops: drift reading %zu after %.1f models, shape %zu: "
			        "ttft %+.1f%%, decode %+.1f%% since the start\n", r, rd_pos[r], sh,
			        100 * (rd_t[r * proto.n_shapes + sh] / rd_t[sh] - 1),
			        100 * (rd_d[r * proto.n_shapes + sh] / rd_d[sh] - 1));
	for (size_t q = 0; q < n_pend; q++) {
		const pending_run *pr = &pend[q];
		size_t S = proto.n_shapes, sh = pr->shape;
		double x = (double)pr->model + 0.5, ratio[2] = {1, 1};
		if (n_rd >= 2) {
			size_t j = 0;
			while (j + 2 < n_rd && rd_pos[j + 1] < x)
				j++;
			double w = (x - rd_pos[j]) / (rd_pos[j + 1] - rd_pos[j]);
			if (w < 0)
				w = 0;
			ratio[0] = ((1 - w) * rd_t[j * S + sh] + w * rd_t[(j + 1) * S + sh]) / rd_t[sh];
			ratio[1] = ((1 - w) * rd_d[j * S + sh] + w * rd_d[(j + 1) * S + sh]) / rd_d[sh];
		}
		if (op_arch_parse(a, archs[pr->model], "profiling model", &err) < 0 ||
		    read_obs(&ob, pr->raw, a->n_layers, &err) < 0)
			goto fail;
		int n = a->n_layers;
		for (int l = 0; l < n; l++) {
			ob.v[l] /= ratio[0];     /* layer_prefill_ms */
			ob.v[n + l] /= ratio[1]; /* layer_decode_ms  */
		}
		ob.obs.ttft_ms /= ratio[0];
		ob.obs.decode_ms /= ratio[1];
		if (prof_table_observe(table, sh, a, &ob.obs, &err) < 0)
			goto fail;
	}
	if (prof_table_finish(table, &err) < 0 ||
	    prof_table_set_ref(table, archs[0], ref_t, ref_d, &err) < 0)
		goto fail;
	/* 4. store it */
	tjson = prof_table_json(table);
	pjson = prof_protocol_json(&proto);
	if (tjson == NULL || pjson == NULL) {
		tl_err_set(&err, TL_ENOMEM, "out of memory");
		goto fail;
	}
	size_t nk = prof_table_n_keys(table), ns = prof_table_n_shapes(table);
	db_optable_entry *ent = calloc(nk * ns + 1, sizeof *ent);
	if (ent == NULL) {
		tl_err_set(&err, TL_ENOMEM, "out of memory");
		goto fail;
	}
	for (size_t k = 0; k < nk; k++)
		for (size_t sh = 0; sh < ns; sh++) {
			prof_entry e;
			prof_table_entry(table, k, sh, &e);
			prof_shape shp = prof_table_shape(table, sh);
			ent[k * ns + sh] = (db_optable_entry){e.key, shp.prompt, shp.gen, shp.depth,
			                                      e.prefill_ms, e.decode_ms, e.decode_cv,
			                                      (int64_t)e.weight_bytes,
			                                      (int64_t)e.state_bytes, e.instances};
		}
	char phash[65];
	tl_sha256_hex(pjson, strlen(pjson), phash);
	db_optable row = {0};
	row.device_id = dev.id;
	row.space_hash = (char *)genome_space_hash(space);
	row.space_name = (char *)space_file;
	row.quant = (char *)quant;
	row.kv = "f16";
	row.protocol = pjson;
	row.protocol_hash = phash;
	row.build_hash = build_hash;
	row.device_fingerprint = fp;
	row.table_json = tjson;
	row.threads = threads > 0 ? threads : -1;
	row.n_keys = (int64_t)nk;
	row.n_archs = (int64_t)n_archs;
	row.seconds = tl_now_s() - t0;
	int64_t id = 0;
	int arc = db_optable_add(db, &row, ent, nk * ns, &id, &err);
	free(ent);
	if (arc < 0)
		goto fail;
	if (json) {
		printf("%s\n", tjson);
	} else {
		printf("operator table %lld of %s for %s: %zu layer configurations x %zu shape(s), "
		       "from %zu profiling models in %.0f s\n", (long long)id, name, space_file, nk, ns,
		       n_archs, row.seconds);
		for (size_t sh = 0; sh < ns; sh++) {
			prof_fixed f;
			prof_shape shp = prof_table_shape(table, sh);
			prof_table_fixed(table, sh, &f);
			printf("  P%lld/N%lld/D%lld: fixed prefill %.2f ms, fixed decode %.3f ms, memory "
			       "%.1f MiB + %.2f x activations (%lld runs)\n", (long long)shp.prompt,
			       (long long)shp.gen, (long long)shp.depth, f.prefill_ms, f.decode_ms,
			       f.rss_bytes / 1048576.0, f.rss_alpha, (long long)f.runs);
		}
		printf("  per configuration: tailor query \"SELECT layer_key, prefill_ms, decode_ms, cv "
		       "FROM op_table_entries WHERE table_id = %lld ORDER BY decode_ms DESC\"\n",
		       (long long)id);
	}
	rc = CLI_OK;
fail:
	if (rc != CLI_OK)
		rc = cli_fail(&err);
	if (s && wd[0]) {
		tl_err e2 = TL_ERR_INIT;
		dev_workdir_remove(s, wd, &e2);
	}
	dev_session_close(s);
	dev_lock_release(lock);
	db_close(db);
	for (size_t q = 0; q < n_pend; q++)
		free(pend[q].raw);
	free(pend);
	free(rd_pos);
	free(rd_t);
	free(rd_d);
	free(ob.v);
	free(tjson);
	free(pjson);
	free(fp);
	free(arch_text);
	for (size_t i = 0; i < n_archs; i++)
		free(archs[i]);
	free(archs);
	prof_table_free(table);
	prof_keyset_free(&ks);
	genome_space_free(space);
	free(a);
	return rc;
}

/* ---- predict ------------------------------------------------------------------------ */

int cli_predict_device(const char *db_path, const char *device, const char *space_hash,
                       const char *arch_text, const char *genome_text, int prompt, int gen,
                       int depth, double v[3], tl_err *err)
{
	db_conn *db = NULL;
	db_device dev;
	db_optable row = {0};
	prof_table *t = NULL;
	op_arch *a = malloc(sizeof *a);
	int rc;
	if (a == NULL)
		return tl_err_set(err, TL_ENOMEM, "out of memory");
	if ((rc = db_open(&db, db_path, 0, err)) < 0 || (rc = db_device_get(db, device, &dev, err)) < 0)
		goto out;
	rc = db_optable_latest(db, dev.id, space_hash, NULL, &row, err);
	if (rc == TL_ENOTFOUND) {
		*err = (tl_err)TL_ERR_INIT;
		rc = db_optable_latest(db, dev.id, NULL, NULL, &row, err);
	}
	if (rc < 0) {
		if (rc == TL_ENOTFOUND)
			tl_err_prefix(err, "predict: %s has no operator table (run 'tailor device "
			              "profile-ops %s --space FILE')", device, device);
		goto out;
	}
	char src[32];
	snprintf(src, sizeof src, "table %lld", (long long)row.id);
	if ((rc = prof_table_from_json(&t, row.table_json, src, err)) < 0 ||
	    (rc = op_arch_parse(a, arch_text, "genome", err)) < 0)
		goto out;
	prof_shape sh = {prompt, gen, depth};
	prof_pred p;
	if ((rc = prof_predict(t, a, &sh, &p, err)) < 0)
		goto out;
	char hash[65];
	tl_sha256_hex(arch_text, strlen(arch_text), hash);
	db_prediction pr = {row.id, hash, prompt, gen, depth, p.ttft_ms, p.decode_ms,
	                    (int64_t)llround(p.peak_rss_bytes), 0};
	if ((rc = db_genome_ensure(db, hash, genome_text, -1, err)) < 0 ||
	    (rc = db_prediction_add(db, &pr, NULL, err)) < 0)
		goto out;
	v[0] = p.ttft_ms;
	v[1] = p.decode_ms;
	v[2] = p.peak_rss_bytes;
out:
	prof_table_free(t);
	db_optable_clear(&row);
	db_close(db);
	free(a);
	return rc;
}

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

static int load_table(prof_table **t, db_optable *row, db_conn *db, int64_t device_id,
                      long long table_id, const char *space_hash, tl_err *err)
{
	int rc = table_id > 0 ? db_optable_get(db, table_id, row, err)
	                      : db_optable_latest(db, device_id, space_hash, NULL, row, err);
	if (rc < 0)
		return rc;
	if (row->device_id != device_id)
		return tl_err_set(err, TL_EINVAL, "--table %lld: a table of another device (its tables: "
		                  "tailor query \"SELECT id, device_id, space_name, created_at FROM "
		                  "op_tables\")", table_id);
	char src[32];
	snprintf(src, sizeof src, "table %lld", (long long)row->id);
	return prof_table_from_json(t, row->table_json, src, err);
}

/* Measure an arch on the device under protocol file pfile: TTFT, decode. */
static int measure_arch(const char *db_path, const char *device, const char *arch_text,
                        const char *genome_text, const prof_shape *sh, const char *pfile,
                        const char *quant, long long timeout, double v[3], int64_t *mid,
                        tl_err *err)
{
	cli_dev_bench_args ba = {sh->prompt, sh->gen, sh->depth, 0, 1, (double)timeout, 1, quant,
	                         "f16", false, pfile, NULL, NULL, NULL, NULL, NULL};
	cJSON *m = NULL;
	if (cli_measure_device(db_path, device, arch_text, genome_text, &ba, &m, err) < 0)
		return err->code;
	const char *keys[4] = {"ttft_ms", "decode_ms_p50", "peak_rss_bytes", "measurement_id"};
	for (int q = 0; q < 4; q++) {
		const cJSON *x = cJSON_GetObjectItemCaseSensitive(m, keys[q]);
		double d = cJSON_IsNumber(x) ? x->valuedouble : NAN;
		if (q < 3)
			v[q] = d;
		else if (mid)
			*mid = isfinite(d) ? (int64_t)d : 0;
	}
	cJSON_Delete(m);
	return 0;
}

static void acc_row(const char *metric, const prof_accuracy *a)
{
	printf("%-14s %4zu  %6.2f%%  %+6.2f%%  %6.2f%%  %6.1f%%  %6.1f%%\n", metric, a->n,
	       100 * a->rmspe, 100 * a->bias, 100 * a->max_abs, 100 * a->within5, 100 * a->within10);
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
	db_optable row = {0};
	prof_table *t = NULL;
	genome_space *space = NULL;
	char *text = NULL, *arch_text = NULL;
	op_arch *a = malloc(sizeof *a);
	double *vals = NULL;
	cJSON *out = NULL;
	static char pfiles[PROF_MAX_SHAPES][1024]; /* --validate: a protocol per shape */
	size_t n_pfiles = 0;
	double *rpos = NULL, *rratio = NULL; /* --validate: the reference model's readings */
	int rc = CLI_FAIL;
	if (a == NULL) {
		tl_err_set(&err, TL_ENOMEM, "out of memory");
		goto fail;
	}
	if (space_file && genome_space_load(&space, space_file, &err) < 0)
		goto fail;
	if (db_open(&db, db_path_resolve(db_flag), 0, &err) < 0 || db_device_get(db, device, &dev, &err) < 0)
		goto fail;
	if (load_table(&t, &row, db, dev.id, table_id, space ? genome_space_hash(space) : NULL,
	               &err) < 0) {
		if (err.code == TL_ENOTFOUND && table_id > 0)
			tl_err_prefix(&err, "predict: --table %lld: no such table (the tables: tailor query "
			              "\"SELECT id, device_id, space_name FROM op_tables\")", table_id);
		else if (err.code == TL_ENOTFOUND)
			tl_err_prefix(&err, "predict: %s has no operator table%s (run 'tailor device "
			              "profile-ops %s --space FILE')", device,
			              space ? " for this space" : "", device);
		goto fail;
	}
	size_t nshapes = prof_table_n_shapes(t);
	prof_shape shapes[PROF_MAX_SHAPES];
	if (prompt >= 0) {
		nshapes = 1;
		shapes[0] = (prof_shape){prompt, gen, depth};
	} else {
		for (size_t i = 0; i < nshapes; i++)
			shapes[i] = prof_table_shape(t, i);
	}

	if (!validate) {
		genome g;
		if (cli_load_genome(&g, argv[optind], &err) < 0 ||
		    genome_arch_of(a, &arch_text, &g, &err) < 0)
			goto fail;
		char hash[65];
		tl_sha256_hex(arch_text, strlen(arch_text), hash);
		text = genome_to_text(&g);
		if (db_genome_ensure(db, hash, text ? text : "", -1, &err) < 0)
			goto fail;
		out = cJSON_CreateArray();
		for (size_t i = 0; i < nshapes; i++) {
			prof_pred p;
			if (prof_predict(t, a, &shapes[i], &p, &err) < 0)
				goto fail;
			if (!json && i == 0)
				printf("%s on %s (table %lld):\n%-22s %12s %12s %12s\n", argv[optind], device,
				       (long long)row.id, "prompt/gen/depth", "TTFT ms", "decode ms",
				       "peak MiB");
			db_prediction pr = {row.id, hash, shapes[i].prompt, shapes[i].gen, shapes[i].depth,
			                    p.ttft_ms, p.decode_ms, (int64_t)llround(p.peak_rss_bytes), 0};
			if (db_prediction_add(db, &pr, NULL, &err) < 0)
				goto fail;
			char sh[64];
			snprintf(sh, sizeof sh, "%lld/%lld/%lld", (long long)shapes[i].prompt,
			         (long long)shapes[i].gen, (long long)shapes[i].depth);
			if (!json)
				printf("%-22s %12.2f %12.3f %12.1f%s%s\n", sh, p.ttft_ms, p.decode_ms,
				       p.peak_rss_bytes / 1048576.0, p.note[0] ? "  " : "", p.note);
			cJSON *o = cJSON_CreateObject();
			cJSON_AddNumberToObject(o, "prompt", (double)shapes[i].prompt);
			cJSON_AddNumberToObject(o, "gen", (double)shapes[i].gen);
			cJSON_AddNumberToObject(o, "depth", (double)shapes[i].depth);
			cJSON_AddNumberToObject(o, "ttft_ms", p.ttft_ms);
			cJSON_AddNumberToObject(o, "decode_ms", p.decode_ms);
			cJSON_AddNumberToObject(o, "peak_rss_bytes", p.peak_rss_bytes);
			cJSON_AddNumberToObject(o, "table_id", (double)row.id);
			cJSON_AddStringToObject(o, "note", p.note);
			cJSON_AddItemToArray(out, o);
		}
		if (json) {
			char *s = cJSON_PrintUnformatted(out);
			printf("%s\n", s ? s : "[]");
			free(s);
		}
		rc = CLI_OK;
		goto fail;
	}

	/* --validate: K genomes, each predicted then measured on the device,
	 * under the table's protocol (or --protocol FILE), one file per shape */
	{
		prof_protocol base;
		prof_protocol_init(&base);
		if (proto_file ? prof_protocol_load(&base, proto_file, &err) < 0
		               : row.protocol && prof_protocol_parse(&base, row.protocol, &err) < 0)
			goto fail;
		for (size_t i = 0; i < nshapes; i++) {
			prof_protocol one = base;
			one.n_shapes = 1;
			one.shapes[0] = shapes[i];
			char *pj = prof_protocol_json(&one);
			if (pj == NULL) {
				tl_err_set(&err, TL_ENOMEM, "out of memory");
				goto fail;
			}
			int wrc = cli_temp_file(pfiles[i], sizeof pfiles[i], "tailor-proto", pj, &err);
			free(pj);
			if (wrc < 0) {
				tl_err_prefix(&err, "predict");
				goto fail;
			}
			n_pfiles++;
		}
	}
	size_t K = (size_t)samples;
	vals = calloc(K * nshapes * 6, sizeof *vals); /* pred t,d,r then meas t,d,r */
	if (vals == NULL) {
		tl_err_set(&err, TL_ENOMEM, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < K * nshapes * 6; i++)
		vals[i] = NAN;
	/* the table's reference model, measured again before the genomes, every
	 * --ref-every genomes and after them: how far the device has drifted
	 * since the table (ratios now/then, per shape, TTFT and decode) */
	size_t n_reads = 0, max_reads = K / (ref_every ? (size_t)ref_every : K + 1) + 2;
	rpos = calloc(max_reads, sizeof *rpos);
	rratio = calloc(max_reads * nshapes * 2, sizeof *rratio);
	bool have_ref = prompt < 0;
	const char *quant = row.quant ? row.quant : "q4_0";
	if (rpos == NULL || rratio == NULL) {
		tl_err_set(&err, TL_ENOMEM, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < nshapes; i++) {
		double rt, rd;
		if (prof_table_ref(t, i, &rt, &rd) == NULL)
			have_ref = false;
	}
#define REF_READING(pos, when)                                                                  \
	do {                                                                                        \
		for (size_t i_ = 0; have_ref && i_ < nshapes; i_++) {                                   \
			double rt_, rd_, v_[3];                                                             \
			const char *ref_ = prof_table_ref(t, i_, &rt_, &rd_);                               \
			if (measure_arch(db_path_resolve(db_flag), device, ref_, "", &shapes[i_],          \
			                 pfiles[i_], quant, timeout, v_, NULL, &err) < 0)                   \
				goto fail;                                                                      \
			rratio[(n_reads * nshapes + i_) * 2] = v_[0] / rt_;                                 \
			rratio[(n_reads * nshapes + i_) * 2 + 1] = v_[1] / rd_;                             \
			fprintf(stderr, "tailor: predict: the table's reference model %s: ttft %.1f ms "     \
			        "(%+.1f%% since the table), decode %.3f ms (%+.1f%%)\n", when, v_[0],        \
			        100 * (v_[0] / rt_ - 1), v_[1], 100 * (v_[1] / rd_ - 1));                   \
		}                                                                                       \
		if (have_ref)                                                                           \
			rpos[n_reads++] = (pos);                                                            \
	} while (0)
	REF_READING(0.0, "before the genomes");
	tl_rng rng;
	tl_rng_seed(&rng, (uint64_t)seed, 0x76616c69 /* "vali" */);
	out = cJSON_CreateArray();
	double t0 = tl_now_s();
	for (size_t k = 0; k < K; k++) {
		genome g;
		if (k > 0 && ref_every > 0 && k % (size_t)ref_every == 0 && n_reads + 1 < max_reads)
			REF_READING((double)k, "now");
		free(arch_text);
		free(text);
		arch_text = text = NULL;
		if (genome_sample(&g, space, &rng, &err) < 0 || genome_arch_of(a, &arch_text, &g, &err) < 0)
			goto fail;
		text = genome_to_text(&g);
		char hash[65];
		tl_sha256_hex(arch_text, strlen(arch_text), hash);
		for (size_t i = 0; i < nshapes; i++) {
			double *v = vals + (k * nshapes + i) * 6;
			prof_pred p;
			if (prof_predict(t, a, &shapes[i], &p, &err) < 0) {
				fprintf(stderr, "tailor: predict: genome %zu: %s (skipped)\n", k + 1, err.msg);
				err = (tl_err)TL_ERR_INIT;
				continue;
			}
			double mv[3];
			int64_t mid = 0;
			if (measure_arch(db_path_resolve(db_flag), device, arch_text, text ? text : "",
			                 &shapes[i], pfiles[i], quant, timeout, mv, &mid, &err) < 0) {
				fprintf(stderr, "tailor: predict: genome %zu: measurement failed: %s\n", k + 1,
				        err.msg);
				err = (tl_err)TL_ERR_INIT;
				continue;
			}
			v[0] = p.ttft_ms;
			v[1] = p.decode_ms;
			v[2] = p.peak_rss_bytes;
			v[3] = mv[0];
			v[4] = mv[1];
			v[5] = mv[2];
			db_prediction pr = {row.id, hash, shapes[i].prompt, shapes[i].gen, shapes[i].depth,
			                    v[0], v[1], (int64_t)llround(v[2]), mid};
			if (db_prediction_add(db, &pr, NULL, &err) < 0)
				goto fail;
			fprintf(stderr, "tailor: predict: %zu/%zu %.12s P%lld/D%lld: ttft %.1f ms (pred "
			        "%+.1f%%), decode %.3f ms (%+.1f%%), rss %.1f MiB (%+.1f%%)%s%s; %.0f s\n",
			        k + 1, K, hash, (long long)shapes[i].prompt, (long long)shapes[i].depth, v[3],
			        100 * (v[0] - v[3]) / v[3], v[4], 100 * (v[1] - v[4]) / v[4],
			        v[5] / 1048576.0, 100 * (v[2] - v[5]) / v[5], p.note[0] ? "; " : "", p.note,
			        tl_now_s() - t0);
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "genome_hash", hash);
			cJSON_AddNumberToObject(o, "prompt", (double)shapes[i].prompt);
			cJSON_AddNumberToObject(o, "gen", (double)shapes[i].gen);
			cJSON_AddNumberToObject(o, "depth", (double)shapes[i].depth);
			const char *names[6] = {"pred_ttft_ms", "pred_decode_ms", "pred_peak_rss_bytes",
			                        "ttft_ms", "decode_ms", "peak_rss_bytes"};
			for (int q = 0; q < 6; q++)
				cJSON_AddNumberToObject(o, names[q], v[q]);
			cJSON_AddItemToArray(out, o);
		}
	}
	REF_READING((double)K, "after the genomes");
#undef REF_READING
	cJSON *summary = cJSON_CreateObject();
	if (!json)
		printf("predictor accuracy on %s: table %lld, %zu random genomes of %s (seed %lld)\n",
		       device, (long long)row.id, K, space_file, seed);
	for (size_t i = 0; i < nshapes; i++) {
		double *pv[3], *mv[3];
		for (int q = 0; q < 3; q++) {
			pv[q] = malloc(K * sizeof(double));
			mv[q] = malloc(K * sizeof(double));
			for (size_t k = 0; pv[q] && mv[q] && k < K; k++) {
				pv[q][k] = vals[(k * nshapes + i) * 6 + q];
				mv[q][k] = vals[(k * nshapes + i) * 6 + 3 + q];
			}
		}
		prof_accuracy acc[3];
		for (int q = 0; q < 3; q++) {
			if (pv[q] && mv[q])
				prof_accuracy_compute(&acc[q], pv[q], mv[q], K);
			else
				memset(&acc[q], 0, sizeof acc[q]);
			free(pv[q]);
			free(mv[q]);
		}
		const char *mn[3] = {"ttft", "decode", "peak_rss"};
		char sk[64];
		snprintf(sk, sizeof sk, "%lld/%lld/%lld", (long long)shapes[i].prompt,
		         (long long)shapes[i].gen, (long long)shapes[i].depth);
		cJSON *so = cJSON_AddObjectToObject(summary, sk);
		for (int q = 0; q < 3; q++) {
			cJSON *x = cJSON_AddObjectToObject(so, mn[q]);
			cJSON_AddNumberToObject(x, "n", (double)acc[q].n);
			cJSON_AddNumberToObject(x, "rmspe", acc[q].rmspe);
			cJSON_AddNumberToObject(x, "bias", acc[q].bias);
			cJSON_AddNumberToObject(x, "max_abs", acc[q].max_abs);
			cJSON_AddNumberToObject(x, "within5", acc[q].within5);
			cJSON_AddNumberToObject(x, "within10", acc[q].within10);
		}
		/* drift-corrected: each prediction times the reference model's ratio
		 * now/then, interpolated between the readings around the genome */
		prof_accuracy dacc[2];
		bool corrected = have_ref && n_reads >= 2;
		double mean_ratio[2] = {NAN, NAN};
		for (int q = 0; corrected && q < 2; q++) {
			double *pc = malloc(K * sizeof(double)), *mc = malloc(K * sizeof(double));
			double rsum = 0;
			for (size_t k = 0; pc && mc && k < K; k++) {
				double x = (double)k + 0.5;
				size_t j = 0;
				while (j + 2 < n_reads && rpos[j + 1] < x)
					j++;
				double r0 = rratio[(j * nshapes + i) * 2 + q];
				double r1 = rratio[((j + 1) * nshapes + i) * 2 + q];
				double w = (x - rpos[j]) / (rpos[j + 1] - rpos[j]);
				double r = (1 - w) * r0 + w * r1;
				rsum += r;
				pc[k] = vals[(k * nshapes + i) * 6 + q] * r;
				mc[k] = vals[(k * nshapes + i) * 6 + 3 + q];
			}
			mean_ratio[q] = rsum / (double)K;
			if (pc && mc)
				prof_accuracy_compute(&dacc[q], pc, mc, K);
			else
				memset(&dacc[q], 0, sizeof dacc[q]);
			free(pc);
			free(mc);
			cJSON *x = cJSON_AddObjectToObject(so, q ? "decode_drift_corrected" : "ttft_drift_corrected");
			cJSON_AddNumberToObject(x, "mean_ratio", mean_ratio[q]);
			cJSON_AddNumberToObject(x, "rmspe", dacc[q].rmspe);
			cJSON_AddNumberToObject(x, "bias", dacc[q].bias);
			cJSON_AddNumberToObject(x, "max_abs", dacc[q].max_abs);
			cJSON_AddNumberToObject(x, "within5", dacc[q].within5);
			cJSON_AddNumberToObject(x, "within10", dacc[q].within10);
		}
		if (!json) {
			printf("\nprompt/gen/depth %s\n%-14s %4s  %7s  %7s  %7s  %7s  %7s\n", sk, "metric", "n",
			       "RMSPE", "bias", "max", "<=5%", "<=10%");
			acc_row("TTFT", &acc[0]);
			acc_row("decode", &acc[1]);
			acc_row("peak RSS", &acc[2]);
			if (corrected) {
				printf("drift-corrected (x the reference model's ratio now/then from %zu "
				       "readings, mean ttft %.4f, decode %.4f):\n", n_reads, mean_ratio[0],
				       mean_ratio[1]);
				acc_row("TTFT", &dacc[0]);
				acc_row("decode", &dacc[1]);
			}
		}
	}
	if (json) {
		cJSON *j = cJSON_CreateObject();
		cJSON_AddNumberToObject(j, "table_id", (double)row.id);
		cJSON_AddItemToObject(j, "accuracy", summary);
		cJSON_AddItemToObject(j, "genomes", out);
		out = NULL;
		char *s = cJSON_PrintUnformatted(j);
		printf("%s\n", s ? s : "{}");
		free(s);
		cJSON_Delete(j);
	} else {
		cJSON_Delete(summary);
	}
	rc = CLI_OK;
fail:
	if (rc != CLI_OK)
		rc = cli_fail(&err);
	for (size_t i = 0; i < n_pfiles; i++)
		unlink(pfiles[i]);
	free(rpos);
	free(rratio);
	cJSON_Delete(out);
	free(vals);
	free(text);
	free(arch_text);
	free(a);
	prof_table_free(t);
	db_optable_clear(&row);
	genome_space_free(space);
	db_close(db);
	return rc;
}
