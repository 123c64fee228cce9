/*
 * cli/cmd_genome.c: `tailor genome`: look at, check and breed genomes.
 *
 *   show GENOME        layer table and analytics (or --json)
 *   validate GENOME... intrinsic validity, or membership of --space
 *   random             sample from --space
 *   mutate GENOME      mutate at a level, within --space
 *   cross G1 G2        two-point backbone crossover, within --space
 *
 * A GENOME argument is a file (text or JSON), a preset name from
 * examples/genomes (e.g. lfm2-350m), '-' for standard input, or the text
 * form itself (starting with "tailor-genome/1").
 */
#include "cli.h"
#include "genome.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static void genome_help(FILE *f)
{
	fprintf(f,
	        "usage: tailor genome show GENOME [--json|--text] [--ctx N] [--elem-bytes B] [--space FILE]\n"
	        "       tailor genome validate GENOME... [--space FILE]\n"
	        "       tailor genome random --space FILE [--seed N] [-n COUNT] [--json]\n"
	        "       tailor genome mutate GENOME --space FILE [--seed N] [--level L] [-n COUNT] [--json]\n"
	        "       tailor genome cross GENOME1 GENOME2 --space FILE [--seed N] [--json]\n"
	        "\n"
	        "A genome is STAR's three-level encoding of an architecture (docs/genome.md):\n"
	        "a backbone of LIV layers (class.fgroup.fstrategy.ggroup.gstrategy), an operator\n"
	        "genome per class and a featurizer genome per class and feature group.\n"
	        "\n"
	        "GENOME is a file (text or JSON), a preset name (lfm2-350m, lfm2-1.2b,\n"
	        "lfm2-2.6b, llama-3.2-1b, transformer-pp-350m, hyena-edge-350m), '-' for\n"
	        "standard input, or the text form itself ('tailor-genome/1 d=...').\n"
	        "\n"
	        "options:\n"
	        "  --space FILE      search space (JSON); required for random, mutate, cross\n"
	        "  --seed N          random seed (default 1); the same seed gives the same output\n"
	        "  -n, --count N     how many genomes to print (random, mutate; default 1)\n"
	        "  --level L         mutation level: backbone, operator, featurizer or any (default)\n"
	        "  --json            JSON instead of the text form / table\n"
	        "  --text            show: the canonical text form only (one line)\n"
	        "  --ctx N           context length for cache bytes and FLOPs (show; default 4096)\n"
	        "  --elem-bytes B    bytes per cached element: 1 (q8), 2 (f16), 4 (f32); default 2\n"
	        "  -h, --help        this help\n"
	        "\n"
	        "Presets are looked up in $TAILOR_GENOMES, then in examples/genomes next to\n"
	        "the build.\n"
	        "\n"
	        "With --space, a genome written without the space (a preset, say) is adopted:\n"
	        "its classes are renumbered to the space's classes that allow them and the\n"
	        "space's other classes are drawn at random (no layer uses them, so the\n"
	        "architecture and its hash do not change).\n");
}

typedef struct opts {
	const char *space;
	bool text;
	uint64_t seed;
	long long count;
	int level;
	bool json;
	long long ctx;
	long long elem;
} opts;

static void print_genome(const genome *g, bool json)
{
	char *s = json ? genome_to_json(g, false) : genome_to_text(g);
	if (s) {
		puts(s);
		free(s);
	}
}

static const char *group_desc(const genome_arch_layer *l, int i, int k, char *buf, size_t n)
{
	if (l->xowner[k] < 0)
		return "-";
	if (l->xowner[k] != i)
		snprintf(buf, n, "<L%d", l->xowner[k]);
	else if (l->wowner[k] != i)
		snprintf(buf, n, "%u w<L%d", l->width[k], l->wowner[k]);
	else if (l->conv[k])
		snprintf(buf, n, "%u k%u", l->width[k], l->conv[k]);
	else
		snprintf(buf, n, "%u", l->width[k]);
	return buf;
}

static void human(double v, char *buf, size_t n)
{
	const char *unit[] = {"", "K", "M", "G", "T", "P"};
	int u = 0;
	while (v >= 1000 && u < 5) {
		v /= 1000;
		u++;
	}
	snprintf(buf, n, u ? "%.3g%s" : "%.0f%s", v, unit[u]);
}

static void human_bytes(double v, char *buf, size_t n)
{
	const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	int u = 0;
	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	snprintf(buf, n, u ? "%.2f %s" : "%.0f %s", v, unit[u]);
}

