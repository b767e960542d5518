/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Syntax of the names that travel between store, engine and users. */
#include <ctype.h>
#include <string.h>

#include "hp-common.h"

static bool digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static bool year_month(const char *s, char sep)
{
	int mon;

	if (strlen(s) != 7 || !digits(s, 4) || s[4] != sep || !digits(s + 5, 2))
		return false;
	mon = (s[5] - '0') * 10 + (s[6] - '0');
	return mon >= 1 && mon <= 12 && s[0] != '0';
}

bool hp_valid_baseline(const char *s)
{
	return s && year_month(s, '.');
}

bool hp_valid_month(const char *s)
{
	return s && year_month(s, '-');
}

bool hp_valid_setname(const char *s)
{
	size_t n;

	if (!s || !isalnum((unsigned char)s[0]))
		return false;
	n = strlen(s);
	if (n > 64)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!isalnum(c) && c != '.' && c != '_' && c != '+' && c != '-')
			return false;
	}
	return strstr(s, "..") == NULL;
}

bool hp_valid_build_id(const char *s)
{
	size_t n;

	if (!s)
		return false;
	n = strlen(s);
	if (n < 2 || n > 128 || n % 2)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]) && !(s[i] >= 'a' && s[i] <= 'f'))
			return false;
	return true;
}

bool hp_valid_symname(const char *s)
{
	const char *at;
	size_t n;

	if (!s || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
		return false;
	at = strchr(s, '@');
	n = at ? (size_t)(at - s) : strlen(s);
	if (n > 255)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		/* '.' appears in compiler-made local names (foo.constprop.0). */
		if (!isalnum(c) && c != '_' && c != '.')
			return false;
	}
	if (!at)
		return true;
	at++;
	if (!*at || strlen(at) > 255 || strstr(at, ".."))
		return false;
	for (; *at; at++) {
		unsigned char c = (unsigned char)*at;

		if (!isalnum(c) && !strchr("._/+-", c))
			return false;
	}
	return true;
}
