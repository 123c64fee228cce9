/*
 * cli/cmd_build.c: `tailor build` and `tailor bench`: compile the on-device
 * harness of a genome and measure it on this machine.
 *
 *   build GENOME [-o DIR] [--cc CC] [--cflags FLAGS] [--quant Q]
 *       emit a self-contained build dir (operators/op_emit.h) and compile it;
 *       without -o the build lands in the build cache and is reused.
 *   bench GENOME [--prompt P] [--gen N] [--depth D] [--threads T] [--quant Q]
 *                [--kv K] [--seed S] [--repeat R] [--cc CC] [--cflags F] [--json]
 *       build through the cache, run the harness here (fork/exec, no shell),
 *       read its JSON and summarise it (or pass it through with --json).
 *   bench --bandwidth [--threads T] [--json]
 *       read / copy bandwidth and the FMA and int8-dot peaks, measured by a
 *       harness compiled for this machine (the same flags as a build), so the
 *       figures are those of the kernels a build runs.
 *
 * The harness runs locally; running it on a device over SSH is the devices
 * room's job, and repeats with statistics the profiler's host side.
 */
#include "cli.h"
#include "measure.h"
#include "genome.h"
#include "op_emit.h"
#include "tailor_config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define HARNESS_MAX_OUT (4u << 20) /* bytes of harness stdout we accept */
#define HARNESS_MAX_ERR 4096       /* bytes of harness stderr we keep   */

/* ---- shared -------------------------------------------------------------------- */

static void build_help(FILE *f)
{
	fprintf(f,
	        "usage: tailor build GENOME [-o DIR] [--cc CC] [--cflags FLAGS] [--quant Q]\n"
	        "\n"
	        "Write a self-contained build dir of the on-device harness for GENOME (its\n"
	        "runtime sources, arch.txt, a Makefile, build.json) and compile it into\n"
	        "DIR/tailor-bench, which runs with no argument and prints one JSON object.\n"
	        "To build for a phone, copy the dir and run make there, or give its\n"
	        "toolchain: --cc aarch64-linux-gnu-gcc --cflags '-O2 -march=armv8.2-a+dotprod'.\n"
	        "\n"
	        "GENOME is a file (text or JSON), a preset name (lfm2-350m, ...), '-' for\n"
	        "standard input, or the text form itself ('tailor-genome/1 d=...').\n"
	        "\n"
	        "options:\n"
	        "  -o, --output DIR  build there (reused when it holds the same build); default:\n"
	        "                    the build cache, $TAILOR_CACHE/builds/KEY (else\n"
	        "                    ~/.cache/tailor/builds/KEY), reused when complete\n"
	        "  --cc CC           compiler command (default cc)\n"
	        "  --cflags FLAGS    compiler flags (default '-O3 -march=native'); split at\n"
	        "                    spaces, no quoting\n"
	        "  --quant Q         the harness's default weights: q4_0 (default), q8_0, f32\n"
	        "  -h, --help        this help\n"
	        "\n"
	        "The build key is the SHA-256 of the runtime sources, compiler, its version,\n"
	        "flags, default quant and the architecture; it is the build id the harness\n"
	        "reports. A failed compile prints its first error and the log's path.\n");
}

