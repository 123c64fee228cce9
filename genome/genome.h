/*
 * genome/genome.h: candidate architectures as STAR's three-level genomes over
 * LIV operators (DESIGN.md §3), search spaces, and what an architecture costs.
 *
 * Levels:
 *  - backbone genome: one entry per LIV layer, 5 integers
 *      class . featurizer-sharing group . featurizer-sharing strategy .
 *              feature-sharing group . feature-sharing strategy
 *    Every layer is pre-norm residual: x += layer(rmsnorm(x)).
 *  - operator genome: per class, 5 integers
 *      featurizer class . structure . sparsity mask . nonlinearity . channel mixing
 *  - featurizer genome: per class, per feature group (C, B, V, A), 4 integers
 *      token mixing (0 none, k >= 2 a causal depthwise conv of length k) .
 *      channel mixing . expansion . repeat
 *    plus the class's sizes: heads, KV heads, head dim, length (conv kernel,
 *    window or block), SwiGLU inner ratio (in 64ths of d), QK-norm, RoPE.
 * Every integer is explained in docs/genome.md.
 *
 * Objects and ownership:
 *  - genome: a plain value (fixed-size arrays, no pointers): copy with `=`.
 *  - genome_space: loaded from JSON by genome_space_load, owned by the caller,
 *    freed with genome_space_free (NULL ok).
 *  - genome_arch: a plain value; genome_decode fills it.
 *  - Strings from genome_to_text / genome_to_json are malloc'd; caller frees.
 * Randomness comes only from the tl_rng the caller passes.
 *
 * Usage:
 *     genome g; genome_arch a; genome_stats st; tl_err err = TL_ERR_INIT;
 *     if (genome_parse(&g, text, "argv[2]", &err) < 0) ...
 *     if (genome_decode(&a, &g, &err) < 0) ...
 *     genome_stats_compute(&st, &a, 1, 4096);   // 1 byte/element, 4K context
 *     char hash[65]; genome_hash(&g, hash, &err);
 */
#ifndef GENOME_H
#define GENOME_H

#include <stdbool.h>
#include <stdint.h>

#include "tl.h"

#define GENOME_FORMAT_VERSION 1
#define GENOME_MAX_LAYERS 128
#define GENOME_MAX_CLASSES 8
#define GENOME_NGROUPS 4 /* feature groups C, B, V, A */
#define GENOME_NAME_MAX 64

/* ---- the integers -------------------------------------------------------- */

/* Featurizer class: which feature groups a class computes and their shapes. */
enum genome_feat {
	GF_QKV = 0,  /* C=Q (heads*hd), B=K and V (kv*hd each): attention-like    */
	GF_BCH = 1,  /* C, B, V=h, each e*d wide (one d->3ed projection): gated conv */
	GF_CBVA = 2, /* C, B (heads*state), V (heads*hd), A (heads): recurrence  */
	GF_GLU = 3,  /* C=gate, V=up (inner wide): SwiGLU / GLU                   */
	GF_COUNT
};
/* Token-mixing structure: how T[i][j] is built from the features. */
enum genome_struct {
	GS_DIAGONAL = 0,  /* sigma(C_i) if i == j: SwiGLU / GLU                      */
	GS_LOWRANK = 1,   /* phi(C_i).phi(B_j): linear attention                      */
	GS_SEMISEP = 2,   /* C_i A_{i-1}..A_{j+1} B_j: diagonal input-varying recurrence */
	GS_TOEPLITZ = 3,  /* C_i K_{i-j} B_j: gated convolution (LFM2, Hyena)          */
	GS_DENSE = 4,     /* softmax(C_i.B_j): attention (MHA, GQA)                  */
	GS_COUNT
};
enum genome_mask {
	GM_NONE = 0,   /* causal, full                                   */
	GM_WINDOW = 1, /* causal, banded: j > i - len                    */
	GM_BLOCK = 2,  /* causal within blocks of len tokens             */
	GM_COUNT
};
enum genome_nonlin {
	GN_NONE = 0,
	GN_SOFTMAX = 1,
	GN_SILU = 2,
	GN_SIGMOID = 3,
	GN_POSFEAT = 4, /* positive feature map elu(x)+1 (linear attention) */
	GN_COUNT
};
enum genome_chmix {
	GC_DIAGONAL = 0, /* per channel (depthwise)                   */
	GC_HEADS = 1,    /* block-diagonal, one block per head         */
	GC_DENSE = 2,    /* full                                       */
	GC_COUNT
};
/* Feature groups, in this order wherever an array is indexed by group. */
enum genome_group { GG_C = 0, GG_B = 1, GG_V = 2, GG_A = 3 };
/* Featurizer-sharing strategy: which projection weights a group of layers
 * shares (layers of one class with the same non-zero group number). */
