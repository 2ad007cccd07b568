/*
 * test_config.c - the configuration file: defaults, values, and every error
 * reported with its file and line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "config.h"

static char dir[] = "/tmp/passerelle-test-config-XXXXXX";

static char *
write_conf(const char *name, const char *text)
{
	char *path = malloc(strlen(dir) + strlen(name) + 2);
	FILE *f;

	sprintf(path, "%s/%s", dir, name);
	f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
	return path;
}

/* Loads text; returns 0 or <0 and the errors printed into errbuf. */
static int
load(const char *text, struct config **cfg, char *errbuf, size_t len)
{
	char *path = write_conf("test.conf", text);
	FILE *errs = fmemopen(errbuf, len, "w");
	int r;

	memset(errbuf, 0, len);
	r = config_load(path, errs, cfg);
	fclose(errs);
	free(path);
	return r;
}

static void
test_defaults(void)
{
	struct config *cfg = NULL;
	char errs[2048], expect[512];
	int r;

	r = load("[node]\nspace_id = troquet\n[pass]\nkid = troquet-1\n", &cfg,
	    errs, sizeof(errs));
	CHECK(r == 0, "minimal configuration loads (%s)", errs);
	if (r != 0)
		return;
	CHECK_STR(cfg->space_id, "troquet", "space_id");
	CHECK_STR(cfg->fed_listen, "127.0.0.1:7443", "default federation listen");
	CHECK_STR(cfg->database, "", "database defaults to embedded");
	snprintf(expect, sizeof(expect), "%s/node.crt", dir);
	CHECK_STR(cfg->fed_cert, expect, "paths resolve against the file's folder");
	CHECK(cfg->pass_lifetime == 30 * 86400, "pass lifetime 30d = %lld s",
	    (long long)cfg->pass_lifetime);
	CHECK(cfg->half_day_max == 5 * 3600, "half day is 5h");
	CHECK(cfg->peer_timeout_ms == 3000, "peer timeout 3 s = %lld ms",
	    (long long)cfg->peer_timeout_ms);
	CHECK(cfg->max_body == 65536 && cfg->max_json_depth == 16, "limits");
	CHECK_STR(cfg->local_trusted_proxy, "", "no trusted proxy by default");
	config_free(cfg);
}

static void
test_values(void)
{
	struct config *cfg = NULL;
	char errs[2048];
	int r;

	r = load("# a comment\n[node]\nspace_id = cordee\ndata_dir = /var/lib/p\n"
	    "database = postgresql:///cordee\n[pass]\nkid = cordee-2\nlifetime = 90d\n"
	    "[visit]\nhalf_day_max = 4h\npeer_timeout = 1500ms\n"
	    "[federation]\ncert = /etc/p/node.crt\n[limits]\nworkers = 3\n", &cfg,
	    errs, sizeof(errs));
	CHECK(r == 0, "full configuration loads (%s)", errs);
	if (r != 0)
		return;
	CHECK_STR(cfg->data_dir, "/var/lib/p", "absolute path kept");
	CHECK_STR(cfg->fed_cert, "/etc/p/node.crt", "absolute cert path kept");
	CHECK_STR(cfg->database, "postgresql:///cordee", "database URL");
	CHECK(cfg->pass_lifetime == 90 * 86400, "lifetime 90d");
	CHECK(cfg->half_day_max == 4 * 3600, "half day 4h");
	CHECK(cfg->peer_timeout_ms == 1500, "peer timeout 1500ms");
	CHECK(cfg->workers == 3, "workers 3");
	config_free(cfg);
}