static int show(const genome *g, const opts *o)
{
	tl_err err = TL_ERR_INIT;
	genome_arch *a = malloc(sizeof *a);
	genome_stats st;
	char hash[65];
	if (a == NULL)
		return CLI_FAIL;
	if (genome_decode(a, g, &err) < 0 || genome_hash(g, hash, &err) < 0) {
		free(a);
		return cli_fail(&err);
	}
	genome_stats_compute(&st, a, (int)o->elem, o->ctx);

	if (o->json) {
		char *gj = genome_to_json(g, false);
		printf("{\"hash\":\"%s\",\"genome\":%s,\"stats\":{\"params\":%lld,"
		       "\"params_embedding\":%lld,\"params_nonembed\":%lld,\"elem_bytes\":%lld,"
		       "\"ctx\":%lld,\"kv_bytes_per_token\":%lld,\"state_bytes\":%lld,"
		       "\"cache_bytes\":%lld,\"flops_prefill_per_token\":%.17g,"
		       "\"flops_decode_per_token\":%.17g},\"layers\":[",
		       hash, gj ? gj : "null", (long long)st.params, (long long)st.params_embedding,
		       (long long)st.params_nonembed, o->elem, o->ctx, (long long)st.kv_bytes_per_token,
		       (long long)st.state_bytes, (long long)st.cache_bytes, st.flops_prefill_per_token,
		       st.flops_decode_per_token);
		free(gj);
		for (int i = 0; i < a->n_layers; i++) {
			const genome_arch_layer *l = &a->layers[i];
			printf("%s{\"class\":%u,\"label\":\"%s\",\"structure\":\"%s\",\"heads\":%u,"
			       "\"kv_heads\":%u,\"head_dim\":%u,\"len\":%u,\"inner\":%u,\"params\":%lld,"
			       "\"kv_owner\":%d,\"weights_owner\":%d}",
			       i ? "," : "", l->cls, genome_class_label(&g->classes[l->cls]),
			       genome_struct_name(l->structure), l->heads, l->kv_heads, l->head_dim, l->len,
			       l->inner, (long long)genome_arch_layer_params(a, i), l->xowner[GG_B],
			       l->wowner[GG_C]);
		}
		printf("]}\n");
		free(a);
		return CLI_OK;
	}

	printf("genome   %s\n", g->name[0] ? g->name : "(unnamed)");
	printf("hash     %s\n", hash);
	printf("model    d_model %u, vocab %u, %u layers, %s embeddings, RoPE theta %u\n\n",
	       g->d_model, g->vocab, a->n_layers, g->tied ? "tied" : "untied", g->rope_theta);
	printf("%-4s %-3s %-11s %-9s %-6s %5s %4s %4s %5s %6s  %-10s %-10s %-10s %-6s %12s\n", "#",
	       "cls", "operator", "structure", "mask", "heads", "kv", "hd", "len", "inner", "C", "B",
	       "V", "A", "params");
	for (int i = 0; i < a->n_layers; i++) {
		const genome_arch_layer *l = &a->layers[i];
		const genome_class *gc = &g->classes[l->cls];
		char c[32], b[32], v[32], x[32], hs[16], ks[16], ds[16], ls[16];
		bool has_heads = gc->feat == GF_QKV || gc->feat == GF_CBVA;
		snprintf(hs, sizeof hs, has_heads ? "%u" : "-", l->heads);
		snprintf(ks, sizeof ks, gc->feat == GF_QKV ? "%u" : "-", l->kv_heads);
		snprintf(ds, sizeof ds, has_heads ? "%u" : "-", l->head_dim);
		snprintf(ls, sizeof ls, l->len ? "%u" : "-", l->len);
		printf("%-4d %-3u %-11s %-9s %-6s %5s %4s %4s %5s %6u  %-10s %-10s %-10s %-6s %12lld\n",
		       i, l->cls, genome_class_label(gc), genome_struct_name(l->structure),
		       genome_mask_name(l->mask), hs, ks, ds, ls, l->inner,
		       group_desc(l, i, GG_C, c, sizeof c), group_desc(l, i, GG_B, b, sizeof b),
		       group_desc(l, i, GG_V, v, sizeof v), group_desc(l, i, GG_A, x, sizeof x),
		       (long long)genome_arch_layer_params(a, i));
	}
	printf("(C/B/V/A: feature width; kN a short conv of length N; <Ln features taken from\n"
	       " layer n; w<Ln projection weights shared with layer n)\n\n");
	char h1[32], h2[32], h3[32], b1[32], b2[32], b3[32], f1[32], f2[32];
	human((double)st.params, h1, sizeof h1);
	human((double)st.params_embedding, h2, sizeof h2);
	human((double)st.params_nonembed, h3, sizeof h3);
	human_bytes((double)st.kv_bytes_per_token, b1, sizeof b1);
	human_bytes((double)st.state_bytes, b2, sizeof b2);
	human_bytes((double)st.cache_bytes, b3, sizeof b3);
	human(st.flops_prefill_per_token, f1, sizeof f1);
	human(st.flops_decode_per_token, f2, sizeof f2);
	printf("parameters            %lld (%s; embedding %s, other %s)\n", (long long)st.params, h1,
	       h2, h3);
	printf("mixers                %d dense, %d toeplitz, %d semisep, %d lowrank; %d diagonal\n",
	       st.n_by_struct[GS_DENSE], st.n_by_struct[GS_TOEPLITZ], st.n_by_struct[GS_SEMISEP],
	       st.n_by_struct[GS_LOWRANK], st.n_by_struct[GS_DIAGONAL]);
	printf("KV cache per token    %lld bytes (%s) at %lld byte(s) per element\n",
	       (long long)st.kv_bytes_per_token, b1, o->elem);
	printf("fixed state           %lld bytes (%s)\n", (long long)st.state_bytes, b2);
	printf("cache at %-6lld       %lld bytes (%s)\n", o->ctx, (long long)st.cache_bytes, b3);
	printf("FLOPs per token       prefill %s (mean over %lld tokens), decode %s (at depth %lld)\n",
	       f1, o->ctx, f2, o->ctx);
	free(a);
	return CLI_OK;
}

