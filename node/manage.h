/*
 * manage.h - the space manager's commands (main.c lists them).
 */
#ifndef PASSERELLE_MANAGE_H
#define PASSERELLE_MANAGE_H

int manage_member_add(int argc, char **argv);
int manage_member_list(int argc, char **argv);
int manage_member_show(int argc, char **argv);
int manage_member_topup(int argc, char **argv);
int manage_member_plan(int argc, char **argv);
int manage_member_suspend(int argc, char **argv);
int manage_member_resume(int argc, char **argv);
int manage_member_history(int argc, char **argv);
int manage_pass_issue(int argc, char **argv);
int manage_pass_revoke(int argc, char **argv);
int manage_peer_terms(int argc, char **argv);
int manage_house(int argc, char **argv);
int manage_staff_add(int argc, char **argv);
int manage_staff_list(int argc, char **argv);
int manage_staff_remove(int argc, char **argv);
int manage_staff_token(int argc, char **argv);

#endif
