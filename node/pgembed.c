/*
 * pgembed.c - the embedded default: a private PostgreSQL cluster per node.
 *
 * A node configured without a database URL keeps its own cluster under
 * pg_dir:
 *
 *	pg_dir/data			the cluster (PGDATA), made by initdb
 *	pg_dir/run			the unix socket; no TCP listener at all
 *	pg_dir/log/postgresql.log	the server's log
 *	pg_dir/.lock			flock()ed while creating, starting or
 *					stopping
 *	pg_dir/serve.lock		locked by `passerelle serve` for its
 *					whole life (pgembed_claim)
 *
 * This file only runs the stock PostgreSQL programs (initdb, pg_ctl) and
 * creates the node's database in the cluster; it neither tunes the server
 * nor knows the schema (db.c applies the migrations).  Programs are started
 * with fork and execve, never through a shell of ours, with a clean
 * environment, and their output is captured so that a failure is explained
 * in the error text.
 *
 * PostgreSQL refuses to run as root.  When the node runs as root the
 * cluster's directories belong to an unprivileged user ([embedded] user,
 * "postgres" by default) and the programs run as that user; pg_dir itself
 * stays root's (mode 0711), so that user cannot plant links where root
 * later writes.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <locale.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "log.h"
#include "pgembed.h"
#include "util.h"

#define PGEMBED_PORT		"5432"
#define PGEMBED_SUPERUSER	"passerelle"
#define PGEMBED_DEFAULT_USER	"postgres"
#define PGEMBED_PG_ROOT		"/usr/lib/postgresql"
#define PGEMBED_START_TIMEOUT	"60"
#define PGEMBED_MAX_GROUPS	256
#define PGEMBED_OUTPUT_MAX	4096	/* the tail of a program's output kept */

struct pgembed {
	char dir[PATH_MAX];
	char data[PATH_MAX];
	char run[PATH_MAX];
	char log_dir[PATH_MAX];
	char log_file[PATH_MAX];
	char lock_file[PATH_MAX];
	char claim_file[PATH_MAX];
	char pid_file[PATH_MAX];	/* data/postmaster.pid */
	char socket_lock[PATH_MAX];	/* run/.s.PGSQL.5432.lock */
	char pg_version[PATH_MAX];	/* data/PG_VERSION: the cluster exists */
	char pg_ctl[PATH_MAX];
	char initdb[PATH_MAX];
	int lock_fd;

	/* Who runs the server programs. */
	bool switch_user;		/* we are root: become uid/gid first */
	uid_t uid;
	gid_t gid;
	gid_t groups[PGEMBED_MAX_GROUPS];
	int ngroups;
	char user[128];

	/* The programs' environment, built before fork (see pgembed_spawn). */
	char env_home[PATH_MAX + 8];
	char env_user[160];
	char env_logname[160];
	char *envp[8];
};

struct pgembed_output {
	char buf[PGEMBED_OUTPUT_MAX];
	size_t len;
};

enum pgembed_job {
	PGEMBED_JOB_EXEC,		/* execve the given program */
	PGEMBED_JOB_CHECK_REACH,	/* can the server's user use pg_dir? */
};

/* ---- Helpers ---------------------------------------------------------- */

static bool
pgembed_executable(const char *dir, const char *name)
{
	char path[PATH_MAX];
	int n = snprintf(path, sizeof(path), "%s/%s", dir, name);

	return n > 0 && (size_t)n < sizeof(path) && access(path, X_OK) == 0;
}

static bool
pgembed_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

/*
 * Joins the last nlines non-empty lines of text into out, separated by
 * " | ", so that a program's complaint fits in a one-line error.
 */
static void
pgembed_tail_lines(const char *text, size_t len, int nlines, char *out,
    size_t outlen)
{
	const char *start = text + len;
	int found = 0;
	size_t n = 0;

	if (outlen == 0)
		return;
	out[0] = '\0';
	/* Walk back over nlines lines, skipping empty ones. */
	while (start > text && found < nlines) {
		const char *end = start;

		while (end > text && (end[-1] == '\n' || end[-1] == '\r'))
			end--;
		start = end;
		while (start > text && start[-1] != '\n')
			start--;
		if (end > start)
			found++;
	}
	for (const char *p = start; p < text + len && n + 1 < outlen; p++) {
		if (*p == '\n' || *p == '\r') {
			while (p + 1 < text + len && (p[1] == '\n' || p[1] == '\r'))
				p++;
			if (p + 1 < text + len && n + 4 < outlen) {
				memcpy(out + n, " | ", 3);
				n += 3;
			}
			continue;
		}
		out[n++] = *p == '\t' ? ' ' : *p;
	}
	out[n] = '\0';
}

/* The last lines of the server's log, for a start that failed. */
static void
pgembed_log_tail(const struct pgembed *pe, char *out, size_t outlen)
{
	char buf[8192];
	struct stat st;
	ssize_t n;
	int fd;

	out[0] = '\0';
	/* O_NOFOLLOW: as root, never read a file the server's user links to. */
	fd = open(pe->log_file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    st.st_size > (off_t)sizeof(buf))
		(void)lseek(fd, st.st_size - (off_t)sizeof(buf), SEEK_SET);
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n > 0)
		pgembed_tail_lines(buf, (size_t)n, 2, out, outlen);
}

/* ---- Finding PostgreSQL ----------------------------------------------- */

/* "15" -> 15000, "9.6" -> 9006; -1 when the name is not a version. */
static long
pgembed_parse_version(const char *name)
{
	long major, minor = 0;
	char *end;

	if (name[0] < '0' || name[0] > '9')
		return -1;
	major = strtol(name, &end, 10);
	if (*end == '.') {
		minor = strtol(end + 1, &end, 10);
	}
	if (*end != '\0' || major > 100000 || minor > 999)
		return -1;
	return major * 1000 + minor;
}

