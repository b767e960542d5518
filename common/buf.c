/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A growable, NUL-terminated byte buffer (git's strbuf) and file helpers. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hp-common.h"

void hp_buf_init(struct hp_buf *b)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void hp_buf_release(struct hp_buf *b)
{
	if (!b)
		return;
	free(b->data);
	hp_buf_init(b);
}

void hp_buf_reset(struct hp_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

int hp_buf_grow(struct hp_buf *b, size_t extra)
{
	size_t need, cap;
	char *p;

	if (extra > SIZE_MAX - b->len - 1)
		return -ENOMEM;
	need = b->len + extra + 1;
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	p = realloc(b->data, cap);
	if (!p)
		return -ENOMEM;
	p[b->len] = '\0'; /* a first allocation too: an empty buffer is "" */
	b->data = p;
	b->cap = cap;
	return 0;
}

int hp_buf_add(struct hp_buf *b, const void *data, size_t len)
{
	int r = hp_buf_grow(b, len);

	if (r < 0)
		return r;
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return 0;
}

int hp_buf_adds(struct hp_buf *b, const char *s)
{
	return hp_buf_add(b, s, strlen(s));
}

int hp_buf_vaddf(struct hp_buf *b, const char *fmt, va_list ap)
{
	va_list cp;
	int n, r;

	va_copy(cp, ap);
	n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0)
		return -EINVAL;
	r = hp_buf_grow(b, (size_t)n);
	if (r < 0)
		return r;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int hp_buf_addf(struct hp_buf *b, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = hp_buf_vaddf(b, fmt, ap);
	va_end(ap);
	return r;
}

int hp_buf_add_json_str(struct hp_buf *b, const char *s)
{
	int r = hp_buf_adds(b, "\"");

	for (; r == 0 && s && *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			r = hp_buf_addf(b, "\\%c", c);
		else if (c < 0x20)
			r = hp_buf_addf(b, "\\u%04x", c);
		else
			r = hp_buf_add(b, s, 1);
	}
	return r < 0 ? r : hp_buf_adds(b, "\"");
}

char *hp_buf_detach(struct hp_buf *b, size_t *ret_len)
{
	char *p = b->data;

	if (!p)
		p = calloc(1, 1);
	if (ret_len)
		*ret_len = b->len;
	hp_buf_init(b);
	return p;
}

int hp_read_file(const char *path, size_t max, struct hp_buf *ret)
{
	return hp_read_file_keep(path, max, ret, NULL);
}

int hp_read_file_keep(const char *path, size_t max, struct hp_buf *ret, int *ret_fd)
{
	struct hp_buf b = HP_BUF_INIT;
	char chunk[65536];
	int fd, r = 0;

	if (ret_fd)
		*ret_fd = -1;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return hp_err(-errno, "open %s: %s", path, strerror(errno));
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = hp_err(-errno, "read %s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		if (b.len + (size_t)n > max) {
			r = hp_err(-EFBIG, "read %s: larger than %zu bytes", path, max);
			goto out;
		}
		r = hp_buf_add(&b, chunk, (size_t)n);
		if (r < 0)
			goto out;
	}
	if (!b.data)
		r = hp_buf_grow(&b, 0);
out:
	if (r < 0) {
		close(fd);
		hp_buf_release(&b);
		return r;
	}
	if (ret_fd)
		*ret_fd = fd;
	else
		close(fd);
	hp_buf_release(ret);
	*ret = b;
	return 0;
}

int hp_write_file_atomic(const char *path, const void *data, size_t len, unsigned mode)
{
	char tmp[PATH_MAX];
	const char *p = data;
	int fd, r = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path) >= (int)sizeof(tmp))
		return hp_err(-ENAMETOOLONG, "write %s: path too long", path);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return hp_err(-errno, "write %s: %s", path, strerror(errno));
	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = hp_err(-errno, "write %s: %s", path, strerror(errno));
			goto fail;
		}
		p += n;
		len -= (size_t)n;
	}
	if (fchmod(fd, mode) < 0 || fsync(fd) < 0) {
		r = hp_err(-errno, "write %s: %s", path, strerror(errno));
		goto fail;
	}
	if (close(fd) < 0) {
		fd = -1;
		r = hp_err(-errno, "write %s: %s", path, strerror(errno));
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		r = hp_err(-errno, "rename %s: %s", path, strerror(errno));
		goto fail;
	}
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return r;
}
