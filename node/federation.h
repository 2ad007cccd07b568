/*
 * federation.h - the coordinator's commands: create a federation, admit,
 * remove and rotate spaces, roll the directory-signing key.
 *
 * The coordinator's state is a folder (see docs/coordinating.md): the CA
 * (certs/pki.sh), the directory-signing key kept apart from it, the
 * directory description (federation.json) and each published directory.
 */
#ifndef PASSERELLE_FEDERATION_H
#define PASSERELLE_FEDERATION_H

int federation_cmd_init(int argc, char **argv);
int federation_cmd_admit(int argc, char **argv);
int federation_cmd_remove(int argc, char **argv);
int federation_cmd_add_key(int argc, char **argv);
int federation_cmd_renew(int argc, char **argv);
int federation_cmd_roll_key(int argc, char **argv);
int federation_cmd_sign(int argc, char **argv);

#endif
