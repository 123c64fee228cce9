/*
 * profiler/bench_main.c: tailor-bench, the on-device harness (DESIGN.md §5).
 *
 * One run measures one architecture on the machine it runs on: it builds the
 * model with weights drawn from a seed (latency and memory do not depend on
 * trained values), prefills a prompt of P random tokens, then decodes N tokens
 * greedily, and prints exactly one JSON object on stdout. Errors are one line
 * on stderr: exit 2 for a bad argument (the line names the flag), exit 1 for
 * a failure (an arch that does not parse, a context that does not fit in
 * memory, ...). Nothing is printed on stdout then.
 *
 * What is measured, per repeat (all clocks CLOCK_MONOTONIC):
 *   reset; if D > 0: op_model_fill_depth(D)            -> fill_ms
 *   prefill P tokens (positions D .. D+P-1) + argmax     -> ttft_ms (prefill_ms
 *                                                          without the argmax)
 *   N decode steps, each op_model_decode + argmax        -> per-step times
 * so the prompt is processed at depth D (as llama-bench's -d) and decoding
 * starts at position D + P and ends at D + P + N - 1. The model's context is
 * allocated for exactly ctx = D + P + N positions. The first generated token
 * comes from the prefill's logits; the N steps produce N more, so N + 1 ids
 * are generated, and their checksum (SHA-256 of the ids as little-endian
 * int32, first 16 hex digits) and the first 16 ids are reported so runs on
 * two machines (x86 against aarch64, f32 weights) can be compared.
 *
 * Reported figures: ttft_ms, prefill_tok_s = P / prefill time, decode_ms_p50
 * and _p95 (nearest rank over the N steps), decode_tok_s = N / total decode
 * time; with --repeat R > 1 every repeat is listed under "runs" and the
 * top-level figures are the medians over the repeats. Peak RSS is VmHWM from
 * /proc/self/status and, as a cross-check, getrusage's ru_maxrss (both in
 * bytes; null where the system does not say).
 *
 * This file uses libc, libm, pthreads and the operators/ + util/ sources
 * only: it is compiled on the device (or with its toolchain) from a build
 * dir that `tailor build` writes (operators/op_emit.h). There, the build dir
 * has a generated bench_config.h (TAILOR_BENCH_CONFIG is defined) carrying
 * the architecture text, the default --quant, the build id and the tool
 * version, so the binary runs with no argument and alone (a push is one
 * file). Built by meson (profiler/meson.build) it has none of these and needs
 * --arch.
 */
#include "op_arch.h"
#include "op_kernels.h"
#include "op_mix.h"
#include "op_model.h"
#include "tl.h"

#ifdef TAILOR_BENCH_CONFIG
#include "bench_config.h"
#endif

#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#ifndef TAILOR_BUILD_ID
#define TAILOR_BUILD_ID "dev"
#endif
#ifndef TAILOR_VERSION
#define TAILOR_VERSION "unknown"
#endif
#ifndef TAILOR_BENCH_QUANT
#define TAILOR_BENCH_QUANT "q4_0"
#endif

#define BENCH_FORMAT_VERSION 1
#define BENCH_FIRST_IDS 16
/* Bounds of the flags. P and N are held in memory as token and time arrays;
 * the depth costs KV-cache memory only (checked against the machine below). */
#define BENCH_MAX_TOKENS (1LL << 24)
#define BENCH_MAX_DEPTH (1LL << 34)
#define BENCH_MAX_REPEAT 1000

typedef struct bench_opts {
	const char *arch_path; /* NULL: the compiled-in arch                      */
	int64_t prompt;        /* P, tokens prefilled                              */
	int64_t gen;           /* N, decode steps                                  */
	int64_t depth;         /* D, positions filled before the prompt            */
	int64_t threads;       /* pool size                                         */
	enum op_dtype wtype;   /* projection weights                               */
	int kv;                /* enum op_kv_type                                   */
	uint64_t seed;         /* weights and prompt                                */
	int64_t repeat;        /* in-process repeats                                */
	int probe;             /* --probe: machine probes instead of a model run   */
	const char *weights;   /* --weights: load instead of drawing               */
	const char *save;      /* --save-weights: write the weights after building */
	int layer_times;       /* --layer-times: time every layer (operator tables) */
} bench_opts;