enum genome_wshare {
	GW_NONE = 0,
	GW_ALL = 1, /* every featurizer projection (C, B, V, A)            */
	GW_CB = 2,  /* the C and B projections (Q and K)                    */
	GW_V = 3,   /* the V projection                                     */
	GW_COUNT
};
/* Feature-sharing strategy: which computed features the later layers of a
 * group take from the group's first layer instead of computing their own
 * (cross-layer KV sharing is GX_BV on attention layers: K and V, and their
 * cache, exist once). */
enum genome_xshare {
	GX_NONE = 0,
	GX_BV = 1, /* K and V (B and V) */
	GX_B = 2,
	GX_V = 3,
	GX_COUNT
};

/* ---- the genome ---------------------------------------------------------- */

typedef struct genome_layer {
	uint8_t cls;        /* class id, < n_classes                              */
	uint8_t wgroup;     /* featurizer-sharing group, 0 = own weights           */
	uint8_t wstrategy;  /* enum genome_wshare; 0 when wgroup is 0              */
	uint8_t xgroup;     /* feature-sharing group, 0 = own features              */
	uint8_t xstrategy;  /* enum genome_xshare; 0 when xgroup is 0              */
} genome_layer;

typedef struct genome_fgene {
	uint16_t conv;      /* featurizer token mixing: 0 none, else conv length 2..64 */
	uint8_t chmix;      /* enum genome_chmix of the projection                    */
	uint8_t expand;     /* width multiplier over the group's natural width (1..8) */
	uint8_t repeat;     /* times the group is repeated across heads (GQA: heads/kv) */
	uint8_t reserved;   /* 0; keeps the struct free of padding (memcmp-able) */
} genome_fgene;

typedef struct genome_class {
	/* operator genome */
	uint8_t feat, structure, mask, nonlin, chmix;
	uint8_t qk_norm;    /* per-head RMSNorm on C and B (qkv only), 0/1         */
	uint8_t rope;       /* rotary positions on C and B (qkv only), 0/1         */
	uint8_t reserved;   /* 0; no padding                                        */
	/* sizes */
	uint16_t heads;     /* query / output heads, 1..128 (1 for bch and glu)    */
	uint16_t kv_heads;  /* K/V heads, divides heads (GQA); = heads for MHA     */
	uint16_t head_dim;  /* channels per head (0 for bch and glu)               */
	uint16_t len;       /* conv kernel (toeplitz), window (GM_WINDOW) or block
	                     * (GM_BLOCK) length in tokens; 0 when unused          */
	uint16_t ffn;       /* SwiGLU inner width in 64ths of d (glu only; 288 =
	                     * 4.5 d); rounded up to the genome's ffn_multiple      */
	/* featurizer genome, by group (enum genome_group) */
	genome_fgene fg[GENOME_NGROUPS];
} genome_class;

typedef struct genome {
	char name[GENOME_NAME_MAX]; /* optional label (presets); not hashed      */
	uint32_t d_model;           /* residual width                            */
	uint32_t vocab;             /* tokens                                    */
	uint32_t ffn_multiple;      /* SwiGLU inner widths round up to this      */
	uint32_t rope_theta;        /* RoPE base                                  */
	uint8_t tied;               /* LM head tied to the embedding, 0/1        */
	uint8_t n_classes;
	uint16_t n_layers;
	genome_class classes[GENOME_MAX_CLASSES];
	genome_layer layers[GENOME_MAX_LAYERS];
} genome;

/* A genome has no padding bytes, so two genomes are equal iff memcmp says so
 * (every constructor starts from zeroed memory). */
_Static_assert(sizeof(genome_fgene) == 6, "genome_fgene has padding");
_Static_assert(sizeof(genome_class) == 8 + 10 + 4 * 6, "genome_class has padding");
_Static_assert(sizeof(genome) == GENOME_NAME_MAX + 16 + 4 +
                                 GENOME_MAX_CLASSES * sizeof(genome_class) +
                                 GENOME_MAX_LAYERS * sizeof(genome_layer),
               "genome has padding");

