/*
 * The consensus benchmark of bkv-bench: committed ATTEMPTs per second and
 * commit latency (propose -> callback) on a local 3-node cluster, next to a
 * bare libraft baseline of the same entry size measured in the same run.
 * Figures, never a pass/fail test.
 */
#ifndef BKV_BENCH_RAFT_H
#define BKV_BENCH_RAFT_H

/*
 * Run a 3-node cluster (three raft instances in this process, each on its
 * own libuv loop thread, over loopback TCP, with the real disk log in a
 * temporary directory under /var/tmp, removed afterwards) at 1, 16 and 256
 * proposals in flight for seconds_per_level seconds each; first bare libraft
 * (raft_apply of one ATTEMPT-sized entry per request, an FSM that does
 * nothing), then BKV (bkv_raft_propose of ATTEMPTs through the SQLite
 * store). Prints one table to stdout with BKV as a percentage of the bare
 * baseline. Returns 0, or a BKV_ERR_* code after printing the reason to
 * stderr. Ignores SIGPIPE for the process. Main thread only; not reentrant.
 */
int bkv_bench_raft(int seconds_per_level);

#endif
