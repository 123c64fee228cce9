/*
 * cli/cli.h: what the command files of the `tailor` executable share.
 *
 * Each command group lives in its own file (cmd_db.c, cmd_genome.c, ...) and
 * exposes one `int cmd_X(int argc, char **argv, cli_ctx *ctx)` that returns
 * the process exit status: CLI_OK, CLI_FAIL (the work failed; one line on
 * stderr says why) or CLI_USAGE (bad flags or arguments; one line naming the
 * flag and pointing at --help). Only cli/ calls exit(), and only in main.
 */
#ifndef CLI_H
#define CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "tl.h"

enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

typedef struct cli_ctx {
	const char *db_flag; /* --db given before the command, or NULL */
	bool is_tty;         /* stdout is a terminal (progress displays) */
} cli_ctx;

/* Print "tailor <cmd>: <message> (see 'tailor <cmd> --help')" on one line of
 * stderr and return CLI_USAGE. */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print "tailor: <err->msg>" on stderr and return CLI_FAIL (or CLI_USAGE
 * when the error is TL_EUSAGE). */
int cli_fail(const tl_err *err);

/* Options, parsed by getopt_long with our own messages. `longopts` is a
 * getopt_long table; the option "help" (short 'h') must be present. Returns
 * the option character, -1 at the end of options, or '?' after printing the
 * one-line usage error for `cmd` (the caller returns CLI_USAGE). Call
 * cli_opt_reset() before parsing a new argv. */
struct option;
void cli_opt_reset(void);
int cli_opt_next(int argc, char **argv, const char *shortopts,
                 const struct option *longopts, const char *cmd);

/* Parse an integer flag value with a message naming the flag. */
int cli_int_arg(long long *out, const char *val, long long lo, long long hi,
                const char *cmd, const char *flag);

/* Load a GENOME argument: a file (text or JSON), a preset name looked up in
 * $TAILOR_GENOMES then in examples/genomes next to the build, '-' for
 * standard input, or the text form itself. TL_EUSAGE when it is none of
 * these (cli/genome_arg.c). */
struct genome;
int cli_load_genome(struct genome *g, const char *arg, tl_err *err);
/* The arch text of a genome (genome_arch_describe; malloc'd into *text) and,
 * when hash is not NULL, its SHA-256 (the genome's content hash).
 * TL_EINVAL from the decoder, TL_ENOMEM (cli/genome_arg.c). */
int cli_genome_arch_text(char **text, char hash[65], const struct genome *g, tl_err *err);

/* A new temporary file under $TMPDIR (else /tmp) named <prefix>-XXXXXX
 * holding `content`; its path in path[n]. Nothing is left behind on
 * failure: TL_EIO naming the file (cli/util.c). The caller unlinks it. */
int cli_temp_file(char *path, size_t n, const char *prefix, const char *content, tl_err *err);

/* Build the harness of arch_text through the build cache and run it here
 * (cli/cmd_build.c): *out is its JSON object (cJSON_Delete), or the error
 * says what went wrong (compile, crash, timeout, garbage). */
typedef struct cli_bench_args {
	const char *quant;
	int prompt, gen, depth, threads, repeat;
	double timeout_s;
} cli_bench_args;
struct cJSON;
int cli_bench_local(struct cJSON **out, const char *arch_text, const cli_bench_args *a,
                    tl_err *err);

/* Put a harness on a device (cli/cmd_device.c): build it for the device's
 * toolchain through the build cache and upload the binary, or, for a device
 * that compiles itself, push the build dir and run make there; the harness
 * is WD/tailor-bench in a fresh work dir on the device (wd, which the
 * caller removes with dev_workdir_remove, also after a failure when wd[0]).
 * arch_text NULL: a harness without an architecture (--probe). build_hash
 * gets the build key; *stage says where a failure happened. */
enum { CLI_STAGE_BUILD = 1, CLI_STAGE_TRANSFER = 2 };
struct dev_session;
int cli_dev_harness(struct dev_session *s, const char *arch_text, const char *quant, char *wd,
                    size_t wd_n, char build_hash[65], int *stage, tl_err *err);

