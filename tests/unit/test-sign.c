/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests: keys and signatures (store/sign.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "store-int.h"

struct fx {
	char dir[64];
	char key[128];
	char pub[128];
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	strcpy(f->dir, "/tmp/hp-test-sign-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->key, sizeof(f->key), "%s/k/hotpatch.key", f->dir);
	snprintf(f->pub, sizeof(f->pub), "%s/k/hotpatch.pub", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static void keydir(struct fx *f, char *out, size_t n)
{
	snprintf(out, n, "%s/k", f->dir);
}

static void load_pub(struct fx *f, unsigned char pk[32], char keyid[17])
{
	struct hp_buf b = HP_BUF_INIT;

	assert_int_equal(hp_read_file(f->pub, 4096, &b), 0);
	assert_int_equal(sign_parse_pubkey(b.data, b.len, pk, keyid), 0);
	hp_buf_release(&b);
}

static void test_generate_files(void **state)
{
	struct fx *f = *state;
	struct hp_buf b = HP_BUF_INIT;
	struct stat sb;
	char d[128];

	keydir(f, d, sizeof(d));
	assert_int_equal(store_key_generate(d), 0);
	assert_int_equal(stat(f->key, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_int_equal(hp_read_file(f->key, 4096, &b), 0);
	assert_true(!strncmp(b.data, "hotpatch-secret-key 1 ed25519 ", 30));
	assert_int_equal(b.len, 30 + 128 + 1);
	assert_int_equal(hp_read_file(f->pub, 4096, &b), 0);
	assert_true(!strncmp(b.data, "hotpatch-public-key 1 ed25519 ", 30));
	assert_int_equal(b.len, 30 + 64 + 1);
	hp_buf_release(&b);
	/* A second generate does not overwrite the key. */
	assert_int_equal(sign_generate(d), -EEXIST);
}

static void test_sign_verify(void **state)
{
	struct fx *f = *state;
	static const char msg[] = "hotpatch-manifest 1\nname x\n";
	struct hp_buf sig = HP_BUF_INIT;
	unsigned char pk[32];
	char keyid[17], sigid[17], d[128];

	keydir(f, d, sizeof(d));
	assert_int_equal(sign_generate(d), 0);
	load_pub(f, pk, keyid);
	assert_int_equal(strlen(keyid), 16);
	assert_int_equal(sign_manifest(f->key, msg, strlen(msg), &sig), 0);
	assert_true(!strncmp(sig.data, "hotpatch-signature 1 ed25519 ", 29));
	assert_int_equal(sign_keyid(sig.data, sig.len, sigid), 0);
	assert_string_equal(sigid, keyid);
	assert_int_equal(sign_verify(sig.data, sig.len, msg, strlen(msg), pk), 0);

	/* One changed byte of the message. */
	{
		char m2[sizeof(msg)];

		memcpy(m2, msg, sizeof(msg));
		m2[25] ^= 1;
		assert_int_equal(sign_verify(sig.data, sig.len, m2, strlen(m2), pk), -EKEYREJECTED);
	}
	/* One changed digit of the signature. */
	{
		char *s2 = strdup(sig.data);
		size_t last = sig.len - 2;

		s2[last] = s2[last] == '0' ? '1' : '0';
		assert_int_equal(sign_verify(s2, sig.len, msg, strlen(msg), pk), -EKEYREJECTED);
		free(s2);
	}
	hp_buf_release(&sig);
}

static void test_wrong_key(void **state)
{
	struct fx *f = *state;
	static const char msg[] = "payload";
	struct hp_buf sig = HP_BUF_INIT;
	unsigned char pk1[32], pk2[32];
	char id1[17], id2[17], d[128], d2[160], pub2[192];
	struct hp_buf b = HP_BUF_INIT;

	keydir(f, d, sizeof(d));
	snprintf(d2, sizeof(d2), "%s/other", f->dir);
	snprintf(pub2, sizeof(pub2), "%s/hotpatch.pub", d2);
	assert_int_equal(sign_generate(d), 0);
	assert_int_equal(sign_generate(d2), 0);
	load_pub(f, pk1, id1);
	assert_int_equal(hp_read_file(pub2, 4096, &b), 0);
	assert_int_equal(sign_parse_pubkey(b.data, b.len, pk2, id2), 0);
	assert_string_not_equal(id1, id2);
	assert_int_equal(sign_manifest(f->key, msg, strlen(msg), &sig), 0);
	assert_int_equal(sign_verify(sig.data, sig.len, msg, strlen(msg), pk2), -EKEYREJECTED);
	assert_int_equal(sign_verify(sig.data, sig.len, msg, strlen(msg), pk1), 0);
	hp_buf_release(&sig);
	hp_buf_release(&b);
}

static void test_malformed(void **state)
{
	unsigned char pk[32] = { 0 };
	char id[17];
	static const char *bad_pubs[] = {
		"",
		"hotpatch-public-key 1 ed25519 \n",
		"hotpatch-public-key 1 ed25519 00\n",
		"hotpatch-public-key 2 ed25519 "
		"0000000000000000000000000000000000000000000000000000000000000000\n",
		"hotpatch-public-key 1 ed25519 "
		"000000000000000000000000000000000000000000000000000000000000000G\n",
		"hotpatch-public-key 1 ed25519 "
		"00000000000000000000000000000000000000000000000000000000000000AA\n",
		"hotpatch-public-key 1 ed25519 "
		"0000000000000000000000000000000000000000000000000000000000000000\n\n",
	};
	static const char good_pub[] = "hotpatch-public-key 1 ed25519 "
		"0000000000000000000000000000000000000000000000000000000000000001\n";

	for (size_t i = 0; i < sizeof(bad_pubs) / sizeof(bad_pubs[0]); i++)
		assert_int_equal(sign_parse_pubkey(bad_pubs[i], strlen(bad_pubs[i]), pk, id), -EINVAL);
	assert_int_equal(sign_parse_pubkey(good_pub, strlen(good_pub), pk, id), 0);
	assert_int_equal(pk[31], 1);

	assert_int_equal(sign_keyid("garbage", 7, id), -EINVAL);
	assert_int_equal(sign_verify("garbage", 7, "x", 1, pk), -EKEYREJECTED);
	assert_true(strstr(hp_errmsg(-EKEYREJECTED), "malformed signature") != NULL);
}

static void test_bad_keyfile(void **state)
{
	struct fx *f = *state;
	struct hp_buf sig = HP_BUF_INIT;
	char path[128];
	static const char junk[] = "hotpatch-secret-key 1 ed25519 1234\n";

	snprintf(path, sizeof(path), "%s/junk.key", f->dir);
	assert_int_equal(hp_write_file_atomic(path, junk, strlen(junk), 0600), 0);
	assert_int_equal(sign_manifest(path, "x", 1, &sig), -EINVAL);
	assert_null(sig.data);
	snprintf(path, sizeof(path), "%s/missing.key", f->dir);
	assert_int_equal(sign_manifest(path, "x", 1, &sig), -ENOENT);
}

static void test_sha256(void **state)
{
	char hex[65];

	sign_sha256_hex("abc", 3, hex);
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	sign_sha256_hex("", 0, hex);
	assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_generate_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sign_verify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_key, setup, teardown),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test_setup_teardown(test_bad_keyfile, setup, teardown),
		cmocka_unit_test(test_sha256),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
