/*
 * join.h - a new space's commands: `init` makes its keys, certificate
 * request and join request; `join` installs the coordinator's bundle;
 * `pass new-key` prepares a pass-signing key rotation.
 */
#ifndef PASSERELLE_JOIN_H
#define PASSERELLE_JOIN_H

int join_cmd_init(int argc, char **argv);
int join_cmd_join(int argc, char **argv);
int join_cmd_new_pass_key(int argc, char **argv);

#endif
