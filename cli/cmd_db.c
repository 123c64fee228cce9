/*
 * cli/cmd_db.c: `tailor db`: create or migrate the results database and show
 * what it holds. Analysts mostly open the file directly (docs/schema.md);
 * this is the quick look and the explicit migration.
 */
#include "cli.h"
#include "db.h"

#include <getopt.h>
#include <string.h>

static void db_help(FILE *f)
{
	fprintf(f,
	        "usage: tailor [--db PATH] db info [--json]\n"
	        "       tailor [--db PATH] db migrate\n"
	        "\n"
	        "  info      create the database if needed, then print its path, schema\n"
	        "            version, journal mode, size and the rows of each table\n"
	        "  migrate   create the database or apply pending migrations, print the\n"
	        "            schema version\n"
	        "\n"
	        "options:\n"
	        "  --db PATH   the database (default: $TAILOR_DB, else ./tailor.db)\n"
	        "  --json      machine-readable output (info)\n"
	        "  -h, --help  this help\n"
	        "\n"
	        "A file written by a newer tailor (higher schema version) is refused and\n"
	        "left untouched. The schema is described in docs/schema.md.\n");
}

int cmd_db(int argc, char **argv, cli_ctx *ctx)
{
	static const struct option longopts[] = {
		{"help", no_argument, NULL, 'h'},
		{"json", no_argument, NULL, 'j'},
		{"db", required_argument, NULL, 'd'},
		{NULL, 0, NULL, 0},
	};
	const char *db_flag = ctx->db_flag;
	bool json = false;
	int c;

	cli_opt_reset();
	while ((c = cli_opt_next(argc, argv, "hj", longopts, "db")) != -1) {
		switch (c) {
		case 'h': db_help(stdout); return CLI_OK;
		case 'j': json = true; break;
		case 'd': db_flag = optarg; break;
		default: return CLI_USAGE;
		}
	}
	if (optind >= argc)
		return cli_usage("db", "missing subcommand (info or migrate)");
	const char *sub = argv[optind];
	if (strcmp(sub, "info") != 0 && strcmp(sub, "migrate") != 0)
		return cli_usage("db", "unknown subcommand '%s' (info or migrate)", sub);
	if (optind + 1 < argc)
		return cli_usage("db", "unexpected argument '%s'", argv[optind + 1]);
	if (json && strcmp(sub, "info") != 0)
		return cli_usage("db", "--json applies to 'info' only");

	tl_err err = TL_ERR_INIT;
	db_conn *db = NULL;
	if (db_open(&db, db_path_resolve(db_flag), 0, &err) < 0)
		return cli_fail(&err);

	int rc = CLI_OK;
	if (strcmp(sub, "migrate") == 0) {
		printf("%s: schema version %d\n", db_path(db), db_schema_version(db));
		goto out_close;
	}
	db_info info;
	if (db_info_get(db, &info, &err) < 0) {
		rc = cli_fail(&err);
		goto out_close;
	}
	if (json) {
		/* The path is printed through %s unescaped only if it is plain;
		 * quote the two characters JSON cannot carry raw. */
		printf("{\"path\":\"");
		for (const char *p = db_path(db); *p; p++) {
			if (*p == '"' || *p == '\\')
				putchar('\\');
			if ((unsigned char)*p < 0x20)
				printf("\\u%04x", (unsigned char)*p);
			else
				putchar(*p);
		}
		printf("\",\"schema_version\":%d,\"migrations\":%lld,\"migrated_at\":\"%s\","
		       "\"journal_mode\":\"%s\",\"file_bytes\":%lld,\"wal_bytes\":%lld,"
		       "\"rows\":{\"devices\":%lld,\"runs\":%lld,\"genomes\":%lld,"
		       "\"candidates\":%lld,\"measurements\":%lld,\"quality\":%lld,"
		       "\"events\":%lld}}\n",
		       info.schema_version, (long long)info.migrations, info.migrated_at,
		       info.journal_mode, (long long)info.file_bytes, (long long)info.wal_bytes,
		       (long long)info.devices, (long long)info.runs, (long long)info.genomes,
		       (long long)info.candidates, (long long)info.measurements,
		       (long long)info.quality, (long long)info.events);
	} else {
		printf("database      %s\n", db_path(db));
		printf("schema        version %d (%lld migrations, last applied %s)\n",
		       info.schema_version, (long long)info.migrations,
		       info.migrated_at[0] ? info.migrated_at : "never");
		printf("journal       %s\n", info.journal_mode);
		printf("size          %lld bytes (+ %lld bytes of recent commits in the -wal file)\n",
		       (long long)info.file_bytes, (long long)info.wal_bytes);
		printf("devices       %lld\n", (long long)info.devices);
		printf("runs          %lld\n", (long long)info.runs);
		printf("genomes       %lld\n", (long long)info.genomes);
		printf("candidates    %lld\n", (long long)info.candidates);
		printf("measurements  %lld\n", (long long)info.measurements);
		printf("quality       %lld\n", (long long)info.quality);
		printf("events        %lld\n", (long long)info.events);
	}
out_close:
	db_close(db);
	return rc;
}