/* `tailor bench GENOME --device NAME...` (cli/cmd_device.c): build for each
 * device's toolchain (or on the device), push, run the harness under its run
 * prefix, store every measurement, ok or failed, with the device's
 * fingerprint. Devices run in parallel through the device pool. */
#define CLI_BENCH_MAX_DEVICES 16
typedef struct cli_dev_bench_args {
	long long prompt, gen, depth, threads, repeat; /* threads 0: the device's */
	double timeout_s;
	uint64_t seed;
	const char *quant, *kv;
	bool json;
	/* The measurement protocol (profiler/protocol.h; NULL: not given):
	 * --protocol FILE, then the flags' text, checked where they are used. */
	const char *protocol_file, *warmup, *repeats, *cv, *min_time;
	const char *protocol_json; /* the search's bench.protocol (after the file) */
} cli_dev_bench_args;
int cli_bench_devices(cli_ctx *ctx, const char *genome_arg, const char *const *names, int n,
                      const cli_dev_bench_args *a);

/* One measurement of an arch on a registered device, for the search engine
 * (cli/cmd_device.c): its own database connection (callable from a worker
 * thread per device), the device's lock, build, push, run, the measurement
 * stored ok or failed; *result the harness's JSON (cJSON_Delete). */
int cli_measure_device(const char *db_path, const char *name, const char *arch_text,
                       const char *genome_text, const cli_dev_bench_args *a, struct cJSON **result,
                       tl_err *err);

/* Run the harness of work dir wd on a device under protocol p (one shape:
 * the caller puts it in hargs, the arguments after the binary, NULL-ended):
 * the device's run prefix (or the protocol's pin), the thermal gate,
 * warm-ups, repeats, re-measurement. res is filled (prof_result_free);
 * failure gets the kind of a failure (timeout, lost, harness, output). */
struct prof_protocol;
struct prof_result;
struct db_device;
int cli_dev_measure(struct dev_session *s, const struct db_device *d, const char *wd,
                    const char *const *hargs, const struct prof_protocol *p, double timeout_s,
                    struct prof_result *res, char failure[16], tl_err *err);

/* Apply a device's protocol overrides (db_device.protocol, set by `device add
 * --protocol`) to *p (cli/cmd_device.c): every key of the device's JSON
 * except "shapes" (the shapes measured are the command's or the run's). The
 * order of a measurement on a device: defaults, this, then the command's or
 * run's protocol, then command-line flags. A device without overrides leaves
 * *p unchanged. 0, or a TL_E* code with one line naming the device
 * ("device pixel7: protocol: $.delay_s: ..."); *p is unchanged on failure. */
int cli_device_protocol(struct prof_protocol *p, const struct db_device *d, tl_err *err);

/* The command groups. */
int cmd_db(int argc, char **argv, cli_ctx *ctx);
int cmd_genome(int argc, char **argv, cli_ctx *ctx);
int cmd_build(int argc, char **argv, cli_ctx *ctx);
int cmd_bench(int argc, char **argv, cli_ctx *ctx);
int cmd_train(int argc, char **argv, cli_ctx *ctx);
int cmd_device(int argc, char **argv, cli_ctx *ctx);
int cmd_run(int argc, char **argv, cli_ctx *ctx);
/* query, frontier and export (argv[0] says which) */
int cmd_query(int argc, char **argv, cli_ctx *ctx);
int cmd_report(int argc, char **argv, cli_ctx *ctx);
/* cli/cmd_predict.c: `tailor device profile-ops` and `tailor predict` */
int cmd_profile_ops(int argc, char **argv, cli_ctx *ctx);
/* A prediction for the search engine (evaluation "predict"): its own
 * connection, the device's newest table for the space (else its newest),
 * the prediction stored; v = TTFT ms, decode ms, peak RSS bytes. */
int cli_predict_device(const char *db_path, const char *device, const char *space_hash,
                       const char *arch_text, const char *genome_text, int prompt, int gen,
                       int depth, double v[3], tl_err *err);
int cmd_predict(int argc, char **argv, cli_ctx *ctx);

#endif
