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
 * Snapshots: the store writes a consistent image file (VACUUM INTO, after
 * committing any pending group) into the scratch directory; it is digested,
 * renamed into the image directory under its SHA-256 and fsynced with that
 * directory, and libraft gets the 64-byte descriptor (image.h) in a buffer
 * of f (v2: libraft never frees it; snapshot_finalize releases it). So what
 * libraft stores and sends in InstallSnapshot stays 64 bytes however large
 * the state: the image moves out of band (transfer.h), in constant memory.
 * restore decodes the descriptor; a store at least as new is kept; else the
 * image comes from the image directory if it is there and verifies (size,
 * SHA-256), or from the fetch hook, and the store validates and installs it.
 * Either way the image is kept (the node serves it to others) with the one
 * before it, and older images are deleted.
 * Failure modes of snapshot and restore: the reason goes to f->errmsg and a
 * RAFT_* code to libraft (RAFT_NOSPACE for a full disk, RAFT_MALFORMED for a
 * descriptor or image that does not check out, RAFT_IOERR otherwise); a
 * restore that fails leaves the store as it was.
 */
#include "consensus/fsm.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static void set_errmsg(struct bkv_fsm *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_errmsg(struct bkv_fsm *f, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(f->errmsg, sizeof(f->errmsg), fmt, ap);
    va_end(ap);
}

static int raft_code(int bkv)
{
    switch (bkv) {
    case BKV_OK:
        return 0;
    case BKV_ERR_NOMEM:
        return RAFT_NOMEM;
    case BKV_ERR_NOSPACE:
        return RAFT_NOSPACE;
    case BKV_ERR_FORMAT:
        return RAFT_MALFORMED;
    default:
        return RAFT_IOERR;
    }
}

/* The image of hash is the newest one this node needs; delete all but the latest two. */
static void keep_image(struct bkv_fsm *f, const uint8_t hash[32])
{
    if (f->n_keep == 0 || memcmp(f->keep[0], hash, 32) != 0) {
        memcpy(f->keep[1], f->keep[0], 32);
        memcpy(f->keep[0], hash, 32);
        if (f->n_keep < 2)
            f->n_keep++;
    }
    bkv_image_gc(f->image_dir, (const uint8_t(*)[32])f->keep, f->n_keep);
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct bkv_fsm *f = fsm->data;
    struct bkv_image_desc d;
    char tmp[sizeof(f->scratch_dir) + 48], path[sizeof(f->image_dir) + BKV_IMAGE_NAME_LEN + 2];
    uint64_t index;
    int rv, n;

    if (f->r == NULL)
        return RAFT_INVALID;
    if (f->taking)
        return RAFT_BUSY; /* libraft takes one snapshot at a time */
    /*
     * libraft snapshots at last_applied; record that index in the store (the
     * trailing entries may have been barriers) so the image carries it.
     */
    index = raft_last_applied(f->r);
    rv = bkv_store_skip(f->store, index);
    n = snprintf(tmp, sizeof(tmp), "%s/image-%llu.tmp", f->scratch_dir, (unsigned long long)index);
    if (rv == BKV_OK && (n < 0 || (size_t)n >= sizeof(tmp)))
        rv = BKV_ERR_LENGTH;
    if (rv == BKV_OK) {
        unlink(tmp); /* a leftover of a crash */
        rv = bkv_store_snapshot(f->store, tmp);
    }
    if (rv != BKV_OK) {
        set_errmsg(f, "snapshot at %llu: %s", (unsigned long long)index,
                   bkv_store_errmsg(f->store));
        return raft_code(rv);
    }
    d.index = bkv_store_applied_index(f->store); /* what the image holds (committed) */
    rv = bkv_image_digest(tmp, &d.size, d.sha256, f->errmsg, sizeof(f->errmsg));
    if (rv == BKV_OK)
        rv = bkv_image_path(f->image_dir, d.sha256, path, sizeof(path));
    if (rv == BKV_OK && rename(tmp, path) != 0) {
        set_errmsg(f, "snapshot: rename %s to %s: %s", tmp, path, strerror(errno));
        rv = BKV_ERR_IO;
    }
    if (rv == BKV_OK && (rv = bkv_image_sync(path)) != BKV_OK)
        set_errmsg(f, "snapshot: fsync %s: %s", path, bkv_strerror(rv));
    if (rv != BKV_OK) {
        unlink(tmp);
        return raft_code(rv);
    }
    bkv_image_desc_encode(&d, f->desc);
    f->bufs[0].base = f->desc;
    f->bufs[0].len = sizeof(f->desc);
    *bufs = f->bufs;
    *n_bufs = 1;
    f->taking = 1;
    f->snapshots++;
    f->image_size = d.size;
    f->errmsg[0] = '\0';
    keep_image(f, d.sha256);
    return 0;
}

