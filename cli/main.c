/*
 * cli/main.c: the `tailor` executable: global flags, then one command group.
 *
 *   tailor [--db PATH] COMMAND [ARGS...]
 *
 * A command that is not built yet is not in the table below and does not
 * appear in the help. Exit status: 0 ok, 1 failure, 2 usage error.
 */
#include "cli.h"
#include "tailor_config.h"

#include <string.h>
#include <unistd.h>

typedef struct cli_cmd {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv, cli_ctx *ctx);
} cli_cmd;

static const cli_cmd commands[] = {
	{"genome", "show, validate, sample, mutate and cross architecture genomes", cmd_genome},
	{"build", "write and compile the on-device harness of a genome (cached)", cmd_build},
	{"bench", "measure a genome's TTFT, decode speed and peak memory here or on devices", cmd_bench},
	{"device", "register, probe and trust the lab's devices (SSH hosts, phones via adb)", cmd_device},
	{"run", "start, watch, stop and resume architecture searches", cmd_run},
	{"train", "estimate a genome's quality: train its proxy (LM, MAD) or run a command", cmd_train},
	{"quality", "trust in the quality signal: fidelity studies (budgets, seeds), checkpoints", cmd_quality},
	{"frontier", "the current frontier of a run, one row per genome", cmd_query},
	{"query", "run a read-only SQL query on the results database", cmd_query},
	{"export", "every candidate of a run as CSV, JSON or JSON lines", cmd_query},
	{"report", "write a run's self-contained HTML report with plots", cmd_report},
	{"predict", "predict a genome's latency and memory on a device from its operator table", cmd_predict},
	{"db", "open, migrate and inspect the results database", cmd_db},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void print_help(FILE *f)
{
	fprintf(f,
	        "usage: tailor [--db PATH] COMMAND [ARGS...]\n"
	        "\n"
	        "tailor searches for neural-network architectures tailored to edge\n"
	        "hardware: it breeds genomes over LIV operators, measures them on real\n"
	        "devices and keeps every result and the Pareto frontier in SQLite.\n"
	        "\n"
	        "commands:\n");
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(f,
	        "\n"
	        "global options:\n"
	        "  --db PATH     results database (default: $TAILOR_DB, else ./tailor.db)\n"
	        "  -h, --help    this help; 'tailor COMMAND --help' for a command\n"
	        "  -V, --version print the version\n"
	        "\n"
	        "exit status: 0 ok, 1 failure, 2 usage error\n");
}

static const cli_cmd *find_command(const char *name)
{
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

int main(int argc, char **argv)
{
	cli_ctx ctx = {0};
	int i = 1;

	ctx.is_tty = isatty(STDOUT_FILENO);
	tl_child_reaper_start(); /* while we are small: it is a fork */
	for (; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			print_help(stdout);
			return CLI_OK;
		} else if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
			printf("tailor %s\n", TAILOR_VERSION);
			return CLI_OK;
		} else if (strcmp(a, "--db") == 0) {
			if (i + 1 >= argc || argv[i + 1][0] == '\0')
				return cli_usage(NULL, "option '--db' needs a value");
			ctx.db_flag = argv[++i];
		} else if (strncmp(a, "--db=", 5) == 0) {
			if (a[5] == '\0')
				return cli_usage(NULL, "option '--db' needs a value");
			ctx.db_flag = a + 5;
		} else {
			return cli_usage(NULL, "unknown option '%s'", a);
		}
	}
	if (i >= argc) {
		fprintf(stderr, "tailor: missing command (see 'tailor --help')\n");
		return CLI_USAGE;
	}
	if (strcmp(argv[i], "help") == 0) {
		if (i + 1 < argc) {
			const cli_cmd *c = find_command(argv[i + 1]);
			if (c == NULL)
				return cli_usage(NULL, "unknown command '%s'", argv[i + 1]);
			char *hargv[] = {argv[i + 1], "--help", NULL};
			return c->run(2, hargv, &ctx);
		}
		print_help(stdout);
		return CLI_OK;
	}
	const cli_cmd *c = find_command(argv[i]);
	if (c == NULL)
		return cli_usage(NULL, "unknown command '%s'", argv[i]);
	return c->run(argc - i, argv + i, &ctx);
}
