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


/* `tailor bench GENOME --device NAME...` (cli/cmd_device.c): each device
 * measured through profiler/measure.h (built for its toolchain or on the
 * device, pushed, run under its protocol, every measurement stored, ok or
 * failed, with the device's fingerprint), the devices in parallel through
 * the device pool; printed (json: one JSON object per device). */
#define CLI_BENCH_MAX_DEVICES 16
struct prof_bench_args;
int cli_bench_devices(cli_ctx *ctx, const char *genome_arg, const char *const *names, int n,
                      const struct prof_bench_args *a, bool json);

/* The directory of the running executable ("." when unknown): presets and
 * data are looked up next to the build or the install. */
void cli_exe_dir(char *out, size_t n);
/* The training corpus when none is given: $TAILOR_CORPUS, then
 * data/tinyshakespeare.txt here, then next to the executable's build or
 * install (buf holds the path when it is built). */
const char *cli_default_corpus(char *buf, size_t n);

/* The command groups. */
int cmd_db(int argc, char **argv, cli_ctx *ctx);
int cmd_genome(int argc, char **argv, cli_ctx *ctx);
int cmd_build(int argc, char **argv, cli_ctx *ctx);
int cmd_bench(int argc, char **argv, cli_ctx *ctx);
int cmd_train(int argc, char **argv, cli_ctx *ctx);
/* cli/cmd_quality.c: `tailor quality fidelity` and `tailor quality ckpt` */
int cmd_quality(int argc, char **argv, cli_ctx *ctx);
int cmd_device(int argc, char **argv, cli_ctx *ctx);
int cmd_run(int argc, char **argv, cli_ctx *ctx);
/* query, frontier and export (argv[0] says which) */
int cmd_query(int argc, char **argv, cli_ctx *ctx);
int cmd_report(int argc, char **argv, cli_ctx *ctx);
/* cli/cmd_predict.c: `tailor device profile-ops` and `tailor predict` */
int cmd_profile_ops(int argc, char **argv, cli_ctx *ctx);
int cmd_predict(int argc, char **argv, cli_ctx *ctx);

#endif
