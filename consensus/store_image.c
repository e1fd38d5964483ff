/*
 * The whole replicated state at once (store.c has the open and apply side):
 * its hash, and snapshot images of the database written and restored.
 *
 * Normal path: bkv_store_hash commits the pending group and chains SHA-256
 * over every record and remembered request in key order, in one read
 * transaction. A snapshot commits the pending group and is VACUUM INTO a new
 * file. A restore opens the image read-only and validates it, keeps the
 * current state unless the image is newer, else copies it next to the
 * database with the backup API (page by page, synced), checkpoints and
 * closes, removes -wal/-shm, renames the copy into place and reopens.
 * Failure modes: SQLite errors are BKV_ERR_NOSPACE for SQLITE_FULL, otherwise
 * BKV_ERR_IO, with the text in bkv_store_errmsg(); a failed SHA-256 is
 * BKV_ERR_CRYPTO; a failed snapshot removes its partial file. Images are refused (BKV_ERR_FORMAT)
 * unless their header, integrity check and schema match what bkv_store_snapshot writes. A restore
 * that fails after the old connection was closed and cannot reopen leaves the
 * handle without a database: every later call fails with BKV_ERR_IO, and the
 * node must restart.
 */
#include "consensus/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "consensus/image.h"
#include "consensus/store_internal.h"
#include "proto/err.h"
#include "proto/kdf.h"
#include "proto/util.h"

#define HASH_LABEL "BKV-STORE-HASH-v2"

/*
 * Chain h = SHA-256(h || tag || fields || blobs) over the rows of the hash
 * statement id, in key order: each column is 8 bytes big-endian, the value
 * of an integer or the length of a blob (all ones for NULL); the blob bytes
 * follow in column order.
 */
static int hash_rows(struct bkv_store *s, int id, uint8_t tag, uint8_t h[static 32])
{
    sqlite3_stmt *st = s->st[id];
    int cols = sqlite3_column_count(st), rc;

    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        uint8_t fixed[8 * 8 + 1], *p = fixed + 1;
        struct bkv_buf parts[2 + 8];
        size_t np = 2;

        fixed[0] = tag;
        for (int c = 0; c < cols; c++) {
            int t = sqlite3_column_type(st, c);

            if (t == SQLITE_INTEGER) {
                bkv_put_u64(p, (uint64_t)sqlite3_column_int64(st, c));
            } else {
                size_t len = (size_t)sqlite3_column_bytes(st, c);

                bkv_put_u64(p, t == SQLITE_NULL ? UINT64_MAX : len);
                if (t != SQLITE_NULL && len > 0) {
                    parts[np].p = sqlite3_column_blob(st, c);
                    parts[np++].n = len;
                }
            }
            p += 8;
        }
        parts[0] = (struct bkv_buf){h, 32};
        parts[1] = (struct bkv_buf){fixed, (size_t)(p - fixed)};
        if (bkv_sha256(parts, np, h) != 0) {
            sqlite3_reset(st);
            store_set_err(s->errmsg, sizeof(s->errmsg), "store: hash: SHA-256 failed");
            return BKV_ERR_CRYPTO;
        }
    }
    rc = rc == SQLITE_DONE ? BKV_OK : store_db_fail(s, rc, "hash");
    sqlite3_reset(st);
    return rc;
}

int bkv_store_hash(struct bkv_store *s, uint8_t out[static 32])
{
    struct bkv_buf label = {(const uint8_t *)HASH_LABEL, sizeof(HASH_LABEL) - 1};
    uint8_t h[32];
    int rv;

    if (s == NULL)
        return BKV_ERR_INVALID;
    if (s->db == NULL)
        return store_no_db(s);
    if (bkv_sha256(&label, 1, h) != 0)
        return BKV_ERR_CRYPTO;
    rv = bkv_store_flush(s);
    if (rv == BKV_OK)
        rv = store_run(s, ST_BEGIN_READ, "begin read");
    if (rv != BKV_OK)
        return rv;
    rv = hash_rows(s, ST_HASH_REC, 'R', h);
    if (rv == BKV_OK)
        rv = hash_rows(s, ST_HASH_REQ, 'Q', h);
    if (store_run(s, ST_COMMIT, "end read") != BKV_OK && rv == BKV_OK)
        rv = BKV_ERR_IO;
    if (rv == BKV_OK)
        memcpy(out, h, 32);
    return rv;
}

int bkv_store_snapshot(struct bkv_store *s, const char *path)
{
    sqlite3_stmt *st = NULL;
    int rc;

    if (s == NULL || path == NULL)
        return BKV_ERR_INVALID;
    if (s->db == NULL)
        return store_no_db(s);
    rc = bkv_store_flush(s); /* the image holds every applied entry */
    if (rc != BKV_OK)
        return rc;
    /* VACUUM INTO: a consistent, compact copy written page by page. */
    rc = sqlite3_prepare_v2(s->db, "VACUUM INTO ?1", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
    }
    if (rc != SQLITE_DONE) {
        rc = store_db_fail(s, rc, "snapshot");
        sqlite3_finalize(st);
        unlink(path);
        return rc;
    }
    sqlite3_finalize(st);
    return BKV_OK;
}

/*
 * Open the image at path read-only without trusting it: the SQLite header of
 * a rollback-journal database (what VACUUM INTO writes), a clean
 * integrity_check, exactly our schema. *applied gets its applied index.
 */
