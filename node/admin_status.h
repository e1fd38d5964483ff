/*
 * `bkv-admin status` (admin_status.c): draw the cluster from the nodes'
 * admin endpoints. argv[0] is "status". Returns the process exit status.
 */
#ifndef BKV_NODE_ADMIN_STATUS_H
#define BKV_NODE_ADMIN_STATUS_H

int bkv_admin_status_main(int argc, char **argv);
/* `bkv-admin members add|promote|remove`, `bkv-admin leader transfer`: group is
 * "members" or "leader", argv[0] the verb. Returns the process exit status. */
int bkv_admin_change_main(const char *group, int argc, char **argv);

#endif