static int
pgembed_set_bin(struct pgembed *pe, const char *dir)
{
	int a = snprintf(pe->pg_ctl, sizeof(pe->pg_ctl), "%s/pg_ctl", dir);
	int b = snprintf(pe->initdb, sizeof(pe->initdb), "%s/initdb", dir);

	if (a < 0 || (size_t)a >= sizeof(pe->pg_ctl) ||
	    b < 0 || (size_t)b >= sizeof(pe->initdb))
		return -ENAMETOOLONG;
	return 0;
}

/*
 * bin_dir if given; otherwise the newest server under /usr/lib/postgresql
 * (Debian's layout, several majors may be installed); otherwise PATH.
 */
static int
pgembed_find_bin(struct pgembed *pe, const char *bin_dir, char *err,
    size_t errlen)
{
	char best[PATH_MAX] = "";
	long best_version = -1;
	const char *path;
	DIR *d;

	if (bin_dir != NULL && bin_dir[0] != '\0') {
		if (!pgembed_executable(bin_dir, "pg_ctl") ||
		    !pgembed_executable(bin_dir, "initdb")) {
			snprintf(err, errlen, "no PostgreSQL server programs "
			    "(pg_ctl, initdb) in %s", bin_dir);
			return -ENOENT;
		}
		return pgembed_set_bin(pe, bin_dir);
	}

	d = opendir(PGEMBED_PG_ROOT);
	if (d != NULL) {
		struct dirent *e;

		while ((e = readdir(d)) != NULL) {
			long v = pgembed_parse_version(e->d_name);
			char dir[PATH_MAX];

			if (v <= best_version)
				continue;
			snprintf(dir, sizeof(dir), "%s/%s/bin", PGEMBED_PG_ROOT,
			    e->d_name);
			if (!pgembed_executable(dir, "pg_ctl") ||
			    !pgembed_executable(dir, "initdb"))
				continue;
			best_version = v;
			util_strlcpy(best, dir, sizeof(best));
		}
		closedir(d);
	}
	if (best[0] != '\0')
		return pgembed_set_bin(pe, best);

	path = getenv("PATH");
	while (path != NULL && *path != '\0') {
		const char *colon = strchr(path, ':');
		size_t n = colon != NULL ? (size_t)(colon - path) : strlen(path);
		char dir[PATH_MAX];

		if (n > 0 && n < sizeof(dir) && path[0] == '/') {
			memcpy(dir, path, n);
			dir[n] = '\0';
			if (pgembed_executable(dir, "pg_ctl") &&
			    pgembed_executable(dir, "initdb"))
				return pgembed_set_bin(pe, dir);
		}
		path = colon != NULL ? colon + 1 : NULL;
	}
	snprintf(err, errlen, "no PostgreSQL server found (looked in "
	    PGEMBED_PG_ROOT "/*/bin and PATH); install the postgresql "
	    "package or set [embedded] bin_dir");
	return -ENOENT;
}

/* ---- Setting up ------------------------------------------------------- */

/*
 * The server's user from /etc/passwd, and its groups from /etc/group, when
 * it is there; the system's other sources (NSS modules: systemd's, LDAP)
 * only for a user that is not.  A module once loaded stays mapped in the
 * node for good: systemd's, which a group lookup loads, was 320 kB of an
 * idle node's 14 MB.  Returns the user (in pw, with buf), or NULL.
 */
static struct passwd *
pgembed_find_user(const char *name, struct passwd *pw, char *buf, size_t len,
    gid_t *groups, int *ngroups, int *ret_errno)
{
	struct passwd *found = NULL;
	struct group gr, *g;
	FILE *f;
	int n = 0, e;

	*ret_errno = 0;
	if ((f = fopen("/etc/passwd", "re")) != NULL) {
		while (fgetpwent_r(f, pw, buf, len, &found) == 0 &&
		    strcmp(found->pw_name, name) != 0)
			found = NULL;
		fclose(f);
	}
	if (found == NULL) {
		*ret_errno = getpwnam_r(name, pw, buf, len, &found);
		if (found != NULL && getgrouplist(name, pw->pw_gid, groups,
		    ngroups) < 0)
			*ngroups = -1;
		return found;
	}
	groups[n++] = pw->pw_gid;
	e = EIO;
	if ((f = fopen("/etc/group", "re")) != NULL) {
		char gbuf[16384];

		while (n >= 0 && (e = fgetgrent_r(f, &gr, gbuf, sizeof(gbuf), &g)) == 0)
			for (char **m = g->gr_mem; m != NULL && *m != NULL; m++)
				if (strcmp(*m, name) == 0 && g->gr_gid != pw->pw_gid) {
					if (n == *ngroups)
						n = -1;
					else
						groups[n++] = g->gr_gid;
					break;
				}
		fclose(f);
	}
	/* A file that could not be read to its end (ENOENT ends it): the system's. */
	if (n >= 0 && e != ENOENT) {
		if (getgrouplist(name, pw->pw_gid, groups, ngroups) < 0)
			*ngroups = -1;
		return found;
	}
	*ngroups = n;
	return found;
}

