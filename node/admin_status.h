/*
 * `bkv-admin status` (admin_status.c): draw the cluster from the nodes'
 * admin endpoints. argv[0] is "status". Returns the process exit status.
 */
#ifndef BKV_NODE_ADMIN_STATUS_H
#define BKV_NODE_ADMIN_STATUS_H

int bkv_admin_status_main(int argc, char **argv);

#endif
