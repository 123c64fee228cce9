/*
 * quality/quality.h: how good an architecture is (DESIGN.md §6). The room
 * holds a CPU trainer for any architecture the runtime runs (op_arch), the
 * data it trains on (a byte-level corpus, the six MAD synthetic tasks), and
 * three evaluators:
 *  - train:   byte-level language modelling on a corpus file for a fixed token
 *             budget; validation loss and bits per byte on a held-out split;
 *  - mad:     the MAD tasks (Poli et al. 2024) at their published baseline
 *             settings; accuracy per task on a test split;
 *  - command: an external program (a GPU job, e.g. submitted to Slurm) gets
 *             the genome and arch as JSON on stdin and prints metrics as JSON
 *             (protocol in docs/quality.md).
 * Candidates are trained as a reduced-width proxy (qual_proxy_genome): full
 * depth, fixed head dim, the configured width, as Hyena Edge's search did.
 *
 * The trainer (qual_model): parameters, gradients and activations of one
 * model in three allocations cut by size tables; the forward is its own f32
 * code (materialized structures, the same math as operators/model.c) and
 * every layer has a backward pass. Work is split over an op_pool so that
 * every output element is computed by one thread in a fixed order: results
 * are bit-identical for a seed whatever the thread count.
 *
 * Ownership: qual_model_create returns a model the caller frees with
 * qual_model_free (NULL ok); results (qual_result) own their curve, freed by
 * qual_result_free. The pool is the caller's. No global state; randomness
 * only from PCG32 streams derived from the seed given.
 *
 * Usage:
 *     qual_train_cfg c = qual_train_cfg_default();
 *     c.corpus = "data/tinyshakespeare.txt"; c.tokens = 1 << 20;
 *     qual_result r; tl_err err = TL_ERR_INIT;
 *     if (qual_eval_train(&r, &g, &c, pool, &err) < 0) ... err.msg ...
 *     printf("val_bpb %.3f\n", r.val_bpb);
 *     qual_result_free(&r);
 */
#ifndef QUALITY_H
#define QUALITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "genome.h"
#include "op_arch.h"
#include "op_kernels.h"
#include "tl.h"

/* ---- the trainer's model ------------------------------------------------- */

typedef struct qual_model qual_model;

/* Targets equal to this are ignored by the loss (MAD's -100). */
#define QUAL_IGNORE (-1)

typedef struct qual_model_cfg {
	int max_batch;    /* sequences per step, >= 1                              */
	int seq_len;      /* tokens per sequence (positions 0..seq_len-1), >= 1     */
	uint64_t seed;    /* initial weights from PCG32(seed, one stream per row)   */
	float init_std;   /* std of projections and embeddings (0.02)              */
	float norm_eps;   /* RMSNorm epsilon, as the runtime (1e-5)                */
	bool autoencode;  /* MAD compression: the last position's state decodes
	                   * every position (see qual_model_forward)              */
} qual_model_cfg;

qual_model_cfg qual_model_cfg_default(void);

/* Build the model for arch a (the head is tied to the embedding, as the
 * runtime's). TL_EINVAL for sizes the trainer does not take, TL_ENOMEM. */
int qual_model_create(qual_model **out, const op_arch *a, const qual_model_cfg *cfg,
                      tl_err *err);
void qual_model_free(qual_model *m);
const op_arch *qual_model_arch(const qual_model *m);
/* All parameters, one array, in the runtime's tensor order (the order of a
 * tailor-weights/1 file); gradients alongside, same layout. */
float *qual_model_params(qual_model *m);
float *qual_model_grads(qual_model *m);
int64_t qual_model_nparams(const qual_model *m);
/* Tensor j of the layout: its offset in the parameter array, rows and
 * columns, and whether AdamW decays it (not norm gains). Returns false past
 * the last tensor. */
bool qual_model_tensor(const qual_model *m, int j, int64_t *offset, int64_t *rows, int64_t *cols,
                       bool *decay);

/* Forward of B sequences of T tokens (B <= max_batch, T <= seq_len):
 * tokens (B, T); targets (B, T) with QUAL_IGNORE where no loss is taken.
 * Language-model mode: the logits of position t score targets[t]. In
 * autoencode mode the state after the last position, plus a fixed sin-cos
 * code of position p, goes through the final norm and the head to score
 * targets[p] for every p. *loss = mean cross-entropy over the targets taken
 * (nats), *count how many. Keeps what the backward needs.
 * TL_EINVAL for out-of-range tokens or sizes. */
int qual_model_forward(qual_model *m, op_pool *pool, const int32_t *tokens,
                       const int32_t *targets, int B, int T, double *loss, int64_t *count,
                       tl_err *err);