static int
pgembed_set_user(struct pgembed *pe, const char *run_as, char *err,
    size_t errlen)
{
	struct passwd pw, *found = NULL;
	char buf[16384];
	const char *home;
	int r, n;

	pe->switch_user = geteuid() == 0;
	if (pe->switch_user) {
		if (run_as == NULL || run_as[0] == '\0')
			run_as = PGEMBED_DEFAULT_USER;
		n = PGEMBED_MAX_GROUPS;
		found = pgembed_find_user(run_as, &pw, buf, sizeof(buf), pe->groups,
		    &n, &r);
		if (found == NULL) {
			snprintf(err, errlen, "PostgreSQL refuses to run as "
			    "root; create an unprivileged user (e.g. `adduser "
			    "--system %s`) or set [embedded] user (user %s: %s)",
			    run_as, run_as, r != 0 ? strerror(r) : "no such user");
			return -ENOENT;
		}
		if (pw.pw_uid == 0) {
			snprintf(err, errlen, "PostgreSQL refuses to run as "
			    "root, and [embedded] user %s is root; name an "
			    "unprivileged user", run_as);
			return -EPERM;
		}
		pe->uid = pw.pw_uid;
		pe->gid = pw.pw_gid;
		/* Computed here: initgroups() is not safe between fork and exec. */
		if (n < 0) {
			snprintf(err, errlen, "user %s is in too many groups",
			    run_as);
			return -E2BIG;
		}
		pe->ngroups = n;
	} else {
		r = getpwuid_r(geteuid(), &pw, buf, sizeof(buf), &found);
		pe->uid = geteuid();
		pe->gid = getegid();
	}
	if (found != NULL) {
		util_strlcpy(pe->user, pw.pw_name, sizeof(pe->user));
		home = pw.pw_dir;
	} else {
		snprintf(pe->user, sizeof(pe->user), "%lu",
		    (unsigned long)pe->uid);
		home = "/";
	}

	/*
	 * A clean environment: the node's own PG* variables (PGDATA, PGPORT,
	 * PGHOST...) must not steer the server, and messages in the C locale
	 * are the ones the error text shows.
	 */
	snprintf(pe->env_home, sizeof(pe->env_home), "HOME=%s", home);
	snprintf(pe->env_user, sizeof(pe->env_user), "USER=%s", pe->user);
	snprintf(pe->env_logname, sizeof(pe->env_logname), "LOGNAME=%s",
	    pe->user);
	pe->envp[0] = (char *)"PATH=/usr/local/bin:/usr/bin:/bin";
	pe->envp[1] = (char *)"LC_ALL=C";
	pe->envp[2] = pe->env_home;
	pe->envp[3] = pe->env_user;
	pe->envp[4] = pe->env_logname;
	pe->envp[5] = NULL;
	return 0;
}

static int
pgembed_join(char *out, size_t outlen, const char *dir, const char *name)
{
	int n = snprintf(out, outlen, "%s/%s", dir, name);

	return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

static int
pgembed_set_paths(struct pgembed *pe, const char *pg_dir, char *err,
    size_t errlen)
{
	char cwd[PATH_MAX];
	int n;

	if (pg_dir == NULL || pg_dir[0] == '\0') {
		snprintf(err, errlen, "no directory for the embedded PostgreSQL");
		return -EINVAL;
	}
	/*
	 * pg_ctl pastes the data directory and the server options into a
	 * /bin/sh command line, and libpq's host= ends at a space unless
	 * quoted; keep to names that survive both unchanged.
	 */
	if (strpbrk(pg_dir, "\"'`$\\\n\t ,") != NULL) {
		snprintf(err, errlen, "the embedded PostgreSQL directory %s "
		    "contains a character it cannot use (space, comma, quote, "
		    "$ or backslash)", pg_dir);
		return -EINVAL;
	}
	/* Absolute: the programs run in another directory, libpq needs it. */
	if (pg_dir[0] == '/') {
		n = snprintf(pe->dir, sizeof(pe->dir), "%s", pg_dir);
	} else {
		if (getcwd(cwd, sizeof(cwd)) == NULL) {
			snprintf(err, errlen, "getcwd: %s", strerror(errno));
			return -errno;
		}
		n = snprintf(pe->dir, sizeof(pe->dir), "%s/%s", cwd, pg_dir);
	}
	if (n < 0 || (size_t)n >= sizeof(pe->dir))
		goto too_long;
	while (n > 1 && pe->dir[n - 1] == '/')
		pe->dir[--n] = '\0';
	if (pgembed_join(pe->data, sizeof(pe->data), pe->dir, "data") < 0 ||
	    pgembed_join(pe->run, sizeof(pe->run), pe->dir, "run") < 0 ||
	    pgembed_join(pe->log_dir, sizeof(pe->log_dir), pe->dir, "log") < 0 ||
	    pgembed_join(pe->log_file, sizeof(pe->log_file), pe->dir,
	    "log/postgresql.log") < 0 ||
	    pgembed_join(pe->lock_file, sizeof(pe->lock_file), pe->dir,
	    ".lock") < 0 ||
	    pgembed_join(pe->claim_file, sizeof(pe->claim_file), pe->dir,
	    "serve.lock") < 0 ||
	    pgembed_join(pe->pid_file, sizeof(pe->pid_file), pe->dir,
	    "data/postmaster.pid") < 0 ||
	    pgembed_join(pe->socket_lock, sizeof(pe->socket_lock), pe->dir,
	    "run/.s.PGSQL." PGEMBED_PORT ".lock") < 0 ||
	    pgembed_join(pe->pg_version, sizeof(pe->pg_version), pe->dir,
	    "data/PG_VERSION") < 0)
		goto too_long;
	/* The socket's path must fit in sockaddr_un, or the server fails. */
	if (strlen(pe->run) + sizeof("/.s.PGSQL." PGEMBED_PORT) >
	    sizeof(((struct sockaddr_un *)0)->sun_path)) {
		snprintf(err, errlen, "the embedded PostgreSQL directory %s is "
		    "too long for a unix socket path; use a shorter data_dir",
		    pe->dir);
		return -ENAMETOOLONG;
	}
	return 0;
too_long:
	snprintf(err, errlen, "the embedded PostgreSQL directory is too long");
	return -ENAMETOOLONG;
}

/*
 * Creates (or repairs) a directory of the layout: mode, and owner when we
 * are root.  O_NOFOLLOW: a link in its place is refused, not followed.
 */
static int
pgembed_make_dir(const char *path, mode_t mode, uid_t uid, gid_t gid,
    bool set_owner, bool set_mode, char *err, size_t errlen)
{
	struct stat st;
	int fd, r = 0;

	if (mkdir(path, mode) < 0 && errno != EEXIST) {
		r = -errno;
		snprintf(err, errlen, "cannot create %s: %s", path, strerror(-r));
		return r;
	}
	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(-r));
		return r;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot stat %s: %s", path, strerror(-r));
		goto out;
	}
	if (set_owner && (st.st_uid != uid || st.st_gid != gid) &&
	    fchown(fd, uid, gid) < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot chown %s: %s", path, strerror(-r));
		goto out;
	}
	if (set_mode && (st.st_mode & 07777) != mode && fchmod(fd, mode) < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot chmod %s: %s", path, strerror(-r));
		goto out;
	}