/* Intrinsic validity (no space): every integer in range, the featurizer
 * class fits the structure, sizes consistent (kv divides heads, widths that
 * must match d do), sharing groups within one class and canonical in form.
 * On failure: TL_EINVAL with "<where>: <what> (<fix>)", `where` naming the
 * layer or class as in the text form (e.g. "class 2: kv_heads 3 does not
 * divide heads 16"). */
int genome_check(const genome *g, tl_err *err);

/* Put a structurally valid genome in canonical form: sharing groups numbered
 * 1, 2, ... in order of first use, singleton groups and groups with a NONE
 * strategy dropped, sizes and feature groups a class does not use zeroed.
 * (Members of one group that disagree on class or strategy are an error
 * genome_check reports, not something this guesses at.) Idempotent. */
void genome_canonicalize(genome *g);

/* ---- text and JSON forms -------------------------------------------------- */

/* Canonical text, one line:
 *   tailor-genome/1 d=1024 vocab=65536 ffn_multiple=256 rope_theta=1000000 tied=1
 *   | 1.0.0.0.0 0.0.0.0.0 ...                         (one group per layer)
 *   | c0 op=3.0.0.2.0 h=1 kv=1 hd=0 len=0 ffn=288 qkn=0 rope=0 C=0.2.1.1 V=0.2.1.1
 *   | c1 ...
 * Feature groups a featurizer class does not compute are omitted. */
char *genome_to_text(const genome *g);
/* JSON form (see docs/genome.md); pretty when `pretty`. */
char *genome_to_json(const genome *g, bool pretty);
/* Parse text or JSON (chosen by the first non-blank character). `source`
 * names the input in errors ("lfm2.json", "argv[2]"): TL_EPARSE with
 * "<source>: <place>: <reason>" where place is a JSON path or a token
 * position; the result is checked with genome_check. */
int genome_parse(genome *out, const char *s, const char *source, tl_err *err);
/* Read a file holding text or JSON. */
int genome_load(genome *out, const char *path, tl_err *err);

/* ---- identity ------------------------------------------------------------- */

/* SHA-256 (hex) of the decoded architecture's canonical description: two
 * genomes that decode to the same architecture hash the same, whatever their
 * class numbering, group numbering, unused classes or unused genes. */
int genome_hash(const genome *g, char hex[65], tl_err *err);

/* ---- decode to an architecture ------------------------------------------- */

typedef struct genome_arch_layer {
	uint8_t feat, structure, mask, nonlin, chmix; /* the class's operator genome */
	uint8_t cls;        /* class id in the genome (informational)            */
	uint16_t heads, kv_heads, head_dim;
	uint16_t len;       /* kernel, window or block length, 0 if none         */
	uint32_t inner;     /* value width: SwiGLU inner, conv E = e*d, heads*hd  */
	uint32_t state;     /* semisep state per head (e*hd); 0 otherwise          */
	uint8_t qk_norm, rope;
	uint32_t width[GENOME_NGROUPS];  /* feature width per group, 0 = not computed */
	uint16_t conv[GENOME_NGROUPS];   /* featurizer conv length per group, 0 none */
	uint8_t proj_chmix[GENOME_NGROUPS];
	/* Weight sharing: for each group, the layer whose projection this layer
	 * uses (itself when it owns it). */
	int16_t wowner[GENOME_NGROUPS];
	/* Feature sharing: for each group, the layer whose computed feature (and
	 * cache/state) this layer reads (itself when it computes it). */
	int16_t xowner[GENOME_NGROUPS];
} genome_arch_layer;

typedef struct genome_arch {
	uint32_t d_model, vocab, ffn_multiple, rope_theta;
	uint8_t tied;
	uint16_t n_layers;
	genome_arch_layer layers[GENOME_MAX_LAYERS];
} genome_arch;

int genome_decode(genome_arch *out, const genome *g, tl_err *err);
/* A canonical description of the arch (malloc'd text) - what genome_hash
 * hashes, and what a build records next to its sources. */
char *genome_arch_describe(const genome_arch *a);

/* ---- analytics ------------------------------------------------------------ */

