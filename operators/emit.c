/*
 * operators/emit.c: build dirs of the on-device harness, their compilation
 * and the build cache (see op_emit.h).
 *
 * Workload: a build dir is ~20 files and a few hundred KB; emitting one takes
 * milliseconds, compiling it seconds (one compiler invocation over every
 * source), so a search compiles each (arch, toolchain) once and the cache
 * makes every later `tailor build` / `tailor bench` of it instant. Processes
 * are started with fork/exec, never through a shell: the compiler and its
 * flags are argv words.
 */
#include "op_emit.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Flags every build needs, before the user's CFLAGS so those win: the
 * language and feature macros the meson build uses, no fused a*b+c behind
 * the code's back (operators/meson.build: the quantizers must round the same
 * way in every build), and the generated config. */
static const char *const base_flags[] = {
	"-std=c11", "-D_POSIX_C_SOURCE=200809L", "-D_DEFAULT_SOURCE", "-fno-strict-aliasing",
	"-ffp-contract=off", "-DTAILOR_BENCH_CONFIG", "-I.",
};
#define N_BASE_FLAGS (sizeof base_flags / sizeof base_flags[0])
#define MAX_WORDS 64

void op_emit_opts_init(op_emit_opts *o)
{
	o->cc = "cc";
	o->cflags = "-O3 -march=native";
	o->quant = "q4_0";
	o->tool_version = "unknown";
}

static bool word_chars_ok(const char *s)
{
	for (; *s; s++) {
		char c = *s;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      strchr(" _+-=,./:@%", c) != NULL))
			return false;
	}
	return true;
}

/* Split s at spaces into words[] (pointers into buf). Returns the count. */
static int split_words(char *buf, size_t n, const char *s, const char **words, int max)
{
	int k = 0;
	char *save = NULL;
	tl_strlcpy(buf, s, n);
	for (char *p = strtok_r(buf, " ", &save); p && k < max; p = strtok_r(NULL, " ", &save))
		words[k++] = p;
	return k;
}

int op_emit_opts_check(const op_emit_opts *o, tl_err *err)
{
	const char *w[MAX_WORDS + 1];
	char buf[1024];
	if (o->cc == NULL || strlen(o->cc) >= sizeof buf || !word_chars_ok(o->cc) ||
	    split_words(buf, sizeof buf, o->cc, w, MAX_WORDS) < 1)
		return tl_err_set(err, TL_EUSAGE,
		                  "--cc: '%s': not a compiler command (words of letters, digits and "
		                  "_+-=,./:@%%, no quoting)", o->cc ? o->cc : "");
	if (o->cflags == NULL || strlen(o->cflags) >= sizeof buf || !word_chars_ok(o->cflags) ||
	    split_words(buf, sizeof buf, o->cflags, w, MAX_WORDS + 1) > MAX_WORDS)
		return tl_err_set(err, TL_EUSAGE,
		                  "--cflags: '%s': flags are words of letters, digits and _+-=,./:@%% "
		                  "split at spaces (no quoting, at most %d)",
		                  o->cflags ? o->cflags : "", MAX_WORDS);
	if (o->quant == NULL ||
	    (strcmp(o->quant, "q4_0") && strcmp(o->quant, "q8_0") && strcmp(o->quant, "f32")))
		return tl_err_set(err, TL_EUSAGE, "--quant: '%s': not a weight type (q4_0, q8_0 or f32)",
		                  o->quant ? o->quant : "");
	return 0;
}

void op_emit_sources_hash(char hex[65])
{
	tl_sha256 s;
	unsigned char d[32];
	char len[32];
	tl_sha256_init(&s);
	for (size_t i = 0; i < op_emit_n_sources; i++) {
		const op_emit_source *f = &op_emit_sources[i];
		int n = snprintf(len, sizeof len, "%zu", f->len);
		tl_sha256_update(&s, f->name, strlen(f->name) + 1);
		tl_sha256_update(&s, len, (size_t)n + 1);
		tl_sha256_update(&s, f->data, f->len);
	}
	tl_sha256_final(&s, d);
	tl_hex(d, 32, hex);
}

