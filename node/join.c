/*
 * join.c - a new space's commands (being written).
 */
#include "cli.h"
#include "join.h"

int join_cmd_init(int argc, char **argv) { return cli_fail("not yet"); }
int join_cmd_join(int argc, char **argv) { return cli_fail("not yet"); }
int join_cmd_new_pass_key(int argc, char **argv) { return cli_fail("not yet"); }
