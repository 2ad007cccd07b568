/*
 * pgembed.h - the embedded default: a private PostgreSQL cluster per node.
 *
 * With no database URL configured, a node keeps its own cluster under
 * DATA_DIR/pg (data in pg/data, unix socket in pg/run, no TCP listener),
 * created by initdb on first use and started with pg_ctl.  PostgreSQL refuses
 * to run as root, so when the node runs as root the cluster belongs to an
 * unprivileged system user (configurable, "postgres" by default) and the
 * server programs run under that user.
 */
#ifndef PASSERELLE_PGEMBED_H
#define PASSERELLE_PGEMBED_H

#include <stdbool.h>
#include <stddef.h>

#define PGEMBED_DBNAME "passerelle"

/*
 * Makes sure the cluster under pg_dir exists and runs, and that database
 * "passerelle" exists in it.  Writes a libpq conninfo into ret_conninfo;
 * *ret_started tells whether this call started the server (so that the
 * caller can stop it again).  bin_dir may be NULL (the newest installed
 * PostgreSQL is found); run_as is used only when running as root.
 */
int pgembed_ensure(const char *pg_dir, const char *bin_dir, const char *run_as,
    char *ret_conninfo, size_t len, bool *ret_started, char *err, size_t errlen);

/*
 * For `passerelle serve`: claims the cluster for the life of the process
 * (a lock on pg_dir/serve.lock, which the kernel releases when the process
 * ends, however it ends).  *ret_fd is the lock's descriptor: closing it
 * lets go.  -EBUSY, with the other's PID in err, when another process (a
 * serve on the same data_dir) holds the claim.  The serve claims before
 * pgembed_ensure, so that a command running meanwhile sees the claim when
 * it ends and leaves the server running.
 */
int pgembed_claim(const char *pg_dir, const char *bin_dir, const char *run_as,
    int *ret_fd, char *err, size_t errlen);

/*
 * Stops the cluster (fast shutdown) if it runs.  With unless_claimed (a
 * command that started the server for itself), leaves it running when a
 * serve holds the claim; never pass it from the process that holds it.
 */
int pgembed_stop(const char *pg_dir, const char *bin_dir, const char *run_as,
    bool unless_claimed);

/*
 * For the serve that holds the claim: when the server is not running (it
 * was killed, or stopped behind the node's back), starts it again and sets
 * *ret_started.  Cheap when it runs: a look at postmaster.pid and /proc.
 */
int pgembed_revive(const char *pg_dir, const char *bin_dir, const char *run_as,
    bool *ret_started, char *err, size_t errlen);

#endif