static int fsm_snapshot_finalize(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct bkv_fsm *f = fsm->data;

    f->taking = 0;
    *bufs = NULL;
    *n_bufs = 0;
    return 0;
}

/*
 * Put the image d names at path: it is local and intact, or the fetch hook
 * brings it (into the scratch directory, then renamed in place).
 */
static int image_get(struct bkv_fsm *f, const struct bkv_image_desc *d, const char *path)
{
    char why[512], tmp[sizeof(f->scratch_dir) + BKV_IMAGE_NAME_LEN + 16];
    char name[BKV_IMAGE_NAME_LEN + 1];
    int rv;

    rv = bkv_image_verify(path, d, why, sizeof(why));
    if (rv == BKV_OK)
        return BKV_OK;
    if (rv == BKV_ERR_FORMAT)
        unlink(path); /* a damaged copy: fetch it again */
    if (f->fetch == NULL) {
        set_errmsg(f, "restore: %s, and no way to fetch it", why);
        return BKV_ERR_IO;
    }
    bkv_image_name(d->sha256, name);
    snprintf(tmp, sizeof(tmp), "%s/fetch-%s", f->scratch_dir, name);
    unlink(tmp);
    rv = f->fetch(f->fetch_arg, d->sha256, d->size, tmp, why, sizeof(why));
    if (rv != BKV_OK) {
        unlink(tmp);
        set_errmsg(f, "restore: fetch image %.16s... (%llu bytes): %s", name,
                   (unsigned long long)d->size, why);
        return rv;
    }
    if (rename(tmp, path) != 0) {
        set_errmsg(f, "restore: rename %s to %s: %s", tmp, path, strerror(errno));
        unlink(tmp);
        return BKV_ERR_IO;
    }
    rv = bkv_image_sync(path);
    if (rv != BKV_OK)
        set_errmsg(f, "restore: fsync %s: %s", path, bkv_strerror(rv));
    f->fetches++;
    return rv;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    struct bkv_fsm *f = fsm->data;
    struct bkv_image_desc d;
    char path[sizeof(f->image_dir) + BKV_IMAGE_NAME_LEN + 2];
    int rv, kept = 0;

    if (bkv_image_desc_decode(buf->base, buf->len, &d) != BKV_OK) {
        set_errmsg(f, "restore: not a BKV snapshot descriptor (%zu bytes)", buf->len);
        return RAFT_MALFORMED;
    }
    if (d.index > bkv_store_applied_index(f->store)) {
        rv = bkv_image_path(f->image_dir, d.sha256, path, sizeof(path));
        if (rv == BKV_OK)
            rv = image_get(f, &d, path);
        if (rv != BKV_OK)
            return raft_code(rv);
        rv = bkv_store_restore(f->store, path, &kept);
        if (rv != BKV_OK) {
            set_errmsg(f, "restore: %s", bkv_store_errmsg(f->store));
            return raft_code(rv);
        }
        if (!kept && bkv_store_applied_index(f->store) != d.index) {
            set_errmsg(f, "restore: the image holds index %llu, its descriptor says %llu",
                       (unsigned long long)bkv_store_applied_index(f->store),
                       (unsigned long long)d.index);
            return RAFT_MALFORMED;
        }
        if (!kept) {
            f->restores++;
            f->image_size = d.size;
        }
    }
    /* Kept or installed: this node now needs (and serves) the image d names. */
    keep_image(f, d.sha256);
    f->errmsg[0] = '\0';
    /* Success: the buffer is ours (libraft's restore contract). */
    raft_free(buf->base);
    return 0;
}

int bkv_fsm_init(struct bkv_fsm *f, struct bkv_store *store, const char *scratch_dir,
                 const char *image_dir)
{
    size_t slen, ilen;

    if (f == NULL || store == NULL || scratch_dir == NULL || image_dir == NULL)
        return BKV_ERR_INVALID;
    slen = strlen(scratch_dir);
    ilen = strlen(image_dir);
    if (slen == 0 || slen >= sizeof(f->scratch_dir) - 128 || ilen == 0 ||
        ilen >= sizeof(f->image_dir) - 128)
        return BKV_ERR_INVALID;
    memset(f, 0, sizeof(*f));
    f->ring = calloc(BKV_FSM_RING, sizeof(*f->ring));
    if (f->ring == NULL)
        return BKV_ERR_NOMEM;
    memcpy(f->scratch_dir, scratch_dir, slen + 1);
    memcpy(f->image_dir, image_dir, ilen + 1);
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

void bkv_fsm_set_fetch(struct bkv_fsm *f, bkv_fsm_fetch_fn fetch, void *arg)
{
    f->fetch = fetch;
    f->fetch_arg = arg;
}

void bkv_fsm_close(struct bkv_fsm *f)
{
    if (f == NULL)
        return;
    free(f->ring);
    f->ring = NULL;
    f->last = NULL;
    f->r = NULL;
}
