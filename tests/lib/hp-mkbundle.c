/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hp-mkbundle: make a test bundle (tests only; hp build makes real ones).
 *   hp-mkbundle -b BASELINE -m MONTH -n NAME [-t TARGET] [-i BUILD-ID]
 *               [-k KEY] [-p PATCHFILE] [-c CVE] [--tamper] -o OUT
 * With -N COUNT, makes COUNT bundles OUT/NAME-<i>.tar (NAME-0 ... ), for
 * bulk tests.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mkbundle.h"

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "tamper", no_argument, NULL, 'T' },
		{ NULL, 0, NULL, 0 },
	};
	struct mkb_opts o = { 0 };
	struct hp_buf patch = HP_BUF_INIT;
	const char *out = NULL;
	long count = 0;
	int c, r = 0;

	while ((c = getopt_long(argc, argv, "b:m:n:t:i:k:p:c:o:N:", lo, NULL)) != -1) {
		switch (c) {
		case 'b': o.baseline = optarg; break;
		case 'm': o.month = optarg; break;
		case 'n': o.name = optarg; break;
		case 't': o.target = optarg; break;
		case 'i': o.build_id = optarg; break;
		case 'k': o.key = optarg; break;
		case 'c': o.cve = optarg; break;
		case 'o': out = optarg; break;
		case 'N': count = strtol(optarg, NULL, 10); break;
		case 'T': o.tamper = true; break;
		case 'p':
			r = hp_read_file(optarg, STORE_MEMBER_MAX_BYTES, &patch);
			if (r < 0) {
				fprintf(stderr, "hp-mkbundle: %s\n", hp_errmsg(r));
				return 1;
			}
			o.patch = patch.data;
			o.patch_len = patch.len;
			break;
		default:
			fprintf(stderr, "hp-mkbundle: bad option\n");
			return 2;
		}
	}
	if (!o.baseline || !o.month || !o.name || !out) {
		fprintf(stderr, "usage: hp-mkbundle -b B -m M -n NAME [-t T] [-i ID] [-k KEY] [-p FILE] [-c CVE] [--tamper] [-N COUNT] -o OUT\n");
		return 2;
	}
	if (count <= 0) {
		r = mkb_write(&o, out);
	} else {
		const char *base = o.name;

		for (long i = 0; i < count && r == 0; i++) {
			char name[80], path[4096];

			snprintf(name, sizeof(name), "%s-%ld", base, i);
			snprintf(path, sizeof(path), "%s/%s.tar", out, name);
			o.name = name;
			r = mkb_write(&o, path);
		}
	}
	if (r < 0) {
		fprintf(stderr, "hp-mkbundle: %s\n", hp_errmsg(r));
		return 1;
	}
	hp_buf_release(&patch);
	return 0;
}
