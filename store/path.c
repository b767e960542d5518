/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>

#include "store.h"

const char *store_default_path(void)
{
	const char *p = getenv("HP_STORE");

	return (p && *p) ? p : STORE_DEFAULT_PATH;
}
