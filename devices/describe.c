/*
 * devices/describe.c: device descriptions (validation, names for messages
 * and locks), shell quoting, and the small buffers and JSON helpers the
 * room shares.
 *
 * Quoting is the line between data and code on the device: every remote
 * argument (paths, serials, harness flags) goes through dev_shell_quote, and
 * nothing else builds a remote command from values. Single quotes are used
 * because inside them POSIX sh interprets nothing at all; the one character
 * they cannot hold, the single quote, is closed, escaped and reopened: '\''.
 */
#include "dev_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- buffers -------------------------------------------------------------------- */

static bool buf_reserve(dev_buf *b, size_t extra)
{
	if (b->oom)
		return false;
	if (b->len + extra + 1 <= b->cap)
		return true;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + extra + 1)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (p == NULL) {
		b->oom = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

void dev_buf_put(dev_buf *b, const char *s, size_t n)
{
	if (b->max > 0 && n > b->max) { /* only the end of s can survive */
		s += n - b->max;
		n = b->max;
		b->len = 0;
		b->dropped = true;
	}
	if (b->max > 0 && b->len + n > b->max) {
		size_t drop = b->len + n - b->max;
		if (drop < b->max / 2)
			drop = b->max / 2;
		if (drop > b->len)
			drop = b->len;
		memmove(b->p, b->p + drop, b->len - drop);
		b->len -= drop;
		b->dropped = true;
	}
	if (!buf_reserve(b, n))
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void dev_buf_str(dev_buf *b, const char *s)
{
	dev_buf_put(b, s, strlen(s));
}

void dev_buf_fmt(dev_buf *b, const char *fmt, ...)
{
	char small[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof small, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof small) {
		dev_buf_put(b, small, (size_t)n);
		return;
	}
	char *big = malloc((size_t)n + 1);
	if (big == NULL) {
		b->oom = true;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	dev_buf_put(b, big, (size_t)n);
	free(big);
}

void dev_buf_free(dev_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof *b);
}


/* ---- quoting -------------------------------------------------------------------- */

char *dev_shell_quote(const char *s)
{
	size_t n = 2;
	for (const char *p = s; *p; p++)
		n += *p == '\'' ? 4 : 1;
	char *q = malloc(n + 1), *o = q;
	if (q == NULL)
		return NULL;
	*o++ = '\'';
	for (const char *p = s; *p; p++) {
		if (*p == '\'') {
			memcpy(o, "'\\''", 4);
			o += 4;
		} else {
			*o++ = *p;
		}
	}
	*o++ = '\'';
	*o = '\0';
	return q;
}

static int append_raw(char **buf, const char *s, bool space, tl_err *err)
{
	size_t have = *buf ? strlen(*buf) : 0, add = strlen(s);
	char *p = realloc(*buf, have + add + 2);
	if (p == NULL)
		return tl_err_set(err, TL_ENOMEM, "command line: out of memory");
	if (space && have > 0)
		p[have++] = ' ';
	memcpy(p + have, s, add + 1);
	*buf = p;
	return 0;
}

int dev_shell_append(char **buf, const char *s, tl_err *err)
{
	char *q = dev_shell_quote(s);
	if (q == NULL)
		return tl_err_set(err, TL_ENOMEM, "command line: out of memory");
	int rc = append_raw(buf, q, true, err);
	free(q);
	return rc;
}

static bool is_assignment(const char *w, size_t n)
{
	size_t i = 0;
	if (n == 0 ||
	    !((w[0] >= 'A' && w[0] <= 'Z') || (w[0] >= 'a' && w[0] <= 'z') || w[0] == '_'))
		return false;
	for (i = 1; i < n && w[i] != '='; i++)
		if (!((w[i] >= 'A' && w[i] <= 'Z') || (w[i] >= 'a' && w[i] <= 'z') ||
		      (w[i] >= '0' && w[i] <= '9') || w[i] == '_'))
			return false;
	return i < n && w[i] == '=';
}

int dev_prefix_append(char **buf, const char *prefix, tl_err *err)
{
	const char *p = prefix ? prefix : "";
	bool leading = true; /* assignments count only before the command word */
	while (*p) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		const char *w = p;
		while (*p && *p != ' ' && *p != '\t')
			p++;
		size_t n = (size_t)(p - w);
		char *word = malloc(n + 1);
		if (word == NULL)
			return tl_err_set(err, TL_ENOMEM, "command line: out of memory");
		memcpy(word, w, n);
		word[n] = '\0';
		int rc;
		if (leading && is_assignment(word, n)) {
			char *eq = strchr(word, '=');
			char *q = dev_shell_quote(eq + 1);
			eq[1] = '\0';
			rc = q ? append_raw(buf, word, true, err)
			       : tl_err_set(err, TL_ENOMEM, "out of memory");
			if (rc == 0)
				rc = append_raw(buf, q, false, err);
			free(q);
		} else {
			leading = false;
			rc = dev_shell_append(buf, word, err);
		}
		free(word);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* ---- descriptions --------------------------------------------------------------- */

bool dev_name_valid(const char *name)
{
	size_t n = strlen(name);
	if (n < 1 || n > 64)
		return false;
	if (!((name[0] >= 'A' && name[0] <= 'Z') || (name[0] >= 'a' && name[0] <= 'z') ||
	      (name[0] >= '0' && name[0] <= '9')))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

static bool has_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* The characters op_emit accepts in a compiler command or its flags. */
static bool toolchain_chars(const char *s)
{
	for (; *s; s++) {
		char c = *s;
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      strchr("_+-=,./:@% ", c)))
			return false;
	}
	return true;
}

/* A JSON array of strings, strictly: ["a", "b"]. Labels are short words. */
static bool labels_valid(const char *s)
{
	const char *p = s;
	while (*p == ' ')
		p++;
	if (*p++ != '[')
		return false;
	while (*p == ' ')
		p++;
	if (*p == ']')
		goto end;
	for (;;) {
		if (*p++ != '"')
			return false;
		while (*p && *p != '"') {
			if (*p == '\\' || (unsigned char)*p < 0x20)
				return false;
			p++;
		}
		if (*p++ != '"')
			return false;
		while (*p == ' ')
			p++;
		if (*p == ',') {
			p++;
			while (*p == ' ')
				p++;
			continue;
		}
		if (*p == ']')
			break;
		return false;
	}
end:
	p++;
	while (*p == ' ')
		p++;
	return *p == '\0';
}

int dev_device_check(const db_device *d, tl_err *err)
{
	if (!dev_name_valid(d->name))
		return tl_err_set(
		    err, TL_EUSAGE,
		    "device: name '%s': use 1 to 64 of A-Z a-z 0-9 . _ - , starting with a "
		    "letter or digit",
		    d->name);
	const char *tr = d->transport;
	if (strcmp(tr, "local") && strcmp(tr, "ssh") && strcmp(tr, "adb"))
		return tl_err_set(err, TL_EUSAGE,
		                  "device %s: transport '%s': not local, ssh or adb", d->name, tr);
	const struct {
		const char *field, *value;
	} texts[] = {
	    {"host", d->host},
	    {"user", d->user},
	    {"key", d->key_path},
	    {"known-hosts", d->known_hosts},
	    {"serial", d->adb_serial},
	    {"adb", d->adb_path},
	    {"arch", d->arch},
	    {"cc", d->toolchain_cc},
	    {"cflags", d->toolchain_flags},
	    {"run-prefix", d->run_prefix},
	    {"labels", d->labels},
	    {"work-root", d->work_root},
	};
	for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
		if (has_ctl(texts[i].value))
			return tl_err_set(
			    err, TL_EUSAGE,
			    "device %s: --%s: holds a control character (newline, tab...); "
			    "give it on one line",
			    d->name, texts[i].field);
	if (strcmp(tr, "local") == 0) {
		if (d->host[0] || d->adb_serial[0] || d->port)
			return tl_err_set(
			    err, TL_EUSAGE,
			    "device %s: transport local takes no --host, --port or --serial "
			    "(use --transport ssh for another machine)",
			    d->name);
	} else {
		if (d->host[0] == '\0')
			return tl_err_set(
			    err, TL_EUSAGE, "device %s: transport %s needs --host (the %s)",
			    d->name, tr,
			    strcmp(tr, "adb") == 0 ? "lab host the phone is attached to"
			                           : "machine's name or address");
		if (d->host[0] == '-')
			return tl_err_set(err, TL_EUSAGE, "device %s: --host '%s': starts with '-'",
			                  d->name, d->host);
	}
	if (strcmp(tr, "adb") == 0 && d->adb_serial[0] == '\0')
		return tl_err_set(
		    err, TL_EUSAGE,
		    "device %s: transport adb needs --serial (see 'adb devices' on the lab "
		    "host)",
		    d->name);
	if (strcmp(tr, "adb") != 0 && (d->adb_serial[0] || d->adb_path[0]))
		return tl_err_set(err, TL_EUSAGE,
		                  "device %s: --serial and --adb are for transport adb", d->name);
	if (d->port < 0 || d->port > 65535)
		return tl_err_set(err, TL_EUSAGE, "device %s: --port %d: not in 1..65535", d->name,
		                  d->port);
	if (d->threads < 0 || d->threads > 256)
		return tl_err_set(err, TL_EUSAGE, "device %s: --threads %d: not in 1..256", d->name,
		                  d->threads);
	if (d->timeout_s < 0 || d->timeout_s > 3600)
		return tl_err_set(err, TL_EUSAGE, "device %s: --timeout %d: not in 1..3600 s",
		                  d->name, d->timeout_s);
	if (!toolchain_chars(d->toolchain_cc) || !toolchain_chars(d->toolchain_flags))
		return tl_err_set(err, TL_EUSAGE,
		                  "device %s: --cc/--cflags: only letters, digits, spaces and "
		                  "_ + - = , . / : @ %% are allowed (no shell syntax)",
		                  d->name);
	if (d->labels[0] && !labels_valid(d->labels))
		return tl_err_set(err, TL_EUSAGE,
		                  "device %s: labels '%s': not a JSON array of plain strings, e.g. "
		                  "[\"phone\", \"arm\"]",
		                  d->name, d->labels);
	if (d->work_root[0] && d->work_root[0] != '/')
		return tl_err_set(err, TL_EUSAGE,
		                  "device %s: --work-root '%s': give an absolute path", d->name,
		                  d->work_root);
	return 0;
}

void dev_device_where(const db_device *d, char *out, size_t n)
{
	if (strcmp(d->transport, "local") == 0) {
		snprintf(out, n, "local");
		return;
	}
	int port = d->port ? d->port : 22;
	const char *user = d->user[0] ? d->user : (getenv("USER") ? getenv("USER") : "?");
	if (strcmp(d->transport, "adb") == 0)
		snprintf(out, n, "%s@%s:%d adb %s", user, d->host, port, d->adb_serial);
	else
		snprintf(out, n, "%s@%s:%d", user, d->host, port);
}

void dev_device_identity(const db_device *d, char *out, size_t n)
{
	int port = d->port ? d->port : 22;
	if (strcmp(d->transport, "local") == 0)
		snprintf(out, n, "local");
	else if (strcmp(d->transport, "adb") == 0)
		snprintf(out, n, "adb %s:%d %s", d->host, port, d->adb_serial);
	else
		snprintf(out, n, "ssh %s:%d", d->host, port);
}

/* ---- JSON --------------------------------------------------------------------- */

int dev_json_kv_str(char **buf, const char *key, const char *s, tl_err *err)
{
	dev_buf b = {0};
	size_t have = *buf ? strlen(*buf) : 0;
	if (*buf)
		dev_buf_str(&b, *buf);
	if (have > 0 && (*buf)[have - 1] != '{')
		dev_buf_str(&b, ",");
	dev_buf_fmt(&b, "\"%s\":\"", key);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			dev_buf_fmt(&b, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			dev_buf_fmt(&b, "\\u%04x", *p);
		else
			dev_buf_put(&b, (const char *)p, 1);
	}
	dev_buf_str(&b, "\"");
	if (b.oom) {
		dev_buf_free(&b);
		return tl_err_set(err, TL_ENOMEM, "json: out of memory");
	}
	free(*buf);
	*buf = b.p;
	return 0;
}