static void
test_errors(void)
{
	struct config *cfg = NULL;
	char errs[4096], want[256];
	int r;

	r = load("[node]\n"			/* 1 */
	    "space_id = Troquet!\n"		/* 2: checked after parsing */
	    "colour = blue\n"			/* 3 */
	    "[limits]\n"			/* 4 */
	    "workers = many\n"			/* 5 */
	    "threads = 1000\n"			/* 6 */
	    "[nowhere]\n"			/* 7 */
	    "x = 1\n"				/* 8 */
	    "[visit]\n"				/* 9 */
	    "peer_timeout = soon\n"		/* 10 */
	    "[node]\n"				/* 11 */
	    "space_id = again\n",		/* 12 */
	    &cfg, errs, sizeof(errs));
	CHECK(r < 0 && cfg == NULL, "bad configuration refused");
	snprintf(want, sizeof(want), "%s/test.conf:3: unknown option 'colour' in [node]", dir);
	CHECK(strstr(errs, want) != NULL, "unknown option with its line");
	CHECK(strstr(errs, "test.conf:5: [limits] workers = many: expected a whole number") != NULL,
	    "bad number with its line");
	CHECK(strstr(errs, "test.conf:6: [limits] threads = 1000: value out of range") != NULL,
	    "out of range with its line");
	CHECK(strstr(errs, "test.conf:8: unknown section [nowhere]") != NULL,
	    "unknown section with its line");
	CHECK(strstr(errs, "test.conf:10: [visit] peer_timeout = soon") != NULL,
	    "bad duration with its line");
	CHECK(strstr(errs, "test.conf:12: [node] space_id is set twice") != NULL,
	    "duplicate with its line");
	CHECK(strstr(errs, "[pass] kid is required") != NULL, "missing required option");
	if (check_failed)
		printf("# errors were:\n%s", errs);

	r = load("[node]\nspace_id = Troquet!\n[pass]\nkid = k\n", &cfg, errs, sizeof(errs));
	CHECK(r < 0 && strstr(errs, "space_id 'Troquet!': use 1 to 63 of a-z, 0-9 and -") != NULL,
	    "bad space id refused (%s)", errs);

	r = load("[node\nspace_id = x\n", &cfg, errs, sizeof(errs));
	CHECK(r < 0 && strstr(errs, "test.conf:1: syntax error") != NULL,
	    "syntax error with its line (%s)", errs);

	r = load("[node]\nspace_id = ok-space\nlog_level = loud\n[pass]\nkid = k\n", &cfg,
	    errs, sizeof(errs));
	CHECK(r < 0 && strstr(errs, "log_level 'loud'") != NULL, "bad log level refused");

	r = load("[node]\nspace_id = s\n[pass]\nkid = k\n[local]\ntrusted_proxy = ::1\n",
	    &cfg, errs, sizeof(errs));
	CHECK(r == 0 && strcmp(cfg->local_trusted_proxy, "::1") == 0,
	    "an IPv6 trusted proxy loads (%s)", errs);
	config_free(cfg);
	cfg = NULL;
	r = load("[node]\nspace_id = s\n[pass]\nkid = k\n[local]\n"
	    "trusted_proxy = 127.0.0.1:443\n", &cfg, errs, sizeof(errs));
	CHECK(r < 0 && strstr(errs, "trusted_proxy '127.0.0.1:443': use one IP address") != NULL,
	    "a trusted proxy with a port is refused (%s)", errs);
	r = load("[node]\nspace_id = s\n[pass]\nkid = k\n[local]\n"
	    "trusted_proxy = proxy.lan\n", &cfg, errs, sizeof(errs));
	CHECK(r < 0 && strstr(errs, "trusted_proxy 'proxy.lan'") != NULL,
	    "a trusted proxy by name is refused (%s)", errs);

	/* What serve would refuse to listen on (review L2: config check said OK). */
	r = load("[node]\nspace_id = s\n[pass]\nkid = k\n[federation]\n"
	    "listen = nonsense\n[local]\nlisten = 127.0.0.1:70000\n", &cfg, errs,
	    sizeof(errs));
	CHECK(r < 0 && strstr(errs, "[federation] listen 'nonsense': use HOST:PORT") != NULL &&
	    strstr(errs, "[local] listen '127.0.0.1:70000'") != NULL,
	    "listen addresses are checked at load (%s)", errs);
	r = load("[node]\nspace_id = s\n[pass]\nkid = k\n[federation]\n"
	    "listen = [::1]:7443\n[local]\nlisten = localhost:0\n", &cfg, errs, sizeof(errs));
	CHECK(r == 0, "[::1]:7443 and localhost:0 load (%s)", errs);
	config_free(cfg);
	cfg = NULL;

	/* Found by tests/fuzz: seconds times 1000 overflowed before the range check. */
	r = load("[node]\nspace_id = s\n[pass]\nkid = k\n[visit]\n"
	    "peer_timeout = 150022222222222222\n", &cfg, errs, sizeof(errs));
	CHECK(r < 0 && strstr(errs, "peer_timeout = 150022222222222222: value out of "
	    "range") != NULL, "a huge timeout in seconds is out of range (%s)", errs);
}

static void
test_missing_file(void)
{
	struct config *cfg = NULL;
	char errs[1024];
	FILE *f = fmemopen(errs, sizeof(errs), "w");
	int r;

	memset(errs, 0, sizeof(errs));
	r = config_load("/nonexistent/passerelle.conf", f, &cfg);
	fclose(f);
	CHECK(r < 0 && strstr(errs, "/nonexistent/passerelle.conf: cannot read") != NULL,
	    "missing file reported (%s)", errs);
}

static void
test_default_path(void)
{
	unsetenv("PASSERELLE_CONFIG");
	CHECK_STR(config_default_path(NULL), "passerelle.conf", "default path");
	setenv("PASSERELLE_CONFIG", "/etc/p.conf", 1);
	CHECK_STR(config_default_path(NULL), "/etc/p.conf", "from the environment");
	CHECK_STR(config_default_path("x.conf"), "x.conf", "explicit wins");
}

int
main(void)
{
	char path[128];

	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_defaults();
	test_values();
	test_errors();
	test_missing_file();
	test_default_path();
	snprintf(path, sizeof(path), "%s/test.conf", dir);
	unlink(path);
	rmdir(dir);
	return check_done();
}
