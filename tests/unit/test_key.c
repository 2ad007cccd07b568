/*
 * test_key.c - node/key.c: a key pair is made only when neither file would
 * replace another.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "check.h"
#include "key.h"
#include "util.h"

static char tmpdir[] = "/tmp/passerelle-test-key-XXXXXX";

static char *
tmp_path(const char *name)
{
	return util_aprintf("%s/%s", tmpdir, name);
}

/* The whole file, or NULL. */
static char *
slurp(const char *path)
{
	char *text = NULL;
	size_t len;

	if (util_read_file(path, 16384, &text, &len) < 0)
		return NULL;
	return text;
}

static void
test_pair(void)
{
	uint8_t pk[KEY_PUBLIC_LEN], pk2[KEY_PUBLIC_LEN];
	char *priv = tmp_path("a.key"), *pub = tmp_path("a.pub");
	int r;

	r = key_generate_pair(priv, pub, pk);
	CHECK(r == 0, "make a pair (r=%d)", r);
	CHECK(key_load_public(pub, pk2) == 0 && memcmp(pk, pk2, sizeof(pk)) == 0,
	    "the public file holds the pair's public key");
	free(priv);
	free(pub);
}

static void
test_existing_public_file(void)
{
	uint8_t pk[KEY_PUBLIC_LEN];
	char *priv = tmp_path("b.key"), *pub = tmp_path("b.pub"), *text;
	int r;

	CHECK(util_write_file(pub, "keep me\n", 8, 0644) == 0, "write a file");
	r = key_generate_pair(priv, pub, pk);
	CHECK(r == -EEXIST, "an existing public file is refused (r=%d)", r);
	text = slurp(pub);
	CHECK(text != NULL && strcmp(text, "keep me\n") == 0,
	    "the existing file is left as it was, not unlinked");
	CHECK(access(priv, F_OK) < 0, "no private key was made");
	free(text);
	free(priv);
	free(pub);
}

static void
test_public_is_private(void)
{
	uint8_t pk[KEY_PUBLIC_LEN];
	char *priv = tmp_path("c.key"), *dotted = NULL, *sub, *up;
	int r;

	r = key_generate_pair(priv, priv, pk);
	CHECK(r == -EINVAL, "--public equal to the private key file (r=%d)", r);
	CHECK(access(priv, F_OK) < 0, "nothing was made");

	/* The same file by another name, before it exists. */
	dotted = util_aprintf("%s/./c.key", tmpdir);
	r = key_generate_pair(priv, dotted, pk);
	CHECK(r == -EINVAL, "the same file spelt %s (r=%d)", dotted, r);
	CHECK(access(priv, F_OK) < 0, "nothing was made");

	sub = tmp_path("sub");
	CHECK(mkdir(sub, 0700) == 0, "make a folder");
	up = util_aprintf("%s/sub/../c.key", tmpdir);
	r = key_generate_pair(priv, up, pk);
	CHECK(r == -EINVAL, "the same file spelt %s (r=%d)", up, r);
	CHECK(access(priv, F_OK) < 0, "nothing was made");

	/* A file of that name in another folder is another file. */
	free(up);
	up = util_aprintf("%s/sub/c.key", tmpdir);
	r = key_generate_pair(priv, up, pk);
	CHECK(r == 0, "the same name in another folder is allowed (r=%d)", r);
	free(up);
	free(sub);
	free(dotted);
	free(priv);
}

static void
test_failed_public_write_keeps_nothing(void)
{
	uint8_t pk[KEY_PUBLIC_LEN];
	char *priv = tmp_path("d.key"), *pub = tmp_path("nosuchdir/d.pub");
	int r;

	r = key_generate_pair(priv, pub, pk);
	CHECK(r < 0, "a public file that cannot be written fails (r=%d)", r);
	CHECK(access(priv, F_OK) < 0, "the private key made for it is removed");
	free(priv);
	free(pub);
}

int
main(void)
{
	char *cmd;

	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_pair();
	test_existing_public_file();
	test_public_is_private();
	test_failed_public_write_keeps_nothing();
	cmd = util_aprintf("rm -rf '%s'", tmpdir);
	if (cmd != NULL && system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", tmpdir);
	free(cmd);
	return check_done();
}