/* Membership of the space, adopting a genome written without it. */
static int in_space(genome *g, const genome_space *s, tl_rng *rng, tl_err *err)
{
	tl_err e1 = TL_ERR_INIT, e2 = TL_ERR_INIT;
	if (genome_space_check(s, g, &e1) == 0)
		return 0;
	genome a = *g;
	if (genome_space_adopt(&a, s, rng, &e2) == 0) {
		*g = a;
		return 0;
	}
	/* the more telling reason: adoption's when the classes do not match up */
	const tl_err *why = g->n_classes != genome_space_n_classes(s) ? &e2 : &e1;
	return tl_err_setsub(err, TL_EINVAL, why->sub, "%s", why->msg);
}

static int parse_level(const char *s)
{
	if (!strcmp(s, "backbone") || !strcmp(s, "0"))
		return 0;
	if (!strcmp(s, "operator") || !strcmp(s, "1"))
		return 1;
	if (!strcmp(s, "featurizer") || !strcmp(s, "2"))
		return 2;
	if (!strcmp(s, "any"))
		return -1;
	return -2;
}

int cmd_genome(int argc, char **argv, cli_ctx *ctx)
{
	static const struct option longopts[] = {
		{"help", no_argument, NULL, 'h'},
		{"json", no_argument, NULL, 'j'},
		{"text", no_argument, NULL, 't'},
		{"space", required_argument, NULL, 's'},
		{"seed", required_argument, NULL, 'S'},
		{"count", required_argument, NULL, 'n'},
		{"level", required_argument, NULL, 'l'},
		{"ctx", required_argument, NULL, 'c'},
		{"elem-bytes", required_argument, NULL, 'e'},
		{NULL, 0, NULL, 0},
	};
	opts o = {.seed = 1, .count = 1, .level = -1, .ctx = 4096, .elem = 2};
	tl_err err = TL_ERR_INIT;
	int c;
	(void)ctx;

	cli_opt_reset();
	while ((c = cli_opt_next(argc, argv, "hjn:", longopts, "genome")) != -1) {
		switch (c) {
		case 'h': genome_help(stdout); return CLI_OK;
		case 'j': o.json = true; break;
		case 't': o.text = true; break;
		case 's': o.space = optarg; break;
		case 'S':
			if (tl_parse_u64(&o.seed, optarg, "--seed", &err) < 0)
				return cli_usage("genome", "%s", err.msg);
			break;
		case 'n':
			if (cli_int_arg(&o.count, optarg, 1, 1000000, "genome", "--count") < 0)
				return CLI_USAGE;
			break;
		case 'l':
			o.level = parse_level(optarg);
			if (o.level == -2)
				return cli_usage("genome",
				                 "--level: '%s' (backbone, operator, featurizer or any)", optarg);
			break;
		case 'c':
			if (cli_int_arg(&o.ctx, optarg, 1, 1LL << 30, "genome", "--ctx") < 0)
				return CLI_USAGE;
			break;
		case 'e':
			if (cli_int_arg(&o.elem, optarg, 1, 4, "genome", "--elem-bytes") < 0 ||
			    o.elem == 3)
				return cli_usage("genome", "--elem-bytes: '%s' (1, 2 or 4)", optarg);
			break;
		default: return CLI_USAGE;
		}
	}
	if (optind >= argc)
		return cli_usage("genome", "missing subcommand (show, validate, random, mutate, cross)");
	const char *sub = argv[optind++];
	int nargs = argc - optind;
	char **args = argv + optind;
	int want = !strcmp(sub, "show") || !strcmp(sub, "mutate") ? 1
	           : !strcmp(sub, "cross")                        ? 2
	           : !strcmp(sub, "random")                       ? 0
	           : !strcmp(sub, "validate")                     ? -1
	                                                          : -2;
	if (want == -2)
		return cli_usage("genome", "unknown subcommand '%s' (show, validate, random, mutate, cross)",
		                 sub);
	if (want >= 0 && nargs < want)
		return cli_usage("genome", "%s: missing GENOME argument", sub);
	if (want >= 0 && nargs > want)
		return cli_usage("genome", "%s: unexpected argument '%s'", sub, args[want]);
	if (want == -1 && nargs < 1)
		return cli_usage("genome", "validate: missing GENOME argument");
	if (o.text && (o.json || strcmp(sub, "show") != 0))
		return cli_usage("genome", "--text applies to 'show', without --json");
	bool needs_space = !strcmp(sub, "random") || !strcmp(sub, "mutate") || !strcmp(sub, "cross");
	if (needs_space && o.space == NULL)
		return cli_usage("genome", "%s: --space FILE is required", sub);

	genome_space *space = NULL;
	if (o.space && genome_space_load(&space, o.space, &err) < 0)
		return cli_fail(&err);
	tl_rng rng;
	tl_rng_seed(&rng, o.seed, 0x6e6f6d65 /* "gnome" stream */);
	int rc = CLI_OK;

	if (!strcmp(sub, "show")) {
		genome g;
		if (cli_load_genome(&g, args[0], &err) < 0) {
			rc = cli_fail(&err);
		} else if (space && in_space(&g, space, &rng, &err) < 0) {
			tl_err_prefix(&err, "genome: %s: not in space %s", args[0], o.space);
			rc = cli_fail(&err);
		} else if (o.text) {
			print_genome(&g, false);
		} else {
			rc = show(&g, &o);
		}
	} else if (!strcmp(sub, "validate")) {
		for (int i = 0; i < nargs; i++) {
			genome g;
			char hash[65];
			tl_err e = TL_ERR_INIT;
			if (cli_load_genome(&g, args[i], &e) < 0 ||
			    (space && in_space(&g, space, &rng, &e) < 0) ||
			    genome_hash(&g, hash, &e) < 0) {
				fprintf(stderr, "tailor: %s: invalid: %s\n", args[i], e.msg);
				rc = CLI_FAIL;
				continue;
			}
			printf("%s: ok %s%s%s\n", args[i], hash, g.name[0] ? " " : "", g.name);
		}
	} else if (!strcmp(sub, "random")) {
		for (long long i = 0; i < o.count && rc == CLI_OK; i++) {
			genome g;
			if (genome_sample(&g, space, &rng, &err) < 0)
				rc = cli_fail(&err);
			else
				print_genome(&g, o.json);
		}
	} else if (!strcmp(sub, "mutate")) {
		genome g;
		if (cli_load_genome(&g, args[0], &err) < 0) {
			rc = cli_fail(&err);
		} else if (in_space(&g, space, &rng, &err) < 0) {
			tl_err_prefix(&err, "genome mutate: %s: not in space %s", args[0], o.space);
			rc = cli_fail(&err);
		} else {
			for (long long i = 0; i < o.count && rc == CLI_OK; i++) {
				genome m = g;
				if (genome_mutate(&m, space, o.level, &rng, &err) < 0)
					rc = cli_fail(&err);
				else
					print_genome(&m, o.json);
			}
		}
	} else { /* cross */
		genome p1, p2, a, b;
		if (cli_load_genome(&p1, args[0], &err) < 0 || cli_load_genome(&p2, args[1], &err) < 0) {
			rc = cli_fail(&err);
		} else if (in_space(&p1, space, &rng, &err) < 0 || in_space(&p2, space, &rng, &err) < 0) {
			tl_err_prefix(&err, "genome cross: a parent is not in space %s", o.space);
			rc = cli_fail(&err);
		} else if (genome_cross(&a, &b, &p1, &p2, space, &rng, &err) < 0) {
			rc = cli_fail(&err);
		} else {
			print_genome(&a, o.json);
			print_genome(&b, o.json);
		}
	}
	genome_space_free(space);
	return rc;
}
