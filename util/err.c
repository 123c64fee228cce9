/*
 * util/err.c: the error value (see tl.h). A message is formatted once, made
 * one line, and never overwritten: the first failure is the root cause, and
 * callers further up add context with tl_err_prefix rather than replacing it.
 */
#include "tl.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void one_line(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = ' ';
}

__attribute__((format(printf, 4, 0)))
static int vset(tl_err *err, int code, int sub, const char *fmt, va_list ap)
{
	if (err == NULL || err->code != 0)
		return code;
	err->code = code;
	err->sub = sub;
	vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	one_line(err->msg);
	return code;
}

int tl_err_set(tl_err *err, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vset(err, code, 0, fmt, ap);
	va_end(ap);
	return code;
}

int tl_err_setsub(tl_err *err, int code, int sub, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vset(err, code, sub, fmt, ap);
	va_end(ap);
	return code;
}

void tl_err_prefix(tl_err *err, const char *fmt, ...)
{
	char pre[TL_ERR_MSG_MAX], old[TL_ERR_MSG_MAX];
	va_list ap;

	if (err == NULL || err->code == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(pre, sizeof pre, fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof old);
	/* Truncation is intended: the end of a long message goes first. */
	size_t n = tl_strlcpy(err->msg, pre, sizeof err->msg);
	if (n < sizeof err->msg - 1)
		n += tl_strlcpy(err->msg + n, ": ", sizeof err->msg - n);
	if (n < sizeof err->msg - 1)
		tl_strlcpy(err->msg + n, old, sizeof err->msg - n);
	one_line(err->msg);
}

void tl_err_clear(tl_err *err)
{
	if (err == NULL)
		return;
	err->code = 0;
	err->sub = 0;
	err->msg[0] = '\0';
}

bool tl_err_isset(const tl_err *err)
{
	return err != NULL && err->code != 0;
}

const char *tl_err_name(int code)
{
	switch (code) {
	case TL_OK: return "ok";
	case TL_EFAIL: return "fail";
	case TL_EUSAGE: return "usage";
	case TL_ENOMEM: return "nomem";
	case TL_EIO: return "io";
	case TL_EDB: return "db";
	case TL_ESSH: return "ssh";
	case TL_ENOTFOUND: return "notfound";
	case TL_EPARSE: return "parse";
	case TL_EVERSION: return "version";
	case TL_EINVAL: return "invalid";
	case TL_EBUSY: return "busy";
	case TL_ETIMEOUT: return "timeout";
	case TL_EEXIST: return "exists";
	}
	return "unknown";
}