out:
	close(fd);
	return r;
}

static int
pgembed_make_dirs(struct pgembed *pe, char *err, size_t errlen)
{
	char parent[PATH_MAX];
	char *slash;
	bool root = pe->switch_user;
	int r;

	util_strlcpy(parent, pe->dir, sizeof(parent));
	slash = strrchr(parent, '/');
	if (slash != NULL && slash != parent) {
		*slash = '\0';
		r = util_mkdir_p(parent, 0755);
		if (r < 0) {
			snprintf(err, errlen, "cannot create %s: %s", parent,
			    strerror(-r));
			return r;
		}
	}
	/*
	 * As root, pg_dir stays root's and only traversable by others, so the
	 * server's user cannot replace run/ or log/ by links; as anyone else,
	 * it is simply private.
	 */
	r = pgembed_make_dir(pe->dir, root ? 0711 : 0700, 0, 0, root, true,
	    err, errlen);
	if (r < 0)
		return r;
	/*
	 * The data directory is handed over only while it holds no cluster:
	 * a cluster belonging to someone else is the server's to refuse.
	 * Its mode is initdb's business (0700, or 0750 with group access).
	 */
	r = pgembed_make_dir(pe->data, 0700, pe->uid, pe->gid,
	    root && !pgembed_exists(pe->pg_version), false, err, errlen);
	if (r < 0)
		return r;
	/*
	 * The socket directory's mode 0700 and owner are what make "trust"
	 * authentication safe: only the server's user (and root) can reach
	 * the socket at all.  Repaired on every start.
	 */
	r = pgembed_make_dir(pe->run, 0700, pe->uid, pe->gid, root, true,
	    err, errlen);
	if (r < 0)
		return r;
	return pgembed_make_dir(pe->log_dir, 0700, pe->uid, pe->gid, root, true,
	    err, errlen);
}

/* Serialises the nodes sharing pg_dir while they create or start it. */
static int
pgembed_lock(struct pgembed *pe, char *err, size_t errlen)
{
	int r;

	pe->lock_fd = open(pe->lock_file,
	    O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (pe->lock_fd < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot open %s: %s", pe->lock_file,
		    strerror(-r));
		return r;
	}
	while (flock(pe->lock_fd, LOCK_EX) < 0) {
		if (errno == EINTR)
			continue;
		r = -errno;
		snprintf(err, errlen, "cannot lock %s: %s", pe->lock_file,
		    strerror(-r));
		close(pe->lock_fd);
		pe->lock_fd = -1;
		return r;
	}
	return 0;
}

static void
pgembed_free(struct pgembed *pe)
{
	if (pe == NULL)
		return;
	if (pe->lock_fd >= 0)
		close(pe->lock_fd);	/* releases the flock */
	free(pe);
}

static int
pgembed_new(const char *pg_dir, const char *bin_dir, const char *run_as,
    struct pgembed **ret, char *err, size_t errlen)
{
	struct pgembed *pe;
	int r;

