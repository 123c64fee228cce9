/*
 * profiler/protocol.h: the measurement protocol, host side (DESIGN.md §5;
 * docs/devices.md "Measurement protocol").
 *
 * What this file does:
 *  - prof_protocol: the settings of a measurement (warm-up runs, repeats, a
 *    minimum measuring time, a CV threshold with bounded re-measurement, a
 *    delay between runs, a thermal gate, threads and pinning, the prompt /
 *    decode / depth shapes), their defaults, a strict JSON parser whose
 *    errors name the JSON path, and a canonical JSON text with its SHA-256;
 *  - statistics over a set of repeats (median, p95 by nearest rank, min,
 *    max, mean, sample CV), defined once here and used for every summary;
 *  - prof_measure, the measuring loop, driven by callbacks (run one harness
 *    repeat, read the hottest temperature, sleep, read a clock) so that it
 *    knows nothing of SSH, SQL or processes, and tests drive it with a fake
 *    device, thermometer and clock.
 *
 * This file includes no SQLite or libssh2 header; the JSON parser is cJSON,
 * used inside protocol.c only.
 *
 * Ownership: prof_measure fills a prof_result the caller frees with
 * prof_result_free (its samples and their raw texts); a zeroed result may be
 * freed. prof_protocol is a plain value (no pointers).
 *
 * Usage:
 *     prof_protocol p;
 *     prof_protocol_init(&p);
 *     if (prof_protocol_parse(&p, json_text, &err) < 0) ...   // overrides
 *     prof_ops ops = {.run = my_run, .temp = my_temp, .ctx = dev};
 *     prof_result res;
 *     if (prof_measure(&res, &p, &ops, &err) < 0) ...
 *     printf("decode p50 %.3f ms, cv %.3f, re-measured %d\n",
 *            res.decode_p50.median, res.decode_p50.cv, res.remeasured);
 *     prof_result_free(&res);
 */
#ifndef PROF_PROTOCOL_H
#define PROF_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tl.h"

/* Shapes one protocol may list (prompt/gen/depth triples). */
#define PROF_MAX_SHAPES 8
/* Bounds of the settings (what the parser accepts). */
#define PROF_MAX_REPEATS 1000
#define PROF_MAX_WARMUP 100
#define PROF_MAX_REMEASURE 10
#define PROF_PIN_MAX 256
/* Poll interval of the thermal gate when the protocol does not set one (s):
 * a phone's SoC cools by a few degrees in tens of seconds, so polling faster
 * only adds load (each read is a remote command). */
#define PROF_THERMAL_POLL_DEFAULT 2.0

/* One shape: the harness's P, N and D (profiler/bench_main.c). */
typedef struct prof_shape {
	int64_t prompt; /* P, tokens prefilled, >= 1                         */
	int64_t gen;    /* N, decode steps, >= 1                             */
	int64_t depth;  /* D, positions in the cache before the prompt, >= 0 */
} prof_shape;

typedef struct prof_protocol {
	int warmup;          /* harness runs before the measured ones, discarded (0..100) */
	int repeats;         /* measured runs per round, at least (1..1000)        */
	int max_repeats;     /* cap of a round when min_time_s asks for more (>= repeats) */
	double min_time_s;   /* a round lasts at least this much measured time, s
	                      * (sum of the runs' wall times; 0: no minimum)       */
	double cv_threshold; /* re-measure when the round's CV of decode_ms_p50 is
	                      * above this (e.g. 0.05 = 5%); 0: never             */
	int max_remeasure;   /* extra rounds at most (0..10)                       */
	double delay_s;      /* sleep between two runs, s (>= 0)                   */
	double max_temp_c;   /* thermal gate: wait before a run until the hottest
	                      * zone is <= this, °C; 0: no gate (temperatures are
	                      * still recorded where readable)                    */
	double max_wait_s;   /* the gate gives up (and runs) after this long, s    */
	double poll_s;       /* the gate reads the temperature this often, s (> 0) */
	int threads;         /* harness --threads; 0: the device's setting         */
	char pin[PROF_PIN_MAX]; /* run prefix for pinning ("taskset -c 4-7");
	                         * "": the device's run_prefix                    */
	size_t n_shapes;     /* 1..PROF_MAX_SHAPES                                 */
	prof_shape shapes[PROF_MAX_SHAPES];
} prof_protocol;

/* The defaults (LFM2's search: batch 1, contexts of 4K and 32K): warmup 1,
 * repeats 5, max_repeats 50, min_time_s 0, cv_threshold 0.05,
 * max_remeasure 2, delay_s 0, max_temp_c 80, max_wait_s 120, poll_s 2,
 * threads 0 (the device's), pin "" (the device's), shapes
 * {P 512, N 128, D 4096} and {P 512, N 128, D 32768}. */
void prof_protocol_init(prof_protocol *p);
/* Override p's fields with those present in the JSON object `json` (keys
 * absent keep their value): warmup, repeats, max_repeats, min_time_s,
 * cv_threshold, max_remeasure, delay_s, thermal {max_temp_c, max_wait_s,
 * poll_s}, threads, pin, shapes [{prompt, gen, depth}] (replaces the list).
 * Strict: an unknown key, a wrong type or a value out of range is
 * TL_EPARSE / TL_EINVAL with one line naming the JSON path, e.g.
 * "protocol: $.thermal.max_tmp_c: unknown key (known: max_temp_c,
 * max_wait_s, poll_s)". p is unchanged on failure. */