static void bench_help(FILE *f)
{
	fprintf(f,
	        "usage: tailor bench GENOME [--prompt P] [--gen N] [--depth D] [--threads T]\n"
	        "                    [--quant Q] [--kv K] [--seed S] [--repeat R] [--timeout SEC]\n"
	        "                    [--cc CC] [--cflags FLAGS] [--json] [--device NAME]...\n"
	        "                    [--protocol FILE] [--warmup N] [--repeats N] [--cv X]\n"
	        "                    [--min-time SEC]\n"
	        "       tailor bench --bandwidth [--threads T] [--cc CC] [--cflags FLAGS] [--json]\n"
	        "\n"
	        "Build GENOME's harness through the build cache (see 'tailor build --help'),\n"
	        "run it on this machine and summarise its measurement: TTFT (prefill of P\n"
	        "random tokens at context depth D, then the first token), decode latency\n"
	        "p50/p95 over N greedy steps starting at position D+P, tokens/s, peak RSS and\n"
	        "the model's weight, cache and activation bytes. Weights are random (from the\n"
	        "seed): speed and memory do not depend on trained values.\n"
	        "\n"
	        "options:\n"
	        "  --prompt P        prompt tokens (default 512)\n"
	        "  --gen N           decode steps (default 128)\n"
	        "  --depth D         positions filled before the prompt (default 0)\n"
	        "  --threads T       threads (default 2)\n"
	        "  --quant Q         weights: q4_0 (default), q8_0 or f32\n"
	        "  --kv K            KV cache: f16 (default) or f32\n"
	        "  --seed S          seed of the weights and the prompt (default 1)\n"
	        "  --repeat R        in-process repeats, figures are medians (default 1);\n"
	        "                    with --device: the protocol's repeats (as --repeats)\n"
	        "  --timeout SEC     stop the harness after SEC seconds (default 3600)\n"
	        "  --cc CC           compiler of the build (default cc)\n"
	        "  --cflags FLAGS    its flags (default '-O3 -march=native')\n"
	        "  --bandwidth       measure read and copy bandwidth and the FMA and int8-dot\n"
	        "                    peaks instead (no GENOME)\n"
	        "  --json            print the harness's JSON object as it is\n"
	        "  --device NAME     run on registered device NAME instead (repeatable: the\n"
	        "                    devices run in parallel), with its toolchain, run prefix\n"
	        "                    and threads, and store the measurement (status, reason on\n"
	        "                    failure, device fingerprint) in the database (--db before\n"
	        "                    the command); exit 1 when any device failed\n"
	        "  --protocol FILE   with --device: the measurement protocol (JSON; see\n"
	        "                    docs/devices.md): warm-up, repeats, CV threshold and\n"
	        "                    re-measurement, minimum time, delay, thermal gate,\n"
	        "                    threads, pinning, shapes\n"
	        "  --warmup N        with --device: warm-up runs, discarded (default 1)\n"
	        "  --repeats N       with --device: measured runs per round (default 5)\n"
	        "  --cv X            with --device: re-measure while the decode CV is above X\n"
	        "                    (default 0.05; 0: never), at most 2 extra rounds\n"
	        "  --min-time SEC    with --device: a round lasts at least SEC s (default 0)\n"
	        "  -h, --help        this help\n");
}

static int arch_of(char **text, char hash[65], const char *arg, tl_err *err)
{
	genome g;
	*text = NULL;
	if (cli_load_genome(&g, arg, err) < 0)
		return TL_EUSAGE;
	int rc = cli_genome_arch_text(text, hash, &g, err);
	if (rc < 0)
		tl_err_prefix(err, "genome %s", arg);
	return rc;
}

static int do_build(op_emit_result *r, const char *dir, const char *arch_text,
                    const op_emit_opts *o, bool quiet, tl_err *err)
{
	if (!quiet && isatty(STDERR_FILENO))
		fprintf(stderr, "tailor: building the harness (%s %s)...\r", o->cc, o->cflags);
	int rc = op_emit_build(r, dir, arch_text, o, err);
	if (!quiet && isatty(STDERR_FILENO))
		fprintf(stderr, "\033[K");
	return rc;
}

/* ---- tailor build ------------------------------------------------------------- */