/* One repeat's figures. */
typedef struct bench_run {
	double fill_ms, prefill_ms, ttft_ms, prefill_tok_s;
	double decode_ms_p50, decode_ms_p95, decode_ms_mean, decode_ms_max, decode_tok_s;
	char checksum[17];
} bench_run;

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static void help(FILE *f)
{
	fprintf(f,
	        "usage: tailor-bench [--arch FILE] [--prompt P] [--gen N] [--depth D]\n"
	        "                    [--threads T] [--quant q4_0|q8_0|f32] [--kv f16|f32]\n"
	        "                    [--seed S] [--repeat R] [--weights FILE]\n"
	        "                    [--save-weights FILE] [--json]\n"
	        "       tailor-bench --probe [--threads T] [--json]\n"
	        "\n"
	        "Measures one architecture on this machine: model build, prefill of P random\n"
	        "tokens at context depth D (TTFT), then N greedy decode steps from position\n"
	        "D+P. Weights are random (drawn from the seed) unless --weights gives a\n"
	        "file. Prints one JSON object.\n"
	        "\n"
	        "options:\n"
	        "  --arch FILE     architecture text (arch/1, as `tailor build` writes arch.txt);\n"
	        "                  default: the one compiled in%s\n"
	        "  --prompt P      prompt tokens (default 512)\n"
	        "  --gen N         decode steps (default 128)\n"
	        "  --depth D       positions filled before the prompt (default 0); the context\n"
	        "                  is allocated for exactly D + P + N positions\n"
	        "  --threads T     threads (default 2)\n"
	        "  --quant Q       weights: q4_0, q8_0 or f32 (default %s)\n"
	        "  --kv K          KV cache: f16 or f32 (default f16)\n"
	        "  --seed S        seed of the weights and the prompt (default 1)\n"
	        "  --repeat R      in-process repeats; figures are medians (default 1)\n"
	        "  --weights FILE  load the weights from FILE (tailor-weights/1, written by\n"
	        "                  --save-weights for the same arch and --quant)\n"
	        "  --save-weights FILE  write the model's weights to FILE, then measure\n"
	        "  --layer-times   also time every layer: layer_prefill_ms (the prompt's\n"
	        "                  total), layer_decode_ms (median over the steps), medians\n"
	        "                  over the repeats, and each layer's weight, state and\n"
	        "                  activation bytes (what `tailor device profile-ops` reads)\n"
	        "  --probe         measure read/copy bandwidth and the FMA and int8-dot peaks\n"
	        "  --json          JSON output (the only format; accepted for symmetry)\n"
	        "  -V, --version   print the version\n"
	        "  -h, --help      this help\n"
	        "\n"
	        "exit status: 0 ok, 1 failure (one line on stderr), 2 bad argument\n",
#ifdef TAILOR_BENCH_ARCH
	        "",
#else
	        "\n                  (this build has none: --arch is required)",
#endif
	        TAILOR_BENCH_QUANT);
}