/* ---- processes --------------------------------------------------------------- */

/* Run argv (no shell) with stdin from /dev/null; stdout and stderr go to
 * out_fd (or /dev/null when out_fd < 0). cwd may be NULL. Returns the wait
 * status, or -1 with err set when fork fails. A failed exec ends the child
 * with 127 after writing "exec: <argv0>: <reason>" to out_fd. */
static int run_argv(const char *const *argv, const char *cwd, int out_fd, tl_err *err)
{
	pid_t pid = fork();
	if (pid < 0)
		return tl_err_setsub(err, TL_EIO, errno, "build: fork: %s", strerror(errno));
	if (pid == 0) {
		tl_child_guard(); /* the compiler and its passes die with us */
		int null = open("/dev/null", O_RDWR);
		if (null >= 0)
			dup2(null, 0);
		int o = out_fd >= 0 ? out_fd : null;
		if (o >= 0) {
			dup2(o, 1);
			dup2(o, 2);
		}
		if (cwd && chdir(cwd) != 0) {
			dprintf(2, "exec: chdir %s: %s\n", cwd, strerror(errno));
			_exit(127);
		}
		execvp(argv[0], (char *const *)argv);
		dprintf(2, "exec: %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	tl_child_watch(pid);
	int st = 0;
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR) {
			tl_child_reaped(pid);
			return tl_err_setsub(err, TL_EIO, errno, "build: waitpid: %s", strerror(errno));
		}
	}
	tl_child_reaped(pid);
	return st;
}

/* First line of `cc --version`, "unknown" when it cannot be run. */
static void compiler_version(const char *cc, char *out, size_t n)
{
	const char *argv[MAX_WORDS + 2];
	char buf[1024], path[] = "/tmp/tailor-ccver-XXXXXX";
	tl_strlcpy(out, "unknown", n);
	int k = split_words(buf, sizeof buf, cc, argv, MAX_WORDS);
	if (k < 1)
		return;
	argv[k++] = "--version";
	argv[k] = NULL;
	int fd = mkstemp(path);
	if (fd < 0)
		return;
	unlink(path);
	int st = run_argv(argv, NULL, fd, NULL);
	if (st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		char line[256];
		ssize_t r = pread(fd, line, sizeof line - 1, 0);
		if (r > 0) {
			line[r] = '\0';
			line[strcspn(line, "\r\n")] = '\0';
			if (line[0])
				tl_strlcpy(out, line, n);
		}
	}
	close(fd);
}

static void key_of(char key[65], const char *arch_text, const op_emit_opts *o,
                   const char *ccver)
{
	char src[65];
	tl_sha256 s;
	unsigned char d[32];
	op_emit_sources_hash(src);
	tl_sha256_init(&s);
#define PUT(label, str)                                        \
	do {                                                       \
		tl_sha256_update(&s, label, strlen(label) + 1);        \
		tl_sha256_update(&s, (str), strlen(str) + 1);          \
	} while (0)
	PUT("tailor-build-key/1", "");
	PUT("sources", src);
	PUT("tool_version", o->tool_version ? o->tool_version : "unknown");
	PUT("cc", o->cc);
	PUT("cc_version", ccver);
	PUT("cflags", o->cflags);
	PUT("quant", o->quant);
	PUT("arch", arch_text ? arch_text : "");
#undef PUT
	tl_sha256_final(&s, d);
	tl_hex(d, 32, key);
}

int op_emit_key(char key[65], const char *arch_text, const op_emit_opts *o, tl_err *err)
{
	char ccver[256];
	if (op_emit_opts_check(o, err) < 0)
		return TL_EUSAGE;
	compiler_version(o->cc, ccver, sizeof ccver);
	key_of(key, arch_text, o, ccver);
	return 0;
}

/* ---- files ----------------------------------------------------------------- */