int cmd_build(int argc, char **argv, cli_ctx *ctx)
{
	static const struct option longopts[] = {
		{"help", no_argument, NULL, 'h'},        {"output", required_argument, NULL, 'o'},
		{"cc", required_argument, NULL, 'c'},    {"cflags", required_argument, NULL, 'f'},
		{"quant", required_argument, NULL, 'q'}, {NULL, 0, NULL, 0},
	};
	op_emit_opts o;
	const char *dir = NULL;
	tl_err err = TL_ERR_INIT;
	int c;
	(void)ctx;

	op_emit_opts_init(&o);
	o.tool_version = TAILOR_VERSION;
	cli_opt_reset();
	while ((c = cli_opt_next(argc, argv, "ho:", longopts, "build")) != -1) {
		switch (c) {
		case 'h': build_help(stdout); return CLI_OK;
		case 'o': dir = optarg; break;
		case 'c': o.cc = optarg; break;
		case 'f': o.cflags = optarg; break;
		case 'q': o.quant = optarg; break;
		default: return CLI_USAGE;
		}
	}
	if (optind >= argc)
		return cli_usage("build", "missing GENOME argument");
	if (optind + 1 < argc)
		return cli_usage("build", "unexpected argument '%s'", argv[optind + 1]);
	if (dir && *dir == '\0')
		return cli_usage("build", "-o: empty directory name");
	if (op_emit_opts_check(&o, &err) < 0)
		return cli_usage("build", "%s", err.msg);

	char *arch = NULL, hash[65];
	if (arch_of(&arch, hash, argv[optind], &err) < 0)
		return cli_fail(&err);
	op_emit_result r;
	int rc = do_build(&r, dir, arch, &o, false, &err);
	free(arch);
	if (rc < 0)
		return cli_fail(&err);
	if (r.cached)
		printf("build    %s (cached)\n", r.dir);
	else
		printf("build    %s (compiled in %.1f s)\n", r.dir, r.seconds);
	printf("binary   %s\n", r.binary);
	printf("arch     %s\n", hash);
	printf("build-id %s\n", r.key);
	printf("compiler %s %s\n", o.cc, o.cflags);
	return CLI_OK;
}

/* ---- running the harness ------------------------------------------------------ */

/* The harness's run: util's child-process runner (tl_proc_run), stdout
 * capped at HARNESS_MAX_OUT, the tail of stderr kept. */
typedef tl_proc_out harness_out;

/* Run argv (no shell), collecting stdout and stderr; kill its process group
 * after timeout seconds. Returns 0 when the process ran (whatever its status). */
static int run_harness(harness_out *h, char *const *argv, double timeout, tl_err *err)
{
	tl_proc p = {.argv = argv, .timeout_s = timeout, .max_out = HARNESS_MAX_OUT,
	             .err_tail = HARNESS_MAX_ERR};
	return tl_proc_run(&p, h, err);
}

static void harness_out_free(harness_out *h) { tl_proc_out_free(h); }

/* Turn a run into the harness's JSON object, or one line saying what went
 * wrong with the binary. */
static int harness_json(cJSON **out, harness_out *h, const char *bin, const char *format,
                        tl_err *err)
{
	*out = NULL;
	if (h->timed_out)
		return tl_err_set(err, TL_ETIMEOUT, "bench: %s: no result within the timeout, killed "
		                  "(give a larger --timeout or a smaller run)", bin);
	if (WIFSIGNALED(h->wait_status))
		return tl_err_set(err, TL_EFAIL, "bench: %s: crashed: killed by signal %d (%s)", bin,
		                  WTERMSIG(h->wait_status), strsignal(WTERMSIG(h->wait_status)));
	if (!WIFEXITED(h->wait_status))
		return tl_err_set(err, TL_EFAIL, "bench: %s: ended abnormally (wait status %d)", bin,
		                  h->wait_status);
	if (WEXITSTATUS(h->wait_status) != 0)
		return tl_err_set(err, TL_EFAIL, "bench: %s: exited with status %d: %s", bin,
		                  WEXITSTATUS(h->wait_status), tl_proc_err_line(h));
	if (h->out_truncated)
		return tl_err_set(err, TL_EPARSE, "bench: %s: more than %u bytes of output, not the "
		                  "harness's JSON", bin, HARNESS_MAX_OUT);
	cJSON *j = cJSON_ParseWithLength(h->out, h->out_len);
	char head[64];
	size_t k = 0;
	for (const char *p = h->out; *p && k < 48; p++)
		head[k++] = (*p >= 0x20 && *p < 0x7f) ? *p : ' ';
	head[k] = '\0';
	if (j == NULL || !cJSON_IsObject(j)) {
		cJSON_Delete(j);
		return tl_err_set(err, TL_EPARSE, "bench: %s: output is not a JSON object: '%s%s'", bin,
		                  head, h->out_len > 48 ? "..." : "");
	}
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(j, "format");
	if (!cJSON_IsString(f) || strcmp(f->valuestring, format) != 0) {
		tl_err_set(err, TL_EPARSE, "bench: %s: output is JSON but not a %s result (format "
		           "'%s')", bin, format, cJSON_IsString(f) ? f->valuestring : "missing");
		cJSON_Delete(j);
		return TL_EPARSE;
	}
	*out = j;
	return 0;
}