static int usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage(const char *fmt, ...)
{
	char msg[TL_ERR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
	fprintf(stderr, "tailor-bench: %s (see tailor-bench --help)\n", msg);
	return 2;
}

static int fail(const tl_err *err)
{
	fprintf(stderr, "tailor-bench: %s\n", err->code ? err->msg : "failed (no detail recorded)");
	return 1;
}

static int parse_quant(enum op_dtype *out, const char *s)
{
	if (strcmp(s, "q4_0") == 0)
		*out = OP_Q4_0;
	else if (strcmp(s, "q8_0") == 0)
		*out = OP_Q8_0;
	else if (strcmp(s, "f32") == 0)
		*out = OP_F32;
	else
		return -1;
	return 0;
}

static int parse_int(int64_t *out, const char *val, int64_t lo, int64_t hi, const char *flag)
{
	tl_err err = TL_ERR_INIT;
	if (tl_parse_i64(out, val, lo, hi, flag, &err) < 0)
		return usage("%s", err.msg);
	return 0;
}

/* Returns 0, 2 after a usage message, or -1 after printing help / version. */
static int parse_args(bench_opts *o, int argc, char **argv)
{
	static const struct option longopts[] = {
		{"arch", required_argument, NULL, 'a'},   {"prompt", required_argument, NULL, 'p'},
		{"gen", required_argument, NULL, 'n'},    {"depth", required_argument, NULL, 'd'},
		{"threads", required_argument, NULL, 't'}, {"quant", required_argument, NULL, 'q'},
		{"kv", required_argument, NULL, 'k'},     {"seed", required_argument, NULL, 's'},
		{"repeat", required_argument, NULL, 'r'}, {"probe", no_argument, NULL, 'P'},
		{"json", no_argument, NULL, 'j'},         {"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},      {"weights", required_argument, NULL, 'w'},
		{"save-weights", required_argument, NULL, 'W'},
		{"layer-times", no_argument, NULL, 'L'},  {NULL, 0, NULL, 0},
	};
	tl_err err = TL_ERR_INIT;
	int c;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":hV", longopts, NULL)) != -1) {
		const char *bad = argv[optind - 1];
		switch (c) {
		case 'a': o->arch_path = optarg; break;
		case 'p':
			if (parse_int(&o->prompt, optarg, 1, BENCH_MAX_TOKENS, "--prompt"))
				return 2;
			break;
		case 'n':
			if (parse_int(&o->gen, optarg, 1, BENCH_MAX_TOKENS, "--gen"))
				return 2;
			break;
		case 'd':
			if (parse_int(&o->depth, optarg, 0, BENCH_MAX_DEPTH, "--depth"))
				return 2;
			break;
		case 't':
			if (parse_int(&o->threads, optarg, 1, OP_POOL_MAX_THREADS, "--threads"))
				return 2;
			break;
		case 'r':
			if (parse_int(&o->repeat, optarg, 1, BENCH_MAX_REPEAT, "--repeat"))
				return 2;
			break;
		case 'q':
			if (parse_quant(&o->wtype, optarg) < 0)
				return usage("--quant: '%s': not a weight type (q4_0, q8_0 or f32)", optarg);
			break;
		case 'k':
			if (strcmp(optarg, "f16") == 0)
				o->kv = OP_KV_F16;
			else if (strcmp(optarg, "f32") == 0)
				o->kv = OP_KV_F32;
			else
				return usage("--kv: '%s': not a cache type (f16 or f32)", optarg);
			break;
		case 's':
			if (tl_parse_u64(&o->seed, optarg, "--seed", &err) < 0)
				return usage("%s", err.msg);
			break;
		case 'P': o->probe = 1; break;
		case 'w': o->weights = optarg; break;
		case 'W': o->save = optarg; break;
		case 'L': o->layer_times = 1; break;
		case 'j': break;
		case 'h': help(stdout); return -1;
		case 'V': printf("tailor-bench %s (build %s)\n", TAILOR_VERSION, TAILOR_BUILD_ID); return -1;
		case ':': return usage("option '%s' needs a value", bad ? bad : "?");
		default:
			if (optopt && (bad == NULL || strncmp(bad, "--", 2) != 0)) {
				char s[3] = {'-', (char)optopt, '\0'};
				return usage("unknown option '%s'", s);
			}
			return usage("unknown option '%s'", bad ? bad : "?");
		}
	}
	if (optind < argc)
		return usage("unexpected argument '%s'", argv[optind]);
	return 0;
}

/* "VmHWM:    1234 kB" -> bytes; -1 when the file or the field is missing. */
static int64_t proc_status_bytes(const char *field)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	int64_t v = -1;
	size_t n = strlen(field);
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, field, n) == 0 && line[n] == ':') {
			long long kb;
			if (sscanf(line + n + 1, "%lld", &kb) == 1)
				v = (int64_t)kb * 1024;
			break;
		}
	}
	fclose(f);
	return v;
}

