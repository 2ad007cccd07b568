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

/* Stops the cluster (fast shutdown) if it runs. */
int pgembed_stop(const char *pg_dir, const char *bin_dir, const char *run_as);

#endif
