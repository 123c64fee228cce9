/*
 * devices/lock.c: exclusive use of a device across threads and processes,
 * and host-key trust.
 *
 * The lock is an flock(2) on a file per physical device under
 * <cache>/locks/ (<cache> = $TAILOR_CACHE, else $XDG_CACHE_HOME/tailor, else
 * ~/.cache/tailor), named by a hash of the device's identity (transport,
 * host, port, adb serial), so two registry entries for one phone, two
 * databases, or two tailor processes never measure on it at once. The
 * kernel drops the lock when the holder dies, so there is nothing to clean
 * up after a crash or kill -9. The holder writes its pid and the device's
 * name into the file, for the message of a process that has to wait. flock
 * locks belong to the open file description: two threads of one process
 * opening the file separately exclude each other too.
 */
#include "dev_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct dev_lock {
	int fd;
};


static int mkdirs(char *path)
{
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		int rc = mkdir(path, 0755);
		*p = '/';
		if (rc != 0 && errno != EEXIST)
			return -1;
	}
	return mkdir(path, 0755) == 0 || errno == EEXIST ? 0 : -1;
}

int dev_lock_acquire(dev_lock **out, const db_device *d, double wait_s, tl_err *err)
{
	char root[DEV_PATH_MAX], dir[DEV_PATH_MAX + 16], path[DEV_PATH_MAX + 96], id[700], hex[65];
	*out = NULL;
	int rc = tl_cache_root(root, sizeof root, err);
	if (rc < 0)
		return rc;
	snprintf(dir, sizeof dir, "%s/locks", root);
	if (mkdirs(dir) != 0)
		return tl_err_setsub(err, TL_EIO, errno, "device lock: %s: cannot create it: %s",
		                     dir, strerror(errno));
	dev_device_identity(d, id, sizeof id);
	tl_sha256_hex(id, strlen(id), hex);
	snprintf(path, sizeof path, "%s/%.16s.lock", dir, hex);
	char info[800], holder[256];
	snprintf(info, sizeof info, "pid %ld, device %s\n%s\n", (long)getpid(), d->name, id);
	int fd;
	if ((rc = tl_lock_take(&fd, path, info, wait_s, holder, sizeof holder, err)) == TL_EBUSY) {
		tl_err_clear(err);
		return tl_err_set(err, TL_EBUSY,
		                  "device %s: in use by another tailor (%s) for more than %.0f s "
		                  "(lock %s); try again when it is done",
		                  d->name, holder[0] ? holder : "unknown holder", wait_s, path);
	}
	if (rc < 0) {
		tl_err_prefix(err, "device lock");
		return rc;
	}
	dev_lock *l = malloc(sizeof *l);
	if (l == NULL) {
		tl_lock_release(fd);
		return tl_err_set(err, TL_ENOMEM, "device lock: out of memory");
	}
	l->fd = fd;
	*out = l;
	return 0;
}

void dev_lock_release(dev_lock *l)
{
	if (l == NULL)
		return;
	tl_lock_release(l->fd);
	free(l);
}

/* ---- host keys ------------------------------------------------------------------ */

int dev_hostkey_fetch(const db_device *d, dev_hostkey *out, tl_err *err)
{
	dev_ssh *s = NULL;
	memset(out, 0, sizeof *out);
	if (strcmp(d->transport, "local") == 0)
		return tl_err_set(err, TL_EINVAL,
		                  "device %s: transport local has no host key (nothing to trust)",
		                  d->name);
	int rc = dev_device_check(d, err);
	if (rc == 0)
		rc = dev_ssh_open(&s, d, false, out, err);
	dev_ssh_close(s);
	return rc;
}

int dev_hostkey_trust(const db_device *d, const char *expect, bool replace, dev_hostkey *out,
                      tl_err *err)
{
	dev_ssh *s = NULL;
	memset(out, 0, sizeof *out);
	if (strcmp(d->transport, "local") == 0)
		return tl_err_set(err, TL_EINVAL,
		                  "device %s: transport local has no host key (nothing to trust)",
		                  d->name);
	int rc = dev_device_check(d, err);
	if (rc == 0)
		rc = dev_ssh_open(&s, d, false, out, err);
	if (rc == 0 && expect && strcmp(expect, out->fingerprint) != 0)
		rc = tl_err_set(
		    err, TL_EINVAL,
		    "device trust: %s: the server shows %s, not the expected %s; nothing "
		    "recorded",
		    d->name, out->fingerprint, expect);
	if (rc == 0 && out->known != 1)
		rc = dev_ssh_trust(s, d, replace, out, err);
	dev_ssh_close(s);
	return rc;
}