int prof_protocol_parse(prof_protocol *p, const char *json, tl_err *err);
/* The same for a file (errors prefixed with its path). */
int prof_protocol_load(prof_protocol *p, const char *path, tl_err *err);
/* Check the cross-field rules (max_repeats >= repeats, a shape list that is
 * not empty); prof_protocol_parse calls it; callers that set fields by hand
 * (command-line flags) call it after. TL_EINVAL naming the field. */
int prof_protocol_check(const prof_protocol *p, tl_err *err);
/* The canonical JSON text of p: every key, in a fixed order, numbers in
 * shortest round-trip form ("%.17g" trimmed), no spaces. Malloc'd; NULL when
 * out of memory. Equal protocols give equal texts. */
char *prof_protocol_json(const prof_protocol *p);
/* SHA-256 (hex) of prof_protocol_json(p). TL_ENOMEM. */
int prof_protocol_hash(const prof_protocol *p, char hex[65], tl_err *err);

/* ---- statistics ------------------------------------------------------------ */

/* Summary of n values. Definitions (docs/devices.md):
 *  median: the middle value of the sorted values; for even n the mean of the
 *          two middle ones;
 *  p95:    nearest rank: the value of rank ceil(0.95 n) (1-based) in the
 *          sorted values (for n < 20 that is the maximum; n = 20: the
 *          second largest), the definition bench_main.c uses within a run;
 *  mean:   arithmetic mean; sd: sample standard deviation (divisor n - 1);
 *  cv:     sd / mean; NaN when n < 2 or mean == 0.
 * NaN values are skipped (n counts the others); with no value every field is
 * NaN and n = 0. */
typedef struct prof_stats {
	size_t n;
	double median, p95, min, max, mean, sd, cv;
} prof_stats;
void prof_stats_compute(prof_stats *out, const double *v, size_t n);

/* ---- the measuring loop ------------------------------------------------------ */

/* One harness run. The measurer fills the figures (NaN when absent) and raw
 * (its malloc'd output, may stay NULL); the loop fills the rest. */
typedef struct prof_sample {
	double ttft_ms, prefill_tok_s, decode_ms_p50, decode_ms_p95, decode_tok_s;
	double peak_rss_bytes, weight_bytes, cache_bytes;
	char *raw;            /* owned by the sample                              */
	/* filled by prof_measure: */
	double temp_before_c; /* hottest zone just before the run (after the gate), NaN: unreadable */
	double temp_after_c;  /* just after it                                     */
	double gate_wait_s;   /* time the thermal gate waited before this run       */
	bool gate_gave_up;    /* the gate reached max_wait_s above max_temp_c       */
	double seconds;       /* the run's wall time by the loop's clock            */
	int round;            /* 0: the first round, 1.. re-measurements            */
} prof_sample;

typedef struct prof_ops {
	/* Run the harness once; 0 or a negative TL_E* code (the loop stops and
	 * returns it, err set by the callback). Required. */
	int (*run)(void *ctx, prof_sample *out, tl_err *err);
	/* The hottest thermal zone, °C; NaN when the device has none readable.
	 * NULL: no thermometer (no gate, temperatures NaN). */
	double (*temp)(void *ctx);
	/* Sleep s seconds. NULL: nanosleep. */
	void (*sleep)(void *ctx, double s);
	/* A monotonic clock, seconds. NULL: CLOCK_MONOTONIC. */
	double (*now)(void *ctx);
	void *ctx;
} prof_ops;

typedef struct prof_result {
	prof_sample *samples; /* every measured run, warm-ups excluded, in order */
	size_t n;
	size_t first;         /* index of the first sample of the final round:
	                       * the summary is over samples[first .. n-1]       */
	int warmups;          /* warm-up runs done (discarded)                    */
	int rounds;           /* rounds run, 1 + remeasured                      */
	int remeasured;       /* extra rounds taken because the CV was too high  */
	bool cv_ok;           /* the final round's CV is within the threshold (or
	                       * the threshold is 0, or CV is undefined: n < 2)  */
	double gate_wait_s;   /* total time spent in the thermal gate            */
	int gate_gave_up;     /* runs that started above max_temp_c after max_wait_s */
	/* Over the final round: */
	prof_stats ttft_ms, prefill_tok_s, decode_ms_p50, decode_ms_p95, decode_tok_s,
	    peak_rss_bytes;
	/* The CV of decode_ms_p50 of each round, in order (rounds entries). */
	double round_cv[PROF_MAX_REMEASURE + 1];
} prof_result;

/* Measure under protocol p (shapes are the caller's business: one call
 * measures one shape). The loop:
 *   before every run (warm-up or measured): sleep delay_s (not before the
 *   first), then the thermal gate: read the temperature; while it is above
 *   max_temp_c (and max_temp_c > 0) and less than max_wait_s has been
 *   waited, sleep min(poll_s, what is left) and read again; the last reading
 *   is the run's temp_before_c; after the run, temp_after_c;
 *   warmup runs, discarded;
 *   a round: runs until at least `repeats` runs and at least min_time_s of
 *   measured time (sum of the runs' wall times), or max_repeats runs;
 *   if the round's CV of decode_ms_p50 > cv_threshold (> 0) and fewer than
 *   max_remeasure extra rounds were taken: a new round (the previous one's
 *   samples stay in the result, the summary is over the last round).
 * Fills *out (reset on entry; freed by prof_result_free, also on failure). */
int prof_measure(prof_result *out, const prof_protocol *p, const prof_ops *ops, tl_err *err);
void prof_result_free(prof_result *r);

#endif /* PROF_PROTOCOL_H */
