/*
 * The libraft state machine (raft_fsm version 2) over a bkv_store.
 *
 * Normal path: apply decodes the entry into f->cmds and applies it to the
 * store at raft_last_applied() + 1 (libraft 0.22.1 bumps last_applied after
 * apply returns; barriers and configuration entries never reach apply, so
 * the store sees gaps). The results go to the ring slot of that index and
 * *result points at it for the proposer's raft_apply callback. libraft 0.22.1
 * fires the callbacks of all entries committed in one step only after it has
 * applied all of them (measured), hence a ring stamped with the entry index
 * rather than one buffer; fsm.h gives the proposer's check.
 * Failure modes: a malformed entry (only a buggy or hostile leader can write
 * one) is treated alike on every node: its index is marked applied with no
 * change, the slot's status carries the decode error, apply returns 0. An
 * entry at or below the store's applied index changes nothing and its slot
 * says BKV_ERR_RAFT ("already applied: the store is ahead of the log"): on a
 * replay after a restart nobody reads it, and a proposer whose entry landed
 * on a store that is ahead of the log gets an error, never a false OK. A
 * storage failure returns RAFT_IOERR: libraft then turns the instance
 * unavailable and the node must exit for its supervisor to restart it, never
 * carry on with a state that misses an entry.
 *
 * Snapshots: the store writes a consistent image file (VACUUM INTO) into the
 * snapshot directory; it is mapped read-only and handed to libraft as one
 * buffer into the mapping, with no heap copy (v2: libraft never frees it;
 * snapshot_finalize unmaps and deletes the file). The node turns snapshot
 * compression off so raft_uv writes the mapping out as is. A limit of
 * libraft 0.22.1 to keep in mind: InstallSnapshot is one message, so the
 * leader reads the whole snapshot into memory to send it and the follower
 * receives it in one heap buffer (restore gets it that way); only our own
 * image files are bounded by the disk rather than by memory.
 * restore writes that buffer to a file, lets the store validate and install
 * it (or keep its state if it is at least as new), then raft_frees it.
 */
#include "consensus/fsm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto/err.h"

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    struct bkv_fsm *f = fsm->data;
    struct bkv_fsm_result *slot;
    uint64_t index;
    size_t n = 0;
    int rv;

    if (f->r == NULL)
        return RAFT_INVALID;
    index = raft_last_applied(f->r) + 1;
    slot = &f->ring[index % BKV_FSM_RING];
    slot->index = index;
    slot->n = 0;
    slot->errmsg[0] = '\0';
    rv = bkv_cmd_entry_decode(buf->base, buf->len, f->cmds, BKV_CMD_MAX_BATCH, &n);
    if (rv != BKV_OK) {
        /* Deterministic on every node: skip the entry, report why. */
        slot->status = rv;
        if (bkv_store_skip(f->store, index) != BKV_OK)
            return RAFT_IOERR;
    } else {
        int ahead = 0;

        if (bkv_store_apply(f->store, index, f->cmds, n, slot->results, &ahead) != BKV_OK)
            return RAFT_IOERR;
        if (ahead) {
            /*
             * The store already holds index: a replay after a restart (no
             * proposer waits) or a store ahead of its log. Never hand a
             * proposer OK for commands that were not applied.
             */
            slot->status = BKV_ERR_RAFT;
            snprintf(slot->errmsg, sizeof(slot->errmsg),
                     "entry %llu already applied: the store is ahead of the log",
                     (unsigned long long)index);
        } else {
            slot->status = BKV_OK;
            slot->n = n;
        }
    }
    f->last = slot;
    *result = slot;
    return 0;
}

