/*
 * profiler/profile.h: a device's operator table made, used and checked
 * (prefix prof_; docs/devices.md "Operator tables and the predictor").
 *
 *   prof_profile_ops    `tailor device profile-ops`: the layer configurations
 *                       of a space (random genomes), the profiling models
 *                       (prof_plan), each measured on the device under the
 *                       protocol with --layer-times, the device's drift
 *                       followed by measuring the first model again and
 *                       corrected, the table finished and stored (op_tables)
 *   prof_device_table_load  a stored table of a device, ready to predict
 *   prof_predict_genome `tailor predict GENOME`: a genome predicted at every
 *                       shape, each prediction stored
 *   prof_validate       `tailor predict --validate`: K random genomes of the
 *                       space predicted and measured for real (each stored,
 *                       the prediction linked to its measurement), the
 *                       table's reference model measured again between them
 *                       for the drift, the accuracy per shape
 *
 * The workload: a table is a few hundred profiling runs of a few seconds to
 * minutes each (an hour or more on a phone); a validation is K (30) genomes
 * times the shapes (2), each a full measurement under the protocol. These
 * functions hold the device the whole time (its lock, or a pool of one per
 * measurement) and run on the caller's thread.
 *
 * Progress: what would tell a person watching that the work moves (one line
 * per model or genome, the drift readings, a skipped genome) goes to the
 * caller's progress callback, one line without "tailor: " or a newline
 * ("profile-ops: model 3/40 ...", "predict: 2/30 ..."); NULL: none.
 *
 * Ownership: the out structs own what they point to and are freed by their
 * _free (accepting NULL, and safe after a failure). The caller owns the
 * database connection and the device row.
 *
 * Usage:
 *     prof_profile_opts o = PROF_PROFILE_OPTS_INIT;
 *     o.protocol_file = "proto.json"; o.progress = say; o.ctx = NULL;
 *     prof_profile_out out;
 *     if (prof_profile_ops(&out, db, &dev, "space.json", &o, &err) < 0) ...
 *     ... out.table_id, out.fixed[s] ...
 *     prof_profile_out_free(&out);
 */
#ifndef PROF_PROFILE_H
#define PROF_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "db_optables.h"
#include "genome.h"
#include "optable.h"
#include "protocol.h"
#include "tl.h"

/* One line of progress (no "tailor: ", no newline). */
typedef void (*prof_progress_fn)(void *ctx, const char *line);

/* ---- making a table ---------------------------------------------------------- */

typedef struct prof_profile_opts {
	/* the protocol's layers over the defaults and the device's overrides
	 * (NULL: not given): --protocol FILE, then --repeats and --warmup */
	const char *protocol_file, *repeats, *warmup;
	long long samples;   /* random genomes whose layers are profiled (>= 1) */
	long long instances; /* times each configuration is measured (>= 1)     */
	long long layers;    /* layers of a profiling model; 0: the samples' mean */
	long long seed;      /* of the samples                                  */
	long long ref_every; /* the first model again after every N models; 0:
	                      * at the end only                                 */
	const char *quant;   /* weights: q4_0, q8_0 or f32                      */
	double timeout_s;    /* one harness run at most                         */
	prof_progress_fn progress;
	void *ctx;           /* progress's                                      */
} prof_profile_opts;

/* The command's defaults. */
#define PROF_PROFILE_OPTS_INIT                                                                     \
	{.samples = 3000, .instances = 3, .seed = 1, .ref_every = 5, .quant = "q4_0", .timeout_s = 900}

/* What a table made: stored as op_tables row table_id. */
typedef struct prof_profile_out {
	int64_t table_id;
	char *table_json;                    /* the table (prof_table_json)     */
	size_t n_keys, n_shapes, n_archs;    /* configurations, shapes, models  */
	double seconds;                      /* wall time, stored with it       */
	prof_shape shapes[PROF_MAX_SHAPES];  /* [0, n_shapes)                   */
	prof_fixed fixed[PROF_MAX_SHAPES];   /* the fixed costs of each shape   */
} prof_profile_out;
void prof_profile_out_free(prof_profile_out *out);

/* The protocol of a table on device d (NULL: without a device's overrides,
 * to check the flags before anything else): defaults, d's overrides, the
 * --protocol file, then --repeats and --warmup (TL_EUSAGE naming the flag),
 * the order of every measurement on a device. */
int prof_profile_protocol(prof_protocol *p, const db_device *d, const prof_profile_opts *o,
                          tl_err *err);