	pe = calloc(1, sizeof(*pe));
	if (pe == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	pe->lock_fd = -1;
	r = pgembed_set_paths(pe, pg_dir, err, errlen);
	if (r < 0)
		goto fail;
	r = pgembed_set_user(pe, run_as, err, errlen);
	if (r < 0)
		goto fail;
	r = pgembed_find_bin(pe, bin_dir, err, errlen);
	if (r < 0)
		goto fail;
	*ret = pe;
	return 0;
fail:
	pgembed_free(pe);
	return r;
}

/* ---- Running the programs --------------------------------------------- */

static void
pgembed_child_say(const char *a, const char *b)
{
	ssize_t unused;

	unused = write(STDERR_FILENO, a, strlen(a));
	if (b != NULL)
		unused = write(STDERR_FILENO, b, strlen(b));
	unused = write(STDERR_FILENO, "\n", 1);
	(void)unused;
}

/*
 * The server's user must be able to reach pg_dir: each parent must be
 * traversable (a data_dir under /root, for example, is not).  Reports the
 * first directory that is not.
 */
static void
pgembed_child_check_reach(const struct pgembed *pe)
{
	char prefix[PATH_MAX];
	size_t len = strlen(pe->dir);

	for (size_t i = 1; i <= len; i++) {
		if (i < len && pe->dir[i] != '/')
			continue;
		memcpy(prefix, pe->dir, i);
		prefix[i] = '\0';
		if (access(prefix, X_OK) < 0) {
			pgembed_child_say("unreachable: ", prefix);
			_exit(1);
		}
	}
	if (access(pe->data, R_OK | W_OK | X_OK) < 0) {
		pgembed_child_say("unreachable: ", pe->data);
		_exit(1);
	}
	if (access(pe->run, R_OK | W_OK | X_OK) < 0) {
		pgembed_child_say("unreachable: ", pe->run);
		_exit(1);
	}
	if (access(pe->log_dir, R_OK | W_OK | X_OK) < 0) {
		pgembed_child_say("unreachable: ", pe->log_dir);
		_exit(1);
	}
	_exit(0);
}

/*
 * Between fork and execve only async-signal-safe calls: the node may have
 * threads, and one of them may hold a lock of malloc or of stdio.
 */
static void
pgembed_child(const struct pgembed *pe, int out_fd, enum pgembed_job job,
    const char *const argv[])
{
	struct sigaction sa;
	sigset_t none;
	int null_fd;

	/* Blocked and ignored signals survive execve; the server wants neither. */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigaction(SIGPIPE, &sa, NULL);
	sigaction(SIGCHLD, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	null_fd = open("/dev/null", O_RDONLY);
	if (null_fd < 0 || dup2(null_fd, STDIN_FILENO) < 0 ||
	    dup2(out_fd, STDOUT_FILENO) < 0 || dup2(out_fd, STDERR_FILENO) < 0)
		_exit(126);
	/* The server must not inherit the node's sockets, nor the flock. */
	close_range(3, ~0U, 0);

	if (pe->switch_user) {
		if (setgroups((size_t)pe->ngroups, pe->groups) < 0 ||
		    setgid(pe->gid) < 0 || setuid(pe->uid) < 0) {
			pgembed_child_say("cannot switch to user ", pe->user);
			_exit(126);
		}
		/* Root must be gone for good, or the server would refuse. */
		if (setuid(0) == 0)
			_exit(126);
	}
	umask(077);
	if (job == PGEMBED_JOB_CHECK_REACH)
		pgembed_child_check_reach(pe);
	if (chdir(pe->dir) < 0) {
		pgembed_child_say("cannot change directory to ", pe->dir);
		_exit(126);
	}
	execve(argv[0], (char *const *)argv, pe->envp);
	pgembed_child_say("cannot execute ", argv[0]);
	_exit(127);
}

static void
pgembed_output_add(struct pgembed_output *out, const char *data, size_t n)
{
	size_t cap = sizeof(out->buf) - 1;

	/* Keep the tail: the reason for a failure comes last. */
	if (n > cap) {
		data += n - cap;
		n = cap;
	}
	if (out->len + n > cap) {
		size_t drop = out->len + n - cap;

		memmove(out->buf, out->buf + drop, out->len - drop);
		out->len -= drop;
	}
	memcpy(out->buf + out->len, data, n);
	out->len += n;
	out->buf[out->len] = '\0';
}

/*
 * Runs a job as the server's user and waits for it; its stdout and stderr
 * go to out (may be NULL).  *ret_status is the exit status, or 128 plus
 * the signal that killed it.
 */
static int
pgembed_spawn(const struct pgembed *pe, enum pgembed_job job,
    const char *const argv[], struct pgembed_output *out, int *ret_status)
{
	struct pgembed_output discard;
	char chunk[1024];
	int fds[2], status, r = 0;
	pid_t pid;
	ssize_t n;

	if (out == NULL)
		out = &discard;
	out->len = 0;
	out->buf[0] = '\0';
	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		r = -errno;
		close(fds[0]);
		close(fds[1]);
		return r;
	}
	if (pid == 0)
		pgembed_child(pe, fds[1], job, argv);
	close(fds[1]);
	/*
	 * pg_ctl start sends the server's own output to the log file (-l), so
	 * the pipe ends when pg_ctl does, not when the server does.
	 */
	for (;;) {
		n = read(fds[0], chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		pgembed_output_add(out, chunk, (size_t)n);
	}
	close(fds[0]);
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	if (WIFEXITED(status))
		*ret_status = WEXITSTATUS(status);
	else if (WIFSIGNALED(status))
		*ret_status = 128 + WTERMSIG(status);
	else
		*ret_status = 255;
	return 0;
}

/* Runs a program; 0 when it exits 0, otherwise explains it in err. */
static int
pgembed_run(const struct pgembed *pe, const char *what,
    const char *const argv[], char *err, size_t errlen)
{
	struct pgembed_output out;
	char tail[1024];
	int r, status;

	r = pgembed_spawn(pe, PGEMBED_JOB_EXEC, argv, &out, &status);
	if (r < 0) {
		snprintf(err, errlen, "%s: cannot run %s: %s", what, argv[0],
		    strerror(-r));
		return r;
	}
	if (status != 0) {
		pgembed_tail_lines(out.buf, out.len, 3, tail, sizeof(tail));
		snprintf(err, errlen, "%s failed (exit status %d): %s", what,
		    status, tail[0] != '\0' ? tail : "no output");
		return -EIO;
	}
	log_debug("%s: %s", what, out.buf);
	return 0;
}

static int
pgembed_check_reach(const struct pgembed *pe, char *err, size_t errlen)
{
	static const char *const no_argv[] = { NULL };
	struct pgembed_output out;
	const char *dir;
	int r, status;

	if (!pe->switch_user)
		return 0;
	r = pgembed_spawn(pe, PGEMBED_JOB_CHECK_REACH, no_argv, &out, &status);
	if (r < 0) {
		snprintf(err, errlen, "cannot check access to %s: %s", pe->dir,
		    strerror(-r));
		return r;
	}
	if (status == 0)
		return 0;
	dir = strstr(out.buf, "unreachable: ");
	if (dir != NULL) {
		char *nl;

		dir += strlen("unreachable: ");
		nl = strchr(dir, '\n');
		if (nl != NULL)
			*nl = '\0';
		snprintf(err, errlen, "PostgreSQL runs as user %s, who cannot "
		    "reach %s; make it accessible to %s (e.g. chmod o+x on "
		    "each parent directory) or choose a data_dir outside it",
		    pe->user, dir, pe->user);
	} else {
		snprintf(err, errlen, "cannot run programs as user %s: %s",
		    pe->user, out.len > 0 ? out.buf : "unknown error");
	}
	return -EACCES;
}

static bool
pgembed_running(const struct pgembed *pe)
{
	const char *const argv[] = { pe->pg_ctl, "-D", pe->data, "status",
		NULL };
	int status;

	/* pg_ctl status: 0 running, 3 not running, 4 no usable data dir. */
	return pgembed_spawn(pe, PGEMBED_JOB_EXEC, argv, NULL, &status) == 0 &&
	    status == 0;
}

/* ---- Stale lock files ------------------------------------------------- */

/* The PID on the first line of a server's lock file; 0 when there is none. */
static pid_t
pgembed_read_pid(const char *path)
{
	char buf[64], *end;
	ssize_t n;
	long pid;
	int fd;

	/* O_NOFOLLOW: as root, never read a file the server's user links to. */
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	errno = 0;
	pid = strtol(buf, &end, 10);
	if (errno != 0 || end == buf || (*end != '\n' && *end != '\0') ||
	    pid <= 0 || pid > INT_MAX)
		return 0;
	return (pid_t)pid;
}

/* The name of a process's program (/proc/PID/comm), or "" when gone. */
static void
pgembed_proc_name(pid_t pid, char *out, size_t outlen)
{
	char path[64];
	ssize_t n;
	int fd;

	out[0] = '\0';
	snprintf(path, sizeof(path), "/proc/%ld/comm", (long)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, out, outlen - 1);
	close(fd);
	if (n <= 0)
		n = 0;
	out[n] = '\0';
	out[strcspn(out, "\n")] = '\0';
}

/*
 * The server's lock files (data/postmaster.pid, and the socket's) name the
 * PID that wrote them.  After a crash and a reboot that PID may belong to
 * another program of the server's user (on Debian the system cluster's
 * processes run as postgres too): pg_ctl then says the server runs, and the
 * server refuses to start, for as long as that process lives.  A postmaster
 * works in its data directory from before it writes the file, so a live PID
 * whose working directory is another one is not this cluster's server, and
 * its file is stale: it is removed (under the .lock, so no start of ours
 * races with it).  A PID that is gone, or that is another user's, the
 * server ignores by itself; a process that may not be inspected is judged
 * by its name, and one named postgres is left alone.
 */
static int
pgembed_clear_stale(const struct pgembed *pe, const char *path, char *err,
    size_t errlen)
{
	struct stat data_st, cwd_st;
	char proc[64], name[64];
	pid_t pid;
	int r;

	pid = pgembed_read_pid(path);
	if (pid == 0 || kill(pid, 0) < 0 || stat(pe->data, &data_st) < 0)
		return 0;
	pgembed_proc_name(pid, name, sizeof(name));
	snprintf(proc, sizeof(proc), "/proc/%ld/cwd", (long)pid);
	if (stat(proc, &cwd_st) == 0) {
		if (cwd_st.st_dev == data_st.st_dev &&
		    cwd_st.st_ino == data_st.st_ino)
			return 0;	/* this cluster's server */
	} else if (errno == ENOENT || errno == ESRCH || name[0] == '\0' ||
	    strcmp(name, "postgres") == 0 || strcmp(name, "postmaster") == 0) {
		return 0;
	}
	log_warnx("%s names PID %ld (%s), which is not this cluster's server: "
	    "removing the stale file", path, (long)pid, name);
	if (unlink(path) < 0 && errno != ENOENT) {
		r = -errno;
		snprintf(err, errlen, "stale %s (PID %ld is %s, not this "
		    "cluster's server) cannot be removed: %s; remove it and "
		    "retry", path, (long)pid, name, strerror(-r));
		return r;
	}
	return 0;
}

/* ---- The cluster ------------------------------------------------------ */

static int
pgembed_initdb(const struct pgembed *pe, char *err, size_t errlen)
{
	const char *argv[16];
	locale_t loc;
	int n = 0;

	/*
	 * C.UTF-8 orders by code point (stable across glibc upgrades, so no
	 * index goes stale) and still knows the case of every letter; plain C
	 * where it is missing.
	 */
	loc = newlocale(LC_ALL_MASK, "C.UTF-8", (locale_t)0);
	if (loc != (locale_t)0)
		freelocale(loc);

	argv[n++] = pe->initdb;
	argv[n++] = "-D";
	argv[n++] = pe->data;
	argv[n++] = "-U";
	argv[n++] = PGEMBED_SUPERUSER;
	/*
	 * "trust" over the socket is safe only because nobody else can reach
	 * it: the server listens on no TCP address, and its socket lives in
	 * pg_dir/run, mode 0700, owned by the server's user (see
	 * pgembed_make_dirs).  TCP is rejected outright in pg_hba.conf, in
	 * case someone enables listen_addresses later.
	 */
	argv[n++] = "--auth-local=trust";
	argv[n++] = "--auth-host=reject";
	argv[n++] = "-E";
	argv[n++] = "UTF8";
	argv[n++] = loc != (locale_t)0 ? "--locale=C.UTF-8" : "--locale=C";
	/*
	 * PASSERELLE_PG_NOSYNC=1 skips initdb's fsync of the new cluster: only
	 * for tests, which make and throw away clusters by the dozen.  A real
	 * node's data must be durable from the first byte.
	 */
	if (getenv("PASSERELLE_PG_NOSYNC") != NULL &&
	    strcmp(getenv("PASSERELLE_PG_NOSYNC"), "1") == 0)
		argv[n++] = "--no-sync";
	argv[n] = NULL;

	log_info("creating the embedded PostgreSQL cluster in %s", pe->data);
	return pgembed_run(pe, "initdb", argv, err, errlen);
}

static int
pgembed_start(const struct pgembed *pe, char *err, size_t errlen)
{
	char options[PATH_MAX + 128], log_tail[1024];
	const char *argv[16];
	size_t len;
	int n = 0, r;

	/*
	 * pg_ctl hands the options to /bin/sh: '' is an empty value, and the
	 * double quotes protect the directory inside the GUC's list syntax.
	 * pgembed_set_paths has refused every character that could escape.
	 */
	snprintf(options, sizeof(options), "-c listen_addresses='' "
	    "-c port=" PGEMBED_PORT " -c unix_socket_directories='\"%s\"'",
	    pe->run);
	argv[n++] = pe->pg_ctl;
	argv[n++] = "-D";
	argv[n++] = pe->data;
	argv[n++] = "-l";
	argv[n++] = pe->log_file;
	argv[n++] = "-w";
	argv[n++] = "-t";
	argv[n++] = PGEMBED_START_TIMEOUT;
	argv[n++] = "-o";
	argv[n++] = options;
	argv[n++] = "start";
	argv[n] = NULL;

	r = pgembed_run(pe, "pg_ctl start", argv, err, errlen);
	if (r < 0) {
		/* pg_ctl only says "examine the log"; the reason is in there. */
		pgembed_log_tail(pe, log_tail, sizeof(log_tail));
		len = strlen(err);
		if (log_tail[0] != '\0' && len + 16 < errlen)
			snprintf(err + len, errlen - len, "; %s: %s",
			    pe->log_file, log_tail);
		return r;
	}
	log_info("started the embedded PostgreSQL in %s", pe->dir);
	return 0;
}

/* Creates the node's database unless it exists. */
static int
pgembed_create_database(const struct pgembed *pe, char *err, size_t errlen)
{
	const char *keys[] = { "host", "port", "dbname", "user",
		"connect_timeout", "fallback_application_name", NULL };
	const char *values[] = { pe->run, PGEMBED_PORT, "postgres",
		PGEMBED_SUPERUSER, "10", "passerelle", NULL };
	const char *params[] = { PGEMBED_DBNAME };
	PGresult *res = NULL;
	PGconn *conn;
	int r = -EIO;

	conn = PQconnectdbParams(keys, values, 0);
	if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
		snprintf(err, errlen, "cannot connect to the embedded "
		    "PostgreSQL in %s: %s", pe->run,
		    conn != NULL ? PQerrorMessage(conn) : "out of memory");
		goto out;
	}
	res = PQexecParams(conn, "SELECT 1 FROM pg_database WHERE datname = $1",
	    1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		goto failed;
	if (PQntuples(res) > 0) {
		r = 0;
		goto out;
	}
	PQclear(res);
	/*
	 * A name cannot be a parameter; this one is a constant of the source.
	 * Concurrent creators are serialised by the flock, and a database
	 * created meanwhile by someone else (42P04) is as good.
	 */
	res = PQexec(conn, "CREATE DATABASE " PGEMBED_DBNAME);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

		if (state == NULL || strcmp(state, "42P04") != 0)
			goto failed;
	}
	log_info("created database " PGEMBED_DBNAME " in the embedded "
	    "PostgreSQL");
	r = 0;
	goto out;
failed:
	snprintf(err, errlen, "cannot create database " PGEMBED_DBNAME ": %s",
	    res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(conn));
out:
	PQclear(res);
	PQfinish(conn);
	if (r < 0) {
		/* libpq's messages end in a newline; the error is one line. */
		for (char *p = err; *p != '\0'; p++)
			if (*p == '\n')
				*p = p[1] == '\0' ? '\0' : ' ';
	}
	return r;
}

/* A handle on the cluster in pg_dir, with its folders made. */
static int
pgembed_open(const char *pg_dir, const char *bin_dir, const char *run_as,
    struct pgembed **ret, char *err, size_t errlen)
{
	int r = pgembed_new(pg_dir, bin_dir, run_as, ret, err, errlen);