/* A numeric field, or NAN with the first missing key recorded. */
static double num(const cJSON *j, const char *key, const char **missing)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
	if (cJSON_IsNumber(v))
		return v->valuedouble;
	if (*missing == NULL && !cJSON_IsNull(v))
		*missing = key;
	return -1;
}

static const char *str(const cJSON *j, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
	return cJSON_IsString(v) ? v->valuestring : "?";
}

static void human_bytes(double v, char *buf, size_t n)
{
	const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	int u = 0;
	if (v < 0) {
		snprintf(buf, n, "n/a");
		return;
	}
	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	snprintf(buf, n, u ? "%.1f %s" : "%.0f %s", v, unit[u]);
}

/* ---- tailor bench --------------------------------------------------------------- */

typedef struct bench_opts {
	long long prompt, gen, depth, threads, repeat, timeout;
	uint64_t seed;
	const char *quant, *kv;
	bool json, bandwidth;
} bench_opts;

static int bench_summary(const cJSON *j, const char *genome_arg, const op_emit_result *r)
{
	const char *miss = NULL;
	double ttft = num(j, "ttft_ms", &miss), pre = num(j, "prefill_tok_s", &miss),
	       p50 = num(j, "decode_ms_p50", &miss), p95 = num(j, "decode_ms_p95", &miss),
	       dts = num(j, "decode_tok_s", &miss), init = num(j, "init_ms", &miss),
	       wb = num(j, "weight_bytes", &miss), cb = num(j, "cache_bytes", &miss),
	       ab = num(j, "activation_bytes", &miss), hwm = num(j, "peak_rss_bytes", &miss),
	       mrss = num(j, "maxrss_bytes", &miss), prompt = num(j, "prompt", &miss),
	       gen = num(j, "gen", &miss), depth = num(j, "depth", &miss),
	       threads = num(j, "threads", &miss);
	if (miss) {
		tl_err err = TL_ERR_INIT;
		tl_err_set(&err, TL_EPARSE, "bench: %s: the harness's JSON lacks '%s' (a harness of "
		           "another version? remove %s)", r->binary, miss, r->dir);
		return cli_fail(&err);
	}
	char w[32], c[32], a[32], h[32], m[32];
	human_bytes(wb, w, sizeof w);
	human_bytes(cb, c, sizeof c);
	human_bytes(ab, a, sizeof a);
	human_bytes(hwm, h, sizeof h);
	human_bytes(mrss, m, sizeof m);
	printf("genome      %s (arch %.16s)\n", genome_arg, str(j, "arch_hash"));
	printf("build       %s%s\n", r->dir, r->cached ? " (cached)" : "");
	printf("machine     %s, %.0f threads\n", str(j, "isa"), threads);
	printf("run         prompt %.0f, gen %.0f, depth %.0f; weights %s, KV cache %s\n", prompt, gen,
	       depth, str(j, "quant"), str(j, "kv"));
	printf("TTFT        %.2f ms (prefill %.1f tok/s)\n", ttft, pre);
	printf("decode      %.3f ms/token p50, %.3f p95 (%.2f tok/s)\n", p50, p95, dts);
	printf("peak RSS    %s (VmHWM; ru_maxrss %s)\n", h, m);
	printf("model       weights %s, cache %s, activations %s; built in %.0f ms\n", w, c, a, init);
	const cJSON *ids = cJSON_GetObjectItemCaseSensitive(j, "tokens_first");
	printf("tokens      checksum %s, first:", str(j, "tokens_checksum"));
	const cJSON *id;
	cJSON_ArrayForEach(id, ids)
		printf(" %d", id->valueint);
	printf("\n");
	return CLI_OK;
}

