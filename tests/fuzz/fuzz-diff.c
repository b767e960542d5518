/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * hp build --diff's unified-diff reader (author/diff.c): any bytes as the
 * fix. What it accepts must be within its bounds: every hunk's context
 * lines in pairs, no negative line number or length, and a line map
 * that answers for any old line (UBSan watches its arithmetic).
 */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "author-int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Old lines tried on the map: the first ones, and around each hunk. */
#define FUZZ_MAP_LINES 64

static void check(const struct dfile *f)
{
	if (!f->path)
		abort();
	for (size_t i = 0; i < f->n_changed; i++)
		if (f->changed[i] < 0)
			abort();
	for (size_t i = 0; i < f->n_hunks; i++) {
		const struct hunk *h = &f->hunks[i];

		if (h->n_pairs % 2 || h->old_start < 0 || h->new_start < 0 || h->old_len < 0 ||
		    h->new_len < 0)
			abort();
		for (int L = h->old_start - 2; L < h->old_start + 3 && L < INT_MAX - 3; L++)
			(void)diff_line_map(f, L);
	}
	for (int L = 0; L < FUZZ_MAP_LINES; L++)
		(void)diff_line_map(f, L);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dfile *files = NULL;
	size_t n = 0;
	char *text = malloc(size + 1);

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (diff_parse("fuzz.patch", text, &files, &n) == 0)
		for (size_t i = 0; i < n; i++)
			check(&files[i]);
	diff_files_release(files, n);
	free(text);
	hp_err_clear();
	return 0;
}
