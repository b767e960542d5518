/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The patch object loader (apply/load.c): any bytes as patch.so. Parse it,
 * look a function up, and relocate the image for an address, its undefined
 * symbols bound through a manifest's sym entries (no process: no mapped
 * objects to search, so other names stay unresolved).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "apply-int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct hp_manifest *m;
	struct proc_objects none = { 0 };
	struct proc_object target;
	struct load_image img = { 0 };
	struct load_ctx ctx;
	uint64_t vaddr, fsize;

	if (!m) {
		m = hp_manifest_new();
		if (!m || hp_manifest_add_sym(m, "counter", NULL, 0x4010) < 0 ||
		    hp_manifest_add_sym(m, "helper", NULL, 0x1300) < 0)
			abort();
	}
	memset(&target, 0, sizeof(target));
	target.bias = 0x555555554000ull;
	(void)load_func(data, size, "handle_request", &vaddr, &fsize);
	if (load_parse(data, size, &img) == 0) {
		ctx = (struct load_ctx){ -1, &none, &target, m };
		(void)load_relocate(&img, data, size, 0x7f0000100000ull, &ctx);
		load_image_release(&img);
	}
	hp_err_clear();
	return 0;
}
