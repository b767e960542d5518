/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The manifest parser (common/manifest.c): any bytes. What it accepts must
 * format and parse again to the same text (the format is the parser's own
 * reading of the input, so a second round may not change it).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hp-common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hp_manifest *m = NULL, *m2 = NULL;
	struct hp_buf a = HP_BUF_INIT, b = HP_BUF_INIT;

	if (hp_manifest_parse((const char *)data, size, &m) < 0)
		return 0;
	if (hp_manifest_format(m, &a) < 0)
		abort();
	if (hp_manifest_parse(a.data, a.len, &m2) < 0 || hp_manifest_format(m2, &b) < 0)
		abort();
	if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
		abort();
	hp_buf_release(&a);
	hp_buf_release(&b);
	hp_manifest_free(m);
	hp_manifest_free(m2);
	hp_err_clear();
	return 0;
}
