/*
 * cli/genome_arg.c: the GENOME argument every command accepts: a file (text
 * or JSON), a preset name from examples/genomes (e.g. lfm2-350m), '-' for
 * standard input, or the text form itself ("tailor-genome/1 ...").
 */
#include "cli.h"
#include "genome.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool preset_name(const char *s)
{
	if (*s == '\0' || strlen(s) > 64)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '.' ||
		      *s == '_' || *s == '+'))
			return false;
	return true;
}

int cli_load_genome(struct genome *g, const char *arg, tl_err *err)
{
	if (strcmp(arg, "-") == 0) {
		char *text = NULL;
		size_t len = 0;
		int rc = tl_file_read(&text, &len, "/dev/stdin", 16u << 20, err);
		if (rc < 0)
			return rc;
		if (strlen(text) != len) {
			rc = tl_err_set(err, TL_EPARSE, "stdin: byte %zu is a NUL: not a genome text",
			                strlen(text) + 1);
			free(text);
			return rc;
		}
		rc = genome_parse(g, text, "stdin", err);
		free(text);
		return rc;
	}
	if (strncmp(arg, "tailor-genome/", 14) == 0 || arg[0] == '{')
		return genome_parse(g, arg, "argument", err);
	if (access(arg, F_OK) == 0)
		return genome_load(g, arg, err);
	if (preset_name(arg)) {
		char dir[PATH_MAX], path[PATH_MAX + 128];
		const char *env = getenv("TAILOR_GENOMES");
		if (env && *env) {
			snprintf(path, sizeof path, "%s/%s.json", env, arg);
			if (access(path, F_OK) == 0)
				return genome_load(g, path, err);
		}
		cli_exe_dir(dir, sizeof dir);
		static const char *const rel[] = {"/../../examples/genomes", "/../examples/genomes",
		                                  "/../share/tailor/genomes"};
		for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
			snprintf(path, sizeof path, "%s%s/%s.json", dir, rel[i], arg);
			if (access(path, F_OK) == 0)
				return genome_load(g, path, err);
		}
	}
	return tl_err_set(err, TL_EUSAGE,
	                  "genome: %s: no such file or preset (give a file, a preset such as "
	                  "lfm2-350m, '-' or the text form)", arg);
}

int cli_genome_arch_text(char **text, char hash[65], const genome *g, tl_err *err)
{
	*text = NULL;
	genome_arch *a = malloc(sizeof *a);
	if (a == NULL)
		return tl_err_set(err, TL_ENOMEM, "out of memory");
	int rc = genome_decode(a, g, err);
	if (rc == 0) {
		*text = genome_arch_describe(a);
		if (*text == NULL)
			rc = tl_err_set(err, TL_ENOMEM, "out of memory");
		else if (hash)
			tl_sha256_hex(*text, strlen(*text), hash);
	}
	free(a);
	return rc;
}