static void snapshot_release(struct bkv_fsm *f)
{
    if (f->map != NULL)
        munmap(f->map, f->map_len);
    if (f->map_path[0] != '\0')
        unlink(f->map_path);
    f->map = NULL;
    f->map_len = 0;
    f->map_path[0] = '\0';
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct bkv_fsm *f = fsm->data;
    struct stat st;
    void *map;
    uint64_t index;
    int fd, n;

    if (f->r == NULL)
        return RAFT_INVALID;
    if (f->map != NULL)
        return RAFT_BUSY; /* libraft takes one snapshot at a time */
    /*
     * libraft snapshots at last_applied; record that index in the store (the
     * trailing entries may have been barriers) so the image carries it.
     */
    index = raft_last_applied(f->r);
    if (bkv_store_skip(f->store, index) != BKV_OK)
        return RAFT_IOERR;
    n = snprintf(f->map_path, sizeof(f->map_path), "%s/snapshot-%llu.db", f->snapshot_dir,
                 (unsigned long long)index);
    if (n < 0 || (size_t)n >= sizeof(f->map_path)) {
        f->map_path[0] = '\0';
        return RAFT_NAMETOOLONG;
    }
    unlink(f->map_path); /* a leftover of a crash */
    if (bkv_store_snapshot(f->store, f->map_path) != BKV_OK) {
        f->map_path[0] = '\0';
        return RAFT_IOERR;
    }
    fd = open(f->map_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_size <= 0) {
        if (fd >= 0)
            close(fd);
        snapshot_release(f);
        return RAFT_IOERR;
    }
    map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        snapshot_release(f);
        return RAFT_NOMEM;
    }
    f->map = map;
    f->map_len = (size_t)st.st_size;
    f->bufs[0].base = map;
    f->bufs[0].len = f->map_len;
    *bufs = f->bufs;
    *n_bufs = 1;
    f->snapshots++;
    return 0;
}

static int fsm_snapshot_finalize(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct bkv_fsm *f = fsm->data;

    snapshot_release(f);
    *bufs = NULL;
    *n_bufs = 0;
    return 0;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    struct bkv_fsm *f = fsm->data;
    char path[sizeof(f->snapshot_dir) + 32];
    int fd, rv, kept = 0, n;

    n = snprintf(path, sizeof(path), "%s/restore.db", f->snapshot_dir);
    if (n < 0 || (size_t)n >= sizeof(path))
        return RAFT_NAMETOOLONG;
    unlink(path);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return RAFT_IOERR;
    rv = write_all(fd, buf->base, buf->len);
    if (close(fd) != 0)
        rv = -1;
    if (rv != 0) {
        rv = errno == ENOSPC ? RAFT_NOSPACE : RAFT_IOERR;
        unlink(path);
        return rv;
    }
    rv = bkv_store_restore(f->store, path, &kept);
    unlink(path);
    if (rv != BKV_OK)
        return rv == BKV_ERR_FORMAT ? RAFT_MALFORMED : RAFT_IOERR;
    /* Success: the buffer is ours (libraft's restore contract). */
    raft_free(buf->base);
    if (!kept)
        f->restores++;
    return 0;
}

int bkv_fsm_init(struct bkv_fsm *f, struct bkv_store *store, const char *snapshot_dir)
{
    size_t len;

    if (f == NULL || store == NULL || snapshot_dir == NULL)
        return BKV_ERR_INVALID;
    len = strlen(snapshot_dir);
    if (len == 0 || len >= sizeof(f->snapshot_dir) - 64)
        return BKV_ERR_INVALID;
    memset(f, 0, sizeof(*f));
    f->ring = calloc(BKV_FSM_RING, sizeof(*f->ring));
    if (f->ring == NULL)
        return BKV_ERR_NOMEM;
    memcpy(f->snapshot_dir, snapshot_dir, len + 1);
    f->store = store;
    f->raft.version = 2;
    f->raft.data = f;
    f->raft.apply = fsm_apply;
    f->raft.snapshot = fsm_snapshot;
    f->raft.restore = fsm_restore;
    f->raft.snapshot_finalize = fsm_snapshot_finalize;
    f->raft.snapshot_async = NULL;
    return BKV_OK;
}

void bkv_fsm_bind(struct bkv_fsm *f, struct raft *r)
{
    f->r = r;
}

void bkv_fsm_close(struct bkv_fsm *f)
{
    if (f == NULL)
        return;
    snapshot_release(f);
    free(f->ring);
    f->ring = NULL;
    f->last = NULL;
    f->r = NULL;
}