static int probe_summary(const cJSON *j, const op_emit_result *r)
{
	const char *miss = NULL;
	double rd = num(j, "read_gbs", &miss), cp = num(j, "copy_gbs", &miss),
	       fma = num(j, "fma_gflops", &miss), dot = num(j, "dot_gops", &miss),
	       buf = num(j, "buffer_bytes", &miss), llc = num(j, "llc_bytes", &miss),
	       th = num(j, "threads", &miss);
	if (miss) {
		tl_err err = TL_ERR_INIT;
		tl_err_set(&err, TL_EPARSE, "bench: %s: the probe's JSON lacks '%s'", r->binary, miss);
		return cli_fail(&err);
	}
	char b[32], l[32];
	human_bytes(buf, b, sizeof b);
	human_bytes(llc, l, sizeof l);
	printf("machine        %s kernels, %.0f threads (build %s)\n", str(j, "isa"), th, r->dir);
	printf("read           %.2f GB/s (streaming %s; last-level cache %s)\n", rd, b,
	       llc > 0 ? l : "unknown");
	printf("copy           %.2f GB/s (read + write, as STREAM counts)\n", cp);
	printf("FMA peak       %.1f GFLOP/s (f32, an FMA = 2 flops)\n", fma);
	printf("int8 dot peak  %.1f GOP/s (multiply-adds)\n", dot);
	return CLI_OK;
}