	if (r < 0)
		return r;
	r = pgembed_make_dirs(*ret, err, errlen);
	if (r < 0) {
		pgembed_free(*ret);
		*ret = NULL;
	}
	return r;
}

int
pgembed_ensure(const char *pg_dir, const char *bin_dir, const char *run_as,
    char *ret_conninfo, size_t len, bool *ret_started, char *err, size_t errlen)
{
	struct pgembed *pe = NULL;
	bool started = false;
	int r, n;

	r = pgembed_open(pg_dir, bin_dir, run_as, &pe, err, errlen);
	if (r < 0)
		return r;
	r = pgembed_lock(pe, err, errlen);
	if (r < 0)
		goto out;
	r = pgembed_check_reach(pe, err, errlen);
	if (r < 0)
		goto out;
	if (!pgembed_exists(pe->pg_version)) {
		r = pgembed_initdb(pe, err, errlen);
		if (r < 0)
			goto out;
	}
	r = pgembed_clear_stale(pe, pe->pid_file, err, errlen);
	if (r == 0)
		r = pgembed_clear_stale(pe, pe->socket_lock, err, errlen);
	if (r < 0)
		goto out;
	if (!pgembed_running(pe)) {
		r = pgembed_start(pe, err, errlen);
		if (r < 0)
			goto out;
		started = true;
	}
	r = pgembed_create_database(pe, err, errlen);
	if (r < 0)
		goto out;
	n = snprintf(ret_conninfo, len, "host=%s port=" PGEMBED_PORT
	    " dbname=" PGEMBED_DBNAME " user=" PGEMBED_SUPERUSER, pe->run);
	if (n < 0 || (size_t)n >= len) {
		snprintf(err, errlen, "the embedded PostgreSQL's conninfo is "
		    "too long");
		r = -ENAMETOOLONG;
		goto out;
	}
	*ret_started = started;
out:
	pgembed_free(pe);	/* before pgembed_stop, which takes the lock */
	/*
	 * A failure leaves things as they were: the caller cannot stop a
	 * server it was not told about.
	 */
	if (r < 0 && started)
		pgembed_stop(pg_dir, bin_dir, run_as, false);
	return r;
}

/*
 * The claim of `passerelle serve` is a POSIX record lock (fcntl), not a
 * flock: F_GETLK lets a command see whether a serve holds it, and which,
 * without taking it, so that a command's look can never make a serve that
 * starts at that instant believe another one runs.  Such a lock is the
 * process's, released by the kernel when it ends however it ends, and also
 * when the process closes any descriptor of the file: the serve's process
 * never opens serve.lock but here.
 */
static pid_t
pgembed_claim_holder(int fd)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };

	if (fcntl(fd, F_GETLK, &fl) < 0 || fl.l_type == F_UNLCK)
		return 0;
	return fl.l_pid > 0 ? fl.l_pid : -1;
}

