/*
 * tests/fuzz/replay.c: a main() for a libFuzzer target, so that `meson test`
 * replays the fuzz corpora with any compiler (gcc included, no libFuzzer).
 *
 *     replay_<target> PATH...
 *
 * Each PATH is a regular file or a directory; a directory contributes the
 * regular files directly in it, in strcmp order of their names, so a run is
 * deterministic. Every file is read whole into a buffer of exactly its size
 * (so ASan sees reads past the end) and handed to LLVMFuzzerTestOneInput.
 * Prints how many inputs ran. A finding aborts the process (the targets
 * abort() on a violated property, sanitizers abort on memory errors); a
 * PATH that cannot be read exits 1, since a replay of nothing passing
 * quietly would hide a broken test.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REPLAY_MAX_BYTES (16u << 20) /* no corpus file comes near this */

/* Run one file; 0 ok, -1 unreadable. */
static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	size_t cap = 4096, len = 0;
	uint8_t *buf = malloc(cap);
	const char *why = NULL;
	for (;;) {
		if (buf == NULL) {
			why = "out of memory";
			break;
		}
		if (len == cap) {
			if (cap >= REPLAY_MAX_BYTES) {
				why = "larger than 16 MiB";
				break;
			}
			uint8_t *nb = realloc(buf, cap * 2);
			if (nb == NULL) {
				why = "out of memory";
				break;
			}
			buf = nb;
			cap *= 2;
		}
		size_t n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
	}
	if (why == NULL && ferror(f))
		why = "read error";
	if (why != NULL) {
		fprintf(stderr, "replay: %s: %s\n", path, why);
		free(buf);
		fclose(f);
		return -1;
	}
	fclose(f);
	/* exact-size copy: a target reading one byte too far trips ASan */
	uint8_t *exact = malloc(len ? len : 1);
	if (exact == NULL) {
		free(buf);
		fprintf(stderr, "replay: %s: out of memory\n", path);
		return -1;
	}
	memcpy(exact, buf, len);
	free(buf);
	LLVMFuzzerTestOneInput(exact, len);
	free(exact);
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Run the regular files of a directory in name order; returns the count or -1. */
static long replay_dir(const char *dir)
{
	DIR *d = opendir(dir);
	if (d == NULL) {
		fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	char **names = NULL;
	size_t n = 0, cap = 0;
	long count = 0;
	int rc = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		size_t len = strlen(dir) + 1 + strlen(e->d_name) + 1;
		char *path = malloc(len);
		struct stat st;
		if (path == NULL) {
			fprintf(stderr, "replay: %s: out of memory\n", dir);
			rc = -1;
			break;
		}
		snprintf(path, len, "%s/%s", dir, e->d_name);
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
			free(path);
			continue;
		}
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 64;
			char **nn = realloc(names, nc * sizeof *names);
			if (nn == NULL) {
				fprintf(stderr, "replay: %s: out of memory\n", dir);
				free(path);
				rc = -1;
				break;
			}
			names = nn;
			cap = nc;
		}
		names[n++] = path;
	}
	closedir(d);
	if (rc == 0 && n > 0)
		qsort(names, n, sizeof *names, cmp_str);
	for (size_t i = 0; i < n; i++) {
		if (rc == 0) {
			if (replay_file(names[i]) < 0)
				rc = -1;
			else
				count++;
		}
		free(names[i]);
	}
	free(names);
	return rc < 0 ? -1 : count;
}

int main(int argc, char **argv)
{
	long total = 0;
	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE_OR_DIR...\n", argv[0]);
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) != 0) {
			fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
			return 1;
		}
		if (S_ISDIR(st.st_mode)) {
			long n = replay_dir(argv[i]);
			if (n < 0)
				return 1;
			total += n;
		} else if (S_ISREG(st.st_mode)) {
			if (replay_file(argv[i]) < 0)
				return 1;
			total++;
		}
	}
	printf("replay: %ld inputs\n", total);
	return 0;
}
