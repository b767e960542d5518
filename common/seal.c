/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The mount point's immutable flag (FS_IMMUTABLE_FL, what chattr +i sets):
 * while nothing is mounted on it, creating a file in it fails with EPERM,
 * for root too, so `echo PID > /hp/apply` with the daemon down fails instead
 * of writing a regular file. Mounting over the directory is unaffected. The
 * flag lives in the directory's inode: it holds whether the daemon stopped,
 * crashed or never started. Setting it needs CAP_LINUX_IMMUTABLE and a
 * filesystem that keeps the flag (ext4, xfs, btrfs, tmpfs since Linux 6.0).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "hp-common.h"

int hp_dir_seal(const char *dir, bool on)
{
	int fd, flags, r = 0;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return hp_err(-errno, "%s: %s", dir, strerror(errno));
	if (ioctl(fd, FS_IOC_GETFLAGS, &flags) < 0) {
		r = hp_err(-errno, "%s: reading its flags: %s", dir, strerror(errno));
		goto out;
	}
	if (!!(flags & FS_IMMUTABLE_FL) == on)
		goto out;
	flags = on ? (flags | FS_IMMUTABLE_FL) : (flags & ~FS_IMMUTABLE_FL);
	if (ioctl(fd, FS_IOC_SETFLAGS, &flags) < 0)
		r = hp_err(-errno, "%s: setting the immutable flag: %s", dir, strerror(errno));
out:
	close(fd);
	return r;
}
