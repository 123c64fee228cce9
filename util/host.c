/*
 * util/host.c: three facts of the host that several rooms need and that were
 * written once per room before: the tailor cache root (build cache, device
 * locks, work files), a monotonic clock in seconds, and the SHA-256 of a file.
 *
 * The cache root has one rule (tl_cache_root); operators/emit.c (the build
 * cache) and devices/lock.c (device locks) both call it, so a build and a
 * lock never disagree about where the cache is.
 */
#include "tl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/file.h>
#include <unistd.h>

int tl_cache_root(char *out, size_t n, tl_err *err)
{
	const char *env = getenv("TAILOR_CACHE");
	int k;
	if (env && *env)
		k = snprintf(out, n, "%s", env);
	else if ((env = getenv("XDG_CACHE_HOME")) && *env == '/') /* XDG: absolute only */
		k = snprintf(out, n, "%s/tailor", env);
	else if ((env = getenv("HOME")) && *env)
		k = snprintf(out, n, "%s/.cache/tailor", env);
	else
		return tl_err_set(err, TL_EINVAL,
		                  "cache: neither TAILOR_CACHE nor HOME is set (set TAILOR_CACHE "
		                  "to a directory tailor may write)");
	if (k < 0 || (size_t)k >= n)
		return tl_err_set(err, TL_EINVAL, "cache: %s: path too long", env);
	return 0;
}

double tl_now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int tl_sha256_file(const char *path, char hex[65], tl_err *err)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return tl_err_setsub(err, TL_EIO, errno, "%s: %s", path, strerror(errno));
	tl_sha256 s;
	unsigned char buf[65536], d[32];
	size_t n;
	tl_sha256_init(&s);
	while ((n = fread(buf, 1, sizeof buf, f)) > 0)
		tl_sha256_update(&s, buf, n);
	int bad = ferror(f);
	fclose(f);
	if (bad)
		return tl_err_set(err, TL_EIO, "%s: read failed", path);
	tl_sha256_final(&s, d);
	tl_hex(d, 32, hex);
	return 0;
}

int tl_temp_file(char *path, size_t n, const char *prefix, const char *content, tl_err *err)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(path, n, "%s/%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", prefix);
	int fd = mkstemp(path);
	if (fd < 0)
		return tl_err_setsub(err, TL_EIO, errno, "temporary file in %s: %s (set TMPDIR to a "
		                     "writable directory)", tmp && *tmp ? tmp : "/tmp", strerror(errno));
	size_t len = strlen(content);
	bool wrote = write(fd, content, len) == (ssize_t)len;
	int e = errno;
	if (close(fd) != 0 && wrote) {
		wrote = false;
		e = errno;
	}
	if (!wrote) {
		unlink(path);
		return tl_err_setsub(err, TL_EIO, e, "%s: write failed: %s", path, strerror(e));
	}
	return 0;
}

int tl_lock_take(int *fd, const char *path, const char *info, double wait_s, char *holder,
                 size_t hn, tl_err *err)
{
	*fd = -1;
	if (hn)
		holder[0] = '\0';
	int f = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (f < 0)
		return tl_err_setsub(err, TL_EIO, errno, "lock %s: %s", path, strerror(errno));
	double deadline = tl_now_s() + wait_s;
	for (;;) {
		if (flock(f, LOCK_EX | LOCK_NB) == 0)
			break;
		if (errno != EWOULDBLOCK && errno != EINTR) {
			int e = errno;
			close(f);
			return tl_err_setsub(err, TL_EIO, e, "lock %s: %s", path, strerror(e));
		}
		if (tl_now_s() >= deadline) {
			for (int t = 0; hn && t < 10; t++) {
				/* the holder writes its line just after taking the lock */
				ssize_t k = pread(f, holder, hn - 1, 0);
				holder[k > 0 ? k : 0] = '\0';
				if (k > 0)
					break;
				struct timespec ts = {0, 20 * 1000 * 1000};
				nanosleep(&ts, NULL);
			}
			if (hn) {
				char *nl = strchr(holder, '\n');
				if (nl)
					*nl = '\0';
			}
			close(f);
			return tl_err_set(err, TL_EBUSY, "lock %s: held by %s", path,
			                  hn && holder[0] ? holder : "another process");
		}
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	size_t k = strlen(info);
	if (ftruncate(f, 0) == 0)
		(void)!pwrite(f, info, k, 0);
	*fd = f;
	return 0;
}

void tl_lock_release(int fd)
{
	if (fd < 0)
		return;
	flock(fd, LOCK_UN);
	close(fd);
}
