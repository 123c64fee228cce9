/*
 * quality/ckpt.c: training checkpoints (see quality.h, "checkpoints"). A
 * checkpoint is the trainer's whole state after `step` steps of the stable
 * part of a warm-up/stable/decay schedule: the parameters, AdamW's two
 * moments and the batch generator. It is content-addressed: the file name
 * is the SHA-256 of everything that decides that state except the step
 * count (the proxy's arch, the corpus bytes, the trainer settings), then the
 * step: DIR/KEY-STEP.ckpt. A longer budget of the same key starts from the
 * checkpoint with the most steps not beyond its own.
 *
 * File: "tailor-ckpt/1\n", then little-endian binary: u64 key length, the
 * key (64 hex), i64 step, i64 n (values per array), u64 rng state, u64 rng
 * inc, n f32 parameters, n f32 first moments, n f32 second moments, and a
 * SHA-256 (32 bytes) of everything before it. Written to a temporary file
 * and renamed, so a reader sees a whole file or none.
 */
#include "quality.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CKPT_MAGIC "tailor-ckpt/1\n"

int qual_ckpt_dir(char *out, size_t n, tl_err *err)
{
	char root[4096];
	int rc = tl_cache_root(root, sizeof root, err);
	if (rc < 0)
		return rc;
	if ((size_t)snprintf(out, n, "%s/ckpt", root) >= n)
		return tl_err_set(err, TL_EINVAL, "checkpoints: cache path too long: %s", root);
	/* the cache root and its parents first (mkdir -p) */
	for (char *p = out + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(out, 0755) != 0 && errno != EEXIST) {
			int e = errno;
			*p = '/';
			return tl_err_setsub(err, TL_EIO, e, "checkpoints: cannot create %s: %s (set "
			                     "TAILOR_CACHE to a directory you can write)", out, strerror(e));
		}
		*p = '/';
	}
	if (mkdir(out, 0755) != 0 && errno != EEXIST)
		return tl_err_setsub(err, TL_EIO, errno, "checkpoints: cannot create %s: %s", out,
		                     strerror(errno));
	return 0;
}

static void ckpt_path(char *out, size_t n, const char *dir, const char *key, int64_t step)
{
	snprintf(out, n, "%s/%s-%lld.ckpt", dir, key, (long long)step);
}

/* Hash and write (fwrite + running SHA-256). */
static bool put(FILE *f, tl_sha256 *h, const void *p, size_t n)
{
	tl_sha256_update(h, p, n);
	return fwrite(p, 1, n, f) == n;
}

int qual_ckpt_save(const char *dir, const qual_ckpt *c, tl_err *err)
{
	char path[4352], tmp[4400];
	ckpt_path(path, sizeof path, dir, c->key, c->step);
	snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid());
	FILE *f = fopen(tmp, "wb");
	if (f == NULL)
		return tl_err_setsub(err, TL_EIO, errno, "checkpoint %s: %s", tmp, strerror(errno));
	tl_sha256 h;
	tl_sha256_init(&h);
	uint64_t klen = strlen(c->key);
	int64_t hdr[2] = {c->step, c->n};
	uint64_t rng[2] = {c->rng.state, c->rng.inc};
	bool ok = put(f, &h, CKPT_MAGIC, strlen(CKPT_MAGIC)) && put(f, &h, &klen, sizeof klen) &&
	          put(f, &h, c->key, klen) && put(f, &h, hdr, sizeof hdr) &&
	          put(f, &h, rng, sizeof rng) &&
	          put(f, &h, c->params, (size_t)c->n * sizeof(float)) &&
	          put(f, &h, c->m, (size_t)c->n * sizeof(float)) &&
	          put(f, &h, c->v, (size_t)c->n * sizeof(float));
	uint8_t d[32];
	tl_sha256_final(&h, d);
	ok = ok && fwrite(d, 1, 32, f) == 32;
	ok = (fflush(f) == 0) && ok;
	int e = errno;
	ok = (fclose(f) == 0) && ok;
	if (!ok || rename(tmp, path) != 0) {
		e = e ? e : errno;
		unlink(tmp);
		return tl_err_setsub(err, TL_EIO, e, "checkpoint %s: write failed: %s", path,
		                     strerror(e));
	}
	return 0;
}