static int mkdir_p(const char *dir, tl_err *err)
{
	char p[OP_EMIT_PATH_MAX];
	if (tl_strlcpy(p, dir, sizeof p) >= sizeof p)
		return tl_err_set(err, TL_EINVAL, "build: %s: path too long", dir);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) != 0 && errno != EEXIST)
			return tl_err_setsub(err, TL_EIO, errno, "build: mkdir %s: %s", p, strerror(errno));
		*s = '/';
	}
	if (mkdir(p, 0755) != 0 && errno != EEXIST)
		return tl_err_setsub(err, TL_EIO, errno, "build: mkdir %s: %s", p, strerror(errno));
	struct stat st;
	if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode))
		return tl_err_set(err, TL_EIO, "build: %s: not a directory", p);
	return 0;
}

static int path_join(char *out, size_t n, const char *dir, const char *name, tl_err *err)
{
	int k = snprintf(out, n, "%s/%s", dir, name);
	if (k < 0 || (size_t)k >= n)
		return tl_err_set(err, TL_EINVAL, "build: %s/%s: path too long", dir, name);
	return 0;
}

static int write_file(const char *dir, const char *name, const void *data, size_t len,
                      tl_err *err)
{
	char path[OP_EMIT_PATH_MAX];
	if (path_join(path, sizeof path, dir, name, err) < 0)
		return TL_EINVAL;
	FILE *f = fopen(path, "wb");
	if (f == NULL)
		return tl_err_setsub(err, TL_EIO, errno, "build: write %s: %s", path, strerror(errno));
	size_t w = len ? fwrite(data, 1, len, f) : 0;
	int e = errno;
	if (fclose(f) != 0 || w != len)
		return tl_err_setsub(err, TL_EIO, e, "build: write %s: %s", path,
		                     strerror(e ? e : EIO));
	return 0;
}

static void sb_c_string(tl_sb *b, const char *s)
{
	tl_sb_str(b, "\"");
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '\n') {
			tl_sb_str(b, "\\n\"");
			if (s[1])
				tl_sb_str(b, " \\\n\t\"");
			else
				return;
		} else if (c == '\\' || c == '"' || c == '?') {
			char e[3] = {'\\', (char)c, 0};
			tl_sb_str(b, e);
		} else if (c >= 0x20 && c < 0x7f) {
			tl_sb_put(b, (const char *)&c, 1);
		} else {
			tl_sb_printf(b, "\\%03o", c);
		}
	}
	tl_sb_str(b, "\"");
}

static void sb_json_string(tl_sb *b, const char *s)
{
	tl_sb_str(b, "\"");
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			char e[3] = {'\\', (char)c, 0};
			tl_sb_str(b, e);
		} else if (c < 0x20) {
			tl_sb_printf(b, "\\u%04x", c);
		} else {
			tl_sb_put(b, (const char *)&c, 1);
		}
	}
	tl_sb_str(b, "\"");
}

static bool is_c_source(const char *name)
{
	size_t n = strlen(name);
	return n > 2 && strcmp(name + n - 2, ".c") == 0;
}

static void sb_makefile(tl_sb *b, const op_emit_opts *o)
{
	tl_sb_str(b, "# Makefile of a tailor build dir (" OP_EMIT_FORMAT "/1): the on-device harness.\n"
	          "#   make [CC=cc] [CFLAGS='-O3 -march=native']   ->  ./" OP_EMIT_BINARY "\n"
	          "# Defaults: the compiler and flags this dir was emitted for. Links only\n"
	          "# libm and pthreads. TAILOR_FLAGS come first so CFLAGS can override them.\n");
	tl_sb_printf(b, "CC = %s\nCFLAGS = %s\nTAILOR_FLAGS =", o->cc, o->cflags);
	for (size_t i = 0; i < N_BASE_FLAGS; i++)
		tl_sb_printf(b, " %s", base_flags[i]);
	tl_sb_str(b, "\nSRCS =");
	for (size_t i = 0; i < op_emit_n_sources; i++)
		if (is_c_source(op_emit_sources[i].name))
			tl_sb_printf(b, " \\\n\t%s", op_emit_sources[i].name);
	tl_sb_str(b, "\nHDRS = bench_config.h");
	for (size_t i = 0; i < op_emit_n_sources; i++)
		if (!is_c_source(op_emit_sources[i].name))
			tl_sb_printf(b, " \\\n\t%s", op_emit_sources[i].name);
	tl_sb_str(b, "\n\n" OP_EMIT_BINARY ": $(SRCS) $(HDRS)\n"
	          "\t$(CC) $(TAILOR_FLAGS) $(CFLAGS) -pthread -o $@ $(SRCS) -lm -pthread\n"
	          "\n"
	          "clean:\n"
	          "\trm -f " OP_EMIT_BINARY "\n"
	          "\n"
	          ".PHONY: clean\n");
}