int
pgembed_claim(const char *pg_dir, const char *bin_dir, const char *run_as,
    int *ret_fd, char *err, size_t errlen)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	struct pgembed *pe = NULL;
	char pid[32];
	pid_t holder;
	int fd = -1, r, n;

	r = pgembed_open(pg_dir, bin_dir, run_as, &pe, err, errlen);
	if (r < 0)
		return r;
	fd = open(pe->claim_file, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
	    0644);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot open %s: %s", pe->claim_file,
		    strerror(-r));
		goto out;
	}
	while (fcntl(fd, F_SETLK, &fl) < 0) {
		if (errno == EINTR)
			continue;
		r = -errno;
		if (r == -EAGAIN || r == -EACCES) {
			holder = pgembed_claim_holder(fd);
			if (holder > 0)
				snprintf(err, errlen, "another passerelle serve "
				    "(pid %ld) is using %s; one serve per "
				    "data_dir", (long)holder, pe->dir);
			else
				snprintf(err, errlen, "another passerelle serve "
				    "is using %s (%s is locked); one serve per "
				    "data_dir", pe->dir, pe->claim_file);
			r = -EBUSY;
		} else {
			snprintf(err, errlen, "cannot lock %s: %s",
			    pe->claim_file, strerror(-r));
		}
		goto out;
	}
	/* For the operator's eyes only: the lock is what counts. */
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) < 0 || write(fd, pid, (size_t)n) != n)
		log_warn("%s", pe->claim_file);
	*ret_fd = fd;
	fd = -1;
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	pgembed_free(pe);
	return r;
}