int qual_ckpt_find(const char *dir, const char *key, int64_t max_step, int64_t *step,
                   tl_err *err)
{
	*step = -1;
	DIR *d = opendir(dir);
	if (d == NULL)
		return errno == ENOENT ? 0
		                       : tl_err_setsub(err, TL_EIO, errno, "checkpoints: %s: %s", dir,
		                                       strerror(errno));
	size_t kl = strlen(key);
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		const char *nm = e->d_name;
		if (strncmp(nm, key, kl) != 0 || nm[kl] != '-')
			continue;
		char *end;
		long long s = strtoll(nm + kl + 1, &end, 10);
		if (end == nm + kl + 1 || strcmp(end, ".ckpt") != 0 || s < 0)
			continue;
		if (s <= max_step && s > *step)
			*step = s;
	}
	closedir(d);
	return 0;
}

/* fread + running SHA-256 */
static bool get(FILE *f, tl_sha256 *h, void *p, size_t n)
{
	if (fread(p, 1, n, f) != n)
		return false;
	tl_sha256_update(h, p, n);
	return true;
}

int qual_ckpt_load(const char *dir, qual_ckpt *c, tl_err *err)
{
	char path[4352];
	ckpt_path(path, sizeof path, dir, c->key, c->step);
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return tl_err_setsub(err, TL_EIO, errno, "checkpoint %s: %s", path, strerror(errno));
	tl_sha256 h;
	tl_sha256_init(&h);
	char magic[sizeof CKPT_MAGIC];
	char key[80] = "";
	uint64_t klen = 0, rng[2];
	int64_t hdr[2];
	uint8_t want[32], got[32];
	const char *why = NULL;
	if (!get(f, &h, magic, strlen(CKPT_MAGIC)) || memcmp(magic, CKPT_MAGIC, strlen(CKPT_MAGIC)))
		why = "not a tailor checkpoint";
	else if (!get(f, &h, &klen, sizeof klen) || klen >= sizeof key || !get(f, &h, key, klen) ||
	         strcmp(key, c->key) != 0)
		why = "its key is not the one its name says";
	else if (!get(f, &h, hdr, sizeof hdr) || !get(f, &h, rng, sizeof rng) ||
	         hdr[0] != c->step || hdr[1] != c->n)
		why = "its step or size is not this model's";
	else if (!get(f, &h, c->params, (size_t)c->n * sizeof(float)) ||
	         !get(f, &h, c->m, (size_t)c->n * sizeof(float)) ||
	         !get(f, &h, c->v, (size_t)c->n * sizeof(float)) || fread(want, 1, 32, f) != 32)
		why = "it is cut short";
	else {
		tl_sha256_final(&h, got);
		if (memcmp(want, got, 32) != 0)
			why = "its checksum does not match (a damaged file)";
	}
	fclose(f);
	if (why)
		return tl_err_set(err, TL_EPARSE,
		                  "checkpoint %s: %s; remove it ('tailor quality ckpt clean') and "
		                  "the training starts from step 0",
		                  path, why);
	c->rng.state = rng[0];
	c->rng.inc = rng[1];
	return 0;
}

int qual_ckpt_scan(const char *dir, int64_t older_than_s, bool remove_them, int64_t *files,
                   int64_t *bytes, tl_err *err)
{
	*files = *bytes = 0;
	DIR *d = opendir(dir);
	if (d == NULL)
		return errno == ENOENT ? 0
		                       : tl_err_setsub(err, TL_EIO, errno, "checkpoints: %s: %s", dir,
		                                       strerror(errno));
	time_t now = time(NULL);
	struct dirent *e;
	int rc = 0;
	while ((e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name);
		bool ck = l > 5 && strcmp(e->d_name + l - 5, ".ckpt") == 0;
		bool tmp = strstr(e->d_name, ".ckpt.tmp-") != NULL;
		if (!ck && !tmp)
			continue;
		char path[4352];
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		struct stat st;
		if (stat(path, &st) != 0)
			continue;
		if (older_than_s > 0 && now - st.st_mtime < older_than_s)
			continue;
		if (remove_them && unlink(path) != 0) {
			rc = tl_err_setsub(err, TL_EIO, errno, "checkpoints: cannot remove %s: %s", path,
			                   strerror(errno));
			break;
		}
		(*files)++;
		*bytes += (int64_t)st.st_size;
	}
	closedir(d);
	return rc;
}