/* Make and store the operator table of device dev for the space in
 * space_file (also stored as the table's space name): TL_EINVAL when dev is
 * disabled; the device's lock is held from the first run to the last. On
 * failure nothing is stored and *out holds nothing. */
int prof_profile_ops(prof_profile_out *out, db_conn *db, const db_device *dev,
                     const char *space_file, const prof_profile_opts *o, tl_err *err);

/* ---- using a table ------------------------------------------------------------ */

/* A stored table of a device, parsed. */
typedef struct prof_device_table {
	db_optable row; /* its op_tables row (row.id, row.quant, row.protocol) */
	prof_table *t;
} prof_device_table;

/* Table table_id of device dev (> 0; another device's is TL_EINVAL), or the
 * device's newest for space (NULL: any space). TL_ENOTFOUND says how to
 * make one ("predict: pi5 has no operator table ... (run 'tailor device
 * profile-ops ...')"). */
int prof_device_table_load(prof_device_table *out, db_conn *db, const db_device *dev,
                           int64_t table_id, const genome_space *space, tl_err *err);
void prof_device_table_free(prof_device_table *t);

/* The shapes a prediction is made at: *shape, or (shape NULL) every shape
 * of the table; returns how many (<= PROF_MAX_SHAPES). */
size_t prof_device_table_shapes(prof_shape out[PROF_MAX_SHAPES], const prof_device_table *t,
                                const prof_shape *shape);

/* One prediction of a genome at one shape, stored as predictions row id. */
typedef struct prof_genome_pred {
	prof_shape shape;
	prof_pred pred; /* TTFT, decode, peak RSS and the note            */
	int64_t id;
} prof_genome_pred;

/* Predict genome g from table t at *shape (NULL: every table shape), each
 * stored (the genome row ensured first): out[0, *n) filled in shape order;
 * on failure *n says how many were made and stored before it. */
int prof_predict_genome(prof_genome_pred out[PROF_MAX_SHAPES], size_t *n, db_conn *db,
                        const prof_device_table *t, const genome *g, const prof_shape *shape,
                        tl_err *err);

/* ---- checking a table ----------------------------------------------------------- */

typedef struct prof_validate_opts {
	const genome_space *space; /* the genomes are drawn from it          */
	const prof_shape *shape;   /* NULL: every table shape (with the drift
	                            * readings), else this one (without)     */
	size_t samples;            /* K genomes (>= 1)                        */
	uint64_t seed;
	const char *protocol_file; /* NULL: the table's protocol             */
	double timeout_s;          /* one measurement at most                */
	long long ref_every;       /* the reference model again every N
	                            * genomes; 0: before and after only     */
	prof_progress_fn progress;
	void *ctx;
} prof_validate_opts;

/* One genome at one shape. */
typedef struct prof_val_point {
	bool ok;                 /* predicted and measured; else skipped (NaN) */
	char genome_hash[65];
	double pred[3], meas[3]; /* TTFT ms, decode ms, peak RSS bytes         */
	int64_t measurement_id, prediction_id;
} prof_val_point;

/* The accuracy at one shape. */
typedef struct prof_val_shape {
	prof_shape shape;
	prof_accuracy acc[3];  /* TTFT, decode, peak RSS over the K genomes    */
	bool corrected;        /* two drift readings or more: the two below    */
	double mean_ratio[2];  /* the reference model's TTFT and decode now /
	                        * in the table, interpolated at each genome,
	                        * their mean over the K genomes                */
	prof_accuracy corr[2]; /* TTFT, decode with each prediction times it   */
} prof_val_shape;

typedef struct prof_validation {
	int64_t table_id;
	size_t n_genomes, n_shapes;
	size_t n_readings;      /* of the reference model (0: none)            */
	prof_val_point *points; /* [genome * n_shapes + shape]                 */
	prof_val_shape shapes[PROF_MAX_SHAPES];
} prof_validation;
void prof_validation_free(prof_validation *v);

/* Validate table t of device dev: o->samples genomes drawn from o->space
 * (PCG32 stream "vali"), each predicted and measured at every shape under
 * the table's protocol (or o->protocol_file) with the table's quant; a
 * genome that cannot be predicted or measured is skipped (a progress line
 * says why); a prediction is stored linked to its measurement. The table's
 * reference model is measured before, every o->ref_every genomes and
 * after: a failure there fails the validation. */
int prof_validate(prof_validation *out, db_conn *db, const db_device *dev,
                  const prof_device_table *t, const prof_validate_opts *o, tl_err *err);

#endif /* PROF_PROFILE_H */
