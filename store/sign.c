/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Keys and signatures: ed25519 through libsodium. The text formats are in
 * store-int.h: one line each, a magic word, a version, the algorithm, hex.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store-int.h"

#define SECKEY_MAGIC "hotpatch-secret-key 1 ed25519 "
#define PUBKEY_MAGIC "hotpatch-public-key 1 ed25519 "
#define SIG_MAGIC "hotpatch-signature 1 ed25519 "

static int sodium_ready(void)
{
	/* Thread-safe and idempotent: 1 means already initialised. */
	if (sodium_init() < 0)
		return hp_err(-EIO, "libsodium failed to initialise");
	return 0;
}

void sign_sha256_hex(const void *data, size_t len, char ret_hex[SIGN_SHA256_HEX_SIZE])
{
	unsigned char h[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(h, data, len);
	sodium_bin2hex(ret_hex, 65, h, sizeof(h));
}

static void keyid_of(const unsigned char pk[32], char ret_keyid[SIGN_KEYID_SIZE])
{
	unsigned char h[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(h, pk, 32);
	sodium_bin2hex(ret_keyid, 17, h, 8);
}

/* Strictly lowercase hex of exactly n bytes' worth of digits. */
static int parse_hex(const char *s, size_t slen, unsigned char *out, size_t n)
{
	size_t bin_len = 0;

	if (slen != 2 * n)
		return -EINVAL;
	for (size_t i = 0; i < slen; i++) {
		char c = s[i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return -EINVAL;
	}
	if (sodium_hex2bin(out, n, s, slen, NULL, &bin_len, NULL) != 0 || bin_len != n)
		return -EINVAL;
	return 0;
}

/*
 * Split "MAGIC<field>[ <field>]\n" text: check the magic, allow exactly one
 * trailing newline, and return the rest (without the newline).
 */
static int strip_line(const char *text, size_t len, const char *magic, const char **ret_rest,
		      size_t *ret_len)
{
	size_t ml = strlen(magic);

	if (len > 0 && text[len - 1] == '\n')
		len--;
	if (len < ml || memcmp(text, magic, ml) != 0)
		return -EINVAL;
	if (memchr(text, '\n', len) || memchr(text, '\0', len))
		return -EINVAL;
	*ret_rest = text + ml;
	*ret_len = len - ml;
	return 0;
}

int sign_parse_pubkey(const char *text, size_t len, unsigned char ret_pk[32], char ret_keyid[SIGN_KEYID_SIZE])
{
	unsigned char pk[32];
	const char *hex;
	size_t hlen;

	if (strip_line(text, len, PUBKEY_MAGIC, &hex, &hlen) < 0 || parse_hex(hex, hlen, pk, 32) < 0)
		return hp_err(-EINVAL, "not a hotpatch public key (expected '%s<64 hex>')",
			      PUBKEY_MAGIC);
	memcpy(ret_pk, pk, 32);
	keyid_of(pk, ret_keyid);
	return 0;
}

static int parse_seckey(const char *text, size_t len, unsigned char sk[64])
{
	const char *hex;
	size_t hlen;
	unsigned char pk[32];

	if (strip_line(text, len, SECKEY_MAGIC, &hex, &hlen) < 0 || parse_hex(hex, hlen, sk, 64) < 0)
		return -EINVAL;
	/* libsodium's secret key is seed || public key: they must agree. */
	if (crypto_sign_ed25519_sk_to_pk(pk, sk) != 0)
		return -EINVAL;
	{
		unsigned char seed[32], pk2[32], sk2[64];

		crypto_sign_ed25519_sk_to_seed(seed, sk);
		crypto_sign_seed_keypair(pk2, sk2, seed);
		sodium_memzero(seed, sizeof(seed));
		sodium_memzero(sk2, sizeof(sk2));
		if (memcmp(pk, pk2, 32) != 0)
			return -EINVAL;
	}
	return 0;
}

static int write_new_file(const char *path, const char *data, size_t len, mode_t mode)
{
	size_t off = 0;
	int fd, r = 0;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0)
		return hp_err(-errno, "write %s: %s", path, strerror(errno));
	while (off < len) {
		ssize_t n = write(fd, data + off, len - off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = hp_err(-errno, "write %s: %s", path, strerror(errno));
			goto out;
		}
		off += (size_t)n;
	}
	if (fsync(fd) < 0)
		r = hp_err(-errno, "write %s: %s", path, strerror(errno));
out:
	if (close(fd) < 0 && r == 0)
		r = hp_err(-errno, "write %s: %s", path, strerror(errno));
	if (r < 0)
		unlink(path);
	return r;
}

int sign_generate(const char *dir)
{
	unsigned char pk[32], sk[64];
	char skhex[HP_BUILD_ID_HEX_SIZE], pkhex[SIGN_SHA256_HEX_SIZE];
	char keypath[PATH_MAX], pubpath[PATH_MAX];
	struct hp_buf text = HP_BUF_INIT;
	struct stat sb;
	int r;

	r = sodium_ready();
	if (r < 0)
		return r;
	if (snprintf(keypath, sizeof(keypath), "%s/hotpatch.key", dir) >= (int)sizeof(keypath) ||
	    snprintf(pubpath, sizeof(pubpath), "%s/hotpatch.pub", dir) >= (int)sizeof(pubpath))
		return hp_err(-ENAMETOOLONG, "key directory %s: path too long", dir);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return hp_err(-errno, "key directory %s: %s", dir, strerror(errno));
	if (stat(dir, &sb) < 0 || !S_ISDIR(sb.st_mode))
		return hp_err(-ENOTDIR, "key directory %s: not a directory", dir);
	if (access(keypath, F_OK) == 0 || access(pubpath, F_OK) == 0)
		return hp_err(-EEXIST, "key directory %s: a key is already there (not overwritten)",
			      dir);

	crypto_sign_keypair(pk, sk);
	sodium_bin2hex(skhex, sizeof(skhex), sk, sizeof(sk));
	sodium_bin2hex(pkhex, sizeof(pkhex), pk, sizeof(pk));
	r = hp_buf_addf(&text, "%s%s\n", SECKEY_MAGIC, skhex);
	if (r < 0)
		goto out;
	r = write_new_file(keypath, text.data, text.len, 0600);
	if (r < 0)
		goto out;
	hp_buf_reset(&text);
	r = hp_buf_addf(&text, "%s%s\n", PUBKEY_MAGIC, pkhex);
	if (r < 0)
		goto out;
	r = write_new_file(pubpath, text.data, text.len, 0644);
	if (r < 0)
		unlink(keypath);
out:
	sodium_memzero(sk, sizeof(sk));
	sodium_memzero(skhex, sizeof(skhex));
	if (text.data)
		sodium_memzero(text.data, text.cap);
	hp_buf_release(&text);
	return r;
}

int sign_manifest(const char *keyfile, const void *manifest, size_t len, struct hp_buf *ret_sig)
{
	struct hp_buf key = HP_BUF_INIT, out = HP_BUF_INIT;
	unsigned char sk[64], pk[32], sig[crypto_sign_BYTES];
	char keyid[SIGN_KEYID_SIZE], sighex[2 * crypto_sign_BYTES + 1];
	int r;

	r = sodium_ready();
	if (r < 0)
		return r;
	r = hp_read_file(keyfile, STORE_KEYFILE_MAX, &key);
	if (r < 0)
		goto out;
	if (parse_seckey(key.data, key.len, sk) < 0) {
		r = hp_err(-EINVAL, "key %s: not a hotpatch secret key", keyfile);
		goto out;
	}
	crypto_sign_ed25519_sk_to_pk(pk, sk);
	keyid_of(pk, keyid);
	crypto_sign_detached(sig, NULL, manifest, len, sk);
	sodium_bin2hex(sighex, sizeof(sighex), sig, sizeof(sig));
	r = hp_buf_addf(&out, "%s%s %s\n", SIG_MAGIC, keyid, sighex);
	if (r < 0)
		goto out;
	hp_buf_release(ret_sig);
	*ret_sig = out;
	out = (struct hp_buf)HP_BUF_INIT;
out:
	sodium_memzero(sk, sizeof(sk));
	if (key.data)
		sodium_memzero(key.data, key.cap);
	hp_buf_release(&key);
	hp_buf_release(&out);
	return r;
}

/* "<keyid> <sighex>" of a signature text. */
static int parse_sig(const char *text, size_t len, char ret_keyid[SIGN_KEYID_SIZE],
		     unsigned char ret_sig[crypto_sign_BYTES])
{
	const char *rest;
	size_t rlen;
	unsigned char kid[8];
	unsigned char sig[crypto_sign_BYTES];

	if (strip_line(text, len, SIG_MAGIC, &rest, &rlen) < 0 || rlen < SIGN_KEYID_HEX + 1 ||
	    rest[SIGN_KEYID_HEX] != ' ' || parse_hex(rest, SIGN_KEYID_HEX, kid, 8) < 0 ||
	    parse_hex(rest + SIGN_KEYID_HEX + 1, rlen - SIGN_KEYID_HEX - 1, sig, sizeof(sig)) < 0)
		return hp_err(-EINVAL, "malformed signature (expected '%s<keyid> <128 hex>')",
			      SIG_MAGIC);
	memcpy(ret_keyid, rest, SIGN_KEYID_HEX);
	ret_keyid[SIGN_KEYID_HEX] = '\0';
	memcpy(ret_sig, sig, sizeof(sig));
	return 0;
}

int sign_keyid(const char *sig, size_t sig_len, char ret_keyid[SIGN_KEYID_SIZE])
{
	unsigned char raw[crypto_sign_BYTES];

	return parse_sig(sig, sig_len, ret_keyid, raw);
}

int sign_verify(const char *sig, size_t sig_len, const void *manifest, size_t len,
		const unsigned char pk[32])
{
	unsigned char raw[crypto_sign_BYTES];
	char keyid[SIGN_KEYID_SIZE], pkid[SIGN_KEYID_SIZE];
	int r;

	r = sodium_ready();
	if (r < 0)
		return r;
	if (parse_sig(sig, sig_len, keyid, raw) < 0)
		return hp_err(-EKEYREJECTED, "malformed signature (expected '%s<keyid> <128 hex>')",
			      SIG_MAGIC);
	keyid_of(pk, pkid);
	if (strcmp(keyid, pkid) != 0)
		return hp_err(-EKEYREJECTED, "signature is by key %s, not %s", keyid, pkid);
	if (crypto_sign_verify_detached(raw, manifest, len, pk) != 0)
		return hp_err(-EKEYREJECTED, "bad signature by key %s", keyid);
	return 0;
}

int store_key_generate(const char *dir)
{
	return sign_generate(dir);
}

int store_sign_manifest(const char *keyfile, const void *manifest, size_t len,
			struct hp_buf *ret_sig)
{
	return sign_manifest(keyfile, manifest, len, ret_sig);
}

void store_sha256_hex(const void *data, size_t len, char ret_hex[HP_SHA256_HEX_SIZE])
{
	sign_sha256_hex(data, len, ret_hex);
}