static int image_open(struct bkv_store *s, const char *path, sqlite3 **out, uint64_t *applied)
{
    static const char magic[16] = "SQLite format 3";
    uint8_t hdr[100];
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    ssize_t got;
    int fd, rv = BKV_ERR_FORMAT;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        store_set_err(s->errmsg, sizeof(s->errmsg), "store: image %s: %s", path, strerror(errno));
        return BKV_ERR_IO;
    }
    got = read(fd, hdr, sizeof(hdr));
    close(fd);
    if (got != (ssize_t)sizeof(hdr) || memcmp(hdr, magic, 16) != 0 || hdr[18] != 1 ||
        hdr[19] != 1) {
        store_set_err(s->errmsg, sizeof(s->errmsg), "store: image %s: not a snapshot image", path);
        return BKV_ERR_FORMAT;
    }
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        store_set_err(s->errmsg, sizeof(s->errmsg), "store: image %s: %s", path,
                      db != NULL ? sqlite3_errmsg(db) : "cannot open");
        rv = BKV_ERR_IO;
        goto out;
    }
    store_harden(db);
    if (sqlite3_prepare_v2(db, "PRAGMA integrity_check(1)", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW ||
        strcmp((const char *)sqlite3_column_text(st, 0), "ok") != 0) {
        store_set_err(s->errmsg, sizeof(s->errmsg), "store: image %s: integrity check: %s", path,
                      st != NULL && sqlite3_column_text(st, 0) != NULL
                          ? (const char *)sqlite3_column_text(st, 0)
                          : sqlite3_errmsg(db));
        goto out;
    }
    rv = store_check_schema(db, path, applied, s->errmsg, sizeof(s->errmsg));
out:
    sqlite3_finalize(st);
    if (rv == BKV_OK)
        *out = db;
    else
        sqlite3_close(db);
    return rv;
}

/* Copy the open image into a new database file at to, page by page, synced. */
static int image_copy(struct bkv_store *s, sqlite3 *img, const char *to)
{
    sqlite3 *dst = NULL;
    sqlite3_backup *b;
    int rc;

    unlink(to);
    rc = sqlite3_open_v2(to, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(dst, "PRAGMA synchronous = FULL", NULL, NULL, NULL);
    if (rc == SQLITE_OK) {
        b = sqlite3_backup_init(dst, "main", img, "main");
        if (b == NULL) {
            rc = sqlite3_errcode(dst);
            if (rc == SQLITE_OK)
                rc = SQLITE_ERROR;
        } else {
            /* All pages in one step: SQLITE_DONE, anything else is a failure. */
            int step = sqlite3_backup_step(b, -1);
            int fin = sqlite3_backup_finish(b); /* the step's error, or its own */

            rc = step == SQLITE_DONE ? fin : (step == SQLITE_OK ? SQLITE_ERROR : step);
        }
    }
    if (rc != SQLITE_OK)
        store_set_err(s->errmsg, sizeof(s->errmsg), "store: copy image to %s: %s", to,
                      dst != NULL ? sqlite3_errmsg(dst) : sqlite3_errstr(rc));
    if (sqlite3_close(dst) != SQLITE_OK && rc == SQLITE_OK)
        rc = SQLITE_IOERR;
    if (rc != SQLITE_OK)
        unlink(to);
    return rc == SQLITE_OK ? BKV_OK : store_map_rc(rc);
}

static void unlink_side(const char *db, const char *suffix)
{
    char p[4200];

    snprintf(p, sizeof(p), "%s%s", db, suffix);
    unlink(p);
}

int bkv_store_restore(struct bkv_store *s, const char *path, int *kept)
{
    sqlite3 *img = NULL;
    char tmp[4200];
    uint64_t applied = 0;
    int rv, rc;

    if (s == NULL || path == NULL || kept == NULL)
        return BKV_ERR_INVALID;
    *kept = 0;
    if (s->db == NULL)
        return store_no_db(s);
    rv = bkv_store_flush(s);
    if (rv != BKV_OK)
        return rv;
    rv = image_open(s, path, &img, &applied);
    if (rv != BKV_OK)
        return rv;
    if (applied <= s->applied) {
        sqlite3_close(img);
        *kept = 1;
        return BKV_OK;
    }
    /* Copy the validated image next to the database: rename is atomic there. */
    snprintf(tmp, sizeof(tmp), "%s.restore", s->path);
    rv = image_copy(s, img, tmp);
    sqlite3_close(img);
    if (rv != BKV_OK)
        return rv;
    /* Empty the WAL into the database first: the WAL must not outlive it. */
    rc = sqlite3_exec(s->db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        unlink(tmp);
        return store_db_fail(s, rc, "checkpoint before restore");
    }
    store_finalize_all(s);
    sqlite3_close(s->db);
    s->db = NULL;
    unlink_side(s->path, "-wal");
    unlink_side(s->path, "-shm");
    if (rename(tmp, s->path) != 0 || bkv_image_sync_dir(s->path) != BKV_OK) {
        store_set_err(s->errmsg, sizeof(s->errmsg), "store: install image as %s: %s", s->path,
                      strerror(errno));
        unlink(tmp);
        store_db_open(s, NULL, 0); /* back to the old state, if it still opens */
        return BKV_ERR_IO;
    }
    rv = store_db_open(s, s->errmsg, sizeof(s->errmsg));
    if (rv == BKV_OK && s->applied != applied)
        rv = BKV_ERR_IO;
    return rv;
}