/* Gradients of the last forward's mean loss into qual_model_grads (set, not
 * accumulated). */
void qual_model_backward(qual_model *m, op_pool *pool);
/* Logits of the last forward, (B*T, vocab) row-major. */
const float *qual_model_logits(const qual_model *m);
/* Write the weights as a tailor-weights/1 file of f32 tensors, which the
 * runtime loads with op_model_cfg.weights_path and wtype OP_F32. TL_EIO. */
int qual_model_save_weights(const qual_model *m, const char *path, tl_err *err);

/* ---- optimiser ------------------------------------------------------------ */

typedef struct qual_optim_cfg {
	double lr;          /* peak learning rate                                  */
	double min_lr;      /* floor of the cosine decay                          */
	double beta1, beta2, eps;
	double weight_decay; /* decoupled (AdamW), on decayed tensors only         */
	double clip;        /* global gradient norm clip, 0 none                    */
	int64_t warmup;     /* linear warm-up steps                                 */
	int64_t steps;      /* total steps (cosine from warmup to steps)            */
	int schedule;       /* QUAL_SCHED_COSINE, or QUAL_SCHED_WSD                  */
	int64_t decay_from; /* WSD: the first step of the decay                     */
} qual_optim_cfg;

/* Schedules: COSINE: linear warm-up, then cosine to min_lr at `steps`.
 * WSD (warm-up, stable, decay): linear warm-up, the peak lr until
 * decay_from, then linear to min_lr at the last step. Before decay_from a
 * WSD rate does not depend on `steps`, which is what lets a training
 * continue to a longer budget exactly (qual_eval_train, checkpoints). */
enum { QUAL_SCHED_COSINE = 0, QUAL_SCHED_WSD = 1 };

/* Learning rate at step s (0-based), by the schedule. */
double qual_lr_at(const qual_optim_cfg *c, int64_t step);
/* One AdamW step on p with gradient g (n values); m, v moments (zeroed at
 * start); decay[i] per value. Returns the gradient norm before clipping. */
double qual_adamw_step(const qual_optim_cfg *c, int64_t step, float *p, const float *g, float *m,
                       float *v, const uint8_t *decay, int64_t n, op_pool *pool);

/* ---- proxy ------------------------------------------------------------------ */

/* The reduced-width proxy of g: d_model = width, full depth, the same head
 * dim; heads and KV heads scaled with the width (GQA ratio kept, >= 1 KV
 * head), SwiGLU widths follow (they are in 64ths of d), vocab = vocab.
 * TL_EINVAL naming the class when no valid proxy exists at that width. */
int qual_proxy_genome(genome *out, const genome *g, int width, int vocab, tl_err *err);
/* Decode g and parse its arch text into the runtime's op_arch. */
int qual_arch_of(op_arch *out, const genome *g, tl_err *err);

/* ---- evaluators --------------------------------------------------------------- */

typedef struct qual_point {
	int task;              /* -1 train; else the MAD task (enum qual_mad_task)  */
	int64_t step, tokens;  /* after this many steps / training tokens          */
	double loss;           /* training loss of the step (nats)                  */
	double lr;             /* learning rate used                                */
	double val_loss;       /* NaN unless measured at this point                 */
} qual_point;

/* Progress callback: called after each logged step (may be NULL). */
typedef void (*qual_progress_fn)(void *ud, const qual_point *p, int64_t total_steps);

#define QUAL_MAD_TASKS 6
enum qual_mad_task {
	QUAL_MAD_RECALL,      /* in-context recall                */
	QUAL_MAD_FUZZY,       /* fuzzy in-context recall          */
	QUAL_MAD_NOISY,       /* noisy in-context recall          */
	QUAL_MAD_SELCOPY,     /* selective copying                */
	QUAL_MAD_COMPRESS,    /* compression                      */
	QUAL_MAD_MEMORIZE,    /* memorization                     */
};
const char *qual_mad_task_name(int task); /* "recall", "fuzzy_recall", ... */
int qual_mad_task_lookup(const char *name); /* -1 when unknown */