int cmd_bench(int argc, char **argv, cli_ctx *ctx)
{
	static const struct option longopts[] = {
		{"help", no_argument, NULL, 'h'},         {"prompt", required_argument, NULL, 'p'},
		{"gen", required_argument, NULL, 'n'},    {"depth", required_argument, NULL, 'd'},
		{"threads", required_argument, NULL, 't'}, {"quant", required_argument, NULL, 'q'},
		{"kv", required_argument, NULL, 'k'},     {"seed", required_argument, NULL, 's'},
		{"repeat", required_argument, NULL, 'r'}, {"timeout", required_argument, NULL, 'T'},
		{"cc", required_argument, NULL, 'c'},     {"cflags", required_argument, NULL, 'f'},
		{"json", no_argument, NULL, 'j'},         {"bandwidth", no_argument, NULL, 'B'},
		{"device", required_argument, NULL, 'V'},
		{"protocol", required_argument, NULL, 'P'}, {"warmup", required_argument, NULL, 'W'},
		{"repeats", required_argument, NULL, 'R'}, {"cv", required_argument, NULL, 'C'},
		{"min-time", required_argument, NULL, 'M'},
		{NULL, 0, NULL, 0},
	};
	const char *devices[CLI_BENCH_MAX_DEVICES];
	int n_devices = 0;
	bool threads_given = false, toolchain_given = false;
	bench_opts b = {.prompt = 512, .gen = 128, .depth = 0, .threads = 2, .repeat = 1,
	                .timeout = 3600, .seed = 1, .quant = "q4_0", .kv = "f16"};
	bool run_flags = false; /* a flag that only a model run takes */
	/* the protocol's flags (--device only), as given */
	const char *protocol_file = NULL, *warmup = NULL, *repeats = NULL, *cv = NULL,
	           *min_time = NULL, *repeat_text = NULL, *protocol_flag = NULL;
	op_emit_opts o;
	tl_err err = TL_ERR_INIT;
	int c;
	(void)ctx;

	op_emit_opts_init(&o);
	o.tool_version = TAILOR_VERSION;
	cli_opt_reset();
	while ((c = cli_opt_next(argc, argv, "h", longopts, "bench")) != -1) {
		switch (c) {
		case 'h': bench_help(stdout); return CLI_OK;
		case 'p':
			run_flags = true;
			if (cli_int_arg(&b.prompt, optarg, 1, 1LL << 24, "bench", "--prompt") < 0)
				return CLI_USAGE;
			break;
		case 'n':
			run_flags = true;
			if (cli_int_arg(&b.gen, optarg, 1, 1LL << 24, "bench", "--gen") < 0)
				return CLI_USAGE;
			break;
		case 'd':
			run_flags = true;
			if (cli_int_arg(&b.depth, optarg, 0, 1LL << 34, "bench", "--depth") < 0)
				return CLI_USAGE;
			break;
		case 't':
			if (cli_int_arg(&b.threads, optarg, 1, 256, "bench", "--threads") < 0)
				return CLI_USAGE;
			threads_given = true;
			break;
		case 'V':
			if (n_devices == CLI_BENCH_MAX_DEVICES)
				return cli_usage("bench", "--device: at most %d devices", CLI_BENCH_MAX_DEVICES);
			devices[n_devices++] = optarg;
			break;
		case 'r':
			run_flags = true;
			if (cli_int_arg(&b.repeat, optarg, 1, 1000, "bench", "--repeat") < 0)
				return CLI_USAGE;
			repeat_text = optarg;
			break;
		case 'P': protocol_file = optarg; protocol_flag = "--protocol"; break;
		case 'W': warmup = optarg; protocol_flag = "--warmup"; break;
		case 'R': repeats = optarg; protocol_flag = "--repeats"; break;
		case 'C': cv = optarg; protocol_flag = "--cv"; break;
		case 'M': min_time = optarg; protocol_flag = "--min-time"; break;
		case 'T':
			if (cli_int_arg(&b.timeout, optarg, 1, 7 * 24 * 3600, "bench", "--timeout") < 0)
				return CLI_USAGE;
			break;
		case 'q':
			run_flags = true;
			if (strcmp(optarg, "q4_0") && strcmp(optarg, "q8_0") && strcmp(optarg, "f32"))
				return cli_usage("bench", "--quant: '%s': not a weight type (q4_0, q8_0 or f32)",
				                 optarg);
			b.quant = optarg;
			break;
		case 'k':
			run_flags = true;
			if (strcmp(optarg, "f16") && strcmp(optarg, "f32"))
				return cli_usage("bench", "--kv: '%s': not a cache type (f16 or f32)", optarg);
			b.kv = optarg;
			break;
		case 's':
			run_flags = true;
			if (tl_parse_u64(&b.seed, optarg, "--seed", &err) < 0)
				return cli_usage("bench", "%s", err.msg);
			break;
		case 'c': o.cc = optarg; toolchain_given = true; break;
		case 'f': o.cflags = optarg; toolchain_given = true; break;
		case 'j': b.json = true; break;
		case 'B': b.bandwidth = true; break;
		default: return CLI_USAGE;
		}
	}
	if (op_emit_opts_check(&o, &err) < 0)
		return cli_usage("bench", "%s", err.msg);
	if (n_devices > 0) {
		/* On registered devices (cli/cmd_device.c): their toolchains, run
		 * prefixes and threads; the measurement is stored. */
		if (b.bandwidth)
			return cli_usage("bench", "--device takes a GENOME (for a device's bandwidth: "
			                 "tailor device probe NAME)");
		if (toolchain_given)
			return cli_usage("bench", "--cc/--cflags come from the device with --device "
			                 "(see tailor device show NAME)");
		if (optind >= argc)
			return cli_usage("bench", "missing GENOME argument");
		if (optind + 1 < argc)
			return cli_usage("bench", "unexpected argument '%s'", argv[optind + 1]);
		prof_bench_args a = {.prompt = b.prompt, .gen = b.gen, .depth = b.depth,
		                     .threads = threads_given ? b.threads : 0,
		                     .repeat = b.repeat, .timeout_s = (double)b.timeout,
		                     .seed = b.seed, .quant = b.quant, .kv = b.kv,
		                     .protocol_file = protocol_file, .warmup = warmup,
		                     /* --repeat R with --device: the protocol's repeats */
		                     .repeats = repeats ? repeats : repeat_text, .cv = cv,
		                     .min_time = min_time};
		return cli_bench_devices(ctx, argv[optind], devices, n_devices, &a, b.json);
	}
	if (protocol_flag)
		return cli_usage("bench", "%s goes with --device (the measurement protocol; a local "
		                 "measurement: --device local)", protocol_flag);
	if (b.bandwidth) {
		if (optind < argc)
			return cli_usage("bench", "--bandwidth takes no GENOME ('%s')", argv[optind]);
		if (run_flags)
			return cli_usage("bench", "--bandwidth takes only --threads, --timeout, --cc, "
			                 "--cflags and --json");
	} else {
		if (optind >= argc)
			return cli_usage("bench", "missing GENOME argument (or --bandwidth)");
		if (optind + 1 < argc)
			return cli_usage("bench", "unexpected argument '%s'", argv[optind + 1]);
	}

	char *arch = NULL, hash[65];
	if (!b.bandwidth && arch_of(&arch, hash, argv[optind], &err) < 0)
		return cli_fail(&err);
	op_emit_result r;
	int rc = do_build(&r, NULL, arch, &o, b.json, &err);
	free(arch);
	if (rc < 0)
		return cli_fail(&err);

	char sp[24], sg[24], sd[24], st[24], sr[24], ss[24];
	snprintf(sp, sizeof sp, "%lld", b.prompt);
	snprintf(sg, sizeof sg, "%lld", b.gen);
	snprintf(sd, sizeof sd, "%lld", b.depth);
	snprintf(st, sizeof st, "%lld", b.threads);
	snprintf(sr, sizeof sr, "%lld", b.repeat);
	snprintf(ss, sizeof ss, "%llu", (unsigned long long)b.seed);
	char *hargv[24];
	int k = 0;
	hargv[k++] = r.binary;
	if (b.bandwidth) {
		hargv[k++] = "--probe";
	} else {
		hargv[k++] = "--prompt";
		hargv[k++] = sp;
		hargv[k++] = "--gen";
		hargv[k++] = sg;
		hargv[k++] = "--depth";
		hargv[k++] = sd;
		hargv[k++] = "--quant";
		hargv[k++] = (char *)b.quant;
		hargv[k++] = "--kv";
		hargv[k++] = (char *)b.kv;
		hargv[k++] = "--seed";
		hargv[k++] = ss;
		hargv[k++] = "--repeat";
		hargv[k++] = sr;
	}
	hargv[k++] = "--threads";
	hargv[k++] = st;
	hargv[k] = NULL;

	if (!b.json && isatty(STDERR_FILENO))
		fprintf(stderr, "tailor: running %s...\r", r.binary);
	harness_out h;
	rc = run_harness(&h, hargv, (double)b.timeout, &err);
	if (!b.json && isatty(STDERR_FILENO))
		fprintf(stderr, "\033[K");
	cJSON *j = NULL;
	if (rc == 0)
		rc = harness_json(&j, &h, r.binary, b.bandwidth ? "tailor-bench-probe" : "tailor-bench",
		                  &err);
	if (rc < 0) {
		harness_out_free(&h);
		return cli_fail(&err);
	}
	if (b.json) {
		fwrite(h.out, 1, h.out_len, stdout);
		if (h.out_len == 0 || h.out[h.out_len - 1] != '\n')
			putchar('\n');
		rc = CLI_OK;
	} else {
		rc = b.bandwidth ? probe_summary(j, &r) : bench_summary(j, argv[optind], &r);
	}
	cJSON_Delete(j);
	harness_out_free(&h);
	return rc;
}
