/*
 * profiler/optable.h: operator latency tables and the predictor (DESIGN.md
 * §5; docs/devices.md "Operator tables and the predictor").
 *
 * The unit of a table is a layer configuration, the "operator" a genome is
 * made of: a layer's whole line of the arch text (operator, sizes, feature
 * widths, featurizer convolutions, which features or weights it takes from
 * another layer), without its position. All layers of one class of a genome
 * share one configuration, so a space produces a few hundred keys at most,
 * and a genome of 30 layers uses five or so.
 *
 * How a table is made (`tailor device profile-ops`):
 *  1. keys: the configurations of many random genomes of the space
 *     (prof_keyset_add_arch), with how often each was seen;
 *  2. plan: profiling architectures that hold every key `instances` times,
 *     laid out like the space's genomes (token mixers alternating with
 *     channel mixers, about as deep), so that each layer runs with the
 *     caches and memory traffic of a real model (prof_plan);
 *  3. measure each one on the device under the protocol with the harness's
 *     --layer-times: per layer, the prompt's time (prefill of P tokens at
 *     depth D) and the median decode step (from position D + P), and its
 *     weight, state and activation bytes (prof_table_observe);
 *  4. finish: per key and shape the median over instances and repeats; the
 *     fixed costs (embedding, LM head, argmax, the harness's loop) as the
 *     median of what the whole-run figures leave over the summed entries;
 *     peak RSS as fixed + sum of weights and states + alpha x the largest
 *     activation need, c and alpha by least squares (prof_table_finish).
 *
 * The predictor (prof_predict) sums the entries of a genome's layers plus
 * the fixed costs: TTFT, decode latency (the median step) and peak RSS at a
 * shape of the table; between measured shapes, decode is interpolated
 * linearly in the position where decoding starts, prefill in the prompt
 * length (same depth) or else in the depth (same prompt length). How good that is, is measured
 * (`tailor predict --validate`), never assumed.
 *
 * This file uses operators (the arch parser), util and cJSON (the table's
 * JSON form); no SQLite, no devices.
 *
 * Usage:
 *     prof_keyset ks = {0};
 *     prof_keyset_add_arch(&ks, &arch, &err);            // per sampled genome
 *     char **archs; size_t n;
 *     prof_plan(&archs, &n, &ks, 3, 0, &err);            // arch texts to measure
 *     prof_table *t;
 *     prof_table_create(&t, &ks, shapes, n_shapes, &err);
 *     prof_table_observe(t, shape, &arch, &obs, &err);   // per harness run
 *     prof_table_finish(t, &err);
 *     prof_pred p;
 *     prof_predict(t, &genome_arch, &shape, &p, &err);
 */
#ifndef PROF_OPTABLE_H
#define PROF_OPTABLE_H

#include <stddef.h>
#include <stdint.h>

#include "op_arch.h"
#include "protocol.h"
#include "tl.h"

#define PROF_KEY_MAX 512
#define PROF_OPTABLE_FORMAT "tailor-optable/1"

/* The key of layer i of a: its arch line without "L<i>", owners written as
 * "/w" (own weights), "/wsh" (weights of an earlier layer) and "xsh..."
 * (the feature of an earlier layer, with its width, mixing and conv).
 * Returns 0, or TL_EINVAL when the key does not fit buf. */
int prof_layer_key(const op_arch *a, int i, char *buf, size_t n, tl_err *err);
/* Is the key a token mixer (not a channel mixer, structure diagonal)? */
int prof_key_is_mixer(const char *key);

/* ---- keys of a space -------------------------------------------------------- */

typedef struct prof_keyset {
	char header[160];     /* "arch/1 d=... vocab=... tied=... [rope_theta=...]" */
	char **keys;          /* distinct, in order of first sight                 */
	int64_t *count;       /* layers seen with each key                         */
	size_t n, cap;
	int64_t archs;        /* architectures added                               */
	int64_t layers;       /* their layers, in all                              */
} prof_keyset;

/* Add every layer of a. The first arch sets the header (d, vocab, tied,
 * rope theta); a later one with another header is TL_EINVAL (a table is for
 * one space). */
int prof_keyset_add_arch(prof_keyset *ks, const op_arch *a, tl_err *err);
void prof_keyset_free(prof_keyset *ks);

/* Profiling architectures (malloc'd arch texts in *archs[0..*n), each
 * freed, then the array) holding every key of ks `instances` times (>= 1):
 * token mixers alternate with channel mixers as in the space's genomes, a
 * layer that shares weights or features follows its owner (its key with the
 * sharing undone, counted as an instance of that key), `layers` layers per
 * architecture (0: the mean depth of the sampled genomes, rounded to even). */