static int64_t maxrss_bytes(void)
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return -1;
	return (int64_t)ru.ru_maxrss * 1024; /* kilobytes on Linux and Android */
}

static void print_opt_bytes(const char *key, int64_t v)
{
	if (v < 0)
		printf(",\"%s\":null", key);
	else
		printf(",\"%s\":%lld", key, (long long)v);
}

/* A JSON string (the values here are ours, but a build id may be anything). */
static void print_str(const char *key, const char *s)
{
	printf(",\"%s\":\"", key);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

/* A finite double as JSON (null otherwise). */
static void print_num(const char *key, double v)
{
	if (isfinite(v))
		printf(",\"%s\":%.6g", key, v);
	else
		printf(",\"%s\":null", key);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted v[n], p in (0, 1]. */
static double percentile(const double *v, int64_t n, double p)
{
	int64_t r = (int64_t)ceil(p * (double)n);
	if (r < 1)
		r = 1;
	if (r > n)
		r = n;
	return v[r - 1];
}

static double median(double *v, int64_t n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Lower bound of the KV-cache bytes the model will allocate for ctx
 * positions (the dense layers that own K or V), to refuse a context that
 * cannot fit before spending seconds on generating weights, and before a
 * large allocation is touched and the kernel kills us. */
static double kv_bytes_estimate(const op_arch *a, int kv, int64_t ctx)
{
	double total = 0;
	for (int i = 0; i < a->n_layers; i++) {
		const op_layer *l = &a->layers[i];
		if (l->structure != OP_DENSE)
			continue;
		int64_t cap = op_attn_cache_positions(l->mask, l->len, ctx);
		double row = (double)l->kv_heads * l->head_dim * (kv == OP_KV_F16 ? 2 : 4);
		total += (double)cap * row * ((l->xowner[OP_G_B] == i) + (l->xowner[OP_G_V] == i));
	}
	return total;
}

static double machine_bytes(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
	if (pages <= 0 || size <= 0)
		return 0;
	return (double)pages * (double)size;
}

static int load_arch(op_arch *a, char **text, const char **source, const bench_opts *o,
                     tl_err *err)
{
	*text = NULL;
	if (o->arch_path) {
		*source = o->arch_path;
		if (tl_file_read(text, NULL, o->arch_path, 1u << 20, err) < 0) {
			tl_err_prefix(err, "arch");
			return TL_EIO;
		}
	} else {
#ifdef TAILOR_BENCH_ARCH
		*source = "builtin";
		*text = strdup(TAILOR_BENCH_ARCH);
		if (*text == NULL)
			return tl_err_set(err, TL_ENOMEM, "arch: out of memory");
#else
		return tl_err_set(err, TL_EUSAGE,
		                  "--arch: missing: this build has no architecture compiled in (give "
		                  "--arch FILE, or use the binary of a `tailor build` dir)");
#endif
	}
	return op_arch_parse(a, *text, *source, err);
}

static int run_probe(const bench_opts *o)
{
	tl_err err = TL_ERR_INIT;
	op_pool *pool = NULL;
	double rd = 0, cp = 0, fma = 0, dot = 0;
	size_t llc = op_probe_llc_bytes();
	/* Beyond the last-level cache, so the figure is DRAM's: 4x the LLC,
	 * at least 256 MiB (phones say nothing or a few MiB), at most a quarter
	 * of the memory (a 480 MiB L3 exists: Xeon 6). */
	size_t bytes = (size_t)256 << 20;
	if (llc > 0 && llc * 4 > bytes)
		bytes = llc * 4;
	double mem = machine_bytes();
	if (mem > 0 && (double)bytes > mem / 4 && mem / 4 >= (double)(64 << 20))
		bytes = (size_t)(mem / 4);
	if (op_pool_create(&pool, (int)o->threads, &err) < 0)
		return fail(&err);
	if (op_probe_bandwidth(pool, bytes, 5, &rd, &cp, &err) < 0) {
		op_pool_free(pool);
		return fail(&err);
	}
	op_probe_peak_fma(pool, &fma);
	op_probe_peak_dot(pool, &dot);
	op_pool_free(pool);
	printf("{\"format\":\"tailor-bench-probe\",\"format_version\":%d", BENCH_FORMAT_VERSION);
	print_str("tool", "tailor-bench");
	print_str("tool_version", TAILOR_VERSION);
	print_str("build_id", TAILOR_BUILD_ID);
	print_str("isa", op_kernels_isa());
	printf(",\"threads\":%lld,\"buffer_bytes\":%zu,\"llc_bytes\":%zu", (long long)o->threads,
	       bytes, llc);
	print_num("read_gbs", rd);
	print_num("copy_gbs", cp);
	print_num("fma_gflops", fma);
	print_num("dot_gops", dot);
	printf("}\n");
	return fflush(stdout) == 0 ? 0 : 1;
}

/* Per-layer times of one repeat (--layer-times): pre[L + 1] the prefill's
 * (op_model_time_layers' accumulators), dec[L + 1] the median over the
 * decode steps, scratch (gen x (L + 1)) the steps' own. NULL: not timed. */
typedef struct layer_clock {
	double *pre, *dec, *scratch, *col;
} layer_clock;

/* One repeat: reset, fill, prefill, decode. ids gets gen + 1 tokens. */
static int run_once(bench_run *r, op_model *m, const op_arch *a, const bench_opts *o,
                    const int32_t *prompt, float *logits, double *steps, int32_t *ids,
                    const layer_clock *lc, tl_err *err)
{
	size_t nl = (size_t)a->n_layers + 1;
	op_model_reset(m);
	double t0 = now_ms();
	if (o->depth > 0 && op_model_fill_depth(m, o->depth, err) < 0)
		return TL_EFAIL;
	if (lc) {
		memset(lc->pre, 0, nl * sizeof *lc->pre);
		op_model_time_layers(m, lc->pre);
	}
	double t1 = now_ms();
	if (op_model_prefill(m, prompt, o->prompt, logits, err) < 0)
		return TL_EFAIL;
	double t2 = now_ms();
	op_model_time_layers(m, NULL);
	int32_t tok = op_argmax(logits, (int)a->vocab);
	double t3 = now_ms();
	ids[0] = tok;
	double total = 0;
	for (int64_t i = 0; i < o->gen; i++) {
		if (lc) {
			memset(lc->scratch + (size_t)i * nl, 0, nl * sizeof *lc->scratch);
			op_model_time_layers(m, lc->scratch + (size_t)i * nl);
		}
		double s0 = now_ms();
		if (op_model_decode(m, tok, logits, err) < 0)
			return TL_EFAIL;
		tok = op_argmax(logits, (int)a->vocab);
		steps[i] = now_ms() - s0;
		total += steps[i];
		ids[i + 1] = tok;
	}
	op_model_time_layers(m, NULL);
	if (lc) {
		for (size_t j = 0; j < nl; j++) {
			for (int64_t i = 0; i < o->gen; i++)
				lc->col[i] = lc->scratch[(size_t)i * nl + j];
			lc->dec[j] = median(lc->col, o->gen);
		}
	}
	r->fill_ms = t1 - t0;
	r->prefill_ms = t2 - t1;
	r->ttft_ms = t3 - t1;
	r->prefill_tok_s = (double)o->prompt / ((t2 - t1) * 1e-3);
	r->decode_tok_s = (double)o->gen / (total * 1e-3);
	r->decode_ms_mean = total / (double)o->gen;
	qsort(steps, (size_t)o->gen, sizeof *steps, cmp_double);
	r->decode_ms_p50 = percentile(steps, o->gen, 0.50);
	r->decode_ms_p95 = percentile(steps, o->gen, 0.95);
	r->decode_ms_max = steps[o->gen - 1];

	/* checksum: SHA-256 of the ids as little-endian int32 */
	tl_sha256 h;
	unsigned char dig[32];
	tl_sha256_init(&h);
	for (int64_t i = 0; i <= o->gen; i++) {
		uint32_t v = (uint32_t)ids[i];
		unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8),
		                      (unsigned char)(v >> 16), (unsigned char)(v >> 24)};
		tl_sha256_update(&h, b, 4);
	}
	tl_sha256_final(&h, dig);
	tl_hex(dig, 8, r->checksum);
	return 0;
}

static void print_run_fields(const bench_run *r)
{
	print_num("fill_ms", r->fill_ms);
	print_num("prefill_ms", r->prefill_ms);
	print_num("ttft_ms", r->ttft_ms);
	print_num("prefill_tok_s", r->prefill_tok_s);
	print_num("decode_ms_p50", r->decode_ms_p50);
	print_num("decode_ms_p95", r->decode_ms_p95);
	print_num("decode_ms_mean", r->decode_ms_mean);
	print_num("decode_ms_max", r->decode_ms_max);
	print_num("decode_tok_s", r->decode_tok_s);
}

int main(int argc, char **argv)
{
	bench_opts o = {.prompt = 512, .gen = 128, .depth = 0, .threads = 2, .kv = OP_KV_F16,
	                .seed = 1, .repeat = 1};
	tl_err err = TL_ERR_INIT;
	op_arch *a = NULL;
	char *arch_text = NULL;
	const char *arch_source = NULL;
	op_pool *pool = NULL;
	op_model *m = NULL;
	int32_t *prompt = NULL, *ids = NULL, *ids0 = NULL;
	float *logits = NULL;
	double *steps = NULL;
	bench_run *runs = NULL;
	double *lt = NULL; /* --layer-times: pre and dec of every repeat, scratch, col */
	int rc = 1;

	if (parse_quant(&o.wtype, TAILOR_BENCH_QUANT) < 0)
		o.wtype = OP_Q4_0;
	int prc = parse_args(&o, argc, argv);
	if (prc != 0)
		return prc < 0 ? 0 : prc;
	if (o.probe)
		return run_probe(&o);

	a = malloc(sizeof *a);
	if (a == NULL) {
		tl_err_set(&err, TL_ENOMEM, "arch: out of memory");
		goto out;
	}
	if (load_arch(a, &arch_text, &arch_source, &o, &err) < 0) {
		rc = err.code == TL_EUSAGE ? usage("%s", err.msg) : fail(&err);
		goto free_all;
	}
	char arch_hash[65];
	tl_sha256_hex(arch_text, strlen(arch_text), arch_hash);

	/* Exactly the positions the run uses; the bounds on the flags keep
	 * the sum far from overflow. */
	int64_t ctx = o.depth + o.prompt + o.gen;
	double need = kv_bytes_estimate(a, o.kv, ctx), have = machine_bytes();
	if (have > 0 && need > have) {
		tl_err_set(&err, TL_EINVAL,
		           "context: %lld positions (depth %lld + prompt %lld + gen %lld) need %.3g GB "
		           "of KV cache, more than the %.3g GB of memory of this machine (use a smaller "
		           "--depth, --prompt or --gen)",
		           (long long)ctx, (long long)o.depth, (long long)o.prompt, (long long)o.gen,
		           need * 1e-9, have * 1e-9);
		goto out;
	}

	if (op_pool_create(&pool, (int)o.threads, &err) < 0)
		goto out;
	op_model_cfg cfg = op_model_cfg_default();
	cfg.wtype = o.wtype;
	cfg.kv_type = o.kv;
	cfg.ctx = ctx;
	cfg.seed = o.seed;
	cfg.weights_path = o.weights;
	double t0 = now_ms();
	if (op_model_create(&m, a, &cfg, pool, &err) < 0) {
		tl_err_prefix(&err, "bench: %s", arch_source);
		goto out;
	}
	if (o.save && op_model_save_weights(m, o.save, &err) < 0)
		goto out;
	double init_ms = now_ms() - t0;
	int64_t rss_init = proc_status_bytes("VmRSS");
	op_model_bytes mb = op_model_get_bytes(m);

	prompt = malloc((size_t)o.prompt * sizeof *prompt);
	ids = malloc((size_t)(o.gen + 1) * sizeof *ids);
	ids0 = malloc((size_t)(o.gen + 1) * sizeof *ids0);
	logits = malloc((size_t)a->vocab * sizeof *logits);
	steps = malloc((size_t)o.gen * sizeof *steps);
	runs = calloc((size_t)o.repeat, sizeof *runs);
	if (!prompt || !ids || !ids0 || !logits || !steps || !runs) {
		tl_err_set(&err, TL_ENOMEM, "bench: out of memory for %lld tokens", (long long)ctx);
		goto out;
	}
	tl_rng rng;
	tl_rng_seed(&rng, o.seed, 0x70726f6d /* "prom" stream */);
	for (int64_t i = 0; i < o.prompt; i++)
		prompt[i] = (int32_t)tl_rng_bounded(&rng, a->vocab);

	size_t nl = (size_t)a->n_layers + 1;
	if (o.layer_times) {
		lt = malloc(((size_t)o.repeat * 2 * nl + (size_t)o.gen * nl + (size_t)o.gen +
		             (size_t)o.repeat) * sizeof *lt);
		if (lt == NULL) {
			tl_err_set(&err, TL_ENOMEM, "bench: out of memory for the layer times");
			goto out;
		}
	}
	bool deterministic = true;
	for (int64_t r = 0; r < o.repeat; r++) {
		layer_clock lc = {0};
		if (lt) {
			lc.pre = lt + (size_t)r * nl;
			lc.dec = lt + (size_t)(o.repeat + r) * nl;
			lc.scratch = lt + (size_t)o.repeat * 2 * nl;
			lc.col = lc.scratch + (size_t)o.gen * nl;
		}
		if (run_once(&runs[r], m, a, &o, prompt, logits, steps, r ? ids : ids0, lt ? &lc : NULL,
		             &err) < 0) {
			tl_err_prefix(&err, "bench: %s: repeat %lld", arch_source, (long long)r + 1);
			goto out;
		}
		if (r && memcmp(ids, ids0, (size_t)(o.gen + 1) * sizeof *ids) != 0)
			deterministic = false;
	}

	/* Summary: medians over the repeats (the values of the one repeat). */
	bench_run sum = runs[0];
	double *col = steps; /* reuse: o.gen >= 1, and repeat may exceed it */
	double *tmp = o.repeat <= o.gen ? col : malloc((size_t)o.repeat * sizeof *tmp);
	if (tmp == NULL) {
		tl_err_set(&err, TL_ENOMEM, "bench: out of memory");
		goto out;
	}
#define MEDIAN_OF(field)                                   \
	do {                                                   \
		for (int64_t r = 0; r < o.repeat; r++)             \
			tmp[r] = runs[r].field;                        \
		sum.field = median(tmp, o.repeat);                 \
	} while (0)
	MEDIAN_OF(fill_ms);
	MEDIAN_OF(prefill_ms);
	MEDIAN_OF(ttft_ms);
	MEDIAN_OF(prefill_tok_s);
	MEDIAN_OF(decode_ms_p50);
	MEDIAN_OF(decode_ms_p95);
	MEDIAN_OF(decode_ms_mean);
	MEDIAN_OF(decode_ms_max);
	MEDIAN_OF(decode_tok_s);
#undef MEDIAN_OF
	if (tmp != col)
		free(tmp);

	int64_t hwm = proc_status_bytes("VmHWM"), maxrss = maxrss_bytes();
	printf("{\"format\":\"tailor-bench\",\"format_version\":%d", BENCH_FORMAT_VERSION);
	print_str("tool", "tailor-bench");
	print_str("tool_version", TAILOR_VERSION);
	print_str("build_id", TAILOR_BUILD_ID);
	print_str("arch_hash", arch_hash);
	print_str("arch_source", arch_source);
	print_str("weights_source", o.weights ? o.weights : "seed");
	print_str("isa", op_kernels_isa());
	printf(",\"threads\":%lld", (long long)o.threads);
	print_str("quant", op_dtype_name(o.wtype));
	print_str("kv", o.kv == OP_KV_F16 ? "f16" : "f32");
	printf(",\"prompt\":%lld,\"gen\":%lld,\"depth\":%lld,\"ctx\":%lld,\"decode_start\":%lld,"
	       "\"seed\":%llu,\"repeat\":%lld,\"layers\":%u,\"d_model\":%u,\"vocab\":%u",
	       (long long)o.prompt, (long long)o.gen, (long long)o.depth, (long long)ctx,
	       (long long)(o.depth + o.prompt), (unsigned long long)o.seed, (long long)o.repeat,
	       a->n_layers, a->d_model, a->vocab);
	print_num("init_ms", init_ms);
	print_run_fields(&sum);
	print_opt_bytes("peak_rss_bytes", hwm);
	print_opt_bytes("maxrss_bytes", maxrss);
	print_opt_bytes("rss_after_init_bytes", rss_init);
	printf(",\"weight_bytes\":%zu,\"cache_bytes\":%zu,\"activation_bytes\":%zu", mb.weights,
	       mb.state, mb.activations);
	if (lt) {
		/* medians over the repeats, layer by layer; "rest": the embedding,
		 * final norm and LM head (the argmax and the loop are outside) */
		double *med = lt + (size_t)o.repeat * 2 * nl + (size_t)o.gen * nl + (size_t)o.gen;
		const char *names[2] = {"layer_prefill_ms", "layer_decode_ms"};
		double rest[2];
		for (int k = 0; k < 2; k++) {
			printf(",\"%s\":[", names[k]);
			for (size_t j = 0; j < nl; j++) {
				for (int64_t r = 0; r < o.repeat; r++)
					med[r] = lt[(size_t)(k * o.repeat + r) * nl + j];
				double v = median(med, o.repeat);
				if (j + 1 < nl)
					printf("%s%.6g", j ? "," : "", v);
				else
					rest[k] = v;
			}
			printf("]");
		}
		print_num("rest_prefill_ms", rest[0]);
		print_num("rest_decode_ms", rest[1]);
		const char *bnames[3] = {"layer_weight_bytes", "layer_state_bytes", "layer_act_bytes"};
		for (int k = 0; k < 3; k++) {
			printf(",\"%s\":[", bnames[k]);
			for (int i = 0; i < a->n_layers; i++) {
				op_model_bytes lb = {0};
				if (op_model_layer_bytes(m, i, &lb) < 0) {
					tl_err_set(&err, TL_ENOMEM, "bench: out of memory");
					goto out;
				}
				size_t v = k == 0 ? lb.weights : k == 1 ? lb.state : lb.activations;
				printf("%s%zu", i ? "," : "", v);
			}
			printf("]");
		}
	}
	print_str("tokens_checksum", runs[0].checksum);
	printf(",\"tokens_n\":%lld,\"tokens_first\":[", (long long)(o.gen + 1));
	for (int64_t i = 0; i <= o.gen && i < BENCH_FIRST_IDS; i++)
		printf("%s%d", i ? "," : "", ids0[i]);
	printf("],\"deterministic\":%s,\"runs\":[", deterministic ? "true" : "false");
	for (int64_t r = 0; r < o.repeat; r++) {
		printf("%s{\"repeat\":%lld", r ? "," : "", (long long)r + 1);
		print_run_fields(&runs[r]);
		print_str("tokens_checksum", runs[r].checksum);
		printf("}");
	}
	printf("]}\n");
	if (fflush(stdout) != 0) {
		tl_err_set(&err, TL_EIO, "bench: stdout: write failed");
		goto out;
	}
	rc = 0;
out:
	if (rc != 0)
		rc = fail(&err);
free_all:
	free(lt);
	free(runs);
	free(steps);
	free(logits);
	free(ids0);
	free(ids);
	free(prompt);
	op_model_free(m);
	op_pool_free(pool);
	free(arch_text);
	free(a);
	return rc;
}
