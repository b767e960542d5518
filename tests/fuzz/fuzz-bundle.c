/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The bundle reader (store/bundle.c, libarchive underneath): any bytes as an archive. */
#include <stdint.h>
#include <string.h>

#include "store-int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bundle b;

	memset(&b, 0, sizeof(b)); /* bundle_read releases what ret held */
	if (bundle_read(data, size, &b) == 0)
		bundle_release(&b);
	hp_err_clear();
	return 0;
}