int prof_plan(char ***archs, size_t *n, const prof_keyset *ks, int instances, int layers,
              tl_err *err);

/* ---- tables ----------------------------------------------------------------- */

typedef struct prof_table prof_table;

/* One harness run of a profiling architecture (--layer-times). Arrays have
 * the arch's n_layers entries. */
typedef struct prof_obs {
	double ttft_ms, decode_ms;     /* the run's TTFT and median decode step   */
	double peak_rss_bytes;         /* VmHWM; NaN when the device did not say  */
	const double *layer_prefill_ms, *layer_decode_ms;
	const double *weight_bytes, *state_bytes, *act_bytes;
} prof_obs;

/* A table for the keys of ks at shapes[0..n) (copied). */
int prof_table_create(prof_table **out, const prof_keyset *ks, const prof_shape *shapes,
                      size_t n, tl_err *err);
void prof_table_free(prof_table *t);
/* Record one run at shapes[shape] of architecture a (one of the plan's, or
 * any arch of the space). A layer whose key is not in the table is added. */
int prof_table_observe(prof_table *t, size_t shape, const op_arch *a, const prof_obs *o,
                       tl_err *err);
/* Compute the entries and the fixed costs. TL_EINVAL when a shape has no
 * run or a key no instance at a shape (names it). */
int prof_table_finish(prof_table *t, tl_err *err);

/* The reference model: one profiling arch (text) and its TTFT and decode
 * per shape as measured while the table was made; measured again later it
 * says how far the device has drifted since (prof_table_ref: NULL when the
 * table has none). */
int prof_table_set_ref(prof_table *t, const char *arch_text, const double *ttft,
                       const double *decode, tl_err *err);
const char *prof_table_ref(const prof_table *t, size_t shape, double *ttft, double *decode);

/* A finished table's JSON (malloc'd): format, header, shapes with their
 * fixed costs, and per key its entries per shape; and back. Loading checks
 * the format and every field (TL_EPARSE naming the JSON path). */
char *prof_table_json(const prof_table *t);
int prof_table_from_json(prof_table **out, const char *json, const char *source, tl_err *err);

/* Reading a finished table. */
typedef struct prof_entry {
	const char *key;
	int64_t instances;        /* layer instances behind the entry, all shapes   */
	double prefill_ms, decode_ms; /* medians at the shape                        */
	double decode_cv;         /* CV of the decode samples (instances x repeats) */
	double weight_bytes, state_bytes, act_bytes;
} prof_entry;
size_t prof_table_n_keys(const prof_table *t);
size_t prof_table_n_shapes(const prof_table *t);
prof_shape prof_table_shape(const prof_table *t, size_t s);
const char *prof_table_header(const prof_table *t);
void prof_table_entry(const prof_table *t, size_t key, size_t shape, prof_entry *out);
/* The fixed costs of a shape: prefill (TTFT minus its layers), decode (the
 * step minus its layers), RSS c (bytes) and alpha; runs behind them. */
typedef struct prof_fixed {
	double prefill_ms, decode_ms, rss_bytes, rss_alpha;
	int64_t runs;
} prof_fixed;
void prof_table_fixed(const prof_table *t, size_t shape, prof_fixed *out);

/* ---- the predictor ------------------------------------------------------------ */

typedef struct prof_pred {
	double ttft_ms, decode_ms, peak_rss_bytes;
	int approximated;           /* layers without their own entry: a sharer
	                             * taken as its owner's configuration        */
	char note[160];             /* what was approximated, or how the shape
	                             * was reached (interpolated ...), "" if exact */
} prof_pred;

/* Predict a at shape sh. The arch's header (d, vocab, tied) must be the
 * table's; every layer needs an entry (a sharing layer without one is taken
 * as its owner's configuration and counted in approximated). The shape must
 * be a table shape, or reachable by interpolation (decode: between two
 * shapes' decode positions; prefill: between two prompt lengths at the same
 * depth, or two depths at the same prompt length). TL_EINVAL with the layer, key or shape otherwise. */
int prof_predict(const prof_table *t, const op_arch *a, const prof_shape *sh, prof_pred *out,
                 tl_err *err);

/* ---- accuracy ------------------------------------------------------------------ */

/* Over n (predicted, measured) pairs: RMSPE (root mean square of the
 * relative errors (p - m) / m), the mean relative error (bias), and the
 * share within 5% and 10%. Pairs with a non-finite value or m <= 0 are
 * skipped (n counts the rest). */
typedef struct prof_accuracy {
	size_t n;
	double rmspe, bias, max_abs, within5, within10;
} prof_accuracy;
void prof_accuracy_compute(prof_accuracy *out, const double *pred, const double *meas, size_t n);

#endif /* PROF_OPTABLE_H */