typedef struct genome_stats {
	int64_t params;            /* weights, shared ones once, embedding included */
	int64_t params_embedding;  /* vocab-sized matrices: the embedding, and the
	                            * LM head too when it is not tied             */
	int64_t params_nonembed;   /* params - params_embedding                     */
	int64_t kv_bytes_per_token; /* cache growing with context (unbounded layers) */
	int64_t state_bytes;       /* fixed state: recurrences, conv buffers          */
	int64_t cache_bytes;       /* all cache and state at `ctx` tokens             */
	double flops_prefill_per_token; /* mean per token over a prompt of ctx tokens */
	double flops_decode_per_token;  /* one token at depth ctx                     */
	int n_by_struct[GS_COUNT]; /* layers per structure                           */
} genome_stats;

/* elem_bytes: bytes per cached element (1 for q8, 2 for f16, 4 for f32). */
void genome_stats_compute(genome_stats *out, const genome_arch *a, int elem_bytes, int64_t ctx);
/* Parameters of one layer, counting only weights it owns (norm included). */
int64_t genome_arch_layer_params(const genome_arch *a, int i);
/* Does featurizer class `feat` compute feature group `grp`? */
bool genome_feat_has_group(int feat, int grp);

/* ---- search spaces -------------------------------------------------------- */

typedef struct genome_space genome_space;

/* Load a search space from JSON (docs/genome.md): errors name the file and
 * the JSON path, e.g. "space.json: classes[2].kv_heads: 3 does not divide
 * heads 16". */
int genome_space_load(genome_space **out, const char *path, tl_err *err);
int genome_space_parse(genome_space **out, const char *json, const char *source, tl_err *err);
void genome_space_free(genome_space *s);
/* SHA-256 of what the space allows (a fixed description of its parsed
 * values), so reformatting or reordering the JSON does not change it. */
const char *genome_space_hash(const genome_space *s);
int genome_space_n_classes(const genome_space *s);

/* Is g a member of the space? (class i fits the space's class i, depth,
 * width, vocab, layout and budget in range.) TL_EINVAL with a reason. */
int genome_space_check(const genome_space *s, const genome *g, tl_err *err);
/* Make a genome written without the space (a preset, a hand-written file)
 * a member, without changing its architecture: its classes are renumbered
 * to the space classes that allow their operator genomes, and the space's
 * other classes are drawn at random (no layer uses them). TL_EINVAL, with
 * the reason, when a class has no counterpart or a size is not allowed. */
int genome_space_adopt(genome *g, const genome_space *s, tl_rng *rng, tl_err *err);
/* Draw a uniformly random member. */
int genome_sample(genome *out, const genome_space *s, tl_rng *rng, tl_err *err);
/* Mutate one gene at the chosen level and repair. level: 0 backbone,
 * 1 operator, 2 featurizer, -1 any (uniform over levels). */
int genome_mutate(genome *g, const genome_space *s, int level, tl_rng *rng, tl_err *err);
/* Two-point crossover on the backbone: child a = p1[0:i] p2[i:j] p1[j:],
 * child b the complement; each child keeps its first parent's classes. Both
 * children are repaired. */
int genome_cross(genome *a, genome *b, const genome *p1, const genome *p2,
                 const genome_space *s, tl_rng *rng, tl_err *err);
/* Make g a member of s with the smallest change we know: clamp genes to the
 * allowed values, fix divisibility, layout and sharing, then meet the
 * parameter budget by scaling the SwiGLU widths. TL_EINVAL if impossible. */
int genome_repair(genome *g, const genome_space *s, tl_err *err);

/* ---- strict JSON ------------------------------------------------------------ */

/* Parse JSON as every tailor file reader does: no duplicate keys, nothing
 * after the value; errors name the source with line and column. The result
 * is a cJSON tree the caller frees with cJSON_Delete. */
struct cJSON *genome_json_parse(const char *s, const char *src, tl_err *err);

/* ---- names ------------------------------------------------------------------ */

const char *genome_struct_name(int s);
const char *genome_feat_name(int f);
const char *genome_mask_name(int m);
const char *genome_nonlin_name(int n);
const char *genome_chmix_name(int c);
/* A short name of a class's operator as people call it ("gqa", "mha",
 * "swa", "linattn", "recurrence", "shortconv", "hyena-x", "hyena-se",
 * "swiglu", "glu"...). */
const char *genome_class_label(const genome_class *c);

#endif /* GENOME_H */
