/*
 * federation.c - the coordinator's commands (being written).
 */
#include "cli.h"
#include "federation.h"

int federation_cmd_init(int argc, char **argv) { return cli_fail("not yet"); }
int federation_cmd_admit(int argc, char **argv) { return cli_fail("not yet"); }
int federation_cmd_remove(int argc, char **argv) { return cli_fail("not yet"); }
int federation_cmd_add_key(int argc, char **argv) { return cli_fail("not yet"); }
int federation_cmd_renew(int argc, char **argv) { return cli_fail("not yet"); }
int federation_cmd_roll_key(int argc, char **argv) { return cli_fail("not yet"); }
int federation_cmd_sign(int argc, char **argv) { return cli_fail("not yet"); }