typedef struct qual_train_cfg {
	int width;            /* proxy width (d_model), 0: the genome's own           */
	int64_t tokens;       /* training token budget                                 */
	int batch, seq;       /* sequences per step and their length                   */
	uint64_t seed;
	qual_optim_cfg opt;   /* steps and warmup are derived from tokens when 0       */
	double warmup_frac;   /* warm-up as a fraction of the steps (0.05)             */
	int threads;          /* informative (the pool decides)                        */
	const char *corpus;   /* train: the corpus file                                */
	double val_frac;      /* train: held-out tail of the corpus (0.1)              */
	int64_t val_tokens;   /* train: validation tokens scored (0: the whole split)   */
	int log_every;        /* steps between curve points (0: about 50 points)        */
	unsigned mad_tasks;   /* mad: bit mask of enum qual_mad_task (0: all)          */
	int64_t mad_train_examples; /* 0: the published count (12,800; 256 memorize)  */
	int64_t mad_test_examples;  /* 0: 1,280                                        */
	int mad_epochs;       /* mad: epochs over the training set when tokens == 0     */
	qual_progress_fn progress;
	void *progress_ud;
	/* polled before every step (may be NULL): true ends the training with
	 * TL_ESTOPPED, nothing measured */
	bool (*stop)(void *ud);
	void *stop_ud;
	/* train: the schedule (QUAL_SCHED_COSINE by default). With WSD the last
	 * decay_frac of the steps (0.2) decay; the steps before them (the
	 * trunk) are a prefix of every longer budget's, so with ckpt_dir set
	 * the trunk's end state is saved there and a longer budget of the same
	 * genome and settings starts from the longest trunk not beyond its own
	 * (the result is the same, bit for bit, as training it from step 0).
	 * The warm-up must then be given in steps (opt.warmup > 0): a fraction
	 * of the steps would differ between budgets. */
	int schedule;
	double decay_frac;
	const char *ckpt_dir;
} qual_train_cfg;

qual_train_cfg qual_train_cfg_default(void);

typedef struct qual_result {
	double val_loss, val_bpb;      /* train evaluator                         */
	double train_loss;             /* mean loss of the last 10% of steps      */
	double mad_acc[QUAL_MAD_TASKS]; /* mad evaluator: NaN when not run        */
	int64_t params, steps, tokens;
	double seconds, tokens_per_s;
	qual_point *curve;             /* owned; n_curve points                   */
	int n_curve;
	char arch_hash[65];            /* SHA-256 of the proxy's arch text         */
	int64_t trunk_steps;           /* WSD: steps before the decay              */
	int64_t resumed_step;          /* WSD: steps taken from a checkpoint (0)   */
	char ckpt_key[65];             /* WSD with ckpt_dir: the checkpoints' key  */
} qual_result;

void qual_result_free(qual_result *r);

/* Train the proxy of g on the corpus for cfg->tokens tokens; score the
 * held-out split. Errors name the corpus or the genome. */
int qual_eval_train(qual_result *out, const genome *g, const qual_train_cfg *cfg, op_pool *pool,
                    tl_err *err);
/* Train a fresh proxy per MAD task and score test accuracy. */
int qual_eval_mad(qual_result *out, const genome *g, const qual_train_cfg *cfg, op_pool *pool,
                  tl_err *err);

/* ---- checkpoints (quality/ckpt.c) ----------------------------------------------------- */

/* A trainer's state after `step` trunk steps; the arrays are the caller's
 * (n floats each). key: 64 hex (see qual_eval_train). */
typedef struct qual_ckpt {
	char key[65];
	int64_t step, n;
	float *params, *m, *v;
	tl_rng rng;
} qual_ckpt;

/* The checkpoint directory, TAILOR_CACHE's "ckpt" (created). */
int qual_ckpt_dir(char *out, size_t n, tl_err *err);
/* Write DIR/KEY-STEP.ckpt (atomically). TL_EIO. */
int qual_ckpt_save(const char *dir, const qual_ckpt *c, tl_err *err);
/* The largest step <= max_step with a checkpoint of key in dir (-1: none). */
int qual_ckpt_find(const char *dir, const char *key, int64_t max_step, int64_t *step,
                   tl_err *err);
/* Read c->key at c->step into c's arrays (c->n must match) and c->rng.
 * TL_EPARSE naming the file when it is damaged or not this model's. */
int qual_ckpt_load(const char *dir, qual_ckpt *c, tl_err *err);
/* Count (and, when remove_them, delete) the checkpoints in dir last written
 * at least older_than_s seconds ago (0: all), left-over temporary files
 * included: *files, *bytes. */
int qual_ckpt_scan(const char *dir, int64_t older_than_s, bool remove_them, int64_t *files,
                   int64_t *bytes, tl_err *err);

/* ---- fidelity (quality/fidelity.c) ------------------------------------------------------ */

/* Rank agreement of two samples: Kendall's tau-b and Spearman's rho (NaN
 * when one side is all ties), with 95% percentile bootstrap intervals
 * (NaN when resamples < 10 or n < 3). */
