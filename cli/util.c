/*
 * cli/util.c: usage errors, failure reporting and option parsing shared by
 * the command files. getopt_long's own messages are switched off (opterr = 0)
 * so that every usage error is one line in our shape and names the command.
 */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cli_usage(const char *cmd, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
	if (cmd && *cmd)
		fprintf(stderr, "tailor %s: %s (see 'tailor %s --help')\n", cmd, msg, cmd);
	else
		fprintf(stderr, "tailor: %s (see 'tailor --help')\n", msg);
	return CLI_USAGE;
}

int cli_fail(const tl_err *err)
{
	if (err == NULL || err->code == 0) {
		fprintf(stderr, "tailor: failed (no detail recorded)\n");
		return CLI_FAIL;
	}
	fprintf(stderr, "tailor: %s\n", err->msg);
	return err->code == TL_EUSAGE ? CLI_USAGE : CLI_FAIL;
}

void cli_opt_reset(void)
{
	optind = 0; /* glibc: 0 also resets getopt's internal state */
	opterr = 0;
}

int cli_opt_next(int argc, char **argv, const char *shortopts,
                 const struct option *longopts, const char *cmd)
{
	int longidx = -1;
	char fmt[128];

	/* A leading '+' stops at the first non-option (subcommand words and
	 * positional arguments may follow in any order otherwise); ':' makes a
	 * missing value return ':' rather than '?'. */
	snprintf(fmt, sizeof fmt, ":%s", shortopts);
	opterr = 0;
	int c = getopt_long(argc, argv, fmt, longopts, &longidx);
	if (c == '?') {
		const char *bad = argv[optind - 1];
		if (optopt && (bad == NULL || strncmp(bad, "--", 2) != 0))
			cli_usage(cmd, "unknown option '-%c'", optopt);
		else
			cli_usage(cmd, "unknown option '%s'", bad ? bad : "?");
		return '?';
	}
	if (c == ':') {
		const char *bad = argv[optind - 1];
		if (optopt && (bad == NULL || strncmp(bad, "--", 2) != 0))
			cli_usage(cmd, "option '-%c' needs a value", optopt);
		else
			cli_usage(cmd, "option '%s' needs a value", bad ? bad : "?");
		return '?';
	}
	return c;
}

int cli_int_arg(long long *out, const char *val, long long lo, long long hi,
                const char *cmd, const char *flag)
{
	tl_err err = TL_ERR_INIT;
	int64_t v;
	if (tl_parse_i64(&v, val, lo, hi, flag, &err) < 0) {
		cli_usage(cmd, "%s", err.msg);
		return -1;
	}
	*out = v;
	return 0;
}

/* ---- files next to the executable ---- */

void cli_exe_dir(char *out, size_t n)
{
	ssize_t len = readlink("/proc/self/exe", out, n - 1);
	if (len <= 0) {
		tl_strlcpy(out, ".", n);
		return;
	}
	out[len] = '\0';
	char *slash = strrchr(out, '/');
	if (slash)
		*slash = '\0';
}

const char *cli_default_corpus(char *buf, size_t n)
{
	const char *env = getenv("TAILOR_CORPUS");
	if (env && *env)
		return env;
	if (access("data/tinyshakespeare.txt", R_OK) == 0)
		return "data/tinyshakespeare.txt";
	char dir[PATH_MAX];
	cli_exe_dir(dir, sizeof dir);
	static const char *const rel[] = {"/../../data", "/../data", "/../share/tailor"};
	for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
		snprintf(buf, n, "%s%s/tinyshakespeare.txt", dir, rel[i]);
		if (access(buf, R_OK) == 0)
			return buf;
	}
	return "data/tinyshakespeare.txt";
}