static void sb_config(tl_sb *b, const char *key, const char *arch_text, const op_emit_opts *o)
{
	tl_sb_str(b, "/* bench_config.h: generated by tailor build (operators/emit.c). The build's\n"
	          " * identity, the harness's default --quant and the architecture it runs\n"
	          " * without --arch. Do not edit: the build id covers this content. */\n"
	          "#ifndef BENCH_CONFIG_H\n#define BENCH_CONFIG_H\n"
	          "#ifndef TAILOR_BUILD_ID\n");
	tl_sb_printf(b, "#define TAILOR_BUILD_ID \"%s\"\n#endif\n", key);
	tl_sb_str(b, "#define TAILOR_VERSION ");
	sb_c_string(b, o->tool_version ? o->tool_version : "unknown");
	tl_sb_printf(b, "\n#define TAILOR_BENCH_QUANT \"%s\"\n", o->quant);
	if (arch_text && *arch_text) {
		tl_sb_str(b, "#define TAILOR_BENCH_ARCH \\\n\t");
		sb_c_string(b, arch_text);
		tl_sb_str(b, "\n");
	}
	tl_sb_str(b, "#endif\n");
}

static void iso_now(char *out, size_t n)
{
	time_t t = time(NULL);
	struct tm tm;
	if (gmtime_r(&t, &tm) == NULL || strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		tl_strlcpy(out, "unknown", n);
}

/* build.json; bin_hash NULL before the compile. */
static void sb_manifest(tl_sb *b, const char *key, const char *arch_text, const op_emit_opts *o,
                        const char *ccver, const char *bin_hash, double seconds)
{
	char src[65], arch_hash[65], now[32];
	op_emit_sources_hash(src);
	tl_sha256_hex(arch_text ? arch_text : "", arch_text ? strlen(arch_text) : 0, arch_hash);
	iso_now(now, sizeof now);
	tl_sb_printf(b, "{\n  \"format\": \"%s\",\n  \"version\": %d,\n  \"key\": \"%s\",\n"
	          "  \"build_id\": \"%s\",\n",
	       OP_EMIT_FORMAT, OP_EMIT_VERSION, key, key);
	if (arch_text && *arch_text)
		tl_sb_printf(b, "  \"arch_hash\": \"%s\",\n", arch_hash);
	else
		tl_sb_str(b, "  \"arch_hash\": null,\n");
	tl_sb_printf(b, "  \"sources_hash\": \"%s\",\n  \"tool_version\": ", src);
	sb_json_string(b, o->tool_version ? o->tool_version : "unknown");
	tl_sb_str(b, ",\n  \"compiler\": ");
	sb_json_string(b, o->cc);
	tl_sb_str(b, ",\n  \"compiler_version\": ");
	sb_json_string(b, ccver);
	tl_sb_str(b, ",\n  \"flags\": ");
	sb_json_string(b, o->cflags);
	tl_sb_printf(b, ",\n  \"quant\": \"%s\",\n  \"binary\": \"%s\",\n", o->quant, OP_EMIT_BINARY);
	if (bin_hash)
		tl_sb_printf(b, "  \"binary_sha256\": \"%s\",\n  \"compile_seconds\": %.3f,\n", bin_hash,
		       seconds);
	tl_sb_str(b, "  \"files\": [\"Makefile\", \"bench_config.h\"");
	if (arch_text && *arch_text)
		tl_sb_str(b, ", \"arch.txt\"");
	for (size_t i = 0; i < op_emit_n_sources; i++)
		tl_sb_printf(b, ", \"%s\"", op_emit_sources[i].name);
	tl_sb_printf(b, "],\n  \"created\": \"%s\"\n}\n", now);
}

static int write_sb(const char *dir, const char *name, tl_sb *b, tl_err *err)
{
	if (b->oom)
		return tl_err_set(err, TL_ENOMEM, "build: %s/%s: out of memory", dir, name);
	return write_file(dir, name, b->p, b->len, err);
}

static int emit_dir(const char *dir, const char *key, const char *arch_text,
                    const op_emit_opts *o, const char *ccver, tl_err *err)
{
	char path[OP_EMIT_PATH_MAX];
	tl_sb b = {0};
	int rc = 0;

	if (mkdir_p(dir, err) < 0)
		return TL_EIO;
	/* a binary of an earlier build must not pass for this one */
	if (path_join(path, sizeof path, dir, OP_EMIT_BINARY, err) < 0)
		return TL_EINVAL;
	if (unlink(path) != 0 && errno != ENOENT)
		return tl_err_setsub(err, TL_EIO, errno, "build: remove %s: %s", path, strerror(errno));
	for (size_t i = 0; i < op_emit_n_sources; i++) {
		const op_emit_source *f = &op_emit_sources[i];
		if ((rc = write_file(dir, f->name, f->data, f->len, err)) < 0)
			return rc;
	}
	if (arch_text && *arch_text &&
	    (rc = write_file(dir, "arch.txt", arch_text, strlen(arch_text), err)) < 0)
		return rc;
	sb_config(&b, key, arch_text, o);
	if ((rc = write_sb(dir, "bench_config.h", &b, err)) < 0)
		goto free_sb;
	b.len = 0;
	sb_makefile(&b, o);
	if ((rc = write_sb(dir, "Makefile", &b, err)) < 0)
		goto free_sb;
	b.len = 0;
	sb_manifest(&b, key, arch_text, o, ccver, NULL, 0);
	rc = write_sb(dir, "build.json", &b, err);
free_sb:
	tl_sb_free(&b);
	return rc;
}

int op_emit_build_dir(const char *dir, const char *arch_text, const op_emit_opts *o, tl_err *err)
{
	char key[65], ccver[256];
	if (op_emit_opts_check(o, err) < 0)
		return TL_EUSAGE;
	compiler_version(o->cc, ccver, sizeof ccver);
	key_of(key, arch_text, o, ccver);
	return emit_dir(dir, key, arch_text, o, ccver, err);
}

/* ---- compile and cache --------------------------------------------------------- */


/* Is dir a complete build of key: build.json ours with this key and the
 * hash of the binary that is there? */
static bool build_complete(const char *dir, const char *key)
{
	char path[OP_EMIT_PATH_MAX], want[128], hash[65];
	char *json = NULL;
	bool ok = false;
	if (path_join(path, sizeof path, dir, "build.json", NULL) < 0 ||
	    tl_file_read(&json, NULL, path, 1u << 20, NULL) < 0)
		return false;
	snprintf(want, sizeof want, "\"key\": \"%s\"", key);
	if (strstr(json, "\"format\": \"" OP_EMIT_FORMAT "\"") == NULL || strstr(json, want) == NULL)
		goto out;
	if (path_join(path, sizeof path, dir, OP_EMIT_BINARY, NULL) < 0 || access(path, X_OK) != 0 ||
	    tl_sha256_file(path, hash, NULL) < 0)
		goto out;
	snprintf(want, sizeof want, "\"binary_sha256\": \"%s\"", hash);
	ok = strstr(json, want) != NULL;
out:
	free(json);
	return ok;
}

/* Remove a flat dir (files only, as build dirs are). Missing is fine. */
static void remove_flat_dir(const char *dir)
{
	DIR *d = opendir(dir);
	char path[OP_EMIT_PATH_MAX];
	if (d == NULL)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (path_join(path, sizeof path, dir, e->d_name, NULL) == 0)
			unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

/* A directory with entries, none of them our build.json? */
static bool foreign_nonempty_dir(const char *dir)
{
	DIR *d = opendir(dir);
	bool any = false, ours = false;
	if (d == NULL)
		return false;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		any = true;
		if (strcmp(e->d_name, "build.json") == 0)
			ours = true;
	}
	closedir(d);
	if (!any)
		return false;
	if (!ours)
		return true;
	char path[OP_EMIT_PATH_MAX], *json = NULL;
	if (path_join(path, sizeof path, dir, "build.json", NULL) < 0 ||
	    tl_file_read(&json, NULL, path, 1u << 20, NULL) < 0)
		return true;
	ours = strstr(json, "\"format\": \"" OP_EMIT_FORMAT "\"") != NULL;
	free(json);
	return !ours;
}


/* The compiler's first error line from the log (or its last line). */
static void log_summary(const char *log, char *out, size_t n)
{
	char *text = NULL;
	tl_strlcpy(out, "no output", n);
	if (tl_file_read(&text, NULL, log, 16u << 20, NULL) < 0)
		return;
	char *first = NULL, *last = NULL, *top = NULL;
	/* skip our header: the lines before the first line the compiler wrote */
	char *p = strstr(text, "\n\n");
	p = p ? p + 2 : text;
	char *save = NULL;
	for (char *line = strtok_r(p, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (*line == '\0')
			continue;
		if (top == NULL)
			top = line;
		last = line;
		if (first == NULL && (strstr(line, "error") || strstr(line, "exec: ")))
			first = line;
	}
	/* a link failure: collect2's line says only that ld failed; ld's own
	 * complaint comes first */
	if (first && strstr(first, "ld returned") && top)
		first = top;
	const char *pick = first ? first : last;
	if (pick) {
		tl_strlcpy(out, pick, n);
		if (strlen(pick) >= n && n > 4)
			memcpy(out + n - 4, "...", 4);
	}
	free(text);
}

/* Compile in dir: build.log gets the command and the output; the binary is
 * linked as tailor-bench.tmp and renamed, so a binary that exists is whole. */
static int compile_dir(const char *dir, const op_emit_opts *o, op_emit_result *r, tl_err *err)
{
	const char *argv[2 * MAX_WORDS + N_BASE_FLAGS + 256 + 8];
	char ccbuf[1024], flbuf[1024], tmp[OP_EMIT_PATH_MAX], bin[OP_EMIT_PATH_MAX];
	int k = split_words(ccbuf, sizeof ccbuf, o->cc, argv, MAX_WORDS);
	size_t max_src = sizeof argv / sizeof argv[0] - 2 * MAX_WORDS - N_BASE_FLAGS - 8;
	if (op_emit_n_sources > max_src)
		return tl_err_set(err, TL_EINVAL, "build: %zu sources: too many", op_emit_n_sources);
	for (size_t i = 0; i < N_BASE_FLAGS; i++)
		argv[k++] = base_flags[i];
	k += split_words(flbuf, sizeof flbuf, o->cflags, argv + k, MAX_WORDS);
	argv[k++] = "-pthread";
	argv[k++] = "-o";
	argv[k++] = OP_EMIT_BINARY ".tmp";
	for (size_t i = 0; i < op_emit_n_sources; i++)
		if (is_c_source(op_emit_sources[i].name))
			argv[k++] = op_emit_sources[i].name;
	argv[k++] = "-lm";
	argv[k++] = "-pthread";
	argv[k] = NULL;

	if (path_join(r->log, sizeof r->log, dir, "build.log", err) < 0 ||
	    path_join(tmp, sizeof tmp, dir, OP_EMIT_BINARY ".tmp", err) < 0 ||
	    path_join(bin, sizeof bin, dir, OP_EMIT_BINARY, err) < 0)
		return TL_EINVAL;
	int fd = open(r->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return tl_err_setsub(err, TL_EIO, errno, "build: %s: %s", r->log, strerror(errno));
	dprintf(fd, "# tailor build: in %s\n#", dir);
	for (int i = 0; argv[i]; i++)
		dprintf(fd, " %s", argv[i]);
	dprintf(fd, "\n\n");
	double t0 = tl_now_s();
	int st = run_argv(argv, dir, fd, err);
	r->seconds = tl_now_s() - t0;
	close(fd);
	if (st < 0)
		return TL_EIO;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		char sum[240];
		log_summary(r->log, sum, sizeof sum);
		unlink(tmp);
		if (WIFEXITED(st) && WEXITSTATUS(st) == 127 && strncmp(sum, "exec: ", 6) == 0)
			return tl_err_set(err, TL_EFAIL,
			                  "build: compiler '%s' cannot be run: %s (give --cc; log: %s)",
			                  argv[0], sum + 6, r->log);
		if (WIFSIGNALED(st))
			return tl_err_set(err, TL_EFAIL, "build: %s killed by signal %d: %s (log: %s)",
			                  argv[0], WTERMSIG(st), sum, r->log);
		return tl_err_set(err, TL_EFAIL, "build: %s exited with status %d: %s (log: %s)",
		                  argv[0], WEXITSTATUS(st), sum, r->log);
	}
	if (rename(tmp, bin) != 0)
		return tl_err_setsub(err, TL_EIO, errno, "build: rename %s: %s", tmp, strerror(errno));
	return 0;
}

/* After a successful compile: build.json with the binary's hash. */
static int finish_manifest(const char *dir, const char *key, const char *arch_text,
                           const op_emit_opts *o, const char *ccver, double seconds,
                           tl_err *err)
{
	char bin[OP_EMIT_PATH_MAX], hash[65];
	tl_sb b = {0};
	if (path_join(bin, sizeof bin, dir, OP_EMIT_BINARY, err) < 0)
		return TL_EINVAL;
	if (tl_sha256_file(bin, hash, NULL) < 0)
		return tl_err_setsub(err, TL_EIO, errno, "build: read %s: %s", bin, strerror(errno));
	sb_manifest(&b, key, arch_text, o, ccver, hash, seconds);
	int rc = write_sb(dir, "build.json", &b, err);
	tl_sb_free(&b);
	return rc;
}


static int set_paths(op_emit_result *r, const char *dir, tl_err *err)
{
	if (tl_strlcpy(r->dir, dir, sizeof r->dir) >= sizeof r->dir)
		return tl_err_set(err, TL_EINVAL, "build: %s: path too long", dir);
	if (path_join(r->binary, sizeof r->binary, dir, OP_EMIT_BINARY, err) < 0 ||
	    path_join(r->log, sizeof r->log, dir, "build.log", err) < 0)
		return TL_EINVAL;
	return 0;
}

static int build_in_dir(op_emit_result *r, const char *dir, const char *arch_text,
                        const op_emit_opts *o, const char *ccver, tl_err *err)
{
	int rc;
	if ((rc = emit_dir(dir, r->key, arch_text, o, ccver, err)) < 0)
		return rc;
	if ((rc = compile_dir(dir, o, r, err)) < 0)
		return rc;
	return finish_manifest(dir, r->key, arch_text, o, ccver, r->seconds, err);
}

/* The build dirs of processes that died mid-build (.tmp-KEY-PID whose
 * process is gone, killed say): removed, so that a cache does not collect
 * them. A PID in use again by another process keeps its dir until then. */
static void sweep_stale(const char *builds)
{
	DIR *d = opendir(builds);
	if (d == NULL)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		const char *n = e->d_name, *dash = strrchr(n, '-');
		if (strncmp(n, ".tmp-", 5) != 0 || dash == NULL || dash < n + 5)
			continue;
		char *end;
		long pid = strtol(dash + 1, &end, 10);
		if (*end || pid <= 0 || pid == (long)getpid() || kill((pid_t)pid, 0) == 0 ||
		    errno != ESRCH)
			continue;
		char path[OP_EMIT_PATH_MAX];
		if (snprintf(path, sizeof path, "%s/%s", builds, n) < (int)sizeof path)
			remove_flat_dir(path);
	}
	closedir(d);
}

int op_emit_build(op_emit_result *out, const char *dir, const char *arch_text,
                  const op_emit_opts *o, tl_err *err)
{
	char ccver[256], root[OP_EMIT_PATH_MAX], builds[OP_EMIT_PATH_MAX];
	char final[OP_EMIT_PATH_MAX], tmp[OP_EMIT_PATH_MAX], failed[OP_EMIT_PATH_MAX];
	int rc;

	memset(out, 0, sizeof *out);
	if (op_emit_opts_check(o, err) < 0)
		return TL_EUSAGE;
	compiler_version(o->cc, ccver, sizeof ccver);
	key_of(out->key, arch_text, o, ccver);

	if (dir) {
		if ((rc = set_paths(out, dir, err)) < 0)
			return rc;
		if (build_complete(dir, out->key)) {
			out->cached = true;
			return 0;
		}
		if (foreign_nonempty_dir(dir))
			return tl_err_set(err, TL_EEXIST,
			                  "build: %s: exists and is not a tailor build dir (give a new or "
			                  "empty directory)", dir);
		return build_in_dir(out, dir, arch_text, o, ccver, err);
	}

	if ((rc = tl_cache_root(root, sizeof root, err)) < 0)
		return rc;
	if (path_join(builds, sizeof builds, root, "builds", err) < 0 ||
	    path_join(final, sizeof final, builds, out->key, err) < 0)
		return TL_EINVAL;
	if ((rc = set_paths(out, final, err)) < 0)
		return rc;
	sweep_stale(builds);
	if (build_complete(final, out->key)) {
		out->cached = true;
		return 0;
	}
	if ((rc = mkdir_p(builds, err)) < 0)
		return rc;
	int k1 = snprintf(tmp, sizeof tmp, "%s/.tmp-%.16s-%ld", builds, out->key, (long)getpid());
	int k2 = snprintf(failed, sizeof failed, "%s.failed", final);
	if (k1 < 0 || (size_t)k1 >= sizeof tmp || k2 < 0 || (size_t)k2 >= sizeof failed)
		return tl_err_set(err, TL_EINVAL, "build cache: %s: path too long", builds);
	remove_flat_dir(tmp);
	rc = build_in_dir(out, tmp, arch_text, o, ccver, err);
	if (rc < 0) {
		/* keep the log where the message says it is */
		remove_flat_dir(failed);
		if (rename(tmp, failed) == 0)
			path_join(out->log, sizeof out->log, failed, "build.log", NULL);
		char *at = err ? strstr(err->msg, tmp) : NULL;
		if (at) {
			char msg[TL_ERR_MSG_MAX];
			int k = snprintf(msg, sizeof msg, "%.*s%s%s", (int)(at - err->msg), err->msg,
			                 failed, at + strlen(tmp));
			if (k > 0)
				tl_strlcpy(err->msg, msg, sizeof err->msg);
		}
		remove_flat_dir(tmp);
		return rc;
	}
	/* The entry appears whole, or not at all. Someone else may have won
	 * the race for the same key: theirs is as good as ours. */
	if (rename(tmp, final) != 0) {
		if (build_complete(final, out->key)) {
			remove_flat_dir(tmp);
		} else {
			/* an incomplete leftover (say, a binary removed by hand) */
			remove_flat_dir(final);
			if (rename(tmp, final) != 0) {
				int e = errno;
				remove_flat_dir(tmp);
				return tl_err_setsub(err, TL_EIO, e,
				                     "build cache: %s: cannot install the build: %s", final,
				                     strerror(e));
			}
		}
	}
	remove_flat_dir(failed);
	return path_join(out->log, sizeof out->log, final, "build.log", err);
}