typedef struct qual_agreement {
	double tau, tau_lo, tau_hi;
	double rho, rho_lo, rho_hi;
} qual_agreement;

double qual_kendall_tau_b(const double *x, const double *y, int n);
double qual_spearman_rho(const double *x, const double *y, int n);
/* TL_ENOMEM, else 0. */
int qual_rank_agreement(qual_agreement *out, const double *x, const double *y, int n,
                        int resamples, uint64_t seed);

#define QUAL_FIDELITY_MAX_BUDGETS 8

/* A fidelity study's results: val_bpb of n genomes at nb budgets (seed 1)
 * and at the lowest budget for ns seeds; the agreement between every two
 * budgets (agree[a * nb + b]); the seed noise (the median absolute paired
 * difference, and sigma, one training's standard deviation); the agreement
 * of seed 1 with seed 2; each budget's spread (max - min); enough: the first
 * budget below the highest whose tau against it is >= 0.8 (-1: none). */
typedef struct qual_fidelity {
	int n, nb, ns;
	int64_t budgets[QUAL_FIDELITY_MAX_BUDGETS];
	double *q, *qs;
	qual_agreement *agree;
	qual_agreement seed_agree;
	double noise_median, noise_sigma;
	double spread[QUAL_FIDELITY_MAX_BUDGETS];
	int enough;
	double seconds;
} qual_fidelity;

typedef struct qual_fidelity_cfg {
	int64_t budgets[QUAL_FIDELITY_MAX_BUDGETS]; /* tokens, increasing */
	int n_budgets;
	int seeds;             /* trainings at the lowest budget per genome (2)   */
	qual_train_cfg train;  /* corpus, width, batch, seq, lr, warmup (steps),
	                        * ckpt_dir...; schedule and tokens are set here */
	int resamples;         /* bootstrap resamples (1000)                       */
	/* after every training step: genome, budget and seed indices, tokens
	 * trained so far of the study's total, seconds (may be NULL) */
	void (*progress)(void *ud, int genome, int budget, int seed, int64_t done, int64_t total,
	                 double seconds);
	/* after every training (may be NULL): a non-zero return ends the study */
	int (*result)(void *ud, int genome, int budget, int seed, const qual_train_cfg *c,
	              const qual_result *r, tl_err *err);
	void *progress_ud;
} qual_fidelity_cfg;

/* Train every genome at every budget (one WSD training continued from
 * checkpoints) and at the lowest budget for the other seeds; then
 * qual_fidelity_stats. Free with qual_fidelity_free. */
int qual_fidelity_run(qual_fidelity *f, const genome *gs, int n, const qual_fidelity_cfg *cfg,
                      op_pool *pool, tl_err *err);
/* The statistics of f's values (f->q, f->qs filled). */
int qual_fidelity_stats(qual_fidelity *f, int resamples, uint64_t seed, tl_err *err);
void qual_fidelity_free(qual_fidelity *f);

/* ---- MAD data --------------------------------------------------------------- */

typedef struct qual_mad_spec {
	int vocab, seq_len;            /* model vocab, input length                */
	int64_t train_examples, test_examples;
	int noise_vocab; double frac_noise;
	int k_motif, v_motif, n_copy;
	bool multi_query, autoencode;
} qual_mad_spec;

/* The published baseline settings of a task (mad-lab configs/tasks/). */
qual_mad_spec qual_mad_baseline(int task);
/* One instance: inputs and targets (seq_len each, QUAL_IGNORE where no
 * target). Training instances take every next token as target where MAD
 * does (the recall tasks); test instances only the probed ones. */
void qual_mad_instance(int task, const qual_mad_spec *s, bool train, tl_rng *rng, int32_t *inputs,
                       int32_t *targets);

/* ---- command evaluator ---------------------------------------------------- */

typedef struct qual_cmd_cfg {
	char *const *argv;    /* the command (argv[0] searched in PATH), NULL-ended */
	int timeout_s;        /* kill the command after this long                   */
	const char *settings_json; /* passed through in the request (may be NULL)  */
} qual_cmd_cfg;

typedef struct qual_metric {
	char name[64];
	double value;
} qual_metric;

/* Run the command with the request (genome, arch, settings) as JSON on its
 * stdin; parse its stdout as {"metrics": {"name": number, ...}}. Errors:
 * TL_ETIMEOUT, TL_EFAIL (exit status, with its last stderr line),
 * TL_EPARSE (output not that JSON, saying what was wrong). *out is a malloc'd
 * array of *n metrics. */
int qual_eval_command(qual_metric **out, int *n, const genome *g, const qual_cmd_cfg *cfg,
                      tl_err *err);

#endif /* QUALITY_H */
