/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The BASELINE file parser (store/baseline.c): any bytes. */
#include <stdint.h>
#include <string.h>

#include "store-int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct store_baseline b;

	memset(&b, 0, sizeof(b));
	if (store_baseline_parse((const char *)data, size, &b) == 0)
		store_baseline_release(&b);
	hp_err_clear();
	return 0;
}
