/*
 * util/parse.c: strict number parsing and small string/file helpers. Every
 * failure names the input, so a user sees which flag or field was wrong.
 */
#include "tl.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int tl_parse_i64(int64_t *out, const char *s, int64_t lo, int64_t hi,
                 const char *what, tl_err *err)
{
	char *end;
	long long v;

	*out = 0;
	if (s == NULL || *s == '\0')
		return tl_err_set(err, TL_EUSAGE, "%s: empty value (expected an integer)", what);
	errno = 0;
	v = strtoll(s, &end, 10);
	if (*end != '\0' || end == s)
		return tl_err_set(err, TL_EUSAGE, "%s: '%s': not an integer", what, s);
	if (errno == ERANGE || v < lo || v > hi)
		return tl_err_set(err, TL_EUSAGE,
		                  "%s: '%s': out of range (allowed %" PRId64 "..%" PRId64 ")",
		                  what, s, lo, hi);
	*out = v;
	return 0;
}

int tl_parse_u64(uint64_t *out, const char *s, const char *what, tl_err *err)
{
	char *end;
	unsigned long long v;

	*out = 0;
	if (s == NULL || *s == '\0')
		return tl_err_set(err, TL_EUSAGE, "%s: empty value (expected an integer)", what);
	if (*s == '-' || *s == '+' || *s == ' ')
		return tl_err_set(err, TL_EUSAGE, "%s: '%s': not an unsigned integer", what, s);
	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end != '\0' || end == s)
		return tl_err_set(err, TL_EUSAGE, "%s: '%s': not an unsigned integer", what, s);
	if (errno == ERANGE)
		return tl_err_set(err, TL_EUSAGE, "%s: '%s': out of range (at most %" PRIu64 ")",
		                  what, s, UINT64_MAX);
	*out = v;
	return 0;
}

int tl_parse_double(double *out, const char *s, const char *what, tl_err *err)
{
	char *end;
	double v;

	*out = 0;
	if (s == NULL || *s == '\0')
		return tl_err_set(err, TL_EUSAGE, "%s: empty value (expected a number)", what);
	errno = 0;
	v = strtod(s, &end);
	if (*end != '\0' || end == s || !isfinite(v))
		return tl_err_set(err, TL_EUSAGE, "%s: '%s': not a finite number", what, s);
	if (errno == ERANGE)
		return tl_err_set(err, TL_EUSAGE, "%s: '%s': out of range", what, s);
	*out = v;
	return 0;
}

size_t tl_strlcpy(char *dst, const char *src, size_t size)
{
	size_t n = strlen(src);
	if (size > 0) {
		size_t c = n < size - 1 ? n : size - 1;
		memcpy(dst, src, c);
		dst[c] = '\0';
	}
	return n;
}

int tl_file_read(char **out, size_t *len, const char *path, size_t max_bytes,
                 tl_err *err)
{
	FILE *f = NULL;
	char *buf = NULL;
	struct stat st;
	size_t n;
	int rc = TL_EIO;

	*out = NULL;
	if (len)
		*len = 0;
	if (max_bytes == 0)
		max_bytes = (size_t)256 << 20;
	f = fopen(path, "rb");
	if (f == NULL)
		return tl_err_setsub(err, TL_EIO, errno, "read: %s: %s", path, strerror(errno));
	if (fstat(fileno(f), &st) != 0) {
		rc = tl_err_setsub(err, TL_EIO, errno, "read: %s: %s", path, strerror(errno));
		goto fail_close;
	}
	if (S_ISDIR(st.st_mode)) {
		rc = tl_err_set(err, TL_EIO, "read: %s: is a directory (expected a file)", path);
		goto fail_close;
	}
	if ((uint64_t)st.st_size > max_bytes) {
		rc = tl_err_set(err, TL_EIO, "read: %s: %lld bytes, larger than the %zu allowed",
		           path, (long long)st.st_size, max_bytes);
		goto fail_close;
	}
	/* Read until EOF rather than trusting st_size: pipes and /proc files
	 * report 0. */
	size_t cap = st.st_size > 0 ? (size_t)st.st_size + 1 : 4096;
	buf = malloc(cap);
	if (buf == NULL) {
		rc = tl_err_set(err, TL_ENOMEM, "read: %s: out of memory", path);
		goto fail_close;
	}
	n = 0;
	for (;;) {
		if (n + 1 >= cap) {
			if (cap > max_bytes) {
				rc = tl_err_set(err, TL_EIO, "read: %s: larger than the %zu bytes allowed",
				           path, max_bytes);
				goto fail_free;
			}
			char *nb = realloc(buf, cap * 2);
			if (nb == NULL) {
				rc = tl_err_set(err, TL_ENOMEM, "read: %s: out of memory", path);
				goto fail_free;
			}
			buf = nb;
			cap *= 2;
		}
		size_t got = fread(buf + n, 1, cap - 1 - n, f);
		n += got;
		if (got == 0) {
			if (ferror(f)) {
				rc = tl_err_setsub(err, TL_EIO, errno, "read: %s: %s", path, strerror(errno));
				goto fail_free;
			}
			break;
		}
	}
	buf[n] = '\0';
	fclose(f);
	*out = buf;
	if (len)
		*len = n;
	return 0;

fail_free:
	free(buf);
fail_close:
	fclose(f);
	return rc;
}