/*
 * Whether a serve holds the claim on the cluster; unsure (a file that
 * cannot be read) counts as held, since then leaving the server running
 * is the harmless mistake.
 */
static pid_t
pgembed_claimed(const struct pgembed *pe)
{
	pid_t holder;
	int fd;

	fd = open(pe->claim_file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	holder = pgembed_claim_holder(fd);
	close(fd);
	return holder;
}

int
pgembed_stop(const char *pg_dir, const char *bin_dir, const char *run_as,
    bool unless_claimed)
{
	struct pgembed *pe = NULL;
	char err[1024];
	pid_t holder;
	int r;

	r = pgembed_new(pg_dir, bin_dir, run_as, &pe, err, sizeof(err));
	if (r < 0)
		goto out;
	if (!pgembed_exists(pe->pg_version))
		goto out;	/* no cluster, nothing runs */
	r = pgembed_lock(pe, err, sizeof(err));
	if (r < 0)
		goto out;
	/*
	 * Under the .lock: a serve that claims the cluster from now on waits
	 * for it in pgembed_ensure, then finds the server stopped and starts
	 * it again; one that claimed it before is seen here.
	 */
	if (unless_claimed && (holder = pgembed_claimed(pe)) != 0) {
		if (holder > 0)
			log_info("leaving the embedded PostgreSQL in %s running "
			    "for passerelle serve (pid %ld)", pe->dir,
			    (long)holder);
		else
			log_info("leaving the embedded PostgreSQL in %s running "
			    "(%s cannot be read)", pe->dir, pe->claim_file);
		goto out;
	}
	if (pgembed_running(pe)) {
		const char *const argv[] = { pe->pg_ctl, "-D", pe->data,
			"-m", "fast", "-w", "-t", PGEMBED_START_TIMEOUT, "stop",
			NULL };

		r = pgembed_run(pe, "pg_ctl stop", argv, err, sizeof(err));
		if (r == 0)
			log_info("stopped the embedded PostgreSQL in %s",
			    pe->dir);
	}
out:
	if (r < 0)
		log_warnx("embedded PostgreSQL: %s", err);
	pgembed_free(pe);
	return r;
}

int
pgembed_revive(const char *pg_dir, const char *bin_dir, const char *run_as,
    bool *ret_started, char *err, size_t errlen)
{
	struct pgembed *pe = NULL;
	char conninfo[1024];
	struct stat data_st, cwd_st;
	char proc[64];
	pid_t pid;
	int r;

	*ret_started = false;
	r = pgembed_new(pg_dir, bin_dir, run_as, &pe, err, errlen);
	if (r < 0)
		return r;
	/*
	 * The cheap look, without the .lock nor a program: the postmaster
	 * named in postmaster.pid lives, in this data directory.
	 */
	pid = pgembed_read_pid(pe->pid_file);
	snprintf(proc, sizeof(proc), "/proc/%ld/cwd", (long)pid);
	if (pid > 0 && stat(pe->data, &data_st) == 0 &&
	    stat(proc, &cwd_st) == 0 && cwd_st.st_dev == data_st.st_dev &&
	    cwd_st.st_ino == data_st.st_ino) {
		pgembed_free(pe);
		return 0;
	}
	pgembed_free(pe);
	return pgembed_ensure(pg_dir, bin_dir, run_as, conninfo,
	    sizeof(conninfo), ret_started, err, errlen);
}
